package reader_test

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/reader"
)

func TestSlice(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	items := []string{"a", "b", "c", "d"}

	first := reader.FromSlice(items)
	require.NoError(t, first.Open(ctx, batch.ExecutionContext{}))
	for _, want := range items[:2] {
		got, err := first.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	ec := batch.ExecutionContext{}
	require.NoError(t, first.Update(ctx, ec))
	require.NoError(t, first.Close(ctx))
	index, ok := ec.Int64(reader.SliceIndexKey)
	require.True(t, ok)
	require.Equal(t, int64(2), index)

	second := reader.FromSlice(items)
	require.NoError(t, second.Open(ctx, roundTrip(t, ec)))
	require.Equal(t, []string{"c", "d"}, readAll(t, second))
	_, err := second.Read(ctx)
	require.Equal(t, io.EOF, err)

	require.ErrorContains(t, second.Open(ctx, batch.ExecutionContext{reader.SliceIndexKey: []byte("5")}), "out of range")
	require.ErrorContains(t, second.Open(ctx, batch.ExecutionContext{reader.SliceIndexKey: []byte(`"x"`)}), "reader: slice: ")
	require.Error(t, second.Update(ctx, nil))

	require.Empty(t, readAll(t, reader.FromSlice[int](nil)))
}

func TestReaderFunc(t *testing.T) {
	t.Parallel()
	n := 0
	r := batch.ReaderFunc[int](func(context.Context) (int, error) {
		if n == 3 {
			return 0, io.EOF
		}
		n++
		return n, nil
	})
	var _ batch.ItemReader[int] = r
	require.Equal(t, []int{1, 2, 3}, readAll(t, r))
}
