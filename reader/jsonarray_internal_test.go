package reader

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// genArray serves a JSON array of n elements of the same length, made up as
// it is read: an input much larger than what the test may hold in memory.
type genArray struct {
	n, pos, size int64
	elem         int64
}

const genElem = `{"id":"%09d","kind":"%s"},`

func newGenArray(n int64) *genArray {
	elem := int64(len(fmt.Sprintf(genElem, 0, pad)))
	return &genArray{n: n, elem: elem, size: 1 + n*elem} // "[" + elements, the last comma becoming "]"
}

const pad = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"

func (g *genArray) Read(p []byte) (int, error) {
	if g.pos >= g.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && g.pos < g.size {
		if g.pos == 0 {
			p[n] = '['
			n++
			g.pos++
			continue
		}
		i := (g.pos - 1) / g.elem
		off := (g.pos - 1) % g.elem
		e := fmt.Sprintf(genElem, i, pad)
		if i == g.n-1 {
			e = e[:len(e)-1] + "]"
		}
		c := copy(p[n:], e[off:])
		n += c
		g.pos += int64(c)
	}
	return n, nil
}

func (g *genArray) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		g.pos = offset
	case io.SeekCurrent:
		g.pos += offset
	case io.SeekEnd:
		g.pos = g.size + offset
	}
	return g.pos, nil
}

func (g *genArray) Close() error { return nil }

// TestJSONArrayConstantMemory reads an array of 250,000 elements (24 MB)
// and checks that the heap stays small all along: the reader holds one
// element at a time, whatever the size of the array.
func TestJSONArrayConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 24 MB")
	}
	const n = 250_000
	gen := newGenArray(n)
	type item struct {
		ID   string `json:"id"`
		Kind string `json:"kind"`
	}
	r, err := NewJSONArray(JSONArrayConfig[item]{Open: func() (io.ReadSeekCloser, error) { return gen, nil }})
	require.NoError(t, err)
	require.NoError(t, r.Open(t.Context(), nil))
	defer r.Close(context.Background())
	var peak uint64
	var ms runtime.MemStats
	for i := range n {
		it, err := r.Read(t.Context())
		require.NoError(t, err)
		if i%50_000 == 0 {
			require.Equal(t, fmt.Sprintf("%09d", i), it.ID)
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	}
	_, err = r.Read(t.Context())
	require.Equal(t, io.EOF, err)
	require.Greater(t, gen.size, int64(5*4<<20), "the input is much larger than the bound")
	t.Logf("peak live heap %d KiB", peak>>10)
	require.Less(t, peak, uint64(4<<20), "live heap after a GC, reading a %d MB array", gen.size>>20)
}
