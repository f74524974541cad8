package batch_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
)

var errNoRollback = errors.New("no rollback")

// restartsOutcome is what a step left after it was run until it completed:
// the items written, the skips, and each run's counts and error.
type restartsOutcome struct {
	Written []int
	Skips   []string
	Runs    []string
}

// restartsCase is a step over 1..n that fails in the runs named: at an
// item with a no-rollback error, writing a chunk, or reading an item.
type restartsCase struct {
	n, chunk, limit int
	nr              map[int]int // run -> item failing with a NoRollback error
	fatalWrite      map[int]int // run -> item whose chunk's write fails fatally
	fatalRead       map[int]int // run -> item whose read fails fatally
}

// runRestartsStep runs the step of c, with or without reading ahead and on
// workers processing goroutines, again and again until it completes (at
// most 8 runs). Besides the failures of c, its reader skips every 17th
// item, its processor filters every 7th, skips every 11th and fails every
// 13th once in each run with a retryable error, and its writer fails a
// chunk holding a multiple of 19 with a skippable error.
func runRestartsStep(t *testing.T, c restartsCase, readAhead bool, workers int) restartsOutcome {
	t.Helper()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	var run atomic.Int64
	var mu sync.Mutex
	failed := map[[2]int]bool{}
	w := &recordingWriter[int]{fail: func(_ context.Context, _ int, items []int) error {
		for _, v := range items {
			if v%19 == 0 {
				return fmt.Errorf("%d: %w", v, errSkipMe)
			}
			if fw, ok := c.fatalWrite[int(run.Load())]; ok && fw == v/10 {
				return fmt.Errorf("write %d: disk full", v)
			}
		}
		return nil
	}}
	skips := &skipRecorder[int, int]{}
	sr := newStreamReader(c.n)
	sr.block = func(_ context.Context, i int) error {
		if c.fatalRead[int(run.Load())] == i+1 {
			return fmt.Errorf("read %d: fatal", i+1)
		}
		return nil
	}
	step, err := batch.NewChunkStep("work", batch.ChunkConfig[int, int]{
		Reader: &badReader{streamReader: sr, bad: map[int]bool{17: true, 34: true, 51: true, 68: true, 85: true}},
		Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
			r := int(run.Load())
			switch {
			case c.nr[r] == i:
				return 0, fmt.Errorf("item %d: %w", i, errNoRollback)
			case i%7 == 0:
				return 0, batch.ErrFilter
			case i%11 == 0:
				return 0, fmt.Errorf("item %d: %w", i, errSkipMe)
			case i%13 == 0:
				mu.Lock()
				defer mu.Unlock()
				if !failed[[2]int{r, i}] {
					failed[[2]int{r, i}] = true
					return 0, errFlaky
				}
			}
			return i, nil
		}),
		Writer:         w,
		ChunkSize:      c.chunk,
		ReadAhead:      readAhead,
		ProcessWorkers: workers,
		Skip:           batch.MatchErrors(errSkipMe, errBad),
		SkipLimit:      c.limit,
		Retry:          batch.MatchErrors(errFlaky),
		ReadRetry:      batch.NoErrors,
		NoRollback:     batch.MatchErrors(errNoRollback),
		Backoff:        batch.Backoff{Initial: time.Microsecond},
		Listeners:      []batch.Listener{skips},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("work", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	l := mustLauncher(t, launcher.Config{Repository: repo})
	var out restartsOutcome
	for r := 1; r <= 8; r++ {
		run.Store(int64(r))
		exec, err := launchRun(t, l, job, nil)
		se := onlyStep(t, repo, exec.ID)
		s := fmt.Sprintf("r=%d R%d W%d F%d RS%d PS%d WS%d C%d RB%d", r, se.ReadCount, se.WriteCount, se.FilterCount,
			se.ReadSkipCount, se.ProcessSkipCount, se.WriteSkipCount, se.CommitCount, se.RollbackCount)
		if err != nil {
			s += " err=" + err.Error()
		}
		out.Runs = append(out.Runs, s)
		if err == nil {
			break
		}
	}
	out.Written, out.Skips = w.all(), skips.phases()
	return out
}

// TestProcessWorkersRestartsSameAsSequential: steps that fail and are
// restarted until they complete — no-rollback errors committing part of a
// chunk, fatal write and read errors, a skip limit, chunks of 1 to 10 —
// write the same items, skip the same and count the same in every run on
// one goroutine and on several, with and without reading ahead.
func TestProcessWorkersRestartsSameAsSequential(t *testing.T) {
	t.Parallel()
	for _, c := range []restartsCase{
		{n: 100, chunk: 10, limit: -1, nr: map[int]int{1: 25, 2: 26, 3: 44}},
		{n: 100, chunk: 10, limit: -1, nr: map[int]int{1: 21, 2: 29}, fatalWrite: map[int]int{1: 0, 3: 5}},
		{n: 100, chunk: 7, limit: -1, nr: map[int]int{2: 30}, fatalRead: map[int]int{1: 15, 3: 40}},
		{n: 100, chunk: 10, limit: -1, fatalRead: map[int]int{1: 12, 2: 20, 3: 31}},
		{n: 100, chunk: 4, limit: -1, nr: map[int]int{1: 38, 2: 39, 3: 57}, fatalRead: map[int]int{4: 60}},
		{n: 100, chunk: 10, limit: 6, nr: map[int]int{1: 25}},
		{n: 100, chunk: 10, limit: -1, nr: map[int]int{1: 35, 2: 38}, fatalWrite: map[int]int{2: 3}},
		{n: 100, chunk: 1, limit: -1, nr: map[int]int{1: 5, 2: 9}, fatalRead: map[int]int{3: 12}},
	} {
		want := runRestartsStep(t, c, false, 1)
		for _, v := range []struct {
			readAhead bool
			workers   int
		}{{true, 1}, {false, 3}, {true, 3}, {true, 2}} {
			got := runRestartsStep(t, c, v.readAhead, v.workers)
			require.Equal(t, want, got, "%+v %+v", c, v)
		}
	}
}

// TestProcessWorkersNoGoroutineLeft: after steps that fail (writer,
// processor and read errors, a panic, a cancelled context) or complete, no
// goroutine of the processing pool or of the reading ahead is left.
func TestProcessWorkersNoGoroutineLeft(t *testing.T) {
	for i, mode := range []string{"write", "process", "read", "panic", "cancel", "ok"} {
		repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
		ctx, cancel := context.WithCancel(context.Background())
		r := newStreamReader(200)
		r.block = func(_ context.Context, i int) error {
			if mode == "read" && i == 45 {
				return errors.New("bad read")
			}
			return nil
		}
		step, err := batch.NewChunkStep("work", batch.ChunkConfig[int, int]{
			Reader: r,
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, v int) (int, error) {
				switch {
				case mode == "process" && v == 35:
					return 0, errors.New("bad item")
				case mode == "panic" && v == 35:
					panic("boom")
				case mode == "cancel" && v == 35:
					cancel()
				}
				return v, nil
			}),
			Writer: &recordingWriter[int]{fail: func(_ context.Context, _ int, items []int) error {
				if mode == "write" && items[0] == 21 {
					return errors.New("disk full")
				}
				return nil
			}},
			ChunkSize: 10, ProcessWorkers: 2 + i%3, ReadAhead: i%2 == 0,
			ReadRetry: batch.NoErrors,
		})
		require.NoError(t, err)
		job, err := batch.NewJob("work", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		_, err = mustLauncher(t, launcher.Config{Repository: repo}).Run(ctx, job, nil)
		if mode != "ok" && mode != "cancel" {
			require.Error(t, err, mode)
		}
		cancel()
		var stacks string
		for range 100 {
			buf := make([]byte, 1<<20)
			stacks = string(buf[:runtime.Stack(buf, true)])
			if !strings.Contains(stacks, "startProcessPool") && !strings.Contains(stacks, ").fill.") {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		require.NotContains(t, stacks, "startProcessPool", mode)
		require.NotContains(t, stacks, ").fill.", mode)
	}
}
