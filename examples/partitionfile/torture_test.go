package main

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/internal/exampletest"
	"github.com/chunkwise/chunkwise/internal/torture"
)

// TestTorture runs the job on four files at once as a separate process,
// kills it with SIGKILL at moments spread over the run — while partitions
// read, write their output files and commit — restarts it after the lease
// each time, and checks that every output file has each of its lines once,
// in order, and that the partitions' counts add up. TORTURE_KILLS (default
// 5) and TORTURE_LINES (lines per file, default 5000) make it harder.
func TestTorture(t *testing.T) {
	kills := exampletest.EnvInt(t, "TORTURE_KILLS", 5)
	lines := exampletest.EnvInt(t, "TORTURE_LINES", 5000)
	const files = 4
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			b := open(t)
			in, out := t.TempDir(), t.TempDir()
			want := generate(t, in, files, lines)
			const lease = 600 * time.Millisecond
			res := torture.Run(t, torture.Config{
				Command: func() *exec.Cmd {
					return exampletest.Command(binary, b.DSN, nil, "-lease", lease.String(), "run",
						"input="+filepath.Join(in, "*.csv"), "output="+out, "chunk=100")
				},
				Progress: func() (int64, error) { return partitionCounts(b.DB, "write_count") },
				Done: func() (bool, error) {
					var n int
					err := b.DB.Get(&n, `SELECT COUNT(*) FROM batch_job_execution WHERE status = 'COMPLETED'`)
					return n > 0, err
				},
				Total: int64(files * lines),
				Kills: kills,
				Lease: lease,
			})
			t.Logf("%d kills, %d runs", len(res.Kills), res.Runs)
			require.GreaterOrEqual(t, len(res.Kills), kills*2/3, "most kill points interrupted the run")

			for file, lines := range want {
				requireOutput(t, filepath.Join(out, file), lines, int64(len(lines)))
			}
			var execs []struct {
				Status string `db:"status"`
				Exit   string `db:"exit_description"`
			}
			require.NoError(t, b.DB.Select(&execs, `SELECT status, exit_description FROM batch_job_execution ORDER BY id`))
			require.Len(t, execs, len(res.Kills)+1, "one execution per kill, and the last")
			for i, e := range execs[:len(execs)-1] {
				require.Equal(t, "FAILED", e.Status, "execution %d", i+1)
				require.Contains(t, e.Exit, "presumed crashed", "execution %d", i+1)
			}
			require.Equal(t, "COMPLETED", execs[len(execs)-1].Status)
			var running int
			require.NoError(t, b.DB.Get(&running, `SELECT COUNT(*) FROM batch_step_execution
				WHERE status IN ('STARTING', 'STARTED', 'STOPPING')`))
			require.Zero(t, running, "no step left running")
			for _, column := range []string{"read_count", "write_count"} {
				n, err := partitionCounts(b.DB, column)
				require.NoError(t, err)
				require.Equal(t, int64(files*lines), n, "the partitions' %s add up to the lines", column)
			}
		})
	}
}

// partitionCounts sums a count column over the executions of the
// partitions: the lines committed so far.
func partitionCounts(db *sqlx.DB, column string) (int64, error) {
	var n int64
	err := db.Get(&n, `SELECT COALESCE(SUM(`+column+`), 0) FROM batch_step_execution WHERE step_name LIKE 'credit:%'`)
	return n, err
}
