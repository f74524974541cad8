package batch_test

import (
	"context"
	"errors"
	"fmt"
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

// exclusiveReader wraps a reader and fails the test if it is called by two
// goroutines at once.
type exclusiveReader[T any] struct {
	t        *testing.T
	r        batch.ItemReader[T]
	inFlight atomic.Int32
}

func (e *exclusiveReader[T]) Read(ctx context.Context) (T, error) {
	if e.inFlight.Add(1) != 1 {
		e.t.Error("the reader was called by two goroutines at once")
	}
	defer e.inFlight.Add(-1)
	return e.r.Read(ctx)
}

// signalReader reads a slice, and closes reached once it has read at items.
type signalReader struct {
	*reader.Slice[int]
	at      int
	reached chan struct{}
	n       int
}

func (r *signalReader) Read(ctx context.Context) (int, error) {
	v, err := r.Slice.Read(ctx)
	if r.n++; r.n == r.at {
		close(r.reached)
	}
	return v, err
}

// afterChunk is an AfterChunkListener.
type afterChunk func(e *batch.ChunkEvent)

func (f afterChunk) AfterChunk(_ context.Context, e *batch.ChunkEvent) { f(e) }

// readAheadOutcome is what a run of the test step left.
type readAheadOutcome struct {
	Written []int
	Skips   []string
	Counts  [8]int64 // read, write, filter, read/process/write skips, commits, rollbacks
	Err     string
}

// runReadAheadStep runs a step over 1..n on SQLite whose reader fails at
// every 17th number (a skippable read error), whose processor filters every
// 7th, skips every 11th and fails every 13th once with a retryable error,
// and whose writer fails on every 19th (a skippable write error: the chunk
// is written again item by item), with or without reading ahead, and with
// workers processing goroutines.
func runReadAheadStep(t *testing.T, readAhead bool, workers, n, chunk, skipLimit int) readAheadOutcome {
	t.Helper()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	var mu sync.Mutex
	failed := map[int]bool{}
	w := &recordingWriter[int]{fail: func(_ context.Context, _ int, items []int) error {
		for _, v := range items {
			if v%19 == 0 {
				return fmt.Errorf("%d: %w", v, errSkipMe)
			}
		}
		return nil
	}}
	skips := &skipRecorder[int, int]{}
	step, err := batch.NewChunkStep("work", batch.ChunkConfig[int, int]{
		Reader: &exclusiveReader[int]{t: t, r: &badReader{streamReader: newStreamReader(n),
			bad: map[int]bool{17: true, 34: true, 51: true, 68: true, 85: true, 102: true, 119: true}}},
		Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
			switch {
			case i%7 == 0:
				return 0, batch.ErrFilter
			case i%11 == 0:
				return 0, fmt.Errorf("item %d: %w", i, errSkipMe)
			case i%13 == 0:
				mu.Lock()
				defer mu.Unlock()
				if !failed[i] {
					failed[i] = true
					return 0, errFlaky
				}
			}
			return i, nil
		}),
		Writer:         w,
		ChunkSize:      chunk,
		ReadAhead:      readAhead,
		ProcessWorkers: workers,
		Skip:           batch.MatchErrors(errSkipMe, errBad),
		SkipLimit:      skipLimit,
		Retry:          batch.MatchErrors(errFlaky),
		Backoff:        batch.Backoff{Initial: time.Microsecond},
		Listeners:      []batch.Listener{skips},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("work", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	out := readAheadOutcome{Written: w.all(), Skips: skips.phases()}
	if err != nil {
		out.Err = err.Error()
	}
	se := onlyStep(t, repo, exec.ID)
	out.Counts = [8]int64{se.ReadCount, se.WriteCount, se.FilterCount, se.ReadSkipCount, se.ProcessSkipCount,
		se.WriteSkipCount, se.CommitCount, se.RollbackCount}
	return out
}

// TestReadAheadSameAsWithout: reading ahead writes the same items in the
// same chunks, skips, filters and retries the same, counts the same — and
// a skip limit is exceeded at the same item, with read errors met ahead;
// and so does processing on three goroutines, with and without reading
// (and processing) ahead.
func TestReadAheadSameAsWithout(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ n, chunk, limit int }{
		{130, 10, -1}, {130, 17, -1}, {130, 1, -1}, {120, 10, -1}, {0, 10, -1},
		{130, 10, 12}, {130, 10, 20},
	} {
		want := runReadAheadStep(t, false, 1, c.n, c.chunk, c.limit)
		for _, v := range []struct {
			readAhead bool
			workers   int
		}{{true, 1}, {false, 3}, {true, 3}} {
			got := runReadAheadStep(t, v.readAhead, v.workers, c.n, c.chunk, c.limit)
			require.Equal(t, want, got, "%+v %+v", c, v)
		}
		if c.limit > 0 {
			require.Contains(t, want.Err, "skip limit", "%+v", c)
		} else {
			require.Empty(t, want.Err, "%+v", c)
		}
	}
}

// TestReadAheadOverlapsTheCommit: the next chunk is read while the writer
// writes the one before — the writer of the first chunk waits until the
// reader has reached the second — and the checkpoint saved with the first
// chunk holds the reader's position at its end, not where it read ahead to.
func TestReadAheadOverlapsTheCommit(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	ahead := make(chan struct{})
	items := reader.FromSlice(seq(1, 25))
	r := &signalReader{Slice: items, at: 15, reached: ahead} // the middle of the second chunk
	var saved []batch.Progress
	w := &recordingWriter[int]{fail: func(ctx context.Context, call int, _ []int) error {
		if call == 1 {
			select {
			case <-ahead:
			case <-time.After(10 * time.Second):
				return errors.New("the second chunk was not read while the first was written")
			}
		}
		return nil
	}}
	step, err := batch.NewChunkStep("work", batch.ChunkConfig[int, int]{
		Reader: r, Writer: w, ChunkSize: 10, ReadAhead: true,
		Listeners: []batch.Listener{afterChunk(func(e *batch.ChunkEvent) {
			var p batch.Progress
			_, err := e.Step.Context.Get(batch.ProgressKey, &p)
			require.NoError(t, err)
			saved = append(saved, p)
		})},
	})
	require.NoError(t, err)
	exec, err := runJob(t, repo, step)
	require.NoError(t, err)
	require.Equal(t, seq(1, 25), w.all())
	require.Equal(t, []int{10, 10, 5}, w.sizes())
	var done []int64
	for _, p := range saved {
		done = append(done, p.Done)
	}
	require.Equal(t, []int64{10, 20, 25}, done, "the progress saved with each chunk")
	require.Equal(t, int64(25), onlyStep(t, repo, exec.ID).ReadCount)
}

// TestReadAheadRestart: a step that fails writing its third chunk, having
// read the fourth ahead, restarts at the third: every item is written once,
// and the stored position and progress are those of the second chunk's end.
func TestReadAheadRestart(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	r := newStreamReader(50)
	var fail atomic.Bool
	fail.Store(true)
	third := make(chan struct{}) // the third chunk is read
	r.block = func(_ context.Context, i int) error {
		if fail.Load() && i == 29 { // about to read the third chunk's last item
			close(third)
		}
		return nil
	}
	w := &recordingWriter[int]{fail: func(_ context.Context, _ int, items []int) error {
		switch {
		case !fail.Load():
		case items[0] == 11: // the second chunk commits once the third is read ahead
			select {
			case <-third:
			case <-time.After(10 * time.Second):
				return errors.New("the third chunk was not read while the second was written")
			}
		case items[0] == 21:
			return errors.New("disk full")
		}
		return nil
	}}
	step, err := batch.NewChunkStep("work", batch.ChunkConfig[int, int]{
		Reader: r, Writer: w, ChunkSize: 10, ReadAhead: true,
	})
	require.NoError(t, err)
	job, err := batch.NewJob("work", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	l := mustLauncher(t, launcher.Config{Repository: repo})
	exec, err := launchRun(t, l, job, nil)
	require.ErrorContains(t, err, "disk full")
	se := onlyStep(t, repo, exec.ID)
	require.Equal(t, int64(20), se.ReadCount)
	pos, _ := se.Context.Int64(readerKey)
	require.Equal(t, int64(20), pos, "the reader's position saved: the second chunk's end")

	fail.Store(false)
	_, err = launchRun(t, l, job, nil) // the restart
	require.NoError(t, err)
	require.Equal(t, seq(1, 50), w.all(), "every item once")
	require.Equal(t, []int{0, 20}, r.openedAt)
}

// TestReadAheadPanic: a reader that panics reading ahead fails the step with
// the panic, after the chunk before committed; the process goes on.
func TestReadAheadPanic(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	items := reader.FromSlice(seq(1, 30))
	r := batch.ReaderFunc[int](func(ctx context.Context) (int, error) {
		v, err := items.Read(ctx)
		if v == 14 {
			panic("boom at item 14")
		}
		return v, err
	})
	w := &recordingWriter[int]{}
	step, err := batch.NewChunkStep("work", batch.ChunkConfig[int, int]{Reader: r, Writer: w, ChunkSize: 10, ReadAhead: true})
	require.NoError(t, err)
	exec, err := runJob(t, repo, step)
	require.Error(t, err)
	require.Equal(t, batch.StatusFailed, exec.Status)
	require.Contains(t, exec.ExitStatus.Description, "boom at item 14")
	require.Contains(t, exec.ExitStatus.Description, "in the goroutine reading ahead")
	require.Equal(t, seq(1, 10), w.all(), "the chunk before the panic committed")
}

// TestReadAheadStop: a stop while a chunk commits and the next is read
// ahead stops the step at the commit; the restart resumes after it and
// writes every item once.
func TestReadAheadStop(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	r := newStreamReader(40)
	w := &recordingWriter[int]{fail: func(ctx context.Context, call int, _ []int) error {
		if call == 2 {
			return requestStop(ctx, repo, runningID(ctx, repo))
		}
		return nil
	}}
	step, err := batch.NewChunkStep("work", batch.ChunkConfig[int, int]{Reader: r, Writer: w, ChunkSize: 10, ReadAhead: true})
	require.NoError(t, err)
	job, err := batch.NewJob("work", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	l := mustLauncher(t, launcher.Config{Repository: repo})
	exec, err := launchRun(t, l, job, nil)
	require.NoError(t, err, "a stopped execution is not an error")
	require.Equal(t, batch.StatusStopped, exec.Status)
	require.Equal(t, seq(1, 20), w.all(), "chunk 2 commits, then the step stops")
	require.Equal(t, int64(20), onlyStep(t, repo, exec.ID).ReadCount)
	require.Equal(t, 1, r.closed, "closed once the reading ahead ended")

	_, err = launchRun(t, l, job, nil) // the restart
	require.NoError(t, err)
	require.Equal(t, seq(1, 40), w.all(), "every item once")
	require.Equal(t, []int{0, 20}, r.openedAt)
}
