package batch_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/sqlite"
	"github.com/chunkwise/chunkwise/writer"
)

// writeCrashRepo is a bookRepo that counts the chunks' commits too: it
// dies at its at-th write of any kind — a chunk's commit, the creation or
// save of a step execution, a save of the job execution — before it lands
// or just after.
type writeCrashRepo struct {
	bookRepo
}

func (r *writeCrashRepo) CommitChunk(ctx context.Context, s *batch.StepExecution, write func(ctx context.Context) error) (batch.BatchStatus, error) {
	if r.dead.Load() {
		return "", errDead
	}
	if r.k.Add(1) != r.at {
		return r.Repository.CommitChunk(ctx, s, write)
	}
	r.n.Store(r.at - 1) // so that crashRepo dies at this commit, before or after COMMIT
	return r.crashRepo.CommitChunk(ctx, s, write)
}

// partitionWorld is a partitioned job over 1..40 in 4 partitions, each a
// chunk step writing its numbers into the table nums in its chunk
// transaction.
type partitionWorld struct {
	base        *sqlite.Repository
	concurrency int
	asked       atomic.Int64
}

func newPartitionWorld(t *testing.T, concurrency int) *partitionWorld {
	base, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "batch.db"), sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = base.Close() })
	require.NoError(t, base.Migrate(context.Background()))
	_, err = base.DB().Exec(`CREATE TABLE nums (n INTEGER NOT NULL, part TEXT NOT NULL)`)
	require.NoError(t, err)
	return &partitionWorld{base: base, concurrency: concurrency}
}

func (w *partitionWorld) job(t *testing.T) *batch.Job {
	step, err := batch.NewPartitionStep("load", batch.PartitionConfig{
		Partitioner: rangePartitions(40, 4, &w.asked),
		Concurrency: w.concurrency,
		Step: func(name string, p batch.Partition) (batch.Step, error) {
			from, _ := p.Context.Int64("from")
			to, _ := p.Context.Int64("to")
			out, err := writer.NewSQL(writer.SQLConfig[int]{DB: w.base.DB(), Table: "nums", Columns: []string{"n", "part"},
				Values: func(n int) []any { return []any{n, p.Name} }})
			if err != nil {
				return nil, err
			}
			return batch.NewChunkStep(name, batch.ChunkConfig[int, int]{
				Reader: reader.FromSlice(seq(int(from), int(to))), Writer: out, ChunkSize: 3,
			})
		},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("load", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	return job
}

// run launches the job on repo, then, while it does not complete, again on
// the base repository after the lease, as a restarted process does.
func (w *partitionWorld) run(t *testing.T, repo *writeCrashRepo) {
	ctx := context.Background()
	for i := 0; ; i++ {
		l := mustLauncher(t, launcher.Config{Repository: w.base, Lease: 40 * time.Millisecond})
		if i == 0 && repo != nil {
			l = mustLauncher(t, launcher.Config{Repository: repo, Lease: 40 * time.Millisecond})
		}
		_, err := l.Run(ctx, w.job(t), nil)
		if err == nil || i > 0 && errors.Is(err, batch.ErrJobComplete) {
			return
		}
		require.Less(t, i, 6, "too many attempts: %v", err)
		time.Sleep(80 * time.Millisecond)
	}
}

// check: every number once, one completed execution, no step left running,
// each partition completed once and never run after it completed, the
// partitioned step's counts its partitions', and the partitioner asked
// again only if its partitions were not stored before the crash.
func (w *partitionWorld) check(t *testing.T) {
	ctx := context.Background()
	var nums []int
	require.NoError(t, w.base.DB().Select(&nums, `SELECT n FROM nums ORDER BY n`))
	require.Equal(t, seq(1, 40), nums, "every number once")
	execs, err := w.base.JobExecutions(ctx, batch.ExecutionQuery{JobName: "load"})
	require.NoError(t, err)
	completed, stored := 0, false
	lastOf := map[string]*batch.StepExecution{}
	completedOf := map[string]int{}
	for i := len(execs) - 1; i >= 0; i-- { // oldest first
		e := execs[i]
		if e.Status == batch.StatusCompleted {
			completed++
		}
		ses, err := w.base.StepExecutions(ctx, e.ID)
		require.NoError(t, err)
		var sum, managerWrites int64
		for _, s := range ses {
			require.False(t, s.Status.Running(), "step %s of execution %d left %s", s.StepName, e.ID, s.Status)
			if s.StepName == "load" {
				managerWrites = s.WriteCount
				if _, ok := s.Partitions(); ok && i == len(execs)-1 {
					stored = true
				}
				continue
			}
			require.NotEqual(t, batch.StatusCompleted, statusOf(lastOf[s.StepName]), "%s ran again after it completed", s.StepName)
			lastOf[s.StepName] = s
			sum += s.WriteCount
			if s.Status == batch.StatusCompleted {
				completedOf[s.StepName]++
			}
		}
		if e.Status == batch.StatusCompleted {
			require.Equal(t, sum, managerWrites, "the partitioned step's count is its partitions'")
		}
	}
	require.Equal(t, 1, completed, "one completed execution")
	require.Equal(t, map[string]int{"load:p1": 1, "load:p2": 1, "load:p3": 1, "load:p4": 1}, completedOf)
	if stored {
		require.Equal(t, int64(1), w.asked.Load(), "the stored partitions are reused")
	} else {
		require.LessOrEqual(t, w.asked.Load(), int64(2))
	}
}

func statusOf(s *batch.StepExecution) batch.BatchStatus {
	if s == nil {
		return ""
	}
	return s.Status
}

// TestPartitionCrashSweep: a process running a partitioned step dies at any
// of its writes — a partition's chunk before or after COMMIT, a partition's
// creation or end, the partitions' storing, the partitioned step's end
// (after some or all partitions completed), the job's saves — and its
// restart completes the job with every number once, passing the
// partitions that completed and reusing the stored partitions. With one
// partition at a time the crash points are the same on every run; with
// four they fall differently each time.
func TestPartitionCrashSweep(t *testing.T) {
	var cases []sweepCase
	for _, concurrency := range []int{1, 4} {
		w := newPartitionWorld(t, concurrency)
		counter := &writeCrashRepo{bookRepo{crashRepo: crashRepo{Repository: w.base}}}
		w.run(t, counter)
		w.check(t)
		total := counter.k.Load()
		require.Greater(t, total, int64(20), "a partitioned run writes many times")
		for _, after := range []bool{false, true} {
			for at := int64(1); at <= total; at++ {
				cases = append(cases, sweepCase{fmt.Sprintf("concurrency=%d/after=%v/at=%d", concurrency, after, at), func(t *testing.T) {
					w := newPartitionWorld(t, concurrency)
					w.run(t, &writeCrashRepo{bookRepo{crashRepo: crashRepo{Repository: w.base, at: at, after: after}}})
					w.check(t)
				}})
			}
		}
	}
	runSweep(t, 12, cases)
}
