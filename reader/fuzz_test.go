package reader_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/reader"
)

// memFile is an in-memory io.ReadSeekCloser.
type memFile struct{ *bytes.Reader }

func (memFile) Close() error { return nil }

// event is what one Read produced: an item or an error message.
type event struct {
	Row row
	Err string
}

// FuzzCSV reads arbitrary input twice, straight through and with a restart
// (Update, JSON round trip, Close, Open) after every k items, and checks that
// nothing panics or hangs, that every error is a *ParseError with a line, and
// that both runs see the same items and errors.
func FuzzCSV(f *testing.F) {
	for _, seed := range []string{
		"a,b,c\n1,2,3\n4,5,6\n",
		"name,note\nAnn,\"Paris, France\"\nBob,\"two\nlines\"\nCid,x\n",
		"a,b\r\n\"c\r\nd\",e\r\n\r\nf,g\r\n",
		"a,b\n1,2,3\n\"x\"y,1\n4,5\n",
		"a,b\n\"unterminated\nfield,",
		"\uFEFF\"id\",name\n1,Ann\n",
		"#comment\n a,  b\n#c\n c, d\n",
		"a\"b,c\nd,\"e\"f\"\n",
		"\x00\xff\xfe,\x80\n\xc3\x28,ok\n",
		"x,y\n" + string(bytes.Repeat([]byte("z"), 300)) + "\nq,r\n",
		"\n\n\r\r\n\"\"\"\n",
		"a,b\n1,2",
		"a,\"b\"\"\n",
	} {
		f.Add([]byte(seed), uint8(0), uint8(0))
		f.Add([]byte(seed), uint8(0), uint8(1))
		f.Add([]byte(seed), uint8(1), uint8(2|4|8|32))
		f.Add([]byte(seed), uint8(2), uint8(0xff))
		f.Add([]byte(seed), uint8(0), uint8(128|1))
	}
	f.Fuzz(func(t *testing.T, data []byte, k uint8, opts uint8) {
		every := int(k%4) + 1
		cfg := reader.CSVConfig[row]{
			Name: "fuzz.csv",
			Open: func() (io.ReadSeekCloser, error) {
				return memFile{bytes.NewReader(data)}, nil
			},
			Header:           opts&1 != 0,
			LazyQuotes:       opts&2 != 0,
			TrimLeadingSpace: opts&4 != 0,
			Map:              toRow,
		}
		if opts&8 != 0 {
			cfg.Comment = '#'
		}
		if opts&16 != 0 {
			cfg.Comma = ';'
		}
		if opts&32 != 0 {
			cfg.MaxRecordBytes = 64
		}
		if opts&64 != 0 {
			cfg.AllowInvalidUTF8 = true
		}
		if opts&128 != 0 {
			cfg.SkipLines, cfg.FooterRecords = 1, 1
		}
		ctx := t.Context()

		// checkErr checks err and reports whether the reader can go on.
		checkErr := func(err error) (more bool) {
			t.Helper()
			if err == io.EOF {
				return false
			}
			var pe *reader.ParseError
			require.ErrorAs(t, err, &pe)
			require.GreaterOrEqual(t, pe.Line, int64(1), "%v", err)
			require.Equal(t, "fuzz.csv", pe.File)
			return !errors.Is(err, reader.ErrRecordTooLong)
		}
		// Every Read consumes at least one byte until io.EOF or a fatal
		// error, so this many Reads is a hang.
		maxReads := len(data) + 2

		open := func(ec batch.ExecutionContext) (*reader.CSV[row], bool) {
			t.Helper()
			r, err := reader.NewCSV(cfg)
			require.NoError(t, err)
			if err := r.Open(ctx, ec); err != nil {
				checkErr(err)
				return nil, false
			}
			return r, true
		}

		straight, ok := open(nil)
		if !ok {
			return // a bad header: the restarted run would meet it the same way
		}
		var want []event
		last := ""
		for more := true; more; {
			require.Less(t, len(want), maxReads, "too many Reads")
			item, err := straight.Read(ctx)
			if err != nil {
				// An error met twice in a row is sticky: a footer that
				// does not match.
				repeated := err.Error() == last
				if more = checkErr(err) && !repeated; err != io.EOF && !repeated {
					want = append(want, event{Err: err.Error()})
				}
				last = err.Error()
				continue
			}
			last = ""
			require.GreaterOrEqual(t, item.Line, int64(1))
			if len(want) > 0 && want[len(want)-1].Err == "" {
				require.Greater(t, item.Line, want[len(want)-1].Row.Line)
			}
			want = append(want, event{Row: item})
		}
		require.NoError(t, straight.Close(ctx))

		restarted, ok := open(nil)
		require.True(t, ok)
		var got []event
		items := 0
		last = ""
		for more := true; more; {
			require.Less(t, len(got), maxReads, "too many Reads")
			item, err := restarted.Read(ctx)
			if err != nil {
				repeated := err.Error() == last
				if more = checkErr(err) && !repeated; err != io.EOF && !repeated {
					got = append(got, event{Err: err.Error()})
				}
				last = err.Error()
				continue
			}
			last = ""
			got = append(got, event{Row: item})
			if items++; items%every == 0 {
				ec := batch.ExecutionContext{}
				require.NoError(t, restarted.Update(ctx, ec))
				require.NoError(t, restarted.Close(ctx))
				restarted, ok = open(roundTrip(t, ec))
				require.True(t, ok)
			}
		}
		require.NoError(t, restarted.Close(ctx))
		require.Equal(t, want, got)
	})
}
