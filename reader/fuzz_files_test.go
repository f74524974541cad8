package reader_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/reader"
)

// fuzzRestart reads data straight through, then again with a restart
// (Update, JSON round trip, Close, Open) after every k items, and checks
// that nothing panics or hangs, that every error is a *ParseError with a
// line (or ends the input cleanly), and that both runs see the same items and
// errors in the same order — lines included.
func fuzzRestart[T any](t *testing.T, data []byte, every int, newReader func() reader.StreamReader[T]) {
	ctx := t.Context()
	type ev struct {
		Item T
		Err  string
	}
	checkErr := func(err error) {
		t.Helper()
		var pe *reader.ParseError
		require.ErrorAs(t, err, &pe)
		require.GreaterOrEqual(t, pe.Line, int64(1), "%v", err)
		require.Equal(t, "fuzz", pe.File)
	}
	open := func(ec batch.ExecutionContext) (reader.StreamReader[T], bool) {
		t.Helper()
		r := newReader()
		if err := r.Open(ctx, ec); err != nil {
			checkErr(err)
			return nil, false
		}
		return r, true
	}
	// A Read consumes at least a byte, or repeats a sticky error: this many
	// Reads is a hang.
	maxReads := len(data) + 4
	read := func(r reader.StreamReader[T], restartEvery int) []ev {
		var evs []ev
		items, lastErr := 0, ""
		for {
			require.Less(t, len(evs), maxReads, "too many Reads")
			item, err := r.Read(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				checkErr(err)
				if err.Error() == lastErr {
					break // sticky
				}
				lastErr = err.Error()
				evs = append(evs, ev{Err: lastErr})
				continue
			}
			lastErr = ""
			evs = append(evs, ev{Item: item})
			if items++; restartEvery > 0 && items%restartEvery == 0 {
				ec := batch.ExecutionContext{}
				require.NoError(t, r.Update(ctx, ec))
				require.NoError(t, r.Close(ctx))
				var ok bool
				r, ok = open(roundTrip(t, ec))
				require.True(t, ok, "a restart at a checkpoint opens")
			}
		}
		require.NoError(t, r.Close(ctx))
		return evs
	}
	straight, ok := open(nil)
	if !ok {
		return
	}
	want := read(straight, 0)
	again, ok := open(nil)
	require.True(t, ok)
	require.Equal(t, want, read(again, every))
}

func fuzzOpen(data []byte, gz bool) func() (io.ReadSeekCloser, error) {
	if gz {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		_, _ = zw.Write(data)
		_ = zw.Close()
		data = b.Bytes()
	}
	return func() (io.ReadSeekCloser, error) { return memFile{bytes.NewReader(data)}, nil }
}

type fuzzItem struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

func FuzzJSONArray(f *testing.F) {
	for _, seed := range []string{
		`[{"id":1,"name":"a"},{"id":2},{"id":3}]`,
		"[\n {\"id\": 1},\n {\"id\": \"x\"},\n {\"id\": 3}\n]\n",
		`[]`, ` [ ] `, `[1, 2, {"id": 3}]`, `[{"id":1}`, `[{"id":1}] x`, `{"id":1}`,
		"\uFEFF[{\"id\": 1}]", `[{"id":1},,{"id":2}]`, `[{"name":"` + string(bytes.Repeat([]byte("y"), 200)) + `"}]`,
		`[{"id":1} {"id":2}]`, `[null, true, "s", {"id":4}]`,
	} {
		f.Add([]byte(seed), uint8(0))
		f.Add([]byte(seed), uint8(1|4))
		f.Add([]byte(seed), uint8(2|8))
	}
	f.Fuzz(func(t *testing.T, data []byte, opts uint8) {
		fuzzRestart(t, data, int(opts&3)+1, func() reader.StreamReader[fuzzItem] {
			cfg := reader.JSONArrayConfig[fuzzItem]{Name: "fuzz", Open: fuzzOpen(data, opts&4 != 0), DisallowUnknownFields: opts&16 != 0}
			if opts&8 != 0 {
				cfg.MaxItemBytes = 64
			}
			r, err := reader.NewJSONArray(cfg)
			require.NoError(t, err)
			return r
		})
	})
}

func FuzzJSONLines(f *testing.F) {
	for _, seed := range []string{
		"{\"id\":1}\n{\"id\":2}\n", "{\"id\":1}\r\n\r\n{\"id\":\"x\"}\n{\"id\":3}", "\n\n\n", "{\"id\":1} {\"id\":2}\n{\n}\n",
		"\uFEFF{\"id\":1}\n" + string(bytes.Repeat([]byte("z"), 100)) + "\n{\"id\":2}\n",
	} {
		f.Add([]byte(seed), uint8(0))
		f.Add([]byte(seed), uint8(1|4|8))
	}
	f.Fuzz(func(t *testing.T, data []byte, opts uint8) {
		fuzzRestart(t, data, int(opts&3)+1, func() reader.StreamReader[fuzzItem] {
			cfg := reader.JSONLinesConfig[fuzzItem]{Name: "fuzz", Open: fuzzOpen(data, opts&4 != 0)}
			if opts&8 != 0 {
				cfg.MaxLineBytes = 32
			}
			r, err := reader.NewJSONLines(cfg)
			require.NoError(t, err)
			return r
		})
	})
}

func FuzzFixedWidth(f *testing.F) {
	for _, seed := range []string{
		"HDR\nAAAA0001x\nBBBB0002y\nTRL2\n", "HDR\nAAAA00\nBBBBxxxx\n\n#c\nCCCC0003\nTRL3\n", "", "HDR\n", "HDR\nTRL0\n",
		"HDR\r\nÄÖÜß0004z\r\nTRL1\r\n",
	} {
		f.Add([]byte(seed), uint8(0))
		f.Add([]byte(seed), uint8(1|4|8|16))
	}
	f.Fuzz(func(t *testing.T, data []byte, opts uint8) {
		fuzzRestart(t, data, int(opts&3)+1, func() reader.StreamReader[string] {
			cfg := reader.FixedWidthConfig[string]{
				Name: "fuzz", Open: fuzzOpen(data, opts&4 != 0), Comment: "#",
				Columns: []reader.Column{{Name: "code", From: 1, To: 4}, {Name: "n", From: 5, To: 8}},
				Map: func(rec reader.Record) (string, error) {
					n, err := rec.Int("n")
					return fmt.Sprintf("%s=%d@%d#%d", rec.Fields[0], n, rec.Line, rec.Index), err
				},
			}
			if opts&8 != 0 {
				cfg.MaxLineBytes = 16
			}
			if opts&16 != 0 {
				cfg.HeaderLines, cfg.FooterLines = 1, 1
				cfg.Footer = func(lines []string, records int64) error {
					if lines[0] != fmt.Sprintf("TRL%d", records) {
						return errors.New("bad trailer")
					}
					return nil
				}
			}
			r, err := reader.NewFixedWidth(cfg)
			require.NoError(t, err)
			return r
		})
	})
}
