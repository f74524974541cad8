package batch_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
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
// goroutines at once.
func TestProcessWorkersRunConcurrently(t *testing.T) {
	t.Parallel()
	var inFlight, most atomic.Int64
	all := make(chan struct{})
	var once sync.Once
	step, err := batch.NewChunkStep("work", batch.ChunkConfig[int, int]{
		Reader: sliceReader(seq(1, 40)...),
		Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			if n == 4 {
				once.Do(func() { close(all) })
			}
			select { // until four are in flight together, or long enough to tell
			case <-all:
			case <-time.After(10 * time.Second):
			}
			return i, nil
		}),
		Writer:         &recordingWriter[int]{},
		ChunkSize:      20,
		ProcessWorkers: 4,
	})
	require.NoError(t, err)
	job, err := batch.NewJob("work", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	_, err = launchRun(t, mustLauncher(t, launcher.Config{Repository: openSQLite(t, filepath.Join(t.TempDir(), "b.db"))}), job, nil)
	require.NoError(t, err)
	require.Equal(t, int64(4), most.Load(), "four goroutines, no more")
}

// TestProcessWorkersPanic: a panic on a processing goroutine fails the step
// with the panic and its stack, and leaves the process running.
func TestProcessWorkersPanic(t *testing.T) {
	t.Parallel()
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
		Writer: w, ChunkSize: 10, ProcessWorkers: 3,
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

	_, err = batch.NewChunkStep("bad", batch.ChunkConfig[int, int]{Reader: sliceReader(1), Writer: w, ProcessWorkers: -1})
	require.ErrorIs(t, err, batch.ErrInvalidConfig)
}
