package reader_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository"
)

// row is the item most tests read: the fields of a record and where it
// starts.
type row struct {
	Fields []string
	Line   int64
}

func toRow(rec reader.Record) (row, error) {
	return row{Fields: rec.Fields, Line: rec.Line}, nil
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

// openCSV creates and opens a reader over a file holding content, closed at
// the end of the test.
func openCSV[T any](t *testing.T, content string, cfg reader.CSVConfig[T]) *reader.CSV[T] {
	t.Helper()
	if cfg.Path == "" && cfg.Open == nil {
		cfg.Path = writeFile(t, "people.csv", content)
	}
	r, err := reader.NewCSV(cfg)
	require.NoError(t, err)
	require.NoError(t, r.Open(t.Context(), batch.ExecutionContext{}))
	t.Cleanup(func() { require.NoError(t, r.Close(context.Background())) })
	return r
}

// readAll reads until io.EOF, failing the test on any other error.
func readAll[T any](t *testing.T, r batch.ItemReader[T]) []T {
	t.Helper()
	var items []T
	for {
		item, err := r.Read(t.Context())
		if err == io.EOF {
			return items
		}
		require.NoError(t, err)
		items = append(items, item)
	}
}

// roundTrip returns ec as a restarted step sees it: stored as JSON and
// loaded again.
func roundTrip(t *testing.T, ec batch.ExecutionContext) batch.ExecutionContext {
	t.Helper()
	b, err := repository.MarshalContext(ec)
	require.NoError(t, err)
	ec, err = repository.UnmarshalContext(b)
	require.NoError(t, err)
	return ec
}

func TestCSVHeaderAndQuoting(t *testing.T) {
	t.Parallel()
	for _, nl := range []string{"\n", "\r\n"} {
		content := strings.Join([]string{
			`name,city,note`,
			`Ann,"Paris, France",plain`,
			`"Bob","Ber` + nl + `lin","say ""hi"""`,
			``,
			`Cid,Oslo,"two` + nl + nl + `breaks"`,
			`Dan,Rome,`,
		}, nl) + nl
		r := openCSV(t, content, reader.CSVConfig[row]{Header: true, Map: toRow})
		require.Equal(t, []row{
			{[]string{"Ann", "Paris, France", "plain"}, 2},
			{[]string{"Bob", "Ber\nlin", `say "hi"`}, 3},
			{[]string{"Cid", "Oslo", "two\n\nbreaks"}, 6},
			{[]string{"Dan", "Rome", ""}, 9},
		}, readAll(t, r), "line ending %q", nl)
	}
}

// TestCSVFieldsAreTheCallers: every record's Fields is a slice of its own,
// kept intact however many records come after it, and appending to one
// does not write into another's.
func TestCSVFieldsAreTheCallers(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("a,b\n")
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&b, "%d,x%d\n", i, i)
	}
	b.WriteString("total,100\n")
	for _, footer := range []int{0, 1} {
		r := openCSV(t, b.String(), reader.CSVConfig[row]{Header: true, FooterRecords: footer, Map: toRow})
		rows := readAll(t, r)
		require.Len(t, rows, 101-footer)
		for i := range rows {
			rows[i].Fields = append(rows[i].Fields, "appended")
		}
		for i, got := range rows[:100] {
			require.Equal(t, []string{strconv.Itoa(i + 1), "x" + strconv.Itoa(i+1), "appended"}, got.Fields)
		}
	}
}

func TestCSVRecordGet(t *testing.T) {
	t.Parallel()
	type person struct {
		Name string
		Age  int64
		Line int64
	}
	r := openCSV(t, "name,age\nAnn,41\nBob, 7\n", reader.CSVConfig[person]{
		Header: true,
		Map: func(rec reader.Record) (person, error) {
			name, err := rec.Get("name")
			if err != nil {
				return person{}, err
			}
			age, err := rec.Int("age")
			return person{Name: name, Age: age, Line: rec.Line}, err
		},
	})
	require.Equal(t, []person{{"Ann", 41, 2}, {"Bob", 7, 3}}, readAll(t, r))
}

func TestCSVOptions(t *testing.T) {
	t.Parallel()
	content := "\uFEFF\"id\"; name\n# a comment; with; fields\n1;  Ann\n\n2; \"Bob\"\n"
	r := openCSV(t, content, reader.CSVConfig[row]{
		Comma:            ';',
		Comment:          '#',
		TrimLeadingSpace: true,
		Header:           true,
		Map: func(rec reader.Record) (row, error) {
			id, err := rec.Get("id") // the byte order mark is not part of the name
			return row{Fields: []string{id, rec.Fields[1]}, Line: rec.Line}, err
		},
	})
	require.Equal(t, []row{{[]string{"1", "Ann"}, 3}, {[]string{"2", "Bob"}, 5}}, readAll(t, r))
}

func TestCSVLazyQuotes(t *testing.T) {
	t.Parallel()
	r := openCSV(t, "a\"b,\"c\"d\"\n", reader.CSVConfig[row]{LazyQuotes: true, Map: toRow})
	require.Equal(t, []row{{[]string{`a"b`, `c"d`}, 1}}, readAll(t, r))
}

// TestCSVReuseRecord: with ReuseRecord, Map gets the same Fields slice
// record after record (the strings in it stay valid), and the items are
// those of a reader without it; the header, and records read ahead for a
// footer, are still copies of their own.
func TestCSVReuseRecord(t *testing.T) {
	t.Parallel()
	content := "id,note\n1,a\n2,\"multi\nline\"\n3,c\ntotal,3\n"
	for _, footer := range []int{0, 1} {
		var slices []*string
		var kept []string
		cfg := reader.CSVConfig[string]{Header: true, FooterRecords: footer, ReuseRecord: true,
			Map: func(rec reader.Record) (string, error) {
				slices = append(slices, &rec.Fields[0])
				note, err := rec.Get("note")
				kept = append(kept, note)
				return rec.Fields[0] + ":" + note, err
			}}
		r := openCSV(t, content, cfg)
		items := readAll(t, r)
		want := []string{"1:a", "2:multi\nline", "3:c", "total:3"}
		require.Equal(t, want[:4-footer], items, "footer %d", footer)
		require.Equal(t, []string{"a", "multi\nline", "c", "3"}[:4-footer], kept, "the strings stay valid")
		if footer == 0 {
			for _, p := range slices[1:] {
				require.Same(t, slices[0], p, "one Fields slice, reused")
			}
		} else {
			require.NotSame(t, slices[0], slices[1], "read ahead: copies")
		}
	}
}

func TestCSVRestart(t *testing.T) {
	t.Parallel()
	content := "id,note\n1,a\n2,\"multi\nline\"\n3,c\n4,d\n5,\"e\n\n\"\n6,f\n"
	path := writeFile(t, "people.csv", content)
	cfg := reader.CSVConfig[row]{Path: path, Header: true, Map: toRow}
	want := []row{
		{[]string{"1", "a"}, 2},
		{[]string{"2", "multi\nline"}, 3},
		{[]string{"3", "c"}, 5},
		{[]string{"4", "d"}, 6},
		{[]string{"5", "e\n\n"}, 7},
		{[]string{"6", "f"}, 10},
	}

	// restartAfter reads n items, stops, restarts from the stored context
	// and reads the rest.
	restartAfter := func(n int) ([]row, batch.ExecutionContext) {
		first, err := reader.NewCSV(cfg)
		require.NoError(t, err)
		require.NoError(t, first.Open(t.Context(), batch.ExecutionContext{}))
		var got []row
		for range n {
			item, err := first.Read(t.Context())
			require.NoError(t, err)
			got = append(got, item)
		}
		ec := batch.ExecutionContext{}
		require.NoError(t, first.Update(t.Context(), ec))
		require.NoError(t, first.Close(t.Context()))

		second, err := reader.NewCSV(cfg)
		require.NoError(t, err)
		require.NoError(t, second.Open(t.Context(), roundTrip(t, ec)))
		got = append(got, readAll(t, second)...)
		require.NoError(t, second.Update(t.Context(), ec))
		require.NoError(t, second.Close(t.Context()))
		count, ok := ec.Int64("people.csv.count")
		require.True(t, ok)
		require.Equal(t, int64(len(want)), count, "the count goes on from where the first run left it")
		return got, ec
	}
	for n := range len(want) + 1 {
		got, _ := restartAfter(n)
		require.Equal(t, want, got, "restart after %d items", n)
	}
}

func TestCSVRestartState(t *testing.T) {
	t.Parallel()
	content := "id,note\n1,a\n2,\"multi\nline\"\n3,c\n4,d\n"
	path := writeFile(t, "people.csv", content)
	r, err := reader.NewCSV(reader.CSVConfig[row]{Path: path, Header: true, Map: toRow})
	require.NoError(t, err)
	require.NoError(t, r.Open(t.Context(), batch.ExecutionContext{}))
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	for range 3 {
		_, err := r.Read(t.Context())
		require.NoError(t, err)
	}
	ec := batch.ExecutionContext{}
	require.NoError(t, r.Update(t.Context(), ec))
	var id struct{ Size int64 }
	ok, err := ec.Get("people.csv.input", &id)
	require.True(t, ok)
	require.NoError(t, err)
	require.Equal(t, int64(len(content)), id.Size)
	delete(ec, "people.csv.input")
	require.Equal(t, batch.ExecutionContext{
		"people.csv.offset":  []byte(strconv.Itoa(strings.Index(content, "4,d"))),
		"people.csv.line":    []byte("5"),
		"people.csv.count":   []byte("3"),
		"people.csv.fields":  []byte("2"),
		"people.csv.records": []byte("3"),
		"people.csv.header":  []byte(`["id","note"]`),
	}, ec)
}

// recordingFile is an in-memory file that records how it is used.
type recordingFile struct {
	r      *bytes.Reader
	seeks  []int64
	lowest int64 // lowest offset a Read started at, -1 before any Read
	read   int64 // bytes read
	closed bool
}

func newRecordingFile(content string) *recordingFile {
	return &recordingFile{r: bytes.NewReader([]byte(content)), lowest: -1}
}

func (f *recordingFile) Read(p []byte) (int, error) {
	if off := f.r.Size() - int64(f.r.Len()); f.lowest < 0 || off < f.lowest {
		f.lowest = off
	}
	n, err := f.r.Read(p)
	f.read += int64(n)
	return n, err
}

func (f *recordingFile) Seek(offset int64, whence int) (int64, error) {
	f.seeks = append(f.seeks, offset)
	return f.r.Seek(offset, whence)
}

func (f *recordingFile) Close() error {
	f.closed = true
	return nil
}

func TestCSVRestartSeeksInsteadOfRereading(t *testing.T) {
	t.Parallel()
	var content strings.Builder
	content.WriteString("n,square\n")
	for i := range 1000 {
		content.WriteString(strings.Repeat("x", i%7) + ",y\n")
	}
	var files []*recordingFile
	cfg := reader.CSVConfig[row]{
		Name:   "squares",
		Header: true,
		Open: func() (io.ReadSeekCloser, error) {
			f := newRecordingFile(content.String())
			files = append(files, f)
			return f, nil
		},
		Map: toRow,
	}

	first, err := reader.NewCSV(cfg)
	require.NoError(t, err)
	require.NoError(t, first.Open(t.Context(), nil))
	for range 700 {
		_, err := first.Read(t.Context())
		require.NoError(t, err)
	}
	ec := batch.ExecutionContext{}
	require.NoError(t, first.Update(t.Context(), ec))
	require.NoError(t, first.Close(t.Context()))
	offset, ok := ec.Int64("squares.offset")
	require.True(t, ok)
	require.Greater(t, offset, int64(0))

	second, err := reader.NewCSV(cfg)
	require.NoError(t, err)
	require.NoError(t, second.Open(t.Context(), roundTrip(t, ec)))
	rest := readAll(t, second)
	require.NoError(t, second.Close(t.Context()))

	require.Len(t, files, 2)
	size := int64(content.Len())
	require.Equal(t, size, files[0].read, "a first run reads the file once")
	require.Less(t, offset, size-int64(len(rest)))
	require.LessOrEqual(t, files[1].read, size-offset+2*4096,
		"a restart reads the rest, and before the stored offset only the start and the 4 KiB before it, to check it is the same input")
	require.True(t, files[0].closed)
	require.True(t, files[1].closed)
	require.Len(t, rest, 300)
	require.Equal(t, row{[]string{strings.Repeat("x", 700%7), "y"}, 702}, rest[0])
}

func TestCSVMalformedLine(t *testing.T) {
	t.Parallel()
	r := openCSV(t, "name,amount\na,1\nb,\"x\"y\nc,2\"3\nd,4\n", reader.CSVConfig[row]{Header: true, Map: toRow})
	ctx := t.Context()

	item, err := r.Read(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), item.Line)
	before := batch.ExecutionContext{}
	require.NoError(t, r.Update(ctx, before))

	_, err = r.Read(ctx)
	require.EqualError(t, err, `reader: csv people.csv line 3: column 5: extraneous or missing " in quoted-field`)
	var pe *reader.ParseError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, &reader.ParseError{Format: "csv", File: "people.csv", Line: 3, Err: pe.Err}, pe)
	require.ErrorIs(t, err, csv.ErrQuote)

	// Positions advance only with records read without error.
	after := batch.ExecutionContext{}
	require.NoError(t, r.Update(ctx, after))
	require.Equal(t, before, after)

	_, err = r.Read(ctx)
	require.EqualError(t, err, `reader: csv people.csv line 4: column 4: bare " in non-quoted-field`)
	require.ErrorIs(t, err, csv.ErrBareQuote)

	// The reader goes on after bad input, so that a skip policy can skip it.
	item, err = r.Read(ctx)
	require.NoError(t, err)
	require.Equal(t, row{[]string{"d", "4"}, 5}, item)
}

func TestCSVUnclosedQuote(t *testing.T) {
	t.Parallel()
	r := openCSV(t, "a,b\nc,\"d\ne\nf", reader.CSVConfig[row]{Map: toRow})
	_, err := r.Read(t.Context())
	require.NoError(t, err)
	_, err = r.Read(t.Context())
	require.EqualError(t, err, `reader: csv people.csv line 2: line 4, column 2: extraneous or missing " in quoted-field`)
	_, err = r.Read(t.Context())
	require.Equal(t, io.EOF, err)
}

func TestCSVFieldCount(t *testing.T) {
	t.Parallel()
	r := openCSV(t, "1,2,3\n4,5\n6,7,8\n9,10,11,12\n", reader.CSVConfig[row]{Map: toRow})
	ctx := t.Context()
	_, err := r.Read(ctx)
	require.NoError(t, err)

	_, err = r.Read(ctx)
	require.EqualError(t, err, "reader: csv people.csv line 2: field count 2, want 3")
	require.ErrorIs(t, err, csv.ErrFieldCount)
	var pe *reader.ParseError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, int64(2), pe.Line)

	item, err := r.Read(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), item.Line)

	_, err = r.Read(ctx)
	require.EqualError(t, err, "reader: csv people.csv line 4: field count 4, want 3")
}

func TestCSVFieldCountFollowsHeader(t *testing.T) {
	t.Parallel()
	r := openCSV(t, "a,b\n1,2,3\n", reader.CSVConfig[row]{Header: true, Map: toRow})
	_, err := r.Read(t.Context())
	require.EqualError(t, err, "reader: csv people.csv line 2: field count 3, want 2")
}

func TestCSVMapError(t *testing.T) {
	t.Parallel()
	r := openCSV(t, "name,amount\nAnn,1.5\nBob,abc\nCid,x\n", reader.CSVConfig[float64]{
		Header: true,
		Map: func(rec reader.Record) (float64, error) {
			if rec.Fields[0] == "Cid" {
				return 0, errors.New("no Cid here")
			}
			return rec.Float("amount")
		},
	})
	ctx := t.Context()
	v, err := r.Read(ctx)
	require.NoError(t, err)
	require.Equal(t, 1.5, v)

	_, err = r.Read(ctx)
	require.EqualError(t, err, `reader: csv people.csv line 3: column "amount": strconv.ParseFloat: parsing "abc": invalid syntax`)
	var pe *reader.ParseError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, int64(3), pe.Line)

	_, err = r.Read(ctx)
	require.EqualError(t, err, `reader: csv people.csv line 4: no Cid here`)
	require.ErrorAs(t, err, &pe)
	require.Equal(t, int64(4), pe.Line)

	_, err = r.Read(ctx)
	require.Equal(t, io.EOF, err)
}

func TestCSVEOF(t *testing.T) {
	t.Parallel()
	for name, content := range map[string]string{
		"empty":              "",
		"blank lines":        "\n\r\n\n",
		"header only":        "a,b\n",
		"no final newline":   "a,b\n1,2",
		"comment at the end": "a,b\n1,2\n#c\n",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := openCSV(t, content, reader.CSVConfig[row]{Header: true, Comment: '#', Map: toRow})
			for {
				_, err := r.Read(t.Context())
				if err != nil {
					require.Equal(t, io.EOF, err)
					break
				}
			}
			for range 3 {
				item, err := r.Read(t.Context())
				require.Equal(t, io.EOF, err, "io.EOF itself, not wrapped")
				require.Zero(t, item)
			}
		})
	}
}

func TestCSVRecordTooLong(t *testing.T) {
	t.Parallel()
	t.Run("long line", func(t *testing.T) {
		t.Parallel()
		content := "a,b\n" + strings.Repeat("x", 200_000) + ",y\nc,d\n"
		r := openCSV(t, content, reader.CSVConfig[row]{MaxRecordBytes: 100, Map: toRow})
		_, err := r.Read(t.Context())
		require.NoError(t, err)
		for range 2 { // the reader cannot go on
			_, err = r.Read(t.Context())
			require.EqualError(t, err, "reader: csv people.csv line 2: record too long: more than 100 bytes")
			require.ErrorIs(t, err, reader.ErrRecordTooLong)
			var pe *reader.ParseError
			require.ErrorAs(t, err, &pe)
		}
	})
	t.Run("default cap", func(t *testing.T) {
		t.Parallel()
		content := "a\n" + strings.Repeat("x", 3*reader.DefaultMaxRecordBytes)
		r := openCSV(t, content, reader.CSVConfig[row]{Map: toRow})
		_, err := r.Read(t.Context())
		require.NoError(t, err)
		_, err = r.Read(t.Context())
		require.ErrorIs(t, err, reader.ErrRecordTooLong)
	})
	t.Run("unclosed quote", func(t *testing.T) {
		t.Parallel()
		content := "a,b\n\"" + strings.Repeat("x\n", 100_000)
		r := openCSV(t, content, reader.CSVConfig[row]{MaxRecordBytes: 1000, Map: toRow})
		_, err := r.Read(t.Context())
		require.NoError(t, err)
		_, err = r.Read(t.Context())
		require.EqualError(t, err, "reader: csv people.csv line 2: record too long: more than 1000 bytes")
	})
	t.Run("at the cap", func(t *testing.T) {
		t.Parallel()
		r := openCSV(t, "12345678\n123456789\n1234567890\n", reader.CSVConfig[row]{MaxRecordBytes: 10, Map: toRow})
		for _, want := range []string{"12345678", "123456789"} {
			item, err := r.Read(t.Context())
			require.NoError(t, err)
			require.Equal(t, []string{want}, item.Fields)
		}
		_, err := r.Read(t.Context())
		require.EqualError(t, err, "reader: csv people.csv line 3: record too long: more than 10 bytes")
	})
}

func TestCSVBinaryInput(t *testing.T) {
	t.Parallel()
	content := "\x00\xff\xfe,\"\x80\n\x00\"\n\xc3\x28,ok\n"
	r := openCSV(t, content, reader.CSVConfig[row]{Map: toRow, AllowInvalidUTF8: true})
	require.Equal(t, []row{
		{[]string{"\x00\xff\xfe", "\x80\n\x00"}, 1},
		{[]string{"\xc3\x28", "ok"}, 3},
	}, readAll(t, r))
	strict := openCSV(t, content, reader.CSVConfig[row]{Map: toRow})
	for _, line := range []int64{1, 3} {
		_, err := strict.Read(t.Context())
		var pe *reader.ParseError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, line, pe.Line)
	}
	_, err := strict.Read(t.Context())
	require.Equal(t, io.EOF, err)
}

func TestNewCSVInvalid(t *testing.T) {
	t.Parallel()
	mapRow := toRow
	open := func() (io.ReadSeekCloser, error) { return newRecordingFile(""), nil }
	for name, cfg := range map[string]reader.CSVConfig[row]{
		"no input":        {Map: mapRow},
		"two inputs":      {Path: "x.csv", Open: open, Map: mapRow},
		"no map":          {Path: "x.csv"},
		"quote as comma":  {Path: "x.csv", Comma: '"', Map: mapRow},
		"newline comma":   {Path: "x.csv", Comma: '\n', Map: mapRow},
		"invalid rune":    {Path: "x.csv", Comma: 0xD800, Map: mapRow},
		"comment = comma": {Path: "x.csv", Comma: ';', Comment: ';', Map: mapRow},
		"negative cap":    {Path: "x.csv", MaxRecordBytes: -1, Map: mapRow},
	} {
		_, err := reader.NewCSV(cfg)
		require.Error(t, err, name)
		require.True(t, strings.HasPrefix(err.Error(), "reader: csv"), "%s: %v", name, err)
	}
}

func TestCSVLifecycle(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := writeFile(t, "people.csv", "a\n")
	r, err := reader.NewCSV(reader.CSVConfig[row]{Path: path, Map: toRow})
	require.NoError(t, err)

	require.NoError(t, r.Close(ctx), "Close without Open")
	_, err = r.Read(ctx)
	require.EqualError(t, err, "reader: csv people.csv: not open")
	require.EqualError(t, r.Update(ctx, batch.ExecutionContext{}), "reader: csv people.csv: not open")

	require.NoError(t, r.Open(ctx, nil))
	require.EqualError(t, r.Open(ctx, nil), "reader: csv people.csv: already open")
	require.EqualError(t, r.Update(ctx, nil), "reader: csv people.csv: Update with a nil execution context")
	require.NoError(t, r.Close(ctx))
	require.NoError(t, r.Close(ctx), "second Close")
	_, err = r.Read(ctx)
	require.EqualError(t, err, "reader: csv people.csv: not open")

	// A closed reader can be opened again.
	require.NoError(t, r.Open(ctx, nil))
	require.Equal(t, []row{{[]string{"a"}, 1}}, readAll(t, r))
	require.NoError(t, r.Close(ctx))

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.NoError(t, r.Open(ctx, nil))
	_, err = r.Read(cancelled)
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, r.Close(ctx))
}

func TestCSVOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	missing, err := reader.NewCSV(reader.CSVConfig[row]{Path: filepath.Join(t.TempDir(), "missing.csv"), Map: toRow})
	require.NoError(t, err)
	err = missing.Open(ctx, nil)
	require.ErrorIs(t, err, fs.ErrNotExist)
	require.True(t, strings.HasPrefix(err.Error(), "reader: csv missing.csv: open "), err.Error())

	failing, err := reader.NewCSV(reader.CSVConfig[row]{
		Open: func() (io.ReadSeekCloser, error) { return nil, errors.New("no bucket") },
		Map:  toRow,
	})
	require.NoError(t, err)
	require.EqualError(t, failing.Open(ctx, nil), "reader: csv csv: open: no bucket")

	badHeader := newRecordingFile("a,\"b\n")
	r, err := reader.NewCSV(reader.CSVConfig[row]{
		Name:   "bad",
		Header: true,
		Open:   func() (io.ReadSeekCloser, error) { return badHeader, nil },
		Map:    toRow,
	})
	require.NoError(t, err)
	err = r.Open(ctx, nil)
	var pe *reader.ParseError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, int64(1), pe.Line)
	require.True(t, badHeader.closed, "a failed Open closes the file")

	path := writeFile(t, "people.csv", "a,b\n1,2\n")
	r, err = reader.NewCSV(reader.CSVConfig[row]{Path: path, Header: true, Map: toRow})
	require.NoError(t, err)
	for name, ec := range map[string]batch.ExecutionContext{
		"no line":         {"people.csv.offset": []byte("4")},
		"no header":       {"people.csv.offset": []byte("4"), "people.csv.line": []byte("1"), "people.csv.count": []byte("0"), "people.csv.fields": []byte("2")},
		"bad offset":      {"people.csv.offset": []byte(`"four"`)},
		"negative offset": {"people.csv.offset": []byte("-4"), "people.csv.line": []byte("1"), "people.csv.count": []byte("0"), "people.csv.fields": []byte("2"), "people.csv.header": []byte(`["a","b"]`)},
	} {
		err := r.Open(ctx, ec)
		require.Error(t, err, name)
		require.True(t, strings.HasPrefix(err.Error(), "reader: csv people.csv: restore: "), "%s: %v", name, err)
	}
}

func TestRecordHelpers(t *testing.T) {
	t.Parallel()
	rec := reader.Record{
		Header: []string{"n", "x", "ok", "day", "n"},
		Fields: []string{" 42 ", "2.5", "true", "2024-02-29", "shadowed"},
		Line:   7,
		File:   "f.csv",
	}
	n, err := rec.Int("n")
	require.NoError(t, err)
	require.Equal(t, int64(42), n)
	x, err := rec.Float("x")
	require.NoError(t, err)
	require.Equal(t, 2.5, x)
	ok, err := rec.Bool("ok")
	require.NoError(t, err)
	require.True(t, ok)
	day, err := rec.Time("day", time.DateOnly)
	require.NoError(t, err)
	require.Equal(t, time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), day)

	_, err = rec.Int("x")
	require.EqualError(t, err, `reader: f.csv line 7: column "x": strconv.ParseInt: parsing "2.5": invalid syntax`)
	var pe *reader.ParseError
	require.ErrorAs(t, err, &pe)
	_, err = rec.Bool("day")
	require.EqualError(t, err, `reader: f.csv line 7: column "day": strconv.ParseBool: parsing "2024-02-29": invalid syntax`)
	_, err = rec.Time("x", time.DateOnly)
	require.ErrorContains(t, err, `reader: f.csv line 7: column "x": parsing time "2.5"`)
	_, err = rec.Get("nope")
	require.EqualError(t, err, `reader: f.csv line 7: column "nope": not in header`)

	rec.Header = nil
	_, err = rec.Get("n")
	require.EqualError(t, err, `reader: f.csv line 7: column "n": no header`)

	short := reader.Record{Header: []string{"a", "b"}, Fields: []string{"1"}, Line: 1, File: "f.csv"}
	_, err = short.Get("b")
	require.EqualError(t, err, `reader: f.csv line 1: column "b": record has only 1 fields`)
}

func TestMapStruct(t *testing.T) {
	t.Parallel()
	type level int8
	type order struct {
		ID       uint32    `csv:"id"`
		Customer string    `csv:"customer"`
		Amount   float64   `csv:"amount"`
		Qty      int       `csv:"qty"`
		Priority level     `csv:"priority"`
		Paid     bool      `csv:"paid"`
		Placed   time.Time `csv:"placed"`
		Due      time.Time `csv:"due"`
		Note     string    // not tagged: left alone
		Skip     string    `csv:"-"`
	}
	mapOrder, err := reader.MapStruct[order]()
	require.NoError(t, err)
	content := "id,customer,amount,qty,priority,paid,placed,due,extra\n" +
		"7,\"Ann, Inc.\",12.5,3,-2,true,2024-03-01T10:00:00Z,2024-04-01,x\n" +
		"8,Bob,1,1,300,false,2024-03-01,2024-04-01,y\n"
	r := openCSV(t, content, reader.CSVConfig[order]{Header: true, Map: mapOrder})
	got, err := r.Read(t.Context())
	require.NoError(t, err)
	require.Equal(t, order{
		ID:       7,
		Customer: "Ann, Inc.",
		Amount:   12.5,
		Qty:      3,
		Priority: -2,
		Paid:     true,
		Placed:   time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC),
		Due:      time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC),
	}, got)
	_, err = r.Read(t.Context())
	require.EqualError(t, err, `reader: csv people.csv line 3: column "priority": strconv.ParseInt: parsing "300": value out of range`)

	type missing struct {
		A string `csv:"nope"`
	}
	mapMissing, err := reader.MapStruct[missing]()
	require.NoError(t, err)
	_, err = mapMissing(reader.Record{Header: []string{"a"}, Fields: []string{"1"}, Line: 2, File: "f.csv"})
	require.EqualError(t, err, `reader: f.csv line 2: column "nope": not in header`)

	_, err = reader.MapStruct[int]()
	require.EqualError(t, err, "reader: MapStruct: int is not a struct")
	type unsupported struct {
		P *int `csv:"p"`
	}
	_, err = reader.MapStruct[unsupported]()
	require.EqualError(t, err, "reader: MapStruct: reader_test.unsupported.P has unsupported type *int")
	type unexported struct {
		p int `csv:"p"`
	}
	_, err = reader.MapStruct[unexported]()
	require.ErrorContains(t, err, "is tagged but not exported")
	_ = unexported{p: 0}
}

func TestCSVRecordIndexAcrossRestart(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "people.csv", "id\n10\n20\n30\n40\n")
	cfg := reader.CSVConfig[int64]{Path: path, Header: true, Map: func(rec reader.Record) (int64, error) { return rec.Index, nil }}
	first, err := reader.NewCSV(cfg)
	require.NoError(t, err)
	require.NoError(t, first.Open(t.Context(), batch.ExecutionContext{}))
	a, err := first.Read(t.Context())
	require.NoError(t, err)
	b, err := first.Read(t.Context())
	require.NoError(t, err)
	require.Equal(t, []int64{1, 2}, []int64{a, b})
	ec := batch.ExecutionContext{}
	require.NoError(t, first.Update(t.Context(), ec))
	require.NoError(t, first.Close(t.Context()))

	second, err := reader.NewCSV(cfg)
	require.NoError(t, err)
	require.NoError(t, second.Open(t.Context(), roundTrip(t, ec)))
	defer second.Close(t.Context())
	require.Equal(t, []int64{3, 4}, readAll(t, second))
}

func TestCSVInvalidUTF8(t *testing.T) {
	t.Parallel()
	latin1 := "id,name\n1,Ann\n2,Ren\xe9e\n3,Zo\xeb\n4,Bob\n"
	r := openCSV(t, latin1, reader.CSVConfig[row]{Header: true, Map: toRow})
	item, err := r.Read(t.Context())
	require.NoError(t, err)
	require.Equal(t, int64(2), item.Line)
	_, err = r.Read(t.Context())
	require.ErrorIs(t, err, reader.ErrInvalidUTF8)
	require.EqualError(t, err, "reader: csv people.csv line 3: field 2: invalid UTF-8 (is the file UTF-8?)")
	_, err = r.Read(t.Context())
	require.ErrorIs(t, err, reader.ErrInvalidUTF8, "each bad record is reported; the reader moves on")
	item, err = r.Read(t.Context())
	require.NoError(t, err)
	require.Equal(t, []string{"4", "Bob"}, item.Fields)

	allow := openCSV(t, latin1, reader.CSVConfig[row]{Header: true, Map: toRow, AllowInvalidUTF8: true})
	require.Len(t, readAll(t, allow), 4)
}

// TestCSVProgress: the CSV reader's progress is the bytes up to the last
// record returned, of the file's size — or of its range's.
func TestCSVProgress(t *testing.T) {
	t.Parallel()
	content := "a,b\n1,x\n2,y\n3,z\n"
	path := writeFile(t, "p.csv", content)
	r := openCSV(t, "", reader.CSVConfig[row]{Path: path, Header: true, Map: toRow})
	_, err := r.Read(t.Context())
	require.NoError(t, err)
	require.Equal(t, batch.Progress{Done: int64(len("a,b\n1,x\n")), Total: int64(len(content)), Unit: "bytes"}, r.Progress())

	// The second half of the file, as a range.
	start := int64(len("a,b\n1,x\n"))
	ranged := openCSV(t, "", reader.CSVConfig[row]{Path: path, Header: true, Map: toRow,
		Range: &reader.CSVRange{Start: start, End: int64(len(content)), Line: 3, Header: []string{"a", "b"}}})
	_, err = ranged.Read(t.Context())
	require.NoError(t, err)
	require.Equal(t, batch.Progress{Done: int64(len("2,y\n")), Total: int64(len(content)) - start, Unit: "bytes"}, ranged.Progress())
}
