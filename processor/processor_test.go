package processor_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/processor"
)

func TestChain(t *testing.T) {
	calls := 0
	parse := batch.ProcessorFunc[string, int](func(_ context.Context, s string) (int, error) { return strconv.Atoi(s) })
	double := batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) { calls++; return 2 * i, nil })
	p := processor.Chain(processor.Chain[string, int, int](parse, processor.Filter(func(i int) bool { return i > 0 })), double)

	got, err := p.Process(context.Background(), "21")
	require.NoError(t, err)
	require.Equal(t, 42, got)
	_, err = p.Process(context.Background(), "-1")
	require.ErrorIs(t, err, batch.ErrFilter)
	_, err = p.Process(context.Background(), "x")
	require.ErrorIs(t, err, strconv.ErrSyntax)
	require.Equal(t, 1, calls, "the second processor sees only what the first passed")
}

func TestValidate(t *testing.T) {
	positive := processor.Validate(func(i int) error {
		if i <= 0 {
			return fmt.Errorf("amount %d is not positive", i)
		}
		return nil
	})
	got, err := positive.Process(context.Background(), 3)
	require.NoError(t, err)
	require.Equal(t, 3, got)
	_, err = positive.Process(context.Background(), -3)
	require.ErrorIs(t, err, processor.ErrInvalid)
	var ve *processor.ValidationError
	require.True(t, errors.As(err, &ve))
	require.EqualError(t, err, "processor: invalid item: amount -3 is not positive")
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
