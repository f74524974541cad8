package main

import (
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/internal/exampletest"
	"github.com/chunkwise/chunkwise/internal/torture"
)

// TestTorture runs the CSV import as a separate process, kills it with
// SIGKILL at many moments spread over the run — while reading, writing and
// committing — restarts it after the lease each time, and checks that every
// row is there exactly once and that the repository tells the same story.
// `make torture` runs it with TORTURE_KILLS=30 and TORTURE_ROWS=300000.
func TestTorture(t *testing.T) {
	kills := exampletest.EnvInt(t, "TORTURE_KILLS", 5)
	rows := exampletest.EnvInt(t, "TORTURE_ROWS", 30_000)
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			b := open(t)
			if name == "postgres" {
				u, err := url.Parse(b.DSN)
				require.NoError(t, err)
				q := u.Query()
				q.Set("application_name", "csvimport-torture")
				u.RawQuery = q.Encode()
				b.DSN = u.String()
			}
			input := writeCSV(t, rows)
			const lease = 600 * time.Millisecond
			cfg := torture.Config{
				Command: func() *exec.Cmd {
					return command(b, nil, "-lease", lease.String(), "run", "input="+input, "+chunk:int=100")
				},
				Progress: func() (int64, error) { return importProgress(b.DB) },
				Done: func() (bool, error) {
					var n int
					err := b.DB.Get(&n, `SELECT COUNT(*) FROM batch_job_execution WHERE status = 'COMPLETED'`)
					return n > 0, err
				},
				Total: int64(rows),
				Kills: kills,
				Lease: lease,
			}
			if name == "postgres" {
				cfg.BeforeKill = func() string {
					// A backend of the import whose transaction has written:
					// rows inserted and not committed yet.
					var n int
					_ = b.DB.Get(&n, `SELECT COUNT(*) FROM pg_stat_activity
						WHERE application_name = 'csvimport-torture' AND backend_xid IS NOT NULL`)
					if n > 0 {
						return "in-transaction"
					}
					return ""
				}
			}
			res := torture.Run(t, cfg)

			var points []string
			inTx := 0
			for _, k := range res.Kills {
				points = append(points, strconv.FormatInt(k.Progress, 10))
				if k.Label == "in-transaction" {
					inTx++
				}
			}
			t.Logf("%d kills at committed rows %s; %d inside an open write transaction; %d runs",
				len(res.Kills), strings.Join(points, ","), inTx, res.Runs)
			require.GreaterOrEqual(t, len(res.Kills), kills*2/3, "most kill points interrupted the run")
			if name == "postgres" && kills >= 20 {
				// About half the time of a chunk is spent in its open write
				// transaction; of 20 or more random kills some land there.
				require.Positive(t, inTx, "some kills landed inside an open write transaction")
			}

			requireExactlyOnce(t, b.DB, rows)
			requireConsistentRepository(t, b.DB, rows, len(res.Kills))
		})
	}
}

// importProgress is the number of rows the import step has committed.
func importProgress(db *sqlx.DB) (int64, error) {
	var n int64
	err := db.Get(&n, `SELECT COALESCE(SUM(write_count), 0) FROM batch_step_execution WHERE step_name = 'import'`)
	return n, err
}

// requireConsistentRepository checks the repository after a tortured import:
// one COMPLETED execution, the last; every earlier one FAILED as crashed; no
// step left running; the import steps' counts adding up to the rows.
func requireConsistentRepository(t *testing.T, db *sqlx.DB, rows, kills int) {
	t.Helper()
	var execs []struct {
		ID     int64  `db:"id"`
		Status string `db:"status"`
		Exit   string `db:"exit_description"`
	}
	require.NoError(t, db.Select(&execs, `SELECT id, status, exit_description FROM batch_job_execution ORDER BY id`))
	require.Len(t, execs, kills+1, "one execution per kill, and the last")
	for i, e := range execs {
		if i == len(execs)-1 {
			require.Equal(t, "COMPLETED", e.Status)
			continue
		}
		require.Equal(t, "FAILED", e.Status, "execution %d", e.ID)
		require.Contains(t, e.Exit, "presumed crashed", "execution %d", e.ID)
	}
	var running int
	require.NoError(t, db.Get(&running, `SELECT COUNT(*) FROM batch_step_execution
		WHERE status IN ('STARTING', 'STARTED', 'STOPPING')`))
	require.Zero(t, running)
	var sums struct {
		Read    int64 `db:"read_count"`
		Written int64 `db:"write_count"`
	}
	require.NoError(t, db.Get(&sums, `SELECT COALESCE(SUM(read_count), 0) AS read_count,
		COALESCE(SUM(write_count), 0) AS write_count FROM batch_step_execution WHERE step_name = 'import'`))
	require.Equal(t, int64(rows), sums.Read, "read counts add up to the rows")
	require.Equal(t, int64(rows), sums.Written, "write counts add up to the rows")
}
