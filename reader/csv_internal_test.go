package reader

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type stringFile struct{ *strings.Reader }

func (stringFile) Close() error { return nil }

// TestCSVReadsBoundedBytes checks that a runaway record makes the reader stop
// reading the file, rather than buffer all of it.
func TestCSVReadsBoundedBytes(t *testing.T) {
	t.Parallel()
	const max = 1000
	content := "a\n\"" + strings.Repeat("x\n", 10*bufferSize)
	r, err := NewCSV(CSVConfig[[]string]{
		Open:           func() (io.ReadSeekCloser, error) { return stringFile{strings.NewReader(content)}, nil },
		MaxRecordBytes: max,
		Map:            func(rec Record) ([]string, error) { return rec.Fields, nil },
	})
	require.NoError(t, err)
	require.NoError(t, r.Open(t.Context(), nil))
	defer r.Close(context.Background())

	_, err = r.Read(t.Context())
	require.NoError(t, err)
	_, err = r.Read(t.Context())
	require.ErrorIs(t, err, ErrRecordTooLong)
	require.LessOrEqual(t, r.src.pos, int64(len("a\n")+max+bufferSize))
	require.True(t, r.src.tooLong)
}

func TestSatAdd(t *testing.T) {
	t.Parallel()
	require.Equal(t, int64(3), satAdd(1, 2))
	require.Equal(t, int64(1<<63-1), satAdd(1<<63-1, bufferSize))
}

// TestASCII: ascii finds a byte from 0x80 at any place of any field, in the
// eight-byte words and in the tails.
func TestASCII(t *testing.T) {
	require.True(t, ascii(nil))
	require.True(t, ascii([]string{"", "abc", "0123456789abcdefXYZ"}))
	for n := 1; n <= 20; n++ {
		for i := 0; i < n; i++ {
			for _, c := range []byte{0x80, 0xC3, 0xFF} {
				b := []byte(strings.Repeat("a", n))
				b[i] = c
				require.False(t, ascii([]string{"plain", string(b), "x"}), "byte %#x at %d of %d", c, i, n)
			}
		}
	}
}
