package dashboard

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRedact: the forms a secret takes in errors, parameters and inputs
// are hidden; ordinary text is left alone.
func TestRedact(t *testing.T) {
	for _, s := range []string{
		`password=hunter2`,
		`{"password": "hunter2"}`,
		`decode "{\"password\":\"hunter2\"}"`,
		`parse "host=db password=\"hunter2\""`,
		`password="hunter2`,
		`--password hunter2`,
		`password: hunter2`,
		`PGPASSWORD=hunter2`,
		`dsn_postgres://app:hunter2@db/app`,
		`dial postgres://app:a@hunter2@db/app: refused`,
		`postgres:\/\/app:hunter2@db\/app`,
		`app:hunter2@tcp(db:3306)/app`,
		`token%3Dhunter2`,
		`"api_key" => "hunter2"`,
		`secret = 'hun ter2'`,
		`Authorization: Bearer hunter2`,
		`GET /x?access_token=hunter2&page=2`,
	} {
		got := redact(s)
		require.NotContains(t, got, "hunter2", "%s → %s", s, got)
		require.NotContains(t, got, "hun ter2", "%s → %s", s, got)
		require.Contains(t, got, "xxxxx", s)
	}
	for _, s := range []string{
		`row 7: amount "12,5<b>": not a number`,
		`step load: chunk 5: item 21: write: chunk of items 21-25: connection refused`,
		`basic checks failed at 10:30: see https://example.com/runbook`,
	} {
		require.Equal(t, s, redact(s))
	}
	// The list's first line is cut after the secrets are hidden.
	long := "insert into target: " + strings.Repeat("x", 140) + " dial postgres://app:hunter2@db/app"
	require.NotContains(t, firstLine(redact(long)), "hunter2")
}
