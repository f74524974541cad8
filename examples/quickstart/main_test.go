package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

func TestQuickstart(t *testing.T) {
	dir := t.TempDir()
	input := filepath.Join(dir, "payments.csv")
	require.NoError(t, os.WriteFile(input, []byte("name,amount\nada,10.5\nalan,0\ngrace,3\n"), 0o600))
	db := filepath.Join(dir, "batch.db")

	var jobs launcher.Registry
	jobs.MustRegister("payments", newJob)
	var out bytes.Buffer
	p := launcher.Program{Registry: &jobs, Stdout: &out, Stderr: io.Discard}
	code := p.Run(context.Background(), []string{"-db", db, "run", "input=" + input})
	require.Equal(t, 0, code, out.String())
	require.Regexp(t, `load\s+COMPLETED\s+3\s+2\s+1`, out.String(), "read 3, wrote 2, filtered 1")

	repo, err := sqlite.Open(context.Background(), db, sqlite.Config{})
	require.NoError(t, err)
	defer repo.Close()
	var total float64
	require.NoError(t, repo.DB().Get(&total, `SELECT SUM(amount) FROM payments`))
	require.Equal(t, 13.5, total)
}
