package main

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/internal/exampletest"
	"github.com/chunkwise/chunkwise/internal/torture"
)

// TestTorture runs the job as a separate process, kills it with SIGKILL at
// moments spread over the partitions' work — while they read, hash, write
// and commit, several at once — restarts it after the lease each time, and
// checks that every row is in target exactly once, that the repository
// tells the same story, and that no partition ran again once it had
// completed. TORTURE_KILLS (default 4) and TORTURE_ROWS (default 20000)
// make it longer:
//
//	TORTURE_KILLS=30 TORTURE_ROWS=200000 go test -run TestTorture -v ./examples/partitioned/
func TestTorture(t *testing.T) {
	kills := exampletest.EnvInt(t, "TORTURE_KILLS", 4)
	rows := exampletest.EnvInt(t, "TORTURE_ROWS", testRows)
	require.GreaterOrEqual(t, rows, 100*testPartitions, "TORTURE_ROWS")
	const rounds = 200
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			b := open(t)
			args := []string{"-lease", lease.String(), "run", "rows=" + strconv.Itoa(rows),
				"rounds=" + strconv.Itoa(rounds), "chunk=100"}
			res := torture.Run(t, torture.Config{
				Command:  func() *exec.Cmd { return command(b, nil, args...) },
				Progress: func() (int64, error) { return committed(b.DB) },
				Done: func() (bool, error) {
					var n int
					err := b.DB.Get(&n, `SELECT COUNT(*) FROM batch_job_execution WHERE status = 'COMPLETED'`)
					return n > 0, err
				},
				Total: int64(rows),
				Kills: kills,
				Lease: lease,
			})
			var points []string
			for _, k := range res.Kills {
				points = append(points, strconv.FormatInt(k.Progress, 10))
			}
			t.Logf("%d kills at committed rows %s; %d runs", len(res.Kills), strings.Join(points, ","), res.Runs)
			require.GreaterOrEqual(t, len(res.Kills), kills*2/3, "most kill points interrupted the run")

			requireTarget(t, b.DB, rows, rounds, 97)

			// One execution per kill, all FAILED as crashed, and the last,
			// COMPLETED.
			es := jobExecs(t, b.DB)
			require.Len(t, es, len(res.Kills)+1)
			for i, e := range es {
				if i == len(es)-1 {
					require.Equal(t, "COMPLETED", e.Status)
					continue
				}
				require.Equal(t, "FAILED", e.Status, "execution %d", e.ID)
				require.Contains(t, e.Exit, "presumed crashed", "execution %d", e.ID)
			}
			var running int
			require.NoError(t, b.DB.Get(&running, `SELECT COUNT(*) FROM batch_step_execution
				WHERE status IN ('STARTING', 'STARTED', 'STOPPING')`))
			require.Zero(t, running, "no step left running")

			// Every step — setup, load, each partition — completed once,
			// in its last execution: nothing ran again after it completed.
			all := requireStepExecs(t, b.DB, "1 = 1")
			last := map[string]stepExec{}
			completed := map[string]int{}
			var read, written int64
			for _, s := range all {
				last[s.Name] = s // in order of creation
				if s.Status == "COMPLETED" {
					completed[s.Name]++
				}
				if strings.HasPrefix(s.Name, "load:") {
					read += s.Read
					written += s.Written
				}
			}
			want := append([]string{"setup", "load"}, partitionNames...)
			require.Len(t, last, len(want), "steps: %v", last)
			for _, n := range want {
				require.Equal(t, 1, completed[n], "%s completed once", n)
				require.Equal(t, "COMPLETED", last[n].Status, "%s: the completed execution is the last", n)
			}
			require.Equal(t, int64(rows), read, "the partitions' read counts add up to the rows")
			require.Equal(t, int64(rows), written, "the partitions' write counts add up to the rows")
		})
	}
}
