package launcher_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository/postgres"
)

// startNATS runs an embedded NATS server with JetStream on a store of its
// own, for the test's life.
func startNATS(t *testing.T) string {
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	require.NoError(t, err)
	go s.Start()
	require.True(t, s.ReadyForConnections(10*time.Second), "nats-server did not start")
	t.Cleanup(s.Shutdown)
	return s.ClientURL()
}

// TestNATSQueue: a manager hands 4 partitions to 2 workers through JetStream;
// every number is written once, by a worker, and every message is
// acknowledged. A message repeated afterwards runs nothing.
func TestNATSQueue(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url := startNATS(t)
	dsn := pgtest.DSN(t)
	open := func(who string) *launcher.Launcher {
		repo, err := postgres.Open(ctx, dsn, postgres.Config{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = repo.Close() })
		require.NoError(t, repo.Migrate(ctx))
		var reg launcher.Registry
		spreadJob(&reg, who, 30, nil)
		nc, err := nats.Connect(url)
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		q, err := launcher.NewNATSQueue(ctx, launcher.NATSConfig{Conn: nc})
		require.NoError(t, err)
		l, err := launcher.New(launcher.Config{Registry: &reg, Repository: repo, Lease: 5 * time.Second,
			Remote: launcher.RemoteConfig{Dispatcher: q, Poll: 20 * time.Millisecond}})
		require.NoError(t, err)
		if who != "manager" {
			go func() { _ = q.Serve(ctx, l, who, 2) }()
		}
		return l
	}
	m := open("manager")
	_, err := m.Repository().(*postgres.Repository).DB().Exec(`CREATE TABLE spread (item INTEGER PRIMARY KEY, worker TEXT NOT NULL)`)
	require.NoError(t, err)
	open("worker-1")
	open("worker-2")

	job, err := m.Job("spread", nil)
	require.NoError(t, err)
	exec, err := m.Run(ctx, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)

	db := m.Repository().(*postgres.Repository).DB()
	count := func() map[string]int {
		var rows []struct {
			Worker string `db:"worker"`
			N      int    `db:"n"`
		}
		require.NoError(t, db.Select(&rows, `SELECT worker, COUNT(*) AS n FROM spread GROUP BY worker`))
		out := map[string]int{}
		for _, r := range rows {
			out[r.Worker] = r.N
		}
		return out
	}
	got := count()
	require.Equal(t, 120, got["worker-1"]+got["worker-2"], "%v", got)

	nc, err := nats.Connect(url)
	require.NoError(t, err)
	defer nc.Close()
	js, err := nc.JetStream()
	require.NoError(t, err)
	pending := func() uint64 {
		info, err := js.StreamInfo(launcher.DefaultNATSStream)
		require.NoError(t, err)
		return info.State.Msgs
	}
	require.Eventually(t, func() bool { return pending() == 0 }, 10*time.Second, 20*time.Millisecond, "every message acknowledged")

	// A partition handed out again after it ended: a worker drops it.
	steps, err := m.Repository().StepExecutions(ctx, exec.ID)
	require.NoError(t, err)
	q, err := launcher.NewNATSQueue(ctx, launcher.NATSConfig{Conn: nc})
	require.NoError(t, err)
	for _, s := range steps {
		if s.StepName == "load:p0" {
			require.NoError(t, q.Dispatch(ctx, launcher.PartitionWork{JobExecutionID: exec.ID, StepExecutionID: s.ID, Step: s.StepName, Dispatch: 9}))
		}
	}
	require.Eventually(t, func() bool { return pending() == 0 }, 10*time.Second, 20*time.Millisecond, "the repeat acknowledged")
	require.Equal(t, got, count())
}

// TestCommandWorker: the command line's run -nats hands the partitions to
// two worker commands, which write every number once and exit 0 when told
// to stop.
func TestCommandWorker(t *testing.T) {
	url := startNATS(t)
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	pg, err := postgres.Open(ctx, dsn, postgres.Config{})
	require.NoError(t, err)
	defer pg.Close()
	require.NoError(t, pg.Migrate(ctx))
	_, err = pg.DB().Exec(`CREATE TABLE spread (item INTEGER PRIMARY KEY, worker TEXT NOT NULL)`)
	require.NoError(t, err)
	program := func(who string, stdout, stderr *bytes.Buffer) launcher.Program {
		var reg launcher.Registry
		spreadJob(&reg, who, 30, nil)
		return launcher.Program{Registry: &reg, Stdout: stdout, Stderr: stderr}
	}

	var out, errOut bytes.Buffer
	code := program("x", &out, &errOut).Run(ctx, []string{"-db", dsn, "worker"})
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut.String(), "worker: give the NATS server with -nats URL or BATCH_NATS")
	errOut.Reset()
	code = program("x", &out, &errOut).Run(ctx, []string{"-db", dsn, "-slots", "2", "status"})
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut.String(), "-slots goes with worker and serve only")
	errOut.Reset()
	code = program("x", &out, &errOut).Run(ctx, []string{"-db", dsn, "-remote-timeout", "1h", "run", "spread"})
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut.String(), "-remote-timeout goes with -nats")

	wctx, stopWorkers := context.WithCancel(ctx)
	exits := make(chan int, 2)
	for _, who := range []string{"w1", "w2"} {
		go func() {
			var o, e bytes.Buffer
			exits <- program(who, &o, &e).Run(wctx, []string{"-db", dsn, "-nats", url, "-log-level", "error", "worker", "-slots", "2"})
		}()
	}
	out.Reset()
	errOut.Reset()
	code = program("manager", &out, &errOut).Run(ctx, []string{"-db", dsn, "-nats", url, "-log-level", "error", "-progress", "off",
		"-remote-timeout", "5m", "run", "spread"})
	require.Equal(t, launcher.ExitCompleted, code, out.String()+errOut.String())
	require.Regexp(t, `load\s+COMPLETED\s+120\s+120`, out.String())
	stopWorkers()
	require.Equal(t, launcher.ExitCompleted, <-exits)
	require.Equal(t, launcher.ExitCompleted, <-exits)

	var rows []struct {
		Worker string `db:"worker"`
		N      int    `db:"n"`
	}
	require.NoError(t, pg.DB().Select(&rows, `SELECT worker, COUNT(*) AS n FROM spread GROUP BY worker ORDER BY worker`))
	total := 0
	for _, r := range rows {
		require.Contains(t, []string{"w1", "w2"}, r.Worker)
		total += r.N
	}
	require.Equal(t, 120, total)
}
