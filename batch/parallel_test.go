package batch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
)

var (
	errSkipMe = errors.New("skip me")
	errFlaky  = errors.New("flaky")
)

// parallelOutcome is what a run of the test step left: what was written,
// in order, the counts, and the error.
type parallelOutcome struct {
	Written []string
	Counts  [6]int64 // read, write, filter, process skips, commits, rollbacks
	Err     string
}

// runParallelStep runs, with workers goroutines, a step over n items whose
// processor filters every 7th item, skips every 11th, fails every 13th
// once with a retryable error, and takes a random while over each, so that
// items finish out of order.
func runParallelStep(t *testing.T, workers, n, skipLimit int) parallelOutcome {
	t.Helper()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	var mu sync.Mutex
	failed := map[int]bool{}
	w := &recordingWriter[string]{}
	step, err := batch.NewChunkStep("work", batch.ChunkConfig[int, string]{
		Reader: sliceReader(seq(1, n)...),
		Processor: batch.ProcessorFunc[int, string](func(_ context.Context, i int) (string, error) {
			time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
			switch {
			case i%7 == 0:
				return "", batch.ErrFilter
			case i%11 == 0:
				return "", fmt.Errorf("item %d: %w", i, errSkipMe)
			case i%13 == 0:
				mu.Lock()
				defer mu.Unlock()
				if !failed[i] {
					failed[i] = true
					return "", errFlaky
				}
			}
			return fmt.Sprintf("<%d>", i), nil
		}),
		Writer:         w,
		ChunkSize:      25,
		ProcessWorkers: workers,
		Skip:           batch.MatchErrors(errSkipMe),
		SkipLimit:      skipLimit,
		Retry:          batch.MatchErrors(errFlaky),
		Backoff:        batch.Backoff{Initial: time.Microsecond},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("work", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	out := parallelOutcome{Written: w.all()}
	if err != nil {
		out.Err = err.Error()
	}
	se := onlyStep(t, repo, exec.ID)
	out.Counts = [6]int64{se.ReadCount, se.WriteCount, se.FilterCount, se.ProcessSkipCount, se.CommitCount, se.RollbackCount}
	return out
}

// TestProcessWorkersSameAsSequential: with 1 and with 8 goroutines, the
// same items are written in the same order, with the same counts — and a
// skip limit is exceeded at the same item.
func TestProcessWorkersSameAsSequential(t *testing.T) {
	t.Parallel()
	for _, limit := range []int{-1, 20} {
		want := runParallelStep(t, 1, 500, limit)
		got := runParallelStep(t, 8, 500, limit)
		require.Equal(t, want, got, "skip limit %d", limit)
		if limit > 0 {
			require.Contains(t, want.Err, "skip limit")
		} else {
			require.Empty(t, want.Err)
			require.Len(t, want.Written, 500-500/7-500/11+500/77)
		}
	}
}

// TestProcessWorkersRunConcurrently: the processor is called by several
// goroutines at once, in every chunk — all of them, also when they slept
// between chunks.
func TestProcessWorkersRunConcurrently(t *testing.T) {
	t.Parallel()
	const workers, chunks, size = 4, 3, 20
	var inFlight, most [chunks]atomic.Int64
	var all [chunks]chan struct{}
	var once [chunks]sync.Once
	for c := range all {
		all[c] = make(chan struct{})
	}
	// Long enough to tell, for all the waits together.
	tell, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	items := reader.FromSlice(seq(1, chunks*size))
	step, err := batch.NewChunkStep("work", batch.ChunkConfig[int, int]{
		// A pause before each chunk, long enough for the processing
		// goroutines to fall asleep waiting for one.
		Reader: batch.ReaderFunc[int](func(ctx context.Context) (int, error) {
			v, err := items.Read(ctx)
			if v%size == 1 {
				time.Sleep(5 * time.Millisecond)
			}
			return v, err
		}),
		Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
			c := (i - 1) / size
			n := inFlight[c].Add(1)
			defer inFlight[c].Add(-1)
			for m := most[c].Load(); n > m && !most[c].CompareAndSwap(m, n); m = most[c].Load() {
			}
			if n == workers {
				once[c].Do(func() { close(all[c]) })
			}
			select { // until all are in flight together
			case <-all[c]:
			case <-tell.Done():
			}
			return i, nil
		}),
		Writer:         &recordingWriter[int]{},
		ChunkSize:      size,
		ProcessWorkers: workers,
	})
	require.NoError(t, err)
	job, err := batch.NewJob("work", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	_, err = launchRun(t, mustLauncher(t, launcher.Config{Repository: openSQLite(t, filepath.Join(t.TempDir(), "b.db"))}), job, nil)
	require.NoError(t, err)
	for c := range most {
		require.Equal(t, int64(workers), most[c].Load(), "chunk %d: four goroutines, no more", c+1)
	}
}

// TestProcessWorkersPanic: a panic on a processing goroutine fails the step
// with the panic and its stack, and leaves the process running — also when
// the item was processed ahead, while the chunk before committed.
func TestProcessWorkersPanic(t *testing.T) {
	t.Parallel()
	for _, readAhead := range []bool{false, true} {
		repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
		w := &recordingWriter[int]{}
		step, err := batch.NewChunkStep("work", batch.ChunkConfig[int, int]{
			Reader: sliceReader(seq(1, 30)...),
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
				if i == 17 {
					panic(fmt.Sprintf("boom at item %d", i))
				}
				return i, nil
			}),
			Writer: w, ChunkSize: 10, ProcessWorkers: 3, ReadAhead: readAhead,
		})
		require.NoError(t, err)
		job, err := batch.NewJob("work", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
		require.Error(t, err)
		require.Equal(t, batch.StatusFailed, exec.Status)
		require.Contains(t, exec.ExitStatus.Description, "boom at item 17")
		require.Contains(t, exec.ExitStatus.Description, "in a processing goroutine")
		require.Equal(t, seq(1, 10), w.all(), "the chunks before the panic committed")
	}

	_, err := batch.NewChunkStep("bad", batch.ChunkConfig[int, int]{Reader: sliceReader(1), Writer: &recordingWriter[int]{}, ProcessWorkers: -1})
	require.ErrorIs(t, err, batch.ErrInvalidConfig)
}

// TestProcessWorkersProcessAhead: with ReadAhead, the next chunk's items
// are processed while the chunk before is written — the writer of the
// first chunk waits until the processor has reached the second — and a
// failure writing the first chunk leaves nothing of the second written:
// the restart processes and writes it once.
func TestProcessWorkersProcessAhead(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	ahead := make(chan struct{})
	var once sync.Once
	var fail atomic.Bool
	fail.Store(true)
	var processed sync.Map // item → times processed
	w := &recordingWriter[int]{fail: func(_ context.Context, call int, items []int) error {
		if fail.Load() && items[0] == 10 {
			select {
			case <-ahead:
			case <-time.After(10 * time.Second):
				return errors.New("the second chunk was not processed while the first was written")
			}
			return errors.New("disk full")
		}
		return nil
	}}
	step, err := batch.NewChunkStep("work", batch.ChunkConfig[int, int]{
		Reader: newStreamReader(30),
		Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
			n, _ := processed.LoadOrStore(i, new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
			if i == 15 {
				once.Do(func() { close(ahead) })
			}
			return i * 10, nil
		}),
		Writer: w, ChunkSize: 10, ProcessWorkers: 2, ReadAhead: true,
	})
	require.NoError(t, err)
	job, err := batch.NewJob("work", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	l := mustLauncher(t, launcher.Config{Repository: repo})
	exec, err := launchRun(t, l, job, nil)
	require.ErrorContains(t, err, "disk full")
	require.Empty(t, w.all())
	require.Equal(t, int64(0), onlyStep(t, repo, exec.ID).WriteCount)

	fail.Store(false)
	_, err = launchRun(t, l, job, nil) // the restart
	require.NoError(t, err)
	var want []int
	for i := 1; i <= 30; i++ {
		want = append(want, i*10)
	}
	require.Equal(t, want, w.all(), "every item written once, in order")
	n, _ := processed.Load(15)
	require.Equal(t, int32(2), n.(*atomic.Int32).Load(), "processed ahead, then again after the restart")
}

// TestProcessWorkersPanicInOrder: a panic on an item is raised when the
// step gets to that item, as on one goroutine — an item before it that
// fails the step with a no-rollback error still commits the items before
// it, and the step fails at that item.
func TestProcessWorkersPanicInOrder(t *testing.T) {
	t.Parallel()
	errNoRB := errors.New("no rollback")
	for _, workers := range []int{1, 3} {
		repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
		w := &recordingWriter[int]{}
		step, err := batch.NewChunkStep("work", batch.ChunkConfig[int, int]{
			Reader: newStreamReader(30),
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
				switch i {
				case 13:
					return 0, errNoRB
				case 17:
					panic(fmt.Sprintf("boom at item %d", i))
				}
				return i, nil
			}),
			Writer: w, ChunkSize: 10, ProcessWorkers: workers, NoRollback: batch.MatchErrors(errNoRB),
		})
		require.NoError(t, err)
		job, err := batch.NewJob("work", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
		require.Error(t, err)
		require.Equal(t, seq(1, 12), w.all(), "workers %d: items 11-12 committed before the no-rollback item", workers)
		require.Contains(t, exec.ExitStatus.Description, "item 13", "workers %d", workers)
		require.NotContains(t, exec.ExitStatus.Description, "boom", "workers %d", workers)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes: a log
// destination.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestProcessWorkersPanicAheadLogged: a panic on an item processed ahead is
// logged when the step fails before it gets to the item — here at a fatal
// read error met ahead in the same chunk.
func TestProcessWorkersPanicAheadLogged(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	logs := &lockedBuffer{}
	panicked := make(chan struct{})
	var once sync.Once
	w := &recordingWriter[int]{fail: func(_ context.Context, _ int, items []int) error {
		if items[0] == 1 { // the first chunk commits once item 12 was processed ahead
			select {
			case <-panicked:
			case <-time.After(10 * time.Second):
				return errors.New("item 12 was not processed ahead")
			}
		}
		return nil
	}}
	r := newStreamReader(30)
	r.block = func(_ context.Context, i int) error {
		if i == 14 { // item 15
			return errors.New("fatal read error")
		}
		return nil
	}
	step, err := batch.NewChunkStep("work", batch.ChunkConfig[int, int]{
		Reader: r,
		Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
			if i == 12 {
				defer once.Do(func() { close(panicked) })
				panic(fmt.Sprintf("boom at item %d", i))
			}
			return i, nil
		}),
		Writer: w, ChunkSize: 10, ProcessWorkers: 2, ReadAhead: true, ReadRetry: batch.NoErrors,
	})
	require.NoError(t, err)
	job, err := batch.NewJob("work", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	l := mustLauncher(t, launcher.Config{Repository: repo, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	_, err = launchRun(t, l, job, nil)
	require.ErrorContains(t, err, "fatal read error")
	require.Equal(t, seq(1, 10), w.all())
	require.Contains(t, logs.String(), "boom at item 12")
	require.Contains(t, logs.String(), "the processor panicked on an item the step did not get to")
}
