package postgres

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestWithConnectTimeout(t *testing.T) {
	t.Setenv("PGCONNECT_TIMEOUT", "")
	for in, want := range map[string]string{
		"postgres://u@h/db":                         "postgres://u@h/db?connect_timeout=10",
		"postgres://u@h/db?sslmode=disable":         "postgres://u@h/db?sslmode=disable&connect_timeout=10",
		"postgres://u@h/db?connect_timeout=3":       "postgres://u@h/db?connect_timeout=3",
		"postgresql://u:p?w@h/db":                   "postgresql://u:p?w@h/db?connect_timeout=10",
		"host=h dbname=db":                          "host=h dbname=db connect_timeout=10",
		"host=h connect_timeout=2":                  "host=h connect_timeout=2",
		"connect_timeout = 2 host=h":                "connect_timeout = 2 host=h",
		"host=h application_name=connect_timeout_x": "host=h application_name=connect_timeout_x connect_timeout=10",
	} {
		require.Equal(t, want, withConnectTimeout(in), in)
	}
	t.Setenv("PGCONNECT_TIMEOUT", "4")
	require.Equal(t, "host=h", withConnectTimeout("host=h"))
}
