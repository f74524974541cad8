package launcher_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/postgres"
)

// remoteJob registers "spread": 4 partitions of 40 items (see spreadJob).
func remoteJob(reg *launcher.Registry, worker string, pause func(ctx context.Context, part string)) {
	spreadJob(reg, worker, 40, pause)
}

// spreadJob registers "spread": 4 partitions of per items (from 1, or from
// base+1 with the parameter base), chunk 5, each item inserted into spread
// (item primary key) with the worker that wrote it, in the chunk's
// transaction. pause, when set, is called before each chunk's write with
// the partition's name.
func spreadJob(reg *launcher.Registry, worker string, per int, pause func(ctx context.Context, part string)) {
	reg.MustRegister("spread", func(env launcher.Env) (batch.JobConfig, error) {
		schema, err := batch.NewTaskletStep("schema", batch.TaskletConfig{
			Tasklet: batch.TaskletFunc(func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
				tx, err := batch.JoinTxx(ctx, env.DB)
				if err == nil {
					_, err = tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS spread (item INTEGER PRIMARY KEY, worker TEXT NOT NULL)`)
				}
				return batch.Finished, err
			}),
		})
		if err != nil {
			return batch.JobConfig{}, err
		}
		load, err := batch.NewPartitionStep("load", batch.PartitionConfig{
			Partitioner: batch.PartitionerFunc(func(context.Context) ([]batch.Partition, error) {
				var parts []batch.Partition
				for i := range 4 {
					p := batch.Partition{Name: fmt.Sprintf("p%d", i), Context: batch.ExecutionContext{}}
					if err := p.Context.Put("from", i*per+1); err != nil {
						return nil, err
					}
					parts = append(parts, p)
				}
				return parts, nil
			}),
			Step: func(name string, p batch.Partition) (batch.Step, error) {
				from, _ := p.Context.Int64("from")
				base, _ := env.Parameters.Int("base") // another instance's items
				items := make([]int64, per)
				for i := range items {
					items[i] = base + from + int64(i)
				}
				return batch.NewChunkStep(name, batch.ChunkConfig[int64, int64]{
					Reader: reader.FromSlice(items), ChunkSize: 5,
					Writer: batch.WriterFunc[int64](func(ctx context.Context, items []int64) error {
						if pause != nil {
							pause(ctx, p.Name)
						}
						tx, err := batch.JoinTxx(ctx, env.DB)
						if err != nil {
							return err
						}
						for _, it := range items {
							if _, err := tx.ExecContext(ctx, `INSERT INTO spread (item, worker) VALUES ($1, $2)`, it, worker); err != nil {
								return err
							}
						}
						return nil
					}),
				})
			},
		})
		return batch.JobConfig{Steps: []batch.Step{schema, load}}, err
	})
}

// remoteWorld is a manager and workers, each with a repository of its own
// on one PostgreSQL schema, the work handed over through a channel.
type remoteWorld struct {
	t    *testing.T
	dsn  string
	work chan launcher.PartitionWork
}

func newRemoteWorld(t *testing.T) *remoteWorld {
	dsn := pgtest.DSN(t)
	repo, err := postgres.Open(context.Background(), dsn, postgres.Config{})
	require.NoError(t, err)
	require.NoError(t, repo.Migrate(context.Background()))
	require.NoError(t, repo.Close())
	return &remoteWorld{t: t, dsn: dsn, work: make(chan launcher.PartitionWork, 100)}
}

func (w *remoteWorld) launcher(name string, lease time.Duration, pause func(context.Context, string), remote launcher.RemoteConfig) *launcher.Launcher {
	l, _ := w.launcherCut(name, lease, pause, remote)
	return l
}

// launcherCut is launcher, whose lease renewals fail while cut is set: a
// process cut off from the repository.
func (w *remoteWorld) launcherCut(name string, lease time.Duration, pause func(context.Context, string), remote launcher.RemoteConfig) (*launcher.Launcher, *atomic.Bool) {
	pg, err := postgres.Open(context.Background(), w.dsn, postgres.Config{})
	require.NoError(w.t, err)
	w.t.Cleanup(func() { _ = pg.Close() })
	repo := &cutOff{Repository: pg}
	var reg launcher.Registry
	remoteJob(&reg, name, pause)
	l, err := launcher.New(launcher.Config{Registry: &reg, Repository: repo, Lease: lease, Remote: remote})
	require.NoError(w.t, err)
	return l, &repo.cut
}

// cutOff is a PostgreSQL repository whose lease renewals fail while cut is
// set.
type cutOff struct {
	*postgres.Repository
	cut atomic.Bool
}

func (c *cutOff) RenewStepLease(ctx context.Context, id int64, owner string, lease time.Duration) error {
	if c.cut.Load() {
		return errors.New("no route to host")
	}
	return c.Repository.RenewStepLease(ctx, id, owner, lease)
}

func (w *remoteWorld) manager(remote launcher.RemoteConfig) *launcher.Launcher {
	remote.Dispatcher = launcher.DispatcherFunc(func(_ context.Context, pw launcher.PartitionWork) error {
		w.work <- pw
		return nil
	})
	return w.launcher("manager", 5*time.Second, nil, remote)
}

// serve runs partitions from the channel with l until ctx ends; a claim
// that another won is passed over.
func (w *remoteWorld) serve(ctx context.Context, l *launcher.Launcher, name string, ran *sync.Map) {
	for {
		select {
		case <-ctx.Done():
			return
		case pw := <-w.work:
			se, err := l.RunPartition(ctx, pw, name, nil)
			switch {
			case errors.Is(err, repository.ErrStepClaimed), errors.Is(err, repository.ErrNotClaimable):
			case err != nil:
				ran.Store(pw.Step+" "+name, err)
			default:
				ran.Store(pw.Step+" "+name, se.Status)
			}
		}
	}
}

// workers starts a worker of each name serving the channel until ctx
// ends, and returns what they ran (see serve).
func (w *remoteWorld) workers(ctx context.Context, pause func(context.Context, string), names ...string) *sync.Map {
	ran := &sync.Map{}
	for _, name := range names {
		go w.serve(ctx, w.launcher(name, 5*time.Second, pause, launcher.RemoteConfig{}), name, ran)
	}
	return ran
}

func (w *remoteWorld) items() map[string]int {
	db, err := postgres.Open(context.Background(), w.dsn, postgres.Config{})
	require.NoError(w.t, err)
	defer db.Close()
	var rows []struct {
		Worker string `db:"worker"`
		N      int    `db:"n"`
	}
	require.NoError(w.t, db.DB().Select(&rows, `SELECT worker, COUNT(*) AS n FROM spread GROUP BY worker`))
	out := map[string]int{}
	for _, r := range rows {
		out[r.Worker] = r.N
	}
	return out
}

// runSpread runs the job spread with m in the background; its execution
// comes on the channel when it ends (nil if it could not be built).
func runSpread(ctx context.Context, m *launcher.Launcher) <-chan *batch.JobExecution {
	done := make(chan *batch.JobExecution, 1)
	go func() {
		job, err := m.Job("spread", nil)
		if err != nil {
			done <- nil
			return
		}
		exec, _ := m.Run(ctx, job, nil)
		done <- exec
	}()
	return done
}

// TestRemotePartitions: the manager hands 4 partitions to 2 workers; every
// item is written once, by a worker, and each partition was claimed once.
func TestRemotePartitions(t *testing.T) {
	w := newRemoteWorld(t)
	m := w.manager(launcher.RemoteConfig{Poll: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := w.workers(ctx, nil, "worker-1", "worker-2")
	job, err := m.Job("spread", nil)
	require.NoError(t, err)
	exec, err := m.Run(ctx, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)

	items := w.items()
	require.Equal(t, 160, items["worker-1"]+items["worker-2"], "%v", items)
	require.Zero(t, items["manager"])
	steps, err := m.Repository().StepExecutions(ctx, exec.ID)
	require.NoError(t, err)
	sl := m.Repository().(repository.StepLeaser)
	for _, s := range steps {
		if s.StepName == "load" {
			require.Equal(t, int64(160), s.WriteCount, "the partitioned step adds up its partitions")
			continue
		}
		if s.StepName == "schema" {
			continue
		}
		require.Equal(t, batch.StatusCompleted, s.Status, s.StepName)
		l, err := sl.StepLease(ctx, s.ID)
		require.NoError(t, err)
		require.Equal(t, 1, l.Claims, s.StepName)
		require.Contains(t, []string{"worker-1", "worker-2"}, l.Owner)
	}
	ran.Range(func(k, v any) bool {
		require.Equal(t, batch.StatusCompleted, v, k)
		return true
	})
}

// TestRemotePartitionEndNotFenced: a worker renewing its lease every
// millisecond — a renewal lands just after the partition's end is saved
// and finds the lease gone, the step ended — still reports the partition
// as ended, not as lost to another worker.
func TestRemotePartitionEndNotFenced(t *testing.T) {
	w := newRemoteWorld(t)
	m := w.manager(launcher.RemoteConfig{Poll: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pg, err := postgres.Open(ctx, w.dsn, postgres.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Close() })
	var reg launcher.Registry
	remoteJob(&reg, "eager", nil)
	eager, err := launcher.New(launcher.Config{Registry: &reg, Repository: pg, Lease: 5 * time.Second, HeartbeatInterval: time.Millisecond})
	require.NoError(t, err)
	ran := &sync.Map{}
	go w.serve(ctx, eager, "eager", ran)
	job, err := m.Job("spread", nil)
	require.NoError(t, err)
	exec, err := m.Run(ctx, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	n := 0
	ran.Range(func(k, v any) bool {
		n++
		require.Equal(t, batch.StatusCompleted, v, "%v", k)
		return true
	})
	require.Equal(t, 4, n)
}

// TestRemotePartitionTakenOver: a worker paused past its lease (in the
// middle of its partition) loses it to another, which resumes at its last
// checkpoint; woken up, it commits nothing more. Every item once.
func TestRemotePartitionTakenOver(t *testing.T) {
	w := newRemoteWorld(t)
	m := w.manager(launcher.RemoteConfig{Poll: 20 * time.Millisecond, Unclaimed: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The slow worker takes the first partition and stops in its third
	// chunk's write, cut off from the repository, until released — well
	// past its 1 s lease.
	var (
		chunks   atomic.Int64
		paused   = make(chan struct{})
		release  = make(chan struct{})
		slowDone = make(chan error, 1)
		cut      *atomic.Bool
		slow     *launcher.Launcher
	)
	slow, cut = w.launcherCut("slow", time.Second, func(ctx context.Context, part string) {
		if chunks.Add(1) == 3 {
			cut.Store(true)
			close(paused)
			<-release
		}
	}, launcher.RemoteConfig{})
	go func() {
		pw := <-w.work
		_, err := slow.RunPartition(ctx, pw, "slow", nil)
		slowDone <- err
	}()
	done := runSpread(ctx, m)
	<-paused
	w.workers(ctx, nil, "fast")
	exec := <-done
	require.NotNil(t, exec)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	close(release)
	err := <-slowDone
	require.Error(t, err)
	require.True(t, errors.Is(err, batch.ErrFenced) || errors.Is(err, batch.ErrStaleVersion), "%v", err)

	items := w.items()
	require.Equal(t, 10, items["slow"], "the slow worker's two committed chunks stay")
	require.Equal(t, 150, items["fast"])
	steps, err := m.Repository().StepExecutions(ctx, exec.ID)
	require.NoError(t, err)
	sl := m.Repository().(repository.StepLeaser)
	claims := 0
	for _, s := range steps {
		if l, err := sl.StepLease(ctx, s.ID); err == nil {
			claims += l.Claims
		}
	}
	require.Equal(t, 5, claims, "four partitions, one of them twice")
}

// TestRemotePartitionHandedBack: a worker shutting down hands its
// partition back at a chunk boundary; another resumes it at once (the
// first's lease is a minute long) from its checkpoint, the claim given back
// is not counted, and every item is written once.
func TestRemotePartitionHandedBack(t *testing.T) {
	w := newRemoteWorld(t)
	m := w.manager(launcher.RemoteConfig{Poll: 20 * time.Millisecond, Unclaimed: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var chunks atomic.Int64
	shutdown := make(chan struct{})
	quitter := w.launcher("quitter", time.Minute, func(ctx context.Context, part string) {
		if chunks.Add(1) == 3 {
			close(shutdown) // during its third chunk's write
		}
	}, launcher.RemoteConfig{})
	type result struct {
		se  *batch.StepExecution
		err error
	}
	quit := make(chan result, 1)
	go func() {
		pw := <-w.work
		se, err := quitter.RunPartition(ctx, pw, "quitter", shutdown)
		quit <- result{se, err}
		w.work <- pw // its message given back, as NATSQueue does
	}()
	done := runSpread(ctx, m)
	q := <-quit
	require.ErrorIs(t, q.err, launcher.ErrHandedBack)
	require.Equal(t, int64(15), q.se.WriteCount, "the chunk in its write commits, then it stops")
	w.workers(ctx, nil, "fast")
	exec := <-done
	require.NotNil(t, exec)
	require.Equal(t, batch.StatusCompleted, exec.Status)

	items := w.items()
	require.Equal(t, map[string]int{"quitter": 15, "fast": 145}, items)
	steps, err := m.Repository().StepExecutions(ctx, exec.ID)
	require.NoError(t, err)
	sl := m.Repository().(repository.StepLeaser)
	for _, s := range steps {
		if s.StepName == "load" || s.StepName == "schema" {
			continue
		}
		l, err := sl.StepLease(ctx, s.ID)
		require.NoError(t, err)
		require.Equal(t, 1, l.Claims, "%s: a claim given back is not counted", s.StepName)
		require.Equal(t, "fast", l.Owner, s.StepName)
		require.Equal(t, batch.StatusCompleted, s.Status, s.StepName)
	}
}

// TestRemotePartitionsStopThenRestart: an operator stop while workers run
// the partitions stops them at a chunk boundary and the job ends STOPPED;
// the restart hands out what is left, and every item is written once.
func TestRemotePartitionsStopThenRestart(t *testing.T) {
	w := newRemoteWorld(t)
	m := w.manager(launcher.RemoteConfig{Poll: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var chunks atomic.Int64
	slowly := func(context.Context, string) {
		chunks.Add(1)
		time.Sleep(20 * time.Millisecond)
	}
	w.workers(ctx, slowly, "worker-1", "worker-2")
	job, err := m.Job("spread", nil)
	require.NoError(t, err)
	exec, err := m.Start(ctx, job, nil)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return chunks.Load() >= 4 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, m.Stop(ctx, exec.ID))
	stopped, err := m.Wait(ctx, exec.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusStopped, stopped.Status)
	items := w.items()
	written := items["worker-1"] + items["worker-2"]
	require.Less(t, written, 160, "the stop came before the end")

	restarted, err := m.Restart(ctx, exec.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, restarted.Status)
	items = w.items()
	require.Equal(t, 160, items["worker-1"]+items["worker-2"], "%v", items)
	steps, err := m.Repository().StepExecutions(ctx, restarted.ID)
	require.NoError(t, err)
	var read int64
	for _, s := range steps {
		if s.StepName == "load" {
			read = s.ReadCount
		}
	}
	require.Equal(t, int64(160-written), read, "the restart reads only what was not committed")
}

// TestRemotePartitionsTimeout: the partitions not ended when the step's
// timeout passes are marked FAILED, the one a worker was running included:
// that worker commits nothing more. A restart without the timeout writes
// the rest, every item once.
func TestRemotePartitionsTimeout(t *testing.T) {
	w := newRemoteWorld(t)
	m := w.manager(launcher.RemoteConfig{Poll: 20 * time.Millisecond, Timeout: 1500 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// One worker, a partition at a time: the first it takes runs through;
	// the second stops in its second chunk's write until the job has
	// failed; the other two wait.
	var (
		done    sync.Map
		mu      sync.Mutex
		order   = map[string]int{}
		chunks  = map[string]int{}
		release = make(chan struct{})
	)
	worker := w.launcher("worker-1", 5*time.Second, func(_ context.Context, part string) {
		mu.Lock()
		if _, ok := order[part]; !ok {
			order[part] = len(order)
		}
		chunks[part]++
		stall := order[part] == 1 && chunks[part] == 2
		mu.Unlock()
		if stall {
			<-release
		}
	}, launcher.RemoteConfig{})
	go w.serve(ctx, worker, "worker-1", &done)
	job, err := m.Job("spread", nil)
	require.NoError(t, err)
	exec, err := m.Run(ctx, job, nil)
	close(release)
	require.ErrorContains(t, err, "not ended within the step's timeout of 1.5s")
	require.Equal(t, batch.StatusFailed, exec.Status)
	require.Contains(t, exec.ExitStatus.Description, "not ended within the step's timeout of 1.5s")
	steps, err := m.Repository().StepExecutions(ctx, exec.ID)
	require.NoError(t, err)
	statuses := map[batch.BatchStatus]int{}
	held := 0
	for _, s := range steps {
		if s.StepName == "load" || s.StepName == "schema" {
			continue
		}
		statuses[s.Status]++
		if strings.Contains(s.ExitStatus.Description, "(held by worker-1") {
			held++
		}
	}
	require.Equal(t, map[batch.BatchStatus]int{batch.StatusCompleted: 1, batch.StatusFailed: 3}, statuses)
	require.Equal(t, 1, held, "the partition the worker was running")
	// The worker finds out at its next commit or renewal.
	require.Eventually(t, func() bool {
		n := 0
		done.Range(func(_, v any) bool {
			if err, ok := v.(error); ok && (errors.Is(err, batch.ErrFenced) || errors.Is(err, batch.ErrStaleVersion)) {
				n++
			}
			return true
		})
		return n == 1
	}, 5*time.Second, 10*time.Millisecond)
	written := w.items()["worker-1"]
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, written, w.items()["worker-1"], "nothing more committed")

	relaxed := w.manager(launcher.RemoteConfig{Poll: 20 * time.Millisecond})
	restarted, err := relaxed.Restart(ctx, exec.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, restarted.Status)
	require.Equal(t, 160, w.items()["worker-1"])
}

// TestRemotePartitionsOfTwoJobsAtOnce: two instances of the job, their
// partitions named alike, run at once on the same workers; each execution's
// partitions are claimed once and written by its own, every item once.
func TestRemotePartitionsOfTwoJobsAtOnce(t *testing.T) {
	w := newRemoteWorld(t)
	m := w.manager(launcher.RemoteConfig{Poll: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.workers(ctx, nil, "worker-1", "worker-2")
	// The table exists before the two jobs' schema steps run at once:
	// two concurrent CREATE TABLE IF NOT EXISTS can collide in PostgreSQL.
	pg, err := postgres.Open(ctx, w.dsn, postgres.Config{})
	require.NoError(t, err)
	_, err = pg.DB().Exec(`CREATE TABLE spread (item INTEGER PRIMARY KEY, worker TEXT NOT NULL)`)
	require.NoError(t, err)
	require.NoError(t, pg.Close())
	var ids []int64
	for _, base := range []int64{0, 1000} {
		params := batch.JobParameters{"base": batch.IntParam(base)}
		job, err := m.Job("spread", params)
		require.NoError(t, err)
		exec, err := m.Start(ctx, job, params)
		require.NoError(t, err)
		ids = append(ids, exec.ID)
	}
	sl := m.Repository().(repository.StepLeaser)
	for _, id := range ids {
		exec, err := m.Wait(ctx, id)
		require.NoError(t, err)
		require.Equal(t, batch.StatusCompleted, exec.Status)
		steps, err := m.Repository().StepExecutions(ctx, id)
		require.NoError(t, err)
		for _, s := range steps {
			switch s.StepName {
			case "schema":
				continue
			case "load":
				require.Equal(t, int64(160), s.WriteCount)
				continue
			}
			l, err := sl.StepLease(ctx, s.ID)
			require.NoError(t, err)
			require.Equal(t, 1, l.Claims, s.StepName)
			require.Equal(t, int64(40), s.WriteCount, s.StepName)
		}
	}
	items := w.items()
	require.Equal(t, 320, items["worker-1"]+items["worker-2"], "%v", items)
}
