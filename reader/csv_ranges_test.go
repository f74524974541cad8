package reader_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/reader"
)

// rangesInput is a file with what makes cutting hard: a byte order mark, a
// skipped title line, a header, comments, blank lines, CRLF line ends, and
// quoted fields holding commas, quotes and line breaks.
func rangesInput(records int) string {
	var b strings.Builder
	b.WriteString("\uFEFFExport of 2026-12-01\nid,name,note\n")
	for i := 1; i <= records; i++ {
		switch i % 7 {
		case 0:
			fmt.Fprintf(&b, "%d,\"Name, %d\",\"line one\nline two\"\n", i, i)
		case 1:
			fmt.Fprintf(&b, "# comment %d, \"unbalanced\n", i)
			fmt.Fprintf(&b, "%d,plain,\"say \"\"hi\"\"\"\r\n", i)
		case 2:
			fmt.Fprintf(&b, "\n%d,after a blank line,\n", i)
		default:
			fmt.Fprintf(&b, "%d,n%d,\"a\nb\nc\"\n", i, i)
		}
	}
	return b.String()
}

func rangesConfig(path string) reader.CSVConfig[row] {
	return reader.CSVConfig[row]{Path: path, Header: true, SkipLines: 1, Comment: '#', Map: toRow}
}

// readRanges cuts the input of cfg into up to n ranges and reads them one
// after the other.
func readRanges(t *testing.T, cfg reader.CSVConfig[row], n int) ([]row, []batch.Partition) {
	t.Helper()
	p, err := reader.CSVRanges(cfg, n)
	require.NoError(t, err)
	parts, err := p.Partitions(t.Context())
	require.NoError(t, err)
	var rows []row
	for i, part := range parts {
		require.Equal(t, fmt.Sprintf("p%d", i+1), part.Name)
		rcfg := cfg
		rcfg.Range, err = reader.CSVRangeOf(part)
		require.NoError(t, err)
		if i > 0 {
			prev, _ := reader.CSVRangeOf(parts[i-1])
			require.Equal(t, prev.End, rcfg.Range.Start, "ranges are contiguous")
		}
		if i == len(parts)-1 {
			require.Zero(t, rcfg.Range.End, "the last range goes to the end")
		}
		r, err := reader.NewCSV(rcfg)
		require.NoError(t, err)
		require.NoError(t, r.Open(t.Context(), batch.ExecutionContext{}))
		rows = append(rows, readAll(t, r)...)
		require.NoError(t, r.Close(t.Context()))
	}
	return rows, parts
}

// TestCSVRangesReadEveryRecordOnce: whatever the number of ranges, reading
// them one after the other gives the records of the whole input, in order,
// with their lines in the whole file.
func TestCSVRangesReadEveryRecordOnce(t *testing.T) {
	path := writeFile(t, "in.csv", rangesInput(500))
	cfg := rangesConfig(path)
	whole := readAll(t, openCSV(t, "", cfg))
	require.Len(t, whole, 500)
	for _, n := range []int{1, 2, 3, 7, 16, 64} {
		rows, parts := readRanges(t, cfg, n)
		require.LessOrEqual(t, len(parts), n)
		require.Greater(t, len(parts), n*3/4, "about as many ranges as asked")
		require.Equal(t, whole, rows, "%d ranges", n)
	}
	// A small input gives fewer ranges than asked.
	small := writeFile(t, "small.csv", rangesInput(3))
	rows, parts := readRanges(t, rangesConfig(small), 10)
	require.Len(t, rows, 3)
	require.LessOrEqual(t, len(parts), 3)
	// An input with no records gives one empty range.
	empty := writeFile(t, "empty.csv", "title\nid,name,note\n")
	rows, parts = readRanges(t, rangesConfig(empty), 4)
	require.Empty(t, rows)
	require.Len(t, parts, 1)
}

// TestCSVRangesBadRecords: a malformed record is reported by the range that
// holds it, at its line in the whole file, as the whole input's reader
// reports it.
func TestCSVRangesBadRecords(t *testing.T) {
	content := rangesInput(200)
	content = strings.Replace(content, "\n53,n53,", "\n53,n\"53,", 1) // a bare quote
	path := writeFile(t, "bad.csv", content)
	cfg := rangesConfig(path)
	errorsOf := func(r *reader.CSV[row]) (lines []int64, n int) {
		for {
			_, err := r.Read(t.Context())
			if err == io.EOF {
				return lines, n
			}
			if err != nil {
				var pe *reader.ParseError
				require.ErrorAs(t, err, &pe)
				lines = append(lines, pe.Line)
				continue
			}
			n++
		}
	}
	wholeErrs, wholeN := errorsOf(openCSV(t, "", cfg))
	require.NotEmpty(t, wholeErrs)
	p, err := reader.CSVRanges(cfg, 5)
	require.NoError(t, err)
	parts, err := p.Partitions(t.Context())
	require.NoError(t, err)
	var errs []int64
	var n int
	for _, part := range parts {
		rcfg := cfg
		rcfg.Range, err = reader.CSVRangeOf(part)
		require.NoError(t, err)
		r, err := reader.NewCSV(rcfg)
		require.NoError(t, err)
		require.NoError(t, r.Open(t.Context(), batch.ExecutionContext{}))
		e, k := errorsOf(r)
		errs, n = append(errs, e...), n+k
		require.NoError(t, r.Close(t.Context()))
	}
	require.Equal(t, wholeErrs, errs)
	require.Equal(t, wholeN, n)
}

// TestCSVRangeRestart: a range's reader restarted from a checkpoint in the
// middle of its range goes on from there and stops at the range's end.
func TestCSVRangeRestart(t *testing.T) {
	path := writeFile(t, "in.csv", rangesInput(300))
	cfg := rangesConfig(path)
	all, parts := readRanges(t, cfg, 3)
	rcfg := cfg
	var err error
	rcfg.Range, err = reader.CSVRangeOf(parts[1])
	require.NoError(t, err)
	first, err := reader.NewCSV(rcfg)
	require.NoError(t, err)
	ec := batch.ExecutionContext{}
	require.NoError(t, first.Open(t.Context(), ec))
	var got []row
	for range 10 {
		item, err := first.Read(t.Context())
		require.NoError(t, err)
		got = append(got, item)
	}
	require.NoError(t, first.Update(t.Context(), ec))
	_, _ = first.Read(t.Context()) // read, not committed
	require.NoError(t, first.Close(t.Context()))

	again, err := reader.NewCSV(rcfg)
	require.NoError(t, err)
	require.NoError(t, again.Open(t.Context(), roundTrip(t, ec)))
	got = append(got, readAll(t, again)...)
	require.NoError(t, again.Close(t.Context()))
	firstOfRange := 0
	for firstOfRange < len(all) && all[firstOfRange].Line != got[0].Line {
		firstOfRange++
	}
	require.Less(t, firstOfRange, len(all))
	require.Equal(t, all[firstOfRange:firstOfRange+len(got)], got)
	rest, _ := reader.CSVRangeOf(parts[2])
	require.Equal(t, all[firstOfRange+len(got)].Line, rest.Line+2, "the next range's first record is next (after its comment line)")
}

func TestCSVRangesRefused(t *testing.T) {
	path := writeFile(t, "in.csv", rangesInput(10))
	cfg := rangesConfig(path)
	_, err := reader.CSVRanges(cfg, 0)
	require.ErrorContains(t, err, "0 partitions")
	footer := cfg
	footer.FooterRecords = 1
	_, err = reader.CSVRanges(footer, 2)
	require.ErrorContains(t, err, "FooterRecords")
	footer.Range = &reader.CSVRange{Header: []string{"id"}, Preamble: []string{"x"}}
	_, err = reader.NewCSV(footer)
	require.ErrorContains(t, err, "FooterRecords cannot be used with a Range")
	noHeader := cfg
	noHeader.Range = &reader.CSVRange{Start: 10, Preamble: []string{"x"}}
	_, err = reader.NewCSV(noHeader)
	require.ErrorContains(t, err, "the Range has no header")
	bad := cfg
	bad.Range = &reader.CSVRange{Start: 10, End: 5}
	_, err = reader.NewCSV(bad)
	require.ErrorContains(t, err, "invalid Range")

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(rangesInput(10)))
	require.NoError(t, zw.Close())
	zipped := rangesConfig(writeFile(t, "in.csv.gz", gz.String()))
	p, err := reader.CSVRanges(zipped, 2)
	require.NoError(t, err)
	_, err = p.Partitions(t.Context())
	require.ErrorContains(t, err, "a gzip input cannot be cut")
	zipped.Range = &reader.CSVRange{Start: 30, Header: []string{"id", "name", "note"}, Preamble: []string{"x"}}
	r, err := reader.NewCSV(zipped)
	require.NoError(t, err)
	require.ErrorContains(t, r.Open(t.Context(), batch.ExecutionContext{}), "a gzip input cannot be read by byte ranges")
}

// TestCSVRangesRecordTooLong: a record longer than MaxRecordBytes is
// reported by the range that holds it; an unclosed quote, which would make
// the rest of the input one record, stops the cutting: the rest is one
// range, whose reader reports it.
func TestCSVRangesRecordTooLong(t *testing.T) {
	body := rangesInput(100)[len("\uFEFFExport of 2026-12-01\nid,name,note\n"):]
	content := rangesInput(100) + "101,\"" + strings.Repeat("x", 5000) + "\",\n" + body
	cfg := rangesConfig(writeFile(t, "long.csv", content))
	cfg.MaxRecordBytes = 1000
	tooLong := func(parts []batch.Partition) (n int) {
		for _, part := range parts {
			rcfg := cfg
			var err error
			rcfg.Range, err = reader.CSVRangeOf(part)
			require.NoError(t, err)
			r, err := reader.NewCSV(rcfg)
			require.NoError(t, err)
			require.NoError(t, r.Open(t.Context(), batch.ExecutionContext{}))
			for {
				_, err := r.Read(t.Context())
				if err == io.EOF {
					break
				}
				if errors.Is(err, reader.ErrRecordTooLong) {
					n++
					break
				}
				require.NoError(t, err)
			}
			require.NoError(t, r.Close(t.Context()))
		}
		return n
	}
	p, err := reader.CSVRanges(cfg, 4)
	require.NoError(t, err)
	parts, err := p.Partitions(t.Context())
	require.NoError(t, err)
	require.Greater(t, len(parts), 1)
	require.Equal(t, 1, tooLong(parts))

	var b strings.Builder
	b.WriteString("title\nid,name,note\n1,a,b\n2,\"unclosed,b\n")
	for i := 3; i < 5000; i++ {
		fmt.Fprintf(&b, "%d,plain,text\n", i)
	}
	unclosed := b.String()
	cfg.Path = writeFile(t, "unclosed.csv", unclosed)
	p, err = reader.CSVRanges(cfg, 4)
	require.NoError(t, err)
	parts, err = p.Partitions(t.Context())
	require.NoError(t, err)
	require.Len(t, parts, 1, "no range starts after the unclosed quote")
	require.Equal(t, 1, tooLong(parts))
}
