package batch_test

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository/memory"
)

func TestChunkStepCountsAndChunkSizes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		items, chunkSize int
		wantSizes        []int
	}{
		{items: 10, chunkSize: 3, wantSizes: []int{3, 3, 3, 1}},
		{items: 9, chunkSize: 3, wantSizes: []int{3, 3, 3}},
		{items: 1, chunkSize: 5, wantSizes: []int{1}},
		{items: 0, chunkSize: 5, wantSizes: nil},
		{items: 250, chunkSize: 0, wantSizes: []int{100, 100, 50}}, // DefaultChunkSize
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.items)+"/"+strconv.Itoa(tt.chunkSize), func(t *testing.T) {
			t.Parallel()
			repo := memory.New()
			w := &recordingWriter[string]{}
			step, err := batch.NewChunkStep("convert", batch.ChunkConfig[int, string]{
				Reader:    sliceReader(seq(1, tt.items)...),
				Processor: batch.ProcessorFunc[int, string](func(_ context.Context, i int) (string, error) { return strconv.Itoa(i), nil }),
				Writer:    w,
				ChunkSize: tt.chunkSize,
			})
			require.NoError(t, err)
			job, err := batch.NewJob("convert", batch.JobConfig{Steps: []batch.Step{step}})
			require.NoError(t, err)

			exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
			require.NoError(t, err)
			require.Equal(t, batch.StatusCompleted, exec.Status)
			require.Equal(t, batch.ExitCodeCompleted, exec.ExitStatus.Code)
			require.False(t, exec.EndTime.IsZero())

			require.Equal(t, tt.wantSizes, w.sizes())
			var want []string
			for _, i := range seq(1, tt.items) {
				want = append(want, strconv.Itoa(i))
			}
			require.Equal(t, want, w.all())

			se := onlyStep(t, repo, exec.ID)
			require.Equal(t, batch.StatusCompleted, se.Status)
			require.Equal(t, int64(tt.items), se.ReadCount)
			require.Equal(t, int64(tt.items), se.WriteCount)
			require.Zero(t, se.FilterCount)
			require.Equal(t, int64(len(tt.wantSizes)), se.CommitCount)
			require.Zero(t, se.RollbackCount)

			stored, err := repo.JobExecution(context.Background(), exec.ID)
			require.NoError(t, err)
			require.Equal(t, batch.StatusCompleted, stored.Status)
		})
	}
}

func TestChunkStepFilter(t *testing.T) {
	t.Parallel()
	repo := memory.New()
	w := &recordingWriter[int]{}
	// Even numbers are filtered; a chunk whose items are all filtered is
	// not written at all, but still commits.
	step, err := batch.NewChunkStep("odd", batch.ChunkConfig[int, int]{
		Reader: sliceReader(1, 2, 3, 4, 6, 8, 5),
		Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
			if i%2 == 0 {
				return 0, batch.ErrFilter
			}
			return i * 10, nil
		}),
		Writer:    w,
		ChunkSize: 2,
	})
	require.NoError(t, err)
	job, err := batch.NewJob("odd", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)

	exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)

	// Chunks: {1,2} {3,4} {6,8} {5}: the third is wholly filtered.
	require.Equal(t, [][]int{{10}, {30}, {50}}, w.chunks)
	se := onlyStep(t, repo, exec.ID)
	require.Equal(t, int64(7), se.ReadCount)
	require.Equal(t, int64(4), se.FilterCount)
	require.Equal(t, int64(3), se.WriteCount)
	require.Equal(t, int64(4), se.CommitCount, "a wholly filtered chunk still commits")
}

func TestChunkStepFilterWrapped(t *testing.T) {
	t.Parallel()
	repo := memory.New()
	w := &recordingWriter[string]{}
	step, err := batch.NewChunkStep("wrapped", batch.ChunkConfig[string, string]{
		Reader: sliceReader("keep", "drop", "keep"),
		Processor: batch.ProcessorFunc[string, string](func(_ context.Context, s string) (string, error) {
			if s == "drop" {
				return "", errors.Join(errors.New("blank name"), batch.ErrFilter)
			}
			return s, nil
		}),
		Writer: w,
	})
	require.NoError(t, err)
	job, err := batch.NewJob("wrapped", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	_, err = launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	require.NoError(t, err, "an error wrapping ErrFilter filters")
	require.Equal(t, []string{"keep", "keep"}, w.all())
}

func TestChunkStepWithoutProcessor(t *testing.T) {
	t.Parallel()
	repo := memory.New()
	w := &recordingWriter[string]{}
	step, err := batch.NewChunkStep("copy", batch.ChunkConfig[string, string]{
		Reader:    sliceReader("a", "b", "c"),
		Writer:    w,
		ChunkSize: 2,
	})
	require.NoError(t, err)
	job, err := batch.NewJob("copy", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, [][]string{{"a", "b"}, {"c"}}, w.chunks)
	se := onlyStep(t, repo, exec.ID)
	require.Equal(t, int64(3), se.ReadCount)
	require.Equal(t, int64(3), se.WriteCount)
	require.Equal(t, int64(2), se.CommitCount)
}

func TestNewChunkStepValidation(t *testing.T) {
	t.Parallel()
	r := sliceReader(1)
	w := batch.WriterFunc[string](func(context.Context, []string) error { return nil })
	p := batch.ProcessorFunc[int, string](func(_ context.Context, i int) (string, error) { return strconv.Itoa(i), nil })

	tests := []struct {
		name    string
		step    string
		cfg     batch.ChunkConfig[int, string]
		message string
	}{
		{"empty name", "", batch.ChunkConfig[int, string]{Reader: r, Processor: p, Writer: w}, "empty name"},
		{"no reader", "s", batch.ChunkConfig[int, string]{Processor: p, Writer: w}, "no reader"},
		{"no writer", "s", batch.ChunkConfig[int, string]{Reader: r, Processor: p}, "no writer"},
		{"no processor from int to string", "s", batch.ChunkConfig[int, string]{Reader: r, Writer: w}, "no processor"},
		{"negative chunk size", "s", batch.ChunkConfig[int, string]{Reader: r, Processor: p, Writer: w, ChunkSize: -1}, "negative chunk size"},
		{"listener implementing nothing", "s", batch.ChunkConfig[int, string]{Reader: r, Processor: p, Writer: w, Listeners: []batch.Listener{"not a listener"}}, "implements none of the"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			step, err := batch.NewChunkStep(tt.step, tt.cfg)
			require.ErrorIs(t, err, batch.ErrInvalidConfig)
			require.ErrorContains(t, err, tt.message)
			require.Nil(t, step)
		})
	}

	step, err := batch.NewChunkStep("ok", batch.ChunkConfig[int, string]{Reader: r, Processor: p, Writer: w})
	require.NoError(t, err)
	require.Equal(t, "ok", step.Name())
	require.False(t, step.AllowStartIfComplete())
}

func TestChunkStepProcessError(t *testing.T) {
	t.Parallel()
	repo := memory.New()
	w := &recordingWriter[int]{}
	boom := errors.New("bad record")
	rec := &listenerRecorder{}
	step, err := batch.NewChunkStep("process", batch.ChunkConfig[int, int]{
		Reader: sliceReader(seq(1, 10)...),
		Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
			if i == 5 {
				return 0, boom
			}
			return i, nil
		}),
		Writer:    w,
		ChunkSize: 3,
		Listeners: []batch.Listener{rec},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("process", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)

	exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	require.ErrorIs(t, err, boom)
	var se *batch.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, batch.StepError{Step: "process", Chunk: 2, Item: 5, Phase: "process", Err: boom}, *se)
	require.Equal(t, batch.StatusFailed, exec.Status)
	require.Equal(t, batch.ExitCodeFailed, exec.ExitStatus.Code)
	require.Equal(t, "step process: chunk 2: item 5: process: bad record", exec.ExitStatus.Description)

	require.Equal(t, [][]int{{1, 2, 3}}, w.chunks, "the failed chunk is not written")
	st := onlyStep(t, repo, exec.ID)
	require.Equal(t, batch.StatusFailed, st.Status)
	require.Equal(t, int64(3), st.ReadCount)
	require.Equal(t, int64(3), st.WriteCount)
	require.Equal(t, int64(1), st.CommitCount)
	require.Equal(t, int64(1), st.RollbackCount)
	require.Contains(t, rec.events, "chunk-error 2 items=3: step process: chunk 2: item 5: process: bad record")
}

func TestChunkStepReadError(t *testing.T) {
	t.Parallel()
	repo := memory.New()
	boom := errors.New("disk on fire")
	r := newStreamReader(10)
	r.block = func(_ context.Context, i int) error {
		if i == 3 { // the 4th item
			return boom
		}
		return nil
	}
	step, err := batch.NewChunkStep("read", batch.ChunkConfig[int, int]{Reader: r, Writer: &recordingWriter[int]{}, ChunkSize: 2})
	require.NoError(t, err)
	job, err := batch.NewJob("read", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)

	exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	var se *batch.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, batch.StepError{Step: "read", Chunk: 2, Item: 4, Phase: "read", Err: boom}, *se)
	require.Equal(t, batch.StatusFailed, exec.Status)
	require.Equal(t, 1, r.opened)
	require.Equal(t, 1, r.closed, "streams are closed whatever the outcome")
}
