package batch_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
)

// TestStreamsOfAWrapper: a reader that decorates a restartable one hides
// its stream from the step; given as ReaderStream, it is opened, updated and
// restored, and the restart resumes.
func TestStreamsOfAWrapper(t *testing.T) {
	t.Parallel()
	for _, named := range []bool{false, true} {
		t.Run(fmt.Sprint(named), func(t *testing.T) {
			t.Parallel()
			repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
			inner := newStreamReader(30)
			wrapper := batch.ReaderFunc[int](func(ctx context.Context) (int, error) { return inner.Read(ctx) })
			failing := true
			w := &recordingWriter[int]{fail: func(_ context.Context, _ int, items []int) error {
				if failing && items[0] > 15 {
					return errors.New("boom")
				}
				return nil
			}}
			cfg := batch.ChunkConfig[int, int]{Reader: wrapper, Writer: w, ChunkSize: 5}
			if named {
				cfg.ReaderStream = inner
			}
			step, err := batch.NewChunkStep("copy", cfg)
			require.NoError(t, err)
			job, err := batch.NewJob("copy", batch.JobConfig{Steps: []batch.Step{step}})
			require.NoError(t, err)
			l := mustLauncher(t, launcher.Config{Repository: repo})
			_, err = launchRun(t, l, job, nil)
			require.ErrorContains(t, err, "boom")
			failing = false
			if !named {
				// Nobody told the step about the stream: a restart reads
				// on from where the wrapper's reader is (here, in memory),
				// with nothing restored.
				require.Zero(t, inner.opened)
				return
			}
			exec, err := launchRun(t, l, job, nil)
			require.NoError(t, err)
			require.Equal(t, batch.StatusCompleted, exec.Status)
			require.Equal(t, []int{0, 15}, inner.openedAt, "opened once per execution, the restart at the checkpoint")
			require.Equal(t, seq(1, 30), w.all())
		})
	}
}

// TestPromoteKeys: step 1 stores what it found in its context; the
// promotion listener copies it to the job's context when the step
// completes; step 2 reads it from there, also after a restart of the job
// that fails in step 2.
func TestPromoteKeys(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	var seen []string
	fail := true
	find, err := batch.NewTaskletStep("find", batch.TaskletConfig{
		Tasklet: batch.TaskletFunc(func(ctx context.Context, se *batch.StepExecution) (batch.RepeatStatus, error) {
			return batch.Finished, errors.Join(se.Context.Put("file", "2026-12-01.csv"), se.Context.Put("private", 1))
		}),
		Listeners: []batch.Listener{batch.PromoteKeys("file", "missing")},
	})
	require.NoError(t, err)
	use, err := batch.NewTaskletStep("use", batch.TaskletConfig{
		Tasklet: batch.TaskletFunc(func(ctx context.Context, se *batch.StepExecution) (batch.RepeatStatus, error) {
			jc := batch.JobContext(ctx)
			var file string
			if _, err := jc.Get("file", &file); err != nil {
				return batch.Finished, err
			}
			_, private := jc["private"]
			_, missing := jc["missing"]
			seen = append(seen, fmt.Sprintf("%s private=%v missing=%v", file, private, missing))
			if fail {
				fail = false
				return batch.Finished, errors.New("not yet")
			}
			return batch.Finished, nil
		}),
	})
	require.NoError(t, err)
	job, err := batch.NewJob("promote", batch.JobConfig{Steps: []batch.Step{find, use}})
	require.NoError(t, err)
	l := mustLauncher(t, launcher.Config{Repository: repo})
	_, err = launchRun(t, l, job, nil)
	require.ErrorContains(t, err, "not yet")
	exec, err := launchRun(t, l, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, []string{"2026-12-01.csv private=false missing=false", "2026-12-01.csv private=false missing=false"}, seen,
		"the restart skips step 1 and finds its promoted key in the saved job context")
	require.Nil(t, batch.JobContext(context.Background()))
}

// TestItemListenerAndInterceptor: the hooks see every read, process and
// write, in order, including the end of the input, a filter, a retried
// process error and a write error that rolls a chunk back.
func TestItemListenerAndInterceptor(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	var log []string
	add := func(format string, args ...any) { log = append(log, fmt.Sprintf(format, args...)) }
	errFlaky := errors.New("flaky")
	flaky := map[int]bool{2: true}
	writeFails := true
	il := &batch.ItemListener[int, string]{
		BeforeRead:     func(context.Context) { add("before read") },
		AfterRead:      func(_ context.Context, it int) { add("read %d", it) },
		OnReadError:    func(_ context.Context, err error) { add("read error %v", err) },
		BeforeProcess:  func(_ context.Context, it int) { add("process %d", it) },
		AfterProcess:   func(_ context.Context, it int, s string) { add("processed %d=%s", it, s) },
		OnFilter:       func(_ context.Context, it int) { add("filtered %d", it) },
		OnProcessError: func(_ context.Context, it int, err error) { add("process error %d %v", it, err) },
		BeforeWrite:    func(_ context.Context, items []string) { add("write %v", items) },
		AfterWrite:     func(_ context.Context, items []string) { add("wrote %v", items) },
		OnWriteError:   func(_ context.Context, items []string, err error) { add("write error %v %v", items, err) },
	}
	ic := func(ctx context.Context, c batch.Call, next func(context.Context) error) error {
		err := next(ctx)
		add("  %s chunk %d item %d items %d: %v", c.Phase, c.Chunk, c.Item, c.Items, err)
		return err
	}
	step, err := batch.NewChunkStep("hooks", batch.ChunkConfig[int, string]{
		Reader: sliceReader(1, 2, 3),
		Processor: batch.ProcessorFunc[int, string](func(_ context.Context, i int) (string, error) {
			if flaky[i] {
				delete(flaky, i)
				return "", errFlaky
			}
			if i == 3 {
				return "", batch.ErrFilter
			}
			return strings.Repeat("x", i), nil
		}),
		Writer: batch.WriterFunc[string](func(context.Context, []string) error {
			if writeFails {
				writeFails = false
				return errFlaky
			}
			return nil
		}),
		Retry:        batch.MatchErrors(errFlaky),
		Backoff:      batch.Backoff{Initial: 1},
		Listeners:    []batch.Listener{il},
		Interceptors: []batch.Interceptor{ic},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("hooks", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	_, err = launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	require.NoError(t, err)
	require.Equal(t, []string{
		"before read", "  read chunk 1 item 1 items 1: <nil>", "read 1",
		"before read", "  read chunk 1 item 2 items 1: <nil>", "read 2",
		"before read", "  read chunk 1 item 3 items 1: <nil>", "read 3",
		"before read", "  read chunk 1 item 4 items 1: <nil>", // the end of the input
		"process 1", "  process chunk 1 item 1 items 1: <nil>", "processed 1=x",
		"process 2", "  process chunk 1 item 2 items 1: flaky", "process error 2 flaky",
		"process 2", "  process chunk 1 item 2 items 1: <nil>", "processed 2=xx",
		"process 3", "  process chunk 1 item 3 items 1: batch: item filtered", "filtered 3",
		"write [x xx]", "  write chunk 1 item 1 items 2: flaky", "write error [x xx] flaky",
		"write [x xx]", "  write chunk 1 item 1 items 2: <nil>", "wrote [x xx]",
	}, log)

	_, err = batch.NewChunkStep("wrong", batch.ChunkConfig[int, int]{
		Reader: sliceReader(1), Writer: &recordingWriter[int]{}, Listeners: []batch.Listener{il},
	})
	require.ErrorIs(t, err, batch.ErrInvalidConfig, "an ItemListener of other types would never be called")
}

var errBadItem = errors.New("bad item")

// TestWrappedReaderPartialCommit: a wrapped reader given as ReaderStream; a
// skippable write error makes the step write a chunk item by item (partial
// commits), and a fatal error later in that chunk fails the step. The
// restart resumes right after the last committed item.
func TestWrappedReaderPartialCommit(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	inner := newStreamReader(20)
	wrapper := batch.ReaderFunc[int](func(ctx context.Context) (int, error) { return inner.Read(ctx) })
	failing := true
	w := &recordingWriter[int]{fail: func(_ context.Context, _ int, items []int) error {
		for _, it := range items {
			if it == 7 {
				return errBadItem
			}
			if failing && it == 9 {
				return errors.New("fatal")
			}
		}
		return nil
	}}
	step, err := batch.NewChunkStep("copy", batch.ChunkConfig[int, int]{Reader: wrapper, ReaderStream: inner,
		Writer: w, ChunkSize: 5, Skip: batch.MatchErrors(errBadItem), SkipLimit: 10})
	require.NoError(t, err)
	job, err := batch.NewJob("copy", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	l := mustLauncher(t, launcher.Config{Repository: repo})
	_, err = launchRun(t, l, job, nil)
	require.ErrorContains(t, err, "fatal")
	failing = false
	exec, err := launchRun(t, l, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, append(seq(1, 6), seq(8, 20)...), w.all())

	_, err = batch.NewChunkStep("both", batch.ChunkConfig[int, int]{Reader: newStreamReader(1), ReaderStream: inner, Writer: w})
	require.ErrorIs(t, err, batch.ErrInvalidConfig)
}
