package processor_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/processor"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/sqlite"
	"github.com/chunkwise/chunkwise/writer"
)

func TestChain(t *testing.T) {
	t.Parallel()
	calls := 0
	parse := batch.ProcessorFunc[string, int](func(_ context.Context, s string) (int, error) { return strconv.Atoi(s) })
	double := batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) { calls++; return 2 * i, nil })
	format := batch.ProcessorFunc[int, string](func(_ context.Context, i int) (string, error) { return "=" + strconv.Itoa(i), nil })
	p := processor.Chain4(parse, processor.Filter(func(i int) bool { return i > 0 }), double, format)

	got, err := p.Process(context.Background(), "21")
	require.NoError(t, err)
	require.Equal(t, "=42", got)
	_, err = p.Process(context.Background(), "-1")
	require.ErrorIs(t, err, batch.ErrFilter)
	_, err = p.Process(context.Background(), "x")
	require.ErrorIs(t, err, strconv.ErrSyntax)
	require.Equal(t, 1, calls, "a stage sees only what the one before passed")

	p3 := processor.Chain3(parse, double, format)
	got, err = p3.Process(context.Background(), "5")
	require.NoError(t, err)
	require.Equal(t, "=10", got)
}

func TestSequence(t *testing.T) {
	t.Parallel()
	add := func(s string) batch.ItemProcessor[string, string] {
		return batch.ProcessorFunc[string, string](func(_ context.Context, in string) (string, error) { return in + s, nil })
	}
	p := processor.Sequence(add("a"), add("b"), processor.Filter(func(s string) bool { return !strings.HasPrefix(s, "x") }), add("c"))
	got, err := p.Process(context.Background(), ">")
	require.NoError(t, err)
	require.Equal(t, ">abc", got)
	_, err = p.Process(context.Background(), "x")
	require.ErrorIs(t, err, batch.ErrFilter)
	got, err = processor.Sequence[string]().Process(context.Background(), "same")
	require.NoError(t, err)
	require.Equal(t, "same", got)
}

func positive(i int) error {
	if i <= 0 {
		return fmt.Errorf("amount %d is not positive", i)
	}
	return nil
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		on    processor.Invalid
		check func(t *testing.T, err error)
	}{
		{processor.FailInvalid, func(t *testing.T, err error) {
			require.ErrorIs(t, err, processor.ErrInvalid)
			require.NotErrorIs(t, err, batch.ErrSkippable)
			var ve *processor.ValidationError
			require.ErrorAs(t, err, &ve)
			require.EqualError(t, err, "processor: invalid item: amount -3 is not positive")
		}},
		{processor.SkipInvalid, func(t *testing.T, err error) {
			require.ErrorIs(t, err, processor.ErrInvalid)
			require.ErrorIs(t, err, batch.ErrSkippable)
			require.EqualError(t, err, "processor: invalid item: amount -3 is not positive")
		}},
		{processor.FilterInvalid, func(t *testing.T, err error) {
			require.Equal(t, batch.ErrFilter, err)
		}},
	} {
		p := processor.Validate(positive, tt.on)
		got, err := p.Process(context.Background(), 3)
		require.NoError(t, err)
		require.Equal(t, 3, got)
		_, err = p.Process(context.Background(), -3)
		tt.check(t, err)
	}
}

// TestValidateInAStep: the three modes through a real step, with a reject
// file recording the skipped items.
func TestValidateInAStep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	repo, err := sqlite.Open(context.Background(), filepath.Join(dir, "batch.db"), sqlite.Config{})
	require.NoError(t, err)
	defer repo.Close()
	require.NoError(t, repo.Migrate(context.Background()))
	l, err := launcher.New(launcher.Config{Repository: repo})
	require.NoError(t, err)
	for _, tt := range []struct {
		on                    processor.Invalid
		status                batch.BatchStatus
		written, skip, filter int64
	}{
		{processor.FailInvalid, batch.StatusFailed, 2, 0, 0},
		{processor.SkipInvalid, batch.StatusCompleted, 4, 2, 0},
		{processor.FilterInvalid, batch.StatusCompleted, 4, 0, 2},
	} {
		rejects := filepath.Join(dir, fmt.Sprintf("rejects-%d.jsonl", tt.on))
		rf, err := writer.NewRejectFile[int, int](writer.RejectFileConfig{Path: rejects})
		require.NoError(t, err)
		var out writer.Slice[int]
		step, err := batch.NewChunkStep("check", batch.ChunkConfig[int, int]{
			Reader:    reader.FromSlice([]int{1, 2, -3, 4, 0, 6}),
			Processor: processor.Validate(positive, tt.on),
			Writer:    &out,
			ChunkSize: 2,
			Listeners: []batch.Listener{rf},
		})
		require.NoError(t, err)
		job, err := batch.NewJob(fmt.Sprintf("validate-%d", tt.on), batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		exec, _ := l.Run(context.Background(), job, nil)
		require.Equal(t, tt.status, exec.Status)
		steps, err := repo.StepExecutions(context.Background(), exec.ID)
		require.NoError(t, err)
		se := steps[0]
		require.Equal(t, []int64{tt.written, tt.skip, tt.filter}, []int64{se.WriteCount, se.ProcessSkipCount, se.FilterCount})
		if tt.on == processor.SkipInvalid {
			require.Equal(t, []int{1, 2, 4, 6}, out.Items())
			require.NoError(t, rf.Close(context.Background()))
			lines := readLines(t, rejects)
			require.Len(t, lines, 2)
			require.Contains(t, lines[0], `"error":"processor: invalid item: amount -3 is not positive"`)
		}
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	label := func(prefix string) batch.ItemProcessor[int, string] {
		return batch.ProcessorFunc[int, string](func(_ context.Context, i int) (string, error) { return prefix + strconv.Itoa(i), nil })
	}
	parity := func(i int) string {
		if i%2 == 0 {
			return "even"
		}
		return "odd"
	}
	routes := map[string]batch.ItemProcessor[int, string]{"even": label("e"), "odd": label("o")}
	p := processor.Classify(parity, routes, nil)
	routes["odd"] = label("changed") // the processor keeps its own copy
	var got []string
	for _, i := range []int{1, 2, 3} {
		s, err := p.Process(context.Background(), i)
		require.NoError(t, err)
		got = append(got, s)
	}
	require.Equal(t, []string{"o1", "e2", "o3"}, got)

	sign := func(i int) int { return min(max(i, -1), 1) }
	strict := processor.Classify(sign, map[int]batch.ItemProcessor[int, string]{1: label("+")}, nil)
	_, err := strict.Process(context.Background(), -5)
	require.EqualError(t, err, "processor: classify: no processor for -1")
	loose := processor.Classify(sign, map[int]batch.ItemProcessor[int, string]{1: label("+")}, label("?"))
	s, err := loose.Process(context.Background(), -5)
	require.NoError(t, err)
	require.Equal(t, "?-5", s)

}

func ExampleChain() {
	trim := batch.ProcessorFunc[string, string](func(_ context.Context, s string) (string, error) {
		if s == "" {
			return s, batch.ErrFilter
		}
		return "<" + s + ">", nil
	})
	length := batch.ProcessorFunc[string, int](func(_ context.Context, s string) (int, error) { return len(s), nil })
	p := processor.Chain(trim, length)
	for _, in := range []string{"abc", ""} {
		n, err := p.Process(context.Background(), in)
		fmt.Println(n, err)
	}
	// Output:
	// 5 <nil>
	// 0 batch: item filtered
}

func ExampleValidate() {
	p := processor.Validate(func(amount int) error {
		if amount <= 0 {
			return fmt.Errorf("amount %d is not positive", amount)
		}
		return nil
	}, processor.SkipInvalid)
	for _, in := range []int{5, -2} {
		_, err := p.Process(context.Background(), in)
		fmt.Println(in, err, errors.Is(err, batch.ErrSkippable))
	}
	// Output:
	// 5 <nil> false
	// -2 processor: invalid item: amount -2 is not positive true
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}
