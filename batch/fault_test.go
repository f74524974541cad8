package batch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/memory"
	"github.com/chunkwise/chunkwise/repository/sqlite"
	"github.com/chunkwise/chunkwise/writer"
)

var errBad = errors.New("bad item")

// skipRecorder records the skips it is told about.
type skipRecorder[T, U any] struct {
	mu    sync.Mutex
	skips []batch.Skip[T, U]
}

func (r *skipRecorder[T, U]) OnSkip(_ context.Context, s *batch.Skip[T, U]) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.skips = append(r.skips, *s)
	return nil
}

func (r *skipRecorder[T, U]) phases() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.skips {
		out = append(out, fmt.Sprintf("%s:%d", s.Phase, s.Item))
	}
	return out
}

// retryRecorder records retries.
type retryRecorder struct {
	mu     sync.Mutex
	events []batch.RetryEvent
}

func (r *retryRecorder) OnRetry(_ context.Context, e *batch.RetryEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, *e)
}

func (r *retryRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// badReader is a stream reader over 1..n whose Read fails (then moves on)
// for the numbers in bad, as a CSV reader does for a malformed line.
type badReader struct {
	*streamReader
	bad map[int]bool
}

func (r *badReader) Read(ctx context.Context) (int, error) {
	v, err := r.streamReader.Read(ctx)
	if err == nil && r.bad[v] {
		return 0, fmt.Errorf("record %d: %w", v, errBad)
	}
	return v, err
}

func runJob(t *testing.T, repo repository.JobRepository, step batch.Step) (*batch.JobExecution, error) {
	t.Helper()
	job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	return launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
}

var fast = batch.Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond}

func TestSkipInRead(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		r := &badReader{streamReader: newStreamReader(10), bad: map[int]bool{3: true, 8: true}}
		w := &recordingWriter[int]{}
		skips := &skipRecorder[int, int]{}
		step, err := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
			Reader: r, Writer: w, ChunkSize: 4, Skip: batch.MatchErrors(errBad), Listeners: []batch.Listener{skips},
		})
		require.NoError(t, err)
		exec, err := runJob(t, repo, step)
		require.NoError(t, err)
		require.Equal(t, batch.StatusCompleted, exec.Status)
		require.Equal(t, []int{1, 2, 4, 5, 6, 7, 9, 10}, w.all())
		require.Equal(t, []int{4, 4}, w.sizes(), "read skips do not count toward the chunk size")
		se := onlyStep(t, repo, exec.ID)
		require.Equal(t, int64(2), se.ReadSkipCount)
		require.Equal(t, int64(8), se.ReadCount)
		require.Equal(t, []string{"read:3", "read:7"}, skips.phases())
		require.ErrorContains(t, skips.skips[0].Err, "record 3")
	})
}

func TestSkipInProcess(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		w := &recordingWriter[string]{}
		skips := &skipRecorder[int, string]{}
		step, err := batch.NewChunkStep("s", batch.ChunkConfig[int, string]{
			Reader: newStreamReader(10),
			Processor: batch.ProcessorFunc[int, string](func(_ context.Context, i int) (string, error) {
				if i%4 == 0 {
					return "", fmt.Errorf("item %d: %w", i, errBad)
				}
				return fmt.Sprint(i), nil
			}),
			Writer: w, ChunkSize: 3, Skip: batch.MatchErrors(errBad), Listeners: []batch.Listener{skips},
		})
		require.NoError(t, err)
		exec, err := runJob(t, repo, step)
		require.NoError(t, err)
		require.Equal(t, []string{"1", "2", "3", "5", "6", "7", "9", "10"}, w.all())
		se := onlyStep(t, repo, exec.ID)
		require.Equal(t, int64(2), se.ProcessSkipCount)
		require.Equal(t, int64(8), se.WriteCount)
		require.Equal(t, int64(10), se.ReadCount)
		require.Equal(t, []string{"process:4", "process:8"}, skips.phases())
		require.Equal(t, 8, skips.skips[1].Input)
	})
}

// checkTable makes a SQLite repository with a table whose CHECK constraint
// refuses multiples of 7: a real database error for the write-skip tests.
func checkTable(t *testing.T) (*sqlite.Repository, *writer.SQL[int]) {
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	_, err := repo.DB().Exec(`CREATE TABLE nums (n INTEGER NOT NULL CHECK (n % 7 <> 0))`)
	require.NoError(t, err)
	w, err := writer.NewSQL(writer.SQLConfig[int]{DB: repo.DB(), Table: "nums", Columns: []string{"n"},
		Values: func(n int) []any { return []any{n} }})
	require.NoError(t, err)
	return repo, w
}

var checkFailed = batch.MatchFunc(func(err error) bool { return strings.Contains(err.Error(), "CHECK constraint failed") })

func tableRows(t *testing.T, db *sqlx.DB) []int {
	var got []int
	require.NoError(t, db.Select(&got, `SELECT n FROM nums ORDER BY n`))
	return got
}

func without(from, to int, drop func(int) bool) []int {
	var out []int
	for i := from; i <= to; i++ {
		if !drop(i) {
			out = append(out, i)
		}
	}
	return out
}

func TestSkipInWriteScansTheChunk(t *testing.T) {
	for _, nonTx := range []bool{false, true} {
		t.Run(fmt.Sprintf("processorNonTransactional=%v", nonTx), func(t *testing.T) {
			repo, w := checkTable(t)
			var processed atomic.Int64
			skips := &skipRecorder[int, int]{}
			step, err := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
				Reader: newStreamReader(30),
				Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
					processed.Add(1)
					return i, nil
				}),
				Writer: w, ChunkSize: 10, Skip: checkFailed, Listeners: []batch.Listener{skips},
				ProcessorNonTransactional: nonTx,
			})
			require.NoError(t, err)
			exec, err := runJob(t, repo, step)
			require.NoError(t, err)
			require.Equal(t, batch.StatusCompleted, exec.Status)
			require.Equal(t, without(1, 30, func(i int) bool { return i%7 == 0 }), tableRows(t, repo.DB()))
			se := onlyStep(t, repo, exec.ID)
			require.Equal(t, int64(4), se.WriteSkipCount)
			require.Equal(t, int64(26), se.WriteCount)
			require.Equal(t, int64(30), se.ReadCount)
			require.Equal(t, int64(7), se.RollbackCount, "three chunks rolled back before their scans, four items in them")
			require.Equal(t, []string{"write:7", "write:14", "write:21", "write:28"}, skips.phases())
			require.Equal(t, 7, skips.skips[0].Output)
			require.ErrorContains(t, skips.skips[0].Err, "CHECK constraint failed")
			if nonTx {
				require.Equal(t, int64(30), processed.Load(), "the scan reuses processed items")
			} else {
				require.Equal(t, int64(60), processed.Load(), "the scan processes every item again")
			}
		})
	}
}

func TestSkipLimit(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		w := &recordingWriter[int]{}
		step, err := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
			Reader: newStreamReader(40),
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
				if i%5 == 0 {
					return 0, fmt.Errorf("item %d: %w", i, errBad)
				}
				return i, nil
			}),
			Writer: w, ChunkSize: 10, Skip: batch.MatchErrors(errBad), SkipLimit: 3,
		})
		require.NoError(t, err)
		exec, err := runJob(t, repo, step)
		require.ErrorIs(t, err, batch.ErrSkipLimitExceeded)
		require.ErrorIs(t, err, errBad)
		require.EqualError(t, err, "step s: chunk 2: item 20: process: skip limit 3 exceeded: item 20: bad item")
		require.Equal(t, batch.StatusFailed, exec.Status)
		require.Equal(t, without(1, 10, func(i int) bool { return i%5 == 0 }), w.all(), "the first chunk stays committed")
		require.Equal(t, int64(2), onlyStep(t, repo, exec.ID).ProcessSkipCount)
	})
}

// transient is an error the default retry policy retries.
var transient = &pq.Error{Code: "40001", Message: "could not serialize access"}

func TestRetryProcess(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		attempts := map[int]int{}
		retries := &retryRecorder{}
		w := &recordingWriter[int]{}
		step, err := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
			Reader: newStreamReader(6),
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
				attempts[i]++
				if i == 4 && attempts[i] <= 2 {
					return 0, transient
				}
				return i, nil
			}),
			Writer: w, ChunkSize: 3, Backoff: fast, Listeners: []batch.Listener{retries},
		})
		require.NoError(t, err)
		exec, err := runJob(t, repo, step)
		require.NoError(t, err)
		require.Equal(t, seq(1, 6), w.all())
		require.Equal(t, 3, attempts[4])
		require.Equal(t, 2, retries.count())
		require.Equal(t, "process", retries.events[0].Phase)
		require.Equal(t, int64(4), retries.events[0].Item)
		require.Equal(t, 2, retries.events[1].Attempt)
		require.Zero(t, onlyStep(t, repo, exec.ID).RollbackCount)
	})
}

func TestRetryWrite(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		retries := &retryRecorder{}
		w := &recordingWriter[int]{fail: func(_ context.Context, call int, _ []int) error {
			if call == 2 {
				return fmt.Errorf("insert: %w", syscall.ECONNRESET)
			}
			return nil
		}}
		step, err := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
			Reader: newStreamReader(9), Writer: w, ChunkSize: 3, Backoff: fast, Listeners: []batch.Listener{retries},
		})
		require.NoError(t, err)
		exec, err := runJob(t, repo, step)
		require.NoError(t, err)
		require.Equal(t, seq(1, 9), w.all(), "the retried chunk is written once")
		se := onlyStep(t, repo, exec.ID)
		require.Equal(t, int64(1), se.RollbackCount)
		require.Equal(t, int64(3), se.CommitCount)
		require.Equal(t, 1, retries.count())
		require.Equal(t, "write", retries.events[0].Phase)
	})
}

func TestRetryExhaustedOrNotRetryable(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		retries := &retryRecorder{}
		calls := 0
		step, err := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
			Reader: newStreamReader(3),
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
				calls++
				return 0, transient
			}),
			Writer: &recordingWriter[int]{}, RetryLimit: 2, Backoff: fast, Listeners: []batch.Listener{retries},
		})
		require.NoError(t, err)
		_, err = runJob(t, repo, step)
		require.ErrorIs(t, err, transient)
		require.Equal(t, 3, calls, "the first attempt and two retries")
		require.Equal(t, 2, retries.count())

		retries2 := &retryRecorder{}
		calls = 0
		step2, err := batch.NewChunkStep("s2", batch.ChunkConfig[int, int]{
			Reader: newStreamReader(3),
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
				calls++
				return 0, errBad
			}),
			Writer: &recordingWriter[int]{}, Backoff: fast, Listeners: []batch.Listener{retries2},
		})
		require.NoError(t, err)
		job, err := batch.NewJob("other", batch.JobConfig{Steps: []batch.Step{step2}})
		require.NoError(t, err)
		_, err = launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
		require.ErrorIs(t, err, errBad)
		require.Equal(t, 1, calls, "neither skippable nor retryable: fails at once")
		require.Zero(t, retries2.count())
	})
}

func TestNoRollbackCommitsTheWorkBeforeTheFailure(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		fail := atomic.Bool{}
		fail.Store(true)
		var errNotify = errors.New("notification service down")
		w := &recordingWriter[int]{}
		newStep := func() batch.Step {
			step, err := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
				Reader: newStreamReader(30),
				Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
					if i == 15 && fail.Load() {
						return 0, errNotify
					}
					return i, nil
				}),
				Writer: w, ChunkSize: 10, NoRollback: batch.MatchErrors(errNotify),
			})
			require.NoError(t, err)
			return step
		}
		job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{newStep()}})
		require.NoError(t, err)
		engine := mustLauncher(t, launcher.Config{Repository: repo})
		exec, err := launchRun(t, engine, job, nil)
		require.ErrorIs(t, err, errNotify)
		require.Equal(t, batch.StatusFailed, exec.Status)
		require.Equal(t, seq(1, 14), w.all(), "items 11-14, processed before the failure, are committed")

		fail.Store(false)
		job2, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{newStep()}})
		require.NoError(t, err)
		exec2, err := launchRun(t, engine, job2, nil)
		require.NoError(t, err)
		require.Equal(t, batch.StatusCompleted, exec2.Status)
		require.Equal(t, seq(1, 30), w.all(), "the restart resumes at item 15: each item once")
		require.Equal(t, int64(16), onlyStep(t, repo, exec2.ID).ReadCount)
	})
}

// TestScanInterruptedThenRestarted fails a scan half way through a chunk: the
// items the scan committed are not written again by the restart, and the
// read skip of that chunk is neither counted nor reported twice.
func TestScanInterruptedThenRestarted(t *testing.T) {
	repo, w := checkTable(t)
	errDisk := errors.New("disk on fire")
	skips := &skipRecorder[int, int]{}
	engine := mustLauncher(t, launcher.Config{Repository: repo})
	// Item 17 fails on its second processing only: in the scan that item
	// 14's CHECK violation starts.
	calls17 := 0
	step, err := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
		Reader: &badReader{streamReader: newStreamReader(30), bad: map[int]bool{12: true}},
		Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
			if i == 17 {
				calls17++
				if calls17 == 2 {
					return 0, errDisk
				}
			}
			return i, nil
		}),
		Writer: w, ChunkSize: 10, Skip: checkFailed.Or(batch.MatchErrors(errBad)), Listeners: []batch.Listener{skips},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	exec, err := launchRun(t, engine, job, nil)
	require.ErrorIs(t, err, errDisk)
	require.Equal(t, batch.StatusFailed, exec.Status)
	// Chunk 2 holds 11, 13..21 (12 is a bad record). The scan wrote 11, 13,
	// skipped 14, wrote 15, 16, then failed at 17.
	require.Equal(t, append(without(1, 10, func(i int) bool { return i == 7 }), 11, 13, 15, 16), tableRows(t, repo.DB()))
	// Skips name item numbers, which count the items read: 13 is the 12th.
	require.Equal(t, []string{"write:7", "read:12", "write:13"}, skips.phases())

	exec2, err := launchRun(t, engine, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec2.Status)
	require.Equal(t, without(1, 30, func(i int) bool { return i%7 == 0 || i == 12 }), tableRows(t, repo.DB()),
		"every good item exactly once")
	require.Equal(t, []string{"write:7", "read:12", "write:13", "write:20", "write:27"}, skips.phases(),
		"no skip reported twice")
	var reads, readSkips, writeSkips int64
	for _, e := range []int64{exec.ID, exec2.ID} {
		se := onlyStep(t, repo, e)
		reads += se.ReadCount
		readSkips += se.ReadSkipCount
		writeSkips += se.WriteSkipCount
	}
	require.Equal(t, int64(29), reads, "every item counted once over both executions")
	require.Equal(t, int64(1), readSkips)
	require.Equal(t, int64(4), writeSkips)
}

func TestStartLimit(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		step, err := batch.NewTaskletStep("flaky", batch.TaskletConfig{StartLimit: 2,
			Tasklet: batch.TaskletFunc(func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) {
				return batch.Finished, errBad
			})})
		require.NoError(t, err)
		job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		engine := mustLauncher(t, launcher.Config{Repository: repo})
		for range 2 {
			_, err := launchRun(t, engine, job, nil)
			require.ErrorIs(t, err, errBad)
		}
		exec, err := launchRun(t, engine, job, nil)
		require.ErrorIs(t, err, batch.ErrStartLimitExceeded)
		require.Equal(t, batch.StatusFailed, exec.Status)
		require.Contains(t, exec.ExitStatus.Description, "started 2 times, limit 2")
		require.Empty(t, stepExecutions(t, repo, exec.ID), "the step was not started a third time")
	})
}

func TestPreventRestart(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		step, err := batch.NewTaskletStep("once", batch.TaskletConfig{
			Tasklet: batch.TaskletFunc(func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) {
				return batch.Finished, errBad
			})})
		require.NoError(t, err)
		job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}, PreventRestart: true})
		require.NoError(t, err)
		require.False(t, job.Restartable())
		engine := mustLauncher(t, launcher.Config{Repository: repo})
		_, err = launchRun(t, engine, job, nil)
		require.ErrorIs(t, err, errBad)
		_, err = engine.Run(context.Background(), job, nil)
		require.ErrorIs(t, err, batch.ErrJobNotRestartable)
		other, err := engine.Run(context.Background(), job, batch.JobParameters{"day": batch.StringParam("tomorrow")})
		require.ErrorIs(t, err, errBad, "another instance starts as usual")
		require.NotZero(t, other.ID)
	})
}

func TestTaskletObservesStop(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		engine := mustLauncher(t, launcher.Config{Repository: repo})
		started := make(chan struct{})
		step, err := batch.NewTaskletStep("long", batch.TaskletConfig{
			Tasklet: batch.TaskletFunc(func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
				require.False(t, batch.StopRequested(ctx))
				close(started)
				select {
				case <-batch.Stopping(ctx):
					require.True(t, batch.StopRequested(ctx))
					return batch.Finished, batch.ErrStopped
				case <-time.After(30 * time.Second):
					return batch.Finished, errors.New("no stop seen")
				}
			})})
		require.NoError(t, err)
		job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		stopErr := make(chan error, 1)
		go func() {
			<-started
			ctx := context.Background()
			stopErr <- engine.Stop(ctx, runningID(ctx, repo))
		}()
		exec, err := engine.Run(context.Background(), job, nil)
		require.NoError(t, <-stopErr)
		require.NoError(t, err)
		require.Equal(t, batch.StatusStopped, exec.Status)
		require.Nil(t, batch.Stopping(context.Background()))
	})
}

// lostAck is a job repository whose chunk commits succeed but, once, report
// a broken connection, as when the connection drops after COMMIT reached the
// server and before its answer came back.
type lostAck struct {
	*sqlite.Repository
	lost atomic.Int64 // the commit number whose answer is lost
	n    atomic.Int64
}

func (r *lostAck) CommitChunk(ctx context.Context, s *batch.StepExecution, write func(ctx context.Context) error) (batch.BatchStatus, error) {
	st, err := r.Repository.CommitChunk(ctx, s, write)
	if err == nil && r.n.Add(1) == r.lost.Load() {
		s.Version-- // the caller never learns that the commit happened
		return "", fmt.Errorf("commit: %w", io.ErrUnexpectedEOF)
	}
	return st, err
}

func TestLostCommitAnswerIsNotWrittenTwice(t *testing.T) {
	base, w := checkTable(t)
	repo := &lostAck{Repository: base}
	repo.lost.Store(2)
	step, err := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
		Reader: newStreamReader(30), Writer: w, ChunkSize: 5, Backoff: fast,
		Skip: checkFailed,
	})
	require.NoError(t, err)
	exec, err := runJob(t, repo, step)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, without(1, 30, func(i int) bool { return i%7 == 0 }), tableRows(t, base.DB()))
	se := onlyStep(t, base, exec.ID)
	require.Equal(t, int64(26), se.WriteCount)
	require.Equal(t, int64(8), se.RollbackCount, "the scans' rollbacks only: the lost answer was no rollback")
	require.GreaterOrEqual(t, repo.n.Load(), int64(2), "the answer of commit 2 was lost")
}

func TestTransient(t *testing.T) {
	for _, err := range []error{
		&pq.Error{Code: "40001"}, &pq.Error{Code: "40P01"}, &pq.Error{Code: "57P01"}, &pq.Error{Code: "08006"},
		&pgconn.PgError{Code: "40001"}, fmt.Errorf("x: %w", &pgconn.PgError{Code: "08006"}),
		fmt.Errorf("x: %w", syscall.ECONNRESET), io.ErrUnexpectedEOF,
	} {
		require.True(t, batch.Transient.Matches(err), "%v", err)
	}
	for _, err := range []error{
		&pq.Error{Code: "23505"}, &pgconn.PgError{Code: "23505"}, errBad, context.Canceled, fmt.Errorf("x: %w", context.DeadlineExceeded), nil,
	} {
		require.False(t, batch.Transient.Matches(err), "%v", err)
	}
}

func TestBackoff(t *testing.T) {
	b := batch.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond, Multiplier: 2, Jitter: -1}
	require.Equal(t, []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 40 * time.Millisecond, 50 * time.Millisecond},
		[]time.Duration{b.Delay(1), b.Delay(2), b.Delay(3), b.Delay(4)})
	j := batch.Backoff{Initial: 100 * time.Millisecond, Jitter: 0.5}
	for range 100 {
		d := j.Delay(1)
		require.GreaterOrEqual(t, d, 50*time.Millisecond)
		require.LessOrEqual(t, d, 100*time.Millisecond)
	}
}

func TestSkipListenerOfOtherTypesRejected(t *testing.T) {
	_, err := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
		Reader: newStreamReader(1), Writer: &recordingWriter[int]{}, Listeners: []batch.Listener{&skipRecorder[string, int]{}},
	})
	require.ErrorIs(t, err, batch.ErrInvalidConfig)
	require.ErrorContains(t, err, "is not a SkipListener[int, int]")
}

// TestReadRetry: a transient read error is retried with the backoff; one
// that is not, or with ReadRetry off, fails the step naming the item.
func TestReadRetry(t *testing.T) {
	transient := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	for _, tt := range []struct {
		name     string
		failures int
		off      bool
		wantErr  bool
	}{
		{"retried", 2, false, false},
		{"past the limit", 4, false, true},
		{"read retries off", 1, true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			left := tt.failures
			rec := &retryRecorder{}
			n := 0
			cfg := batch.ChunkConfig[int, int]{
				Reader: batch.ReaderFunc[int](func(context.Context) (int, error) {
					if n == 2 && left > 0 {
						left--
						return 0, transient
					}
					if n == 4 {
						return 0, io.EOF
					}
					n++
					return n, nil
				}),
				Writer:    batch.WriterFunc[int](func(context.Context, []int) error { return nil }),
				Backoff:   batch.Backoff{Initial: time.Millisecond, Max: time.Millisecond},
				Listeners: []batch.Listener{rec},
			}
			if tt.off {
				cfg.ReadRetry = batch.NoErrors
			}
			step, err := batch.NewChunkStep("s", cfg)
			require.NoError(t, err)
			job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
			require.NoError(t, err)
			exec, err := mustLauncher(t, launcher.Config{Repository: memory.New()}).Run(context.Background(), job, nil)
			if tt.wantErr {
				require.ErrorIs(t, err, syscall.ECONNRESET)
				require.ErrorContains(t, err, "item 3: read")
				return
			}
			require.NoError(t, err)
			require.Equal(t, batch.StatusCompleted, exec.Status)
			var retries []string
			for _, ev := range rec.events {
				retries = append(retries, fmt.Sprintf("%s %d #%d", ev.Phase, ev.Item, ev.Attempt))
			}
			require.Equal(t, []string{"read 3 #1", "read 3 #2"}, retries)
		})
	}
}

func TestTransientDNS(t *testing.T) {
	t.Parallel()
	notFound := &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "db.example", IsNotFound: true}}
	require.False(t, batch.Transient.Matches(notFound), "no such host is not transient")
	flaky := &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "server misbehaving", Name: "db.example", IsTemporary: true}}
	require.True(t, batch.Transient.Matches(flaky))
	require.True(t, batch.Transient.Matches(&net.DNSError{Err: "i/o timeout", IsTimeout: true}))
}
