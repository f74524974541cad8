package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/internal/exampletest"
	"github.com/chunkwise/chunkwise/launcher"
)

// The remote tests run the job as a user spreads it over machines: a
// manager (run -nats) and workers (worker), each a process of this program,
// on one job repository, the partitions handed out through NATS JetStream
// (an embedded server the tests stop and start). 6 partitions of 1,000 rows,
// chunk 10, 2 ms per row; 3 workers taking one partition at a time.
const (
	remoteRows  = 6000
	remoteParts = 6
	remoteChunk = 10
	// remoteLease is the lease of the manager and the workers: a worker
	// that stops renewing it loses its partition this long after.
	remoteLease = 3 * time.Second
)

var remoteJob = []string{"rows=6000", "partitions=6", "chunk=10", "rounds=1", "delay=2ms"}

// cluster is a NATS server, a job repository and the processes of a test.
type cluster struct {
	t     *testing.T
	b     backend
	store string // the NATS server's, kept across its restarts
	port  int
	ns    *natsserver.Server
	url   string
	env   []string // of the workers started from now on

	mu    sync.Mutex
	procs []*proc
}

func newCluster(t *testing.T, b backend) *cluster {
	if testing.Short() {
		t.Skip("starts processes and waits for leases to expire")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	c := &cluster{t: t, b: b, store: t.TempDir(), port: port}
	c.startNATS()
	// The stream and the consumer, made before the processes start: the
	// server, in the test's process under the race detector, then sees no
	// concurrent creations (nats-server 2.15.2 races a stream update with
	// a consumer creation).
	nc, err := nats.Connect(c.url)
	require.NoError(t, err)
	_, err = launcher.NewNATSQueue(context.Background(), launcher.NATSConfig{Conn: nc})
	require.NoError(t, err)
	nc.Close()
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range c.procs {
			_ = p.cmd.Process.Kill()
			<-p.done
			if t.Failed() {
				t.Logf("%s (pid %d) said:\n%s", p.name, p.cmd.Process.Pid, p.out.String())
			}
		}
		c.stopNATS()
	})
	return c
}

// startNATS starts the NATS server on the cluster's port and store.
func (c *cluster) startNATS() {
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: c.port, JetStream: true,
		StoreDir: c.store, NoLog: true, NoSigs: true})
	require.NoError(c.t, err)
	go s.Start()
	require.True(c.t, s.ReadyForConnections(10*time.Second), "nats-server did not start")
	c.ns, c.url = s, s.ClientURL()
}

func (c *cluster) stopNATS() {
	if c.ns != nil {
		c.ns.Shutdown()
		c.ns.WaitForShutdown()
		c.ns = nil
	}
}

// proc is a process of the program, its output kept.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  exampletest.Buffer
	done chan struct{}
	code int
}

// start starts the program with args after the cluster's -db, -nats and
// -lease. A name ending in "#" is numbered.
func (c *cluster) start(name string, env []string, args ...string) *proc {
	all := []string{"-nats", c.url, "-lease", remoteLease.String(), "-log-level", "info"}
	if args[0] != "worker" {
		all = append(all, "-progress", "off")
	}
	all = append(all, args...)
	p := &proc{name: name, cmd: exampletest.Command(binary, c.b.DSN, env, all...), done: make(chan struct{})}
	// exampletest.Command logs warnings only; the later -log-level wins.
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	require.NoError(c.t, p.cmd.Start())
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	if strings.HasSuffix(name, "#") {
		p.name += strconv.Itoa(len(c.procs))
	}
	c.mu.Unlock()
	return p
}

// workers starts n workers, one partition at a time each.
func (c *cluster) workers(n int) []*proc {
	var ps []*proc
	for range n {
		ps = append(ps, c.start("worker #", c.env, "worker"))
	}
	return ps
}

// manager starts the job: run with the test job's parameters, changed by
// those given.
func (c *cluster) manager(change ...string) *proc {
	args := []string{"run"}
	for _, p := range remoteJob {
		name, _, _ := strings.Cut(p, "=")
		if i := slices.IndexFunc(change, func(c string) bool { return strings.HasPrefix(c, name+"=") }); i >= 0 {
			p = change[i]
		}
		args = append(args, p)
	}
	return c.start("manager", nil, args...)
}

// command runs a command of the program (status, stop, restart) to its end.
func (c *cluster) command(args ...string) exampletest.Result {
	c.t.Helper()
	return run(c.t, c.b, nil, append([]string{"-nats", c.url, "-lease", remoteLease.String()}, args...)...)
}

// wait waits for p to exit and returns its exit code.
func (p *proc) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(within):
		t.Fatalf("%s did not exit within %s; it said:\n%s", p.name, within, p.out.String())
		return -1
	}
}

// worker is how the program names p in <table>_chunks, and the start of
// the owner of the partitions it claims.
func (p *proc) worker() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, p.cmd.Process.Pid)
}

func (p *proc) signal(t *testing.T, s syscall.Signal) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(s))
}

// waitFor polls cond until it holds, failing the test after within, or as
// soon as one of the processes watched exits.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool, watch ...*proc) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		for _, p := range watch {
			select {
			case <-p.done:
				t.Fatalf("waiting for %s: %s exited %d; it said:\n%s", what, p.name, p.code, p.out.String())
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// partRow is a partition's step execution and lease.
type partRow struct {
	ID        int64      `db:"id"`
	Execution int64      `db:"job_execution_id"`
	Name      string     `db:"step_name"`
	Status    string     `db:"status"`
	Written   int64      `db:"write_count"`
	Owner     nullString `db:"lease_owner"`
	Claims    int        `db:"claims"`
	Exit      nullString `db:"exit_description"`
}

// nullString reads a text column that may be NULL as "".
type nullString string

func (n *nullString) Scan(v any) error {
	switch v := v.(type) {
	case nil:
		*n = ""
	case string:
		*n = nullString(v)
	case []byte:
		*n = nullString(v)
	default:
		return fmt.Errorf("nullString: %T", v)
	}
	return nil
}

// partitions returns the partitions of the job's executions, of exec only
// when it is not 0, by execution and name; none before the repository's
// tables exist.
func (c *cluster) partitions(exec int64) []partRow {
	var rows []partRow
	if err := c.b.DB.Select(&rows, c.b.DB.Rebind(`SELECT id, job_execution_id, step_name, status, write_count,
		lease_owner, claims, exit_description FROM batch_step_execution
		WHERE step_name LIKE 'load:%' AND (? = 0 OR job_execution_id = ?) ORDER BY job_execution_id, step_name`), exec, exec); err != nil {
		return nil
	}
	return rows
}

// lastExecution is the id of the job's latest execution, 0 for none.
func (c *cluster) lastExecution() int64 {
	var id int64
	_ = c.b.DB.Get(&id, `SELECT COALESCE(MAX(id), 0) FROM batch_job_execution`)
	return id
}

// running returns the partitions of exec that a worker holds and that have
// written at least min rows.
func (c *cluster) running(exec int64, min int64) []partRow {
	var out []partRow
	for _, p := range c.partitions(exec) {
		if p.Status == "STARTED" && p.Owner != "" && p.Written >= min {
			out = append(out, p)
		}
	}
	return out
}

// startWithVictim starts 3 workers and the manager on PostgreSQL, waits
// for a partition a third done, and returns it and the worker running it.
func startWithVictim(t *testing.T) (c *cluster, manager *proc, victim partRow, worker *proc) {
	t.Helper()
	c = newCluster(t, pgBackend(t))
	ws := c.workers(3)
	manager = c.manager()
	waitFor(t, 30*time.Second, "a partition a third done", func() bool {
		if r := c.running(c.lastExecution(), 300); len(r) > 0 {
			victim = r[0]
			return true
		}
		return false
	}, manager)
	for _, w := range ws {
		if strings.HasPrefix(string(victim.Owner), w.worker()+"/") {
			return c, manager, victim, w
		}
	}
	t.Fatalf("no worker owns %q", victim.Owner)
	return
}

// chunk is a row of <table>_chunks: a chunk that committed, and its writer.
type chunk struct {
	Partition string `db:"partition"`
	First     int64  `db:"first_id"`
	Last      int64  `db:"last_id"`
	Rows      int64  `db:"rows"`
	Worker    string `db:"worker"`
}

func chunks(t *testing.T, db *sqlx.DB, table string) []chunk {
	t.Helper()
	var cs []chunk
	require.NoError(t, db.Select(&cs, `SELECT partition, first_id, last_id, rows, worker FROM `+table+`_chunks ORDER BY first_id`))
	return cs
}

// chunksBy counts the chunks of table that worker wrote.
func chunksBy(t *testing.T, db *sqlx.DB, table, worker string) int {
	n := 0
	for _, c := range chunks(t, db, table) {
		if c.Worker == worker {
			n++
		}
	}
	return n
}

// requireOnce checks that table holds the ids 1 to rows once each, and that
// its chunks cover them once: each chunk begins after the one before ends,
// so none was written twice, by one worker or two. It returns the chunks.
func requireOnce(t *testing.T, db *sqlx.DB, table string, rows int64) []chunk {
	t.Helper()
	var got struct {
		Rows     int64 `db:"rows"`
		Distinct int64 `db:"ids"`
		Max      int64 `db:"max_id"`
	}
	require.NoError(t, db.Get(&got, `SELECT COUNT(*) AS rows, COUNT(DISTINCT id) AS ids, COALESCE(MAX(id), 0) AS max_id FROM `+table))
	require.Equal(t, rows, got.Rows, "rows in %s", table)
	require.Equal(t, rows, got.Distinct, "ids in %s", table)
	require.Equal(t, rows, got.Max, "largest id in %s", table)
	cs := chunks(t, db, table)
	next := int64(1)
	for _, c := range cs {
		require.Equal(t, next, c.First, "chunk %+v: the chunk before ended at %d", c, next-1)
		require.Equal(t, c.Last-c.First+1, c.Rows, "chunk %+v", c)
		next = c.Last + 1
	}
	require.Equal(t, rows+1, next, "the chunks end at the last id")
	return cs
}

// jetStream connects to the NATS server for the test's life.
func (c *cluster) jetStream() jetstream.JetStream {
	nc, err := nats.Connect(c.url)
	require.NoError(c.t, err)
	c.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(c.t, err)
	return js
}

// requireDrained checks that the queue holds no message, delivered or not,
// within a while: every one was acknowledged, repeats included.
func (c *cluster) requireDrained(within time.Duration) {
	c.t.Helper()
	js := c.jetStream()
	ctx := context.Background()
	cons, err := js.Consumer(ctx, launcher.DefaultNATSStream, launcher.DefaultNATSConsumer)
	require.NoError(c.t, err)
	waitFor(c.t, within, "every message acknowledged", func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	})
}

// publish hands out w once more, as a repeated or stray message would.
func (c *cluster) publish(w launcher.PartitionWork) {
	c.t.Helper()
	js := c.jetStream()
	data, err := json.Marshal(w)
	require.NoError(c.t, err)
	_, err = js.Publish(context.Background(), launcher.DefaultNATSSubject, data)
	require.NoError(c.t, err)
}

// requireCompleted checks that the manager exited 0 with the job COMPLETED,
// and every row written once.
func (c *cluster) requireCompleted(m *proc) []chunk {
	c.t.Helper()
	code := m.wait(c.t, 2*time.Minute)
	require.Equal(c.t, launcher.ExitCompleted, code, m.out.String())
	require.Regexp(c.t, `\n\s+load\s+COMPLETED\s`, m.out.String())
	return requireOnce(c.t, c.b.DB, "target", remoteRows)
}

// TestRemote: 3 workers run the 6 partitions, each claimed once; a repeat
// of every message, while they run and once they ended, runs nothing twice;
// every message is acknowledged. On SQLite too: processes on one machine
// share the file.
func TestRemote(t *testing.T) {
	for name, backend := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, backend(t))
			ws := c.workers(3)
			m := c.manager()
			var exec int64
			waitFor(t, 30*time.Second, "the partitions", func() bool {
				exec = c.lastExecution()
				return exec > 0 && len(c.partitions(exec)) == remoteParts
			}, m)
			repeat := func() {
				for _, p := range c.partitions(exec) {
					c.publish(launcher.PartitionWork{JobExecutionID: exec, StepExecutionID: p.ID, Step: p.Name, Dispatch: 99})
				}
			}
			repeat()
			cs := c.requireCompleted(m)
			require.Regexp(t, `load\s+COMPLETED\s+6000\s+6000\s`, m.out.String())
			repeat()
			c.requireDrained(10 * time.Second)

			byWorker := map[string]int{}
			for _, ch := range cs {
				byWorker[ch.Worker]++
			}
			for _, p := range c.partitions(exec) {
				require.Equal(t, "COMPLETED", p.Status, p.Name)
				require.Equal(t, 1, p.Claims, "%s: claimed once, repeats dropped", p.Name)
			}
			for _, w := range ws {
				require.Contains(t, byWorker, w.worker(), "every worker ran a partition: %v", byWorker)
				require.Contains(t, w.out.String(), "partition is another's, or ended", "%s dropped a repeat", w.name)
			}
			require.NotContains(t, byWorker, "", "no chunk written outside a worker")
		})
	}
}

// TestRemoteWorkerKilled: a worker SIGKILLed in the middle of a partition;
// another takes the partition over once the lease expired and resumes it
// at its checkpoint. Every row once, no chunk written by two workers.
func TestRemoteWorkerKilled(t *testing.T) {
	c, m, victim, killed := startWithVictim(t)
	killed.signal(t, syscall.SIGKILL)
	cs := c.requireCompleted(m)

	// The victim's chunks: the killed worker's, then another's, from the
	// next id on (requireOnce checked there is no gap and no overlap).
	var writers []string
	for _, ch := range cs {
		if ch.Partition == strings.TrimPrefix(victim.Name, "load:") && (len(writers) == 0 || writers[len(writers)-1] != ch.Worker) {
			writers = append(writers, ch.Worker)
		}
	}
	require.Len(t, writers, 2, "the partition was written by the killed worker, then by one other: %v", writers)
	require.Equal(t, killed.worker(), writers[0])
	for _, p := range c.partitions(victim.Execution) {
		require.Equal(t, "COMPLETED", p.Status)
		if p.Name == victim.Name {
			require.Equal(t, 2, p.Claims)
		}
	}
}

// pgBackend is the PostgreSQL backend.
func pgBackend(t *testing.T) backend {
	return exampletest.Backends()["postgres"](t)
}

// TestRemoteWorkerPaused: a worker SIGSTOPped in the middle of a partition
// past its lease loses it to another; woken up with SIGCONT, it commits
// nothing more and does not acknowledge the message, and it goes on serving.
func TestRemoteWorkerPaused(t *testing.T) {
	c, m, victim, paused := startWithVictim(t)
	paused.signal(t, syscall.SIGSTOP)
	// A chunk's transaction caught in its checkpoint is ended by the
	// server after the repository's idle-in-transaction timeout (15 s).
	waitFor(t, 45*time.Second, "another worker to take the partition over", func() bool {
		for _, p := range c.partitions(victim.Execution) {
			if p.ID == victim.ID {
				return p.Owner != "" && p.Owner != victim.Owner
			}
		}
		return false
	}, m)
	before := chunksBy(t, c.b.DB, "target", paused.worker())
	paused.signal(t, syscall.SIGCONT)
	c.requireCompleted(m)
	require.Equal(t, before, chunksBy(t, c.b.DB, "target", paused.worker()), "the paused worker committed nothing after it lost its lease")
	waitFor(t, 10*time.Second, "the woken worker to find its lease lost", func() bool {
		return strings.Contains(paused.out.String(), "partition lost to another worker")
	})
	require.NotRegexp(t, `partition ended.*step=`+victim.Name+` `, paused.out.String(), "it did not acknowledge the message")
	// Its message goes to another worker once its ack wait passed, and is
	// dropped there.
	c.requireDrained(launcher.DefaultNATSAckWait + 15*time.Second)
	select {
	case <-paused.done:
		t.Fatalf("the woken worker exited: %s", paused.out.String())
	default:
	}
}

// TestRemoteNATSRestarted: the NATS server stopped in the middle of the job
// and started again on the same store: the job completes, every row once.
func TestRemoteNATSRestarted(t *testing.T) {
	b := pgBackend(t)
	c := newCluster(t, b)
	c.workers(3)
	m := c.manager()
	waitFor(t, 30*time.Second, "partitions running", func() bool { return len(c.running(c.lastExecution(), 100)) > 0 }, m)
	c.stopNATS()
	waiting := 0
	for _, p := range c.partitions(c.lastExecution()) {
		if p.Status == "STARTING" {
			waiting++
		}
	}
	require.Positive(t, waiting, "partitions that only the restarted server can hand out")
	time.Sleep(2 * time.Second)
	c.startNATS()
	c.requireCompleted(m)
}

// TestRemoteStopThenRestart: an operator's stop in the middle of the job
// stops the workers at a chunk boundary and the job ends STOPPED; a restart
// runs what is left, every row once.
func TestRemoteStopThenRestart(t *testing.T) {
	b := pgBackend(t)
	c := newCluster(t, b)
	c.workers(3)
	m := c.manager()
	var exec int64
	waitFor(t, 30*time.Second, "partitions running", func() bool {
		exec = c.lastExecution()
		return len(c.running(exec, 200)) > 0
	}, m)
	r := c.command("stop", strconv.FormatInt(exec, 10))
	require.Equal(t, launcher.ExitCompleted, r.Code, r.Stderr)
	require.Equal(t, launcher.ExitStopped, m.wait(t, time.Minute), m.out.String())
	stopped := 0
	for _, p := range c.partitions(exec) {
		require.Contains(t, []string{"COMPLETED", "STOPPED"}, p.Status, p.Name)
		if p.Status == "STOPPED" {
			stopped++
		}
	}
	require.Positive(t, stopped)
	c.requireCompleted(c.start("manager", nil, "restart", strconv.FormatInt(exec, 10)))
	c.requireDrained(10 * time.Second)
}

// TestRemoteManagerKilled: the manager SIGKILLed once partitions completed
// and others run; the restart (once the manager's lease expired) fences
// off the workers still running the old execution's partitions, passes the
// completed partitions over and hands out the rest, each from its
// checkpoint. Rows take 10 ms here, so that partitions still run then.
func TestRemoteManagerKilled(t *testing.T) {
	b := pgBackend(t)
	c := newCluster(t, b)
	c.workers(3)
	m := c.manager("delay=10ms")
	var exec int64
	waitFor(t, time.Minute, "partitions completed, others just started", func() bool {
		exec = c.lastExecution()
		done, started := 0, 0
		for _, p := range c.partitions(exec) {
			switch {
			case p.Status == "COMPLETED":
				done++
			case p.Status == "STARTED" && p.Written > 0 && p.Written < 200:
				started++
			}
		}
		return done > 0 && started > 0
	}, m)
	m.signal(t, syscall.SIGKILL)
	m.wait(t, 10*time.Second)
	time.Sleep(remoteLease + time.Second)
	completed := map[string]bool{}
	for _, p := range c.partitions(exec) {
		if p.Status == "COMPLETED" {
			completed[p.Name] = true
		}
	}
	restart := c.start("manager", nil, "restart", strconv.FormatInt(exec, 10))
	c.requireCompleted(restart)
	next := c.lastExecution()
	require.Greater(t, next, exec)
	parts := c.partitions(next)
	require.Len(t, parts, remoteParts-len(completed), "the completed partitions %v are passed over", completed)
	for _, p := range parts {
		require.False(t, completed[p.Name], "%s completed before: not run again", p.Name)
		require.Equal(t, "COMPLETED", p.Status, p.Name)
	}
	require.Contains(t, restart.out.String(), "resumed at item", "a partition resumed at its checkpoint")
}

// TestRemoteTwoJobsAtOnce: two instances of the job at once, their
// partitions named alike (load:p1 …), into two tables: each partition is
// run by its own instance's ids, and each table gets its rows once.
func TestRemoteTwoJobsAtOnce(t *testing.T) {
	b := pgBackend(t)
	c := newCluster(t, b)
	c.workers(3)
	const rows = 3000
	small := []string{"run", "rows=3000", "partitions=3", "chunk=10", "rounds=1", "delay=2ms"}
	alpha := c.start("manager alpha", nil, append(small, "table=alpha")...)
	waitFor(t, 30*time.Second, "alpha's partitions", func() bool { return len(c.partitions(0)) == 3 }, alpha)
	beta := c.start("manager beta", nil, append(small, "table=beta")...)
	for _, m := range []*proc{alpha, beta} {
		require.Equal(t, launcher.ExitCompleted, m.wait(t, 2*time.Minute), m.out.String())
	}
	requireOnce(t, b.DB, "alpha", rows)
	requireOnce(t, b.DB, "beta", rows)
	parts := c.partitions(0)
	require.Len(t, parts, 6)
	for _, p := range parts {
		require.Equal(t, "COMPLETED", p.Status)
		require.Equal(t, int64(rows/3), p.Written, "%s of execution %d", p.Name, p.Execution)
		require.Equal(t, 1, p.Claims)
	}
	c.requireDrained(10 * time.Second)
}

// TestRemoteZeroPartitions: a job whose partitioner finds nothing completes
// without handing anything out.
func TestRemoteZeroPartitions(t *testing.T) {
	b := pgBackend(t)
	c := newCluster(t, b)
	c.workers(1)
	m := c.start("manager", nil, "run", "rows=0", "partitions=6")
	require.Equal(t, launcher.ExitCompleted, m.wait(t, time.Minute), m.out.String())
	require.Regexp(t, `load\s+COMPLETED\s+0\s+0`, m.out.String())
	require.Empty(t, c.partitions(0))
	c.requireDrained(10 * time.Second)
}

// TestRemotePoisonPartition: a row that takes down every worker that runs
// it (CRASH_AT); the workers are started again as a supervisor would. The
// partition is FAILED after 3 claims, the others complete, and a restart
// without the poison completes the job, every row once.
func TestRemotePoisonPartition(t *testing.T) {
	b := pgBackend(t)
	c := newCluster(t, b)
	c.env = []string{"CRASH_AT=2500"} // in p3: ids 2001 to 3000
	ctx, cancel := context.WithCancel(context.Background())
	var supervised sync.WaitGroup
	for range 3 {
		supervised.Add(1)
		go func() {
			defer supervised.Done()
			for {
				w := c.workers(1)[0]
				select {
				case <-ctx.Done():
					_ = w.cmd.Process.Kill()
					<-w.done
					return
				case <-w.done:
				}
			}
		}()
	}
	m := c.manager()
	require.Equal(t, launcher.ExitFailed, m.wait(t, 2*time.Minute), m.out.String())
	cancel()
	supervised.Wait()
	exec := c.lastExecution()
	for _, p := range c.partitions(exec) {
		if p.Name == "load:p3" {
			require.Equal(t, "FAILED", p.Status)
			require.Equal(t, 3, p.Claims)
			require.Contains(t, string(p.Exit), "claimed 3 times")
			continue
		}
		require.Equal(t, "COMPLETED", p.Status, p.Name)
	}
	require.Contains(t, m.out.String(), "claimed 3 times")

	c.env = nil
	c.workers(3)
	c.requireCompleted(c.start("manager", nil, "restart", strconv.FormatInt(exec, 10)))
	next := c.partitions(c.lastExecution())
	require.Len(t, next, 1, "only the poisoned partition runs again")
	require.Equal(t, "load:p3", next[0].Name)
}

// TestRemoteWorkerTerminated: SIGTERM makes a worker hand its partition back
// at a chunk boundary and exit 0; another resumes it at once, without
// waiting for a lease, and the claim given back is not counted.
func TestRemoteWorkerTerminated(t *testing.T) {
	c, m, victim, w := startWithVictim(t)
	w.signal(t, syscall.SIGTERM)
	require.Equal(t, launcher.ExitCompleted, w.wait(t, 10*time.Second), w.out.String())
	require.Contains(t, w.out.String(), "partition handed back")
	// Given back: free for another worker at once, not held by the one
	// that left until its lease expires.
	for _, p := range c.partitions(victim.Execution) {
		if p.ID == victim.ID {
			require.NotEqual(t, victim.Owner, p.Owner)
		}
	}
	c.requireCompleted(m)
	for _, p := range c.partitions(victim.Execution) {
		require.Equal(t, 1, p.Claims, "%s: the claim given back is not counted", p.Name)
	}
	c.requireDrained(10 * time.Second)
}
