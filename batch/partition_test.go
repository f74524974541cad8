package batch_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/postgres"
	"github.com/chunkwise/chunkwise/writer"
)

// rangePartitions splits 1..n into k ranges, stored as "from" and "to".
func rangePartitions(n, k int, asked *atomic.Int64) batch.Partitioner {
	return batch.PartitionerFunc(func(context.Context) ([]batch.Partition, error) {
		asked.Add(1)
		var parts []batch.Partition
		for i := range k {
			ec := batch.ExecutionContext{}
			if err := errors.Join(ec.Put("from", i*n/k+1), ec.Put("to", (i+1)*n/k)); err != nil {
				return nil, err
			}
			parts = append(parts, batch.Partition{Name: fmt.Sprintf("p%d", i+1), Context: ec})
		}
		return parts, nil
	})
}

// partitionedJob is a job with one partitioned step over 1..n in k
// partitions, each a chunk step over its range into a shared writer that
// fails at item failAt while *fail is set.
type partitionedJob struct {
	mu      sync.Mutex
	written []int
	asked   atomic.Int64
	fail    atomic.Bool
	failAt  int
}

func (pj *partitionedJob) job(t *testing.T, n, k int) *batch.Job {
	t.Helper()
	step, err := batch.NewPartitionStep("load", batch.PartitionConfig{
		Partitioner: rangePartitions(n, k, &pj.asked),
		Step: func(name string, p batch.Partition) (batch.Step, error) {
			from, _ := p.Context.Int64("from")
			to, _ := p.Context.Int64("to")
			return batch.NewChunkStep(name, batch.ChunkConfig[int, int]{
				Reader:    reader.FromSlice(seq(int(from), int(to))),
				ChunkSize: 10,
				Writer: batch.WriterFunc[int](func(_ context.Context, items []int) error {
					if pj.fail.Load() && slices.Contains(items, pj.failAt) {
						return fmt.Errorf("item %d: disk full", pj.failAt)
					}
					pj.mu.Lock()
					defer pj.mu.Unlock()
					pj.written = append(pj.written, items...)
					return nil
				}),
			})
		},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("partitioned", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	return job
}

func (pj *partitionedJob) sorted() []int {
	pj.mu.Lock()
	defer pj.mu.Unlock()
	out := slices.Clone(pj.written)
	slices.Sort(out)
	return out
}

// TestPartitionedStep: four partitions, each a step of its own with its own
// counts; the manager's counts are their sum.
func TestPartitionedStep(t *testing.T) {
	t.Parallel()
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		pj := &partitionedJob{}
		exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), pj.job(t, 400, 4), nil)
		require.NoError(t, err)
		require.Equal(t, batch.StatusCompleted, exec.Status)
		require.Equal(t, seq(1, 400), pj.sorted())
		ses := stepExecutions(t, repo, exec.ID)
		names := map[string]int64{}
		for _, se := range ses {
			names[se.StepName] = se.WriteCount
			require.Equal(t, batch.StatusCompleted, se.Status, se.StepName)
		}
		require.Equal(t, map[string]int64{"load": 400, "load:p1": 100, "load:p2": 100, "load:p3": 100, "load:p4": 100}, names)
	})
}

// TestPartitionRestart: a partition that fails fails the step; the restart
// does not ask the partitioner again, runs only the partition that did not
// complete, from its checkpoint, and every item is written once.
func TestPartitionRestart(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	l := mustLauncher(t, launcher.Config{Repository: repo})
	pj := &partitionedJob{failAt: 255}
	pj.fail.Store(true)
	job := pj.job(t, 400, 4)
	exec, err := launchRun(t, l, job, nil)
	require.ErrorContains(t, err, "partition p3: step load:p3: chunk 6: item 51: write")
	require.Equal(t, batch.StatusFailed, exec.Status)
	first := len(pj.written)
	require.Less(t, first, 400)

	pj.fail.Store(false)
	exec, err = launchRun(t, l, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, int64(1), pj.asked.Load(), "the stored partitions are reused")
	require.Equal(t, seq(1, 400), pj.sorted(), "every item once")
	ses := stepExecutions(t, repo, exec.ID)
	var ran []string
	for _, se := range ses {
		ran = append(ran, se.StepName)
	}
	require.Contains(t, ran, "load:p3")
	require.Len(t, ran, 2+countIncomplete(t, repo, exec.InstanceID), "only the partitions that did not complete ran again")
	p3 := ses[slices.IndexFunc(ses, func(se *batch.StepExecution) bool { return se.StepName == "load:p3" })]
	at, ok := p3.ResumedAt()
	require.True(t, ok)
	require.Equal(t, int64(51), at, "p3 resumed at its own checkpoint")
}

// countIncomplete returns how many partitions other than p3 had not
// completed when the first execution ended (they stopped at a chunk
// boundary when p3 failed).
func countIncomplete(t *testing.T, repo repository.JobRepository, instance int64) int {
	t.Helper()
	execs, err := repo.JobExecutions(context.Background(), batch.ExecutionQuery{InstanceID: instance})
	require.NoError(t, err)
	first := execs[len(execs)-1]
	n := 0
	for _, se := range stepExecutions(t, repo, first.ID) {
		if se.StepName != "load" && se.StepName != "load:p3" && se.Status != batch.StatusCompleted {
			n++
		}
	}
	return n
}

// TestPartitionerFailsThenZeroPartitions: a partitioner that failed before
// its partitions were stored is asked again on restart; zero partitions
// complete the step at once.
func TestPartitionerFailsThenZeroPartitions(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	var asked atomic.Int64
	step, err := batch.NewPartitionStep("load", batch.PartitionConfig{
		Partitioner: batch.PartitionerFunc(func(context.Context) ([]batch.Partition, error) {
			if asked.Add(1) == 1 {
				return nil, errors.New("the table is locked")
			}
			return nil, nil
		}),
		Step: func(name string, p batch.Partition) (batch.Step, error) { return nil, errors.New("never called") },
	})
	require.NoError(t, err)
	job, err := batch.NewJob("empty", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	l := mustLauncher(t, launcher.Config{Repository: repo})
	_, err = launchRun(t, l, job, nil)
	require.ErrorContains(t, err, "the table is locked")
	exec, err := launchRun(t, l, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, int64(2), asked.Load())
}

// TestSixteenPartitionsOnPostgres: sixteen partitions with chunks of two
// rows, on the PostgreSQL repository, each inserting in its chunk
// transaction: no optimistic-locking conflict or deadlock comes up, and
// every row is there once.
func TestSixteenPartitionsOnPostgres(t *testing.T) {
	t.Parallel()
	repo, err := postgres.Open(context.Background(), pgtest.DSN(t), postgres.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = repo.Close() })
	require.NoError(t, repo.Migrate(context.Background()))
	db := repo.DB()
	_, err = db.Exec(`CREATE TABLE item (id BIGINT PRIMARY KEY, part TEXT NOT NULL)`)
	require.NoError(t, err)
	var asked atomic.Int64
	step, err := batch.NewPartitionStep("load", batch.PartitionConfig{
		Partitioner: rangePartitions(800, 16, &asked),
		Step: func(name string, p batch.Partition) (batch.Step, error) {
			from, _ := p.Context.Int64("from")
			to, _ := p.Context.Int64("to")
			return batch.NewChunkStep(name, batch.ChunkConfig[int, int]{
				Reader:    reader.FromSlice(seq(int(from), int(to))),
				ChunkSize: 2,
				Writer: batch.WriterFunc[int](func(ctx context.Context, items []int) error {
					tx, err := batch.JoinTxx(ctx, db)
					if err != nil {
						return err
					}
					for _, it := range items {
						if _, err := tx.ExecContext(ctx, `INSERT INTO item (id, part) VALUES ($1, $2)`, it, p.Name); err != nil {
							return err
						}
					}
					return nil
				}),
			})
		},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("sixteen", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	var got struct {
		N        int `db:"n"`
		Distinct int `db:"d"`
	}
	require.NoError(t, db.Get(&got, `SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM item`))
	require.Equal(t, 800, got.N)
	require.Equal(t, 800, got.Distinct)
	ses := stepExecutions(t, repo, exec.ID)
	require.Len(t, ses, 17)
	for _, se := range ses {
		require.Zero(t, se.RollbackCount, se.StepName)
	}
}

// TestPartitionsStop: an operator stop stops every partition at its next
// chunk boundary and the step ends STOPPED; the restart finishes them, every
// item once.
func TestPartitionsStop(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	l := mustLauncher(t, launcher.Config{Repository: repo})
	var (
		mu      sync.Mutex
		written []int
		first   sync.WaitGroup
		gate    = make(chan struct{})
		once    [4]sync.Once
		asked   atomic.Int64
		gated   atomic.Bool
	)
	gated.Store(true)
	first.Add(4)
	step, err := batch.NewPartitionStep("load", batch.PartitionConfig{
		Partitioner: rangePartitions(400, 4, &asked),
		Step: func(name string, p batch.Partition) (batch.Step, error) {
			from, _ := p.Context.Int64("from")
			to, _ := p.Context.Int64("to")
			i := int(from-1) / 100
			return batch.NewChunkStep(name, batch.ChunkConfig[int, int]{
				Reader: reader.FromSlice(seq(int(from), int(to))), ChunkSize: 10,
				Writer: batch.WriterFunc[int](func(_ context.Context, items []int) error {
					mu.Lock()
					written = append(written, items...)
					mu.Unlock()
					if gated.Load() {
						once[i].Do(first.Done)
						<-gate // every partition is under way when the stop comes
					}
					return nil
				}),
			})
		},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("stoppable", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	exec, done := runAsync(t, l, job, nil)
	first.Wait()
	require.NoError(t, l.Stop(context.Background(), exec.ID))
	close(gate)
	res := <-done
	require.NoError(t, res.err)
	require.Equal(t, batch.StatusStopped, res.exec.Status)
	for _, se := range stepExecutions(t, repo, exec.ID) {
		require.Equal(t, batch.StatusStopped, se.Status, se.StepName)
	}
	mu.Lock()
	require.Less(t, len(written), 400)
	mu.Unlock()

	gated.Store(false)
	exec2, err := launchRun(t, l, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec2.Status)
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(written)
	require.Equal(t, seq(1, 400), written, "every item once")
}

// TestPartitionStoppingChannel: a partition that waits on batch.Stopping
// ends when a sibling partition fails, and the step fails with the
// sibling's error.
func TestPartitionStoppingChannel(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	var asked atomic.Int64
	waiting := make(chan struct{})
	step, err := batch.NewPartitionStep("work", batch.PartitionConfig{
		Partitioner: rangePartitions(2, 2, &asked),
		Step: func(name string, p batch.Partition) (batch.Step, error) {
			return batch.NewTaskletStep(name, batch.TaskletConfig{Tasklet: batch.TaskletFunc(
				func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
					if p.Name == "p1" {
						<-waiting
						return batch.Finished, errors.New("p1 broke")
					}
					close(waiting)
					select {
					case <-batch.Stopping(ctx):
						return batch.Finished, batch.ErrStopped
					case <-time.After(time.Minute):
						return batch.Finished, errors.New("never told to stop")
					}
				})})
		},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("stopping", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	require.ErrorContains(t, err, "partition p1: step work:p1: tasklet: p1 broke")
	require.NotContains(t, err.Error(), "never told to stop")
	require.Equal(t, batch.StatusFailed, exec.Status)
	for _, se := range stepExecutions(t, repo, exec.ID) {
		if se.StepName == "work:p2" {
			require.Equal(t, batch.StatusStopped, se.Status)
		}
	}
}

// TestPartitionsShareJobContext: partitions running at once each leave a
// key in the job's context; each works on its own copy, and the job's
// context ends with every key.
func TestPartitionsShareJobContext(t *testing.T) {
	t.Parallel()
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		var (
			asked atomic.Int64
			all   sync.WaitGroup
		)
		all.Add(8)
		step, err := batch.NewPartitionStep("work", batch.PartitionConfig{
			Partitioner: rangePartitions(8, 8, &asked),
			Step: func(name string, p batch.Partition) (batch.Step, error) {
				return batch.NewTaskletStep(name, batch.TaskletConfig{Tasklet: batch.TaskletFunc(
					func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
						all.Done()
						all.Wait() // all eight write at once
						return batch.Finished, batch.JobContext(ctx).Put("seen."+p.Name, true)
					})})
			},
		})
		require.NoError(t, err)
		job, err := batch.NewJob("context", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
		require.NoError(t, err)
		stored, err := repo.JobExecution(context.Background(), exec.ID)
		require.NoError(t, err)
		for i := 1; i <= 8; i++ {
			var seen bool
			ok, err := stored.Context.Get(fmt.Sprintf("seen.p%d", i), &seen)
			require.NoError(t, err)
			require.True(t, ok && seen, "p%d", i)
		}
	})
}

// TestZombiePartitionsCommitNothing: process A runs four partitions, each
// of which commits a chunk and then hangs; A sends no heartbeat and is
// presumed dead after its lease. B takes the instance over and completes
// every partition, resuming each from A's checkpoint. When A's partition
// goroutines wake up, none of them commits anything more: every row is
// there once.
func TestZombiePartitionsCommitNothing(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(t *testing.T) (repository.JobRepository, *sqlx.DB){
		"sqlite": func(t *testing.T) (repository.JobRepository, *sqlx.DB) {
			repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
			return repo, repo.DB()
		},
		"postgres": func(t *testing.T) (repository.JobRepository, *sqlx.DB) {
			repo, err := postgres.Open(context.Background(), pgtest.DSN(t), postgres.Config{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = repo.Close() })
			require.NoError(t, repo.Migrate(context.Background()))
			return repo, repo.DB()
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			repo, db := open(t)
			_, err := db.Exec(`CREATE TABLE t (v INTEGER NOT NULL)`)
			require.NoError(t, err)
			var (
				asked   atomic.Int64
				arrived sync.WaitGroup
				release = make(chan struct{})
			)
			arrived.Add(4)
			mkJob := func(hang bool) *batch.Job {
				step, err := batch.NewPartitionStep("load", batch.PartitionConfig{
					Partitioner: rangePartitions(40, 4, &asked),
					Step: func(name string, p batch.Partition) (batch.Step, error) {
						from, _ := p.Context.Int64("from")
						to, _ := p.Context.Int64("to")
						w, err := writer.NewSQL(writer.SQLConfig[int]{DB: db, Table: "t", Columns: []string{"v"},
							Values: func(v int) []any { return []any{v} }})
						if err != nil {
							return nil, err
						}
						return batch.NewChunkStep(name, batch.ChunkConfig[int, int]{
							Reader: reader.FromSlice(seq(int(from), int(to))), Writer: w, ChunkSize: 2,
							Processor: batch.ProcessorFunc[int, int](func(_ context.Context, v int) (int, error) {
								if hang && v == int(from)+2 { // the first chunk committed
									arrived.Done()
									<-release
								}
								return v, nil
							}),
						})
					},
				})
				require.NoError(t, err)
				job, err := batch.NewJob("zombie", batch.JobConfig{Steps: []batch.Step{step}})
				require.NoError(t, err)
				return job
			}
			engA := mustLauncher(t, launcher.Config{Repository: repo, Lease: 100 * time.Millisecond, HeartbeatInterval: time.Hour})
			execA, err := engA.Start(ctx, mkJob(true), nil)
			require.NoError(t, err)
			doneA := make(chan error, 1)
			go func() { _, err := engA.Wait(ctx, execA.ID); doneA <- err }()
			arrived.Wait()
			time.Sleep(250 * time.Millisecond) // A's lease lapses

			engB := mustLauncher(t, launcher.Config{Repository: repo})
			execB, err := engB.Run(ctx, mkJob(false), nil)
			require.NoError(t, err, "B takes over and completes")
			require.Equal(t, batch.StatusCompleted, execB.Status)
			for _, se := range stepExecutions(t, repo, execB.ID) {
				if se.StepName != "load" {
					require.Equal(t, int64(8), se.WriteCount, "%s resumed after A's first chunk", se.StepName)
				}
			}

			close(release)
			require.ErrorIs(t, <-doneA, batch.ErrFenced)
			requireRows(t, db, 40)
			for _, se := range stepExecutions(t, repo, execA.ID) {
				if se.StepName != "load" {
					require.Equal(t, int64(2), se.WriteCount, "%s of the zombie committed its first chunk only", se.StepName)
				}
			}
			require.Equal(t, int64(1), asked.Load(), "B reused A's partitions")
		})
	}
}

// TestPartitionsKeepTheirConnections: partitions running at once on a
// repository that Open made commit their chunks on connections the pool
// keeps, instead of connecting anew for each chunk (database/sql keeps only
// 2 idle connections unless told otherwise).
func TestPartitionsKeepTheirConnections(t *testing.T) {
	ctx := context.Background()
	pg, err := postgres.Open(ctx, pgtest.DSN(t), postgres.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pg.Close() })
	require.NoError(t, pg.Migrate(ctx))
	for name, repo := range map[string]interface {
		repository.JobRepository
		DB() *sqlx.DB
	}{"postgres": pg, "sqlite": openSQLite(t, filepath.Join(t.TempDir(), "b.db"))} {
		t.Run(name, func(t *testing.T) {
			db := repo.DB()
			_, err := db.Exec(`CREATE TABLE kept (id BIGINT PRIMARY KEY)`)
			require.NoError(t, err)
			var asked atomic.Int64
			step, err := batch.NewPartitionStep("load", batch.PartitionConfig{
				Partitioner: rangePartitions(8*200, 8, &asked),
				Step: func(name string, p batch.Partition) (batch.Step, error) {
					from, _ := p.Context.Int64("from")
					to, _ := p.Context.Int64("to")
					w, err := writer.NewSQL(writer.SQLConfig[int]{DB: db, Table: "kept", Columns: []string{"id"},
						Values: func(v int) []any { return []any{v} }})
					if err != nil {
						return nil, err
					}
					return batch.NewChunkStep(name, batch.ChunkConfig[int, int]{
						Reader: reader.FromSlice(seq(int(from), int(to))), Writer: w, ChunkSize: 10,
					})
				},
			})
			require.NoError(t, err)
			job, err := batch.NewJob("kept", batch.JobConfig{Steps: []batch.Step{step}})
			require.NoError(t, err)
			exec, err := mustLauncher(t, launcher.Config{Repository: repo}).Run(ctx, job, nil)
			require.NoError(t, err)
			require.Equal(t, batch.StatusCompleted, exec.Status)
			stats := db.Stats()
			require.Zero(t, stats.MaxIdleClosed, "connections closed for want of room among the idle ones: %+v", stats)
			var n int
			require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM kept`))
			require.Equal(t, 8*200, n)
		})
	}
}
