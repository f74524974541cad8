package main

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/internal/exampletest"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

var binary string

func TestMain(m *testing.M) { exampletest.Main(m, "remote", &binary) }

// TestDemo runs the demo as make remote-demo does, smaller: a worker is
// SIGKILLed 2 s in, the job completes all the same, every row once, and the
// status shows it.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds examples/partitioned and runs four processes")
	}
	db := filepath.Join(t.TempDir(), "remote.db")
	cmd := exec.Command(binary, "-db", db, "-kill", "2s", "-lease", "2s",
		"rows=6000", "partitions=6", "chunk=10", "rounds=1", "delay=2ms")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	for _, want := range []string{
		"NATS with JetStream at nats://127.0.0.1:",
		"SIGKILL to worker 1",
		"manager  | job partitioned, execution 1 (instance 1): COMPLETED",
		"load:p6  COMPLETED",
	} {
		require.Contains(t, string(out), want)
	}
	require.Regexp(t, `\n1\s+partitioned\s+COMPLETED`, string(out), "the status at the end")

	h, err := sqlx.Open("sqlite", sqlite.DSN(db))
	require.NoError(t, err)
	defer h.Close()
	var got struct {
		Rows int `db:"rows"`
		IDs  int `db:"ids"`
	}
	require.NoError(t, h.Get(&got, `SELECT COUNT(*) AS rows, COUNT(DISTINCT id) AS ids FROM target`))
	require.Equal(t, 6000, got.Rows)
	require.Equal(t, 6000, got.IDs)
	var workers int
	require.NoError(t, h.Get(&workers, `SELECT COUNT(DISTINCT worker) FROM target_chunks`))
	require.GreaterOrEqual(t, workers, 2)
}

// TestUsage: flags out of range are refused before anything starts.
func TestUsage(t *testing.T) {
	out, err := exec.Command(binary, "-workers", "0").CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	require.Equal(t, 2, ee.ExitCode())
	require.Contains(t, string(out), "-workers and -slots must be at least 1")
}
