package batch_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

func TestExecutionContext(t *testing.T) {
	t.Parallel()
	type pos struct {
		Line   int64 `json:"line"`
		Offset int64 `json:"offset"`
	}
	ec := batch.ExecutionContext{}
	require.NoError(t, ec.Put("csv.line", int64(41237)))
	require.NoError(t, ec.Put("csv.name", "people.csv"))
	require.NoError(t, ec.Put("csv.pos", pos{Line: 3, Offset: 120}))
	require.NoError(t, ec.Put("ratio", 0.5))
	require.ErrorContains(t, ec.Put("bad", func() {}), `execution context key "bad"`)
	_, present := ec["bad"]
	require.False(t, present, "a value that cannot be encoded is not stored")

	n, ok := ec.Int64("csv.line")
	require.True(t, ok)
	require.Equal(t, int64(41237), n)
	_, ok = ec.Int64("csv.name")
	require.False(t, ok, "not an integer")
	_, ok = ec.Int64("ratio")
	require.False(t, ok, "not an integer")
	_, ok = ec.Int64("missing")
	require.False(t, ok)

	s, ok := ec.String("csv.name")
	require.True(t, ok)
	require.Equal(t, "people.csv", s)
	_, ok = ec.String("csv.line")
	require.False(t, ok, "not a string")

	var p pos
	found, err := ec.Get("csv.pos", &p)
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, pos{Line: 3, Offset: 120}, p)
	found, err = ec.Get("missing", &p)
	require.NoError(t, err)
	require.False(t, found)
	found, err = ec.Get("csv.name", &p)
	require.True(t, found)
	require.ErrorContains(t, err, `execution context key "csv.name"`)

	// Clone shares no map.
	c := ec.Clone()
	require.NoError(t, c.Put("csv.line", 1))
	n, _ = ec.Int64("csv.line")
	require.Equal(t, int64(41237), n)
	require.NotNil(t, batch.ExecutionContext(nil).Clone())

	// Storage round trip.
	b, err := repository.MarshalContext(ec)
	require.NoError(t, err)
	back, err := repository.UnmarshalContext(b)
	require.NoError(t, err)
	require.Equal(t, len(ec), len(back))
	for k, v := range ec {
		require.JSONEq(t, string(v), string(back[k]), k)
	}
	n, _ = back.Int64("csv.line")
	require.Equal(t, int64(41237), n)

	// Large integers survive exactly (no float64 on the way).
	big := batch.ExecutionContext{}
	require.NoError(t, big.Put("id", int64(1<<62+1)))
	b, err = repository.MarshalContext(big)
	require.NoError(t, err)
	back, err = repository.UnmarshalContext(b)
	require.NoError(t, err)
	n, _ = back.Int64("id")
	require.Equal(t, int64(1<<62+1), n)
}

func TestExecutionContextEmpty(t *testing.T) {
	t.Parallel()
	b, err := repository.MarshalContext(nil)
	require.NoError(t, err)
	require.Equal(t, "{}", string(b))
	for _, in := range []string{"", "{}"} {
		c, err := repository.UnmarshalContext([]byte(in))
		require.NoError(t, err)
		require.NotNil(t, c)
		require.Empty(t, c)
		require.NoError(t, c.Put("k", 1), "a decoded context is usable")
	}
	_, err = repository.UnmarshalContext([]byte(`[1,2]`))
	require.ErrorContains(t, err, "repository: decode execution context")
	_, err = repository.UnmarshalContext([]byte(`{"a":`))
	require.Error(t, err)
}

func TestUnmarshalContextNull(t *testing.T) {
	t.Parallel()
	c, err := repository.UnmarshalContext([]byte("null"))
	require.NoError(t, err)
	require.NotNil(t, c, "null decodes to an empty context, ready for Put")
	require.NoError(t, c.Put("k", 1))
}
