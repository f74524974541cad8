package reader_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/reader"
)

// streamReader is what a restartable reader is to a step.
type streamReader[T any] interface {
	batch.ItemReader[T]
	batch.ItemStream
}

// restartEverywhere reads the whole input once, then for k up to its length
// reads k
// items, checkpoints, and reads the rest from a new reader opened on the
// checkpoint: the two parts must be the whole, every item once.
func restartEverywhere[T any](t *testing.T, newReader func() streamReader[T]) []T {
	t.Helper()
	ctx := t.Context()
	r := newReader()
	require.NoError(t, r.Open(ctx, batch.ExecutionContext{}))
	all := readAll(t, r)
	require.NoError(t, r.Close(ctx))
	// Every point of a short input; about a hundred, ends included, of a
	// long one.
	stride := max(1, len(all)/97)
	for k := 0; k <= len(all); k += min(stride, max(1, len(all)-k)) {
		first := newReader()
		require.NoError(t, first.Open(ctx, batch.ExecutionContext{}))
		var got []T
		for range k {
			it, err := first.Read(ctx)
			require.NoError(t, err)
			got = append(got, it)
		}
		ec := batch.ExecutionContext{}
		require.NoError(t, first.Update(ctx, ec))
		require.NoError(t, first.Close(ctx))
		second := newReader()
		require.NoError(t, second.Open(ctx, roundTrip(t, ec)), "restart after %d items", k)
		got = append(got, readAll(t, second)...)
		require.NoError(t, second.Close(ctx))
		require.Equal(t, all, got, "restart after %d items", k)
	}
	return all
}

func gzipped(t *testing.T, content string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write([]byte(content))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.Bytes()
}

// trade is a line of Spring Batch's fixed-length trade file.
type trade struct {
	ISIN     string  `csv:"isin"`
	Quantity int     `csv:"quantity"`
	Price    float64 `csv:"price"`
	Customer string  `csv:"customer"`
}

var tradeColumns = []reader.Column{
	{Name: "isin", From: 1, To: 12}, {Name: "quantity", From: 13, To: 15},
	{Name: "price", From: 16, To: 20}, {Name: "customer", From: 21, To: 29},
}

func TestFixedWidthSpringTrades(t *testing.T) {
	t.Parallel()
	mapTrade, err := reader.MapStruct[trade]()
	require.NoError(t, err)
	path := "../../shared/anchors/spring-batch-samples/compositewriter/ImportTradeDataStep.txt"
	if _, err := os.Stat(path); err != nil {
		t.Skip("the Spring Batch sample data is not beside the checkout")
	}
	all := restartEverywhere(t, func() streamReader[trade] {
		r, err := reader.NewFixedWidth(reader.FixedWidthConfig[trade]{Path: path, Columns: tradeColumns, Map: mapTrade})
		require.NoError(t, err)
		return r
	})
	require.Len(t, all, 5)
	require.Equal(t, trade{ISIN: "UK21341EAH41", Quantity: 211, Price: 31.11, Customer: "customer1"}, all[0])
}

// fixedWidthFile is a file with a header line, n trades and a trailer
// "TRL" + the count.
func fixedWidthFile(n int) string {
	var b strings.Builder
	b.WriteString("HDR 2026-12-01\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "UK%010d%3d%5.2fcust%05d\n", i, i%1000, float64(i%100)+0.5, i)
	}
	fmt.Fprintf(&b, "TRL%06d\n", n)
	return b.String()
}

func TestFixedWidthHeaderFooterGzip(t *testing.T) {
	t.Parallel()
	mapTrade, err := reader.MapStruct[trade]()
	require.NoError(t, err)
	content := fixedWidthFile(50)
	dir := t.TempDir()
	plain := filepath.Join(dir, "trades.txt")
	compressed := filepath.Join(dir, "trades.txt.gz")
	require.NoError(t, os.WriteFile(plain, []byte(content), 0o600))
	require.NoError(t, os.WriteFile(compressed, gzipped(t, content), 0o600))

	for _, path := range []string{plain, compressed} {
		var headers [][]string
		var footerRecords []int64
		cfg := reader.FixedWidthConfig[trade]{
			Path: path, Columns: tradeColumns, Map: mapTrade,
			HeaderLines: 1, Header: func(lines []string) error {
				headers = append(headers, lines)
				return nil
			},
			FooterLines: 1, Footer: func(lines []string, records int64) error {
				footerRecords = append(footerRecords, records)
				want := fmt.Sprintf("TRL%06d", records)
				if lines[0] != want {
					return fmt.Errorf("trailer %q, want %q", lines[0], want)
				}
				return nil
			},
		}
		all := restartEverywhere(t, func() streamReader[trade] {
			r, err := reader.NewFixedWidth(cfg)
			require.NoError(t, err)
			return r
		})
		require.Len(t, all, 50, path)
		require.Equal(t, trade{ISIN: "UK0000000007", Quantity: 7, Price: 7.5, Customer: "cust00007"}, all[6])
		for _, h := range headers {
			require.Equal(t, []string{"HDR 2026-12-01"}, h, "the header is given on a restart too")
		}
		for _, n := range footerRecords {
			require.Equal(t, int64(50), n)
		}
	}

	// A trailer that does not match fails the end of the input, and goes
	// on failing.
	bad := strings.Replace(content, "TRL000050", "TRL000049", 1)
	r, err := reader.NewFixedWidth(reader.FixedWidthConfig[trade]{
		Path: writeFile(t, "bad.txt", bad), Columns: tradeColumns, Map: mapTrade, HeaderLines: 1, FooterLines: 1,
		Footer: func(lines []string, records int64) error {
			if lines[0] != fmt.Sprintf("TRL%06d", records) {
				return fmt.Errorf("trailer says %s, the file has %d records", lines[0][3:], records)
			}
			return nil
		},
	})
	require.NoError(t, err)
	require.NoError(t, r.Open(t.Context(), nil))
	defer r.Close(context.Background())
	for range 50 {
		_, err := r.Read(t.Context())
		require.NoError(t, err)
	}
	for range 2 {
		_, err = r.Read(t.Context())
		require.EqualError(t, err, "reader: fixed-width bad.txt line 52: footer: trailer says 000049, the file has 50 records")
	}

	// No room for the footer.
	r, err = reader.NewFixedWidth(reader.FixedWidthConfig[trade]{
		Path: writeFile(t, "short.txt", "HDR\n"), Columns: tradeColumns, Map: mapTrade, HeaderLines: 1, FooterLines: 1,
	})
	require.NoError(t, err)
	require.NoError(t, r.Open(t.Context(), nil))
	defer r.Close(context.Background())
	_, err = r.Read(t.Context())
	require.ErrorContains(t, err, "footer: 1 lines expected at the end, found 0")
}

func TestFixedWidthBadLines(t *testing.T) {
	t.Parallel()
	mapTrade, err := reader.MapStruct[trade]()
	require.NoError(t, err)
	long := strings.Repeat("x", 300)
	content := "UK21341EAH4121131.11customer1\n" +
		"UK21341EAH42\n" + // ends before the quantity
		"UK21341EAH43abc33.11customer3\n" + // not a number
		long + "\n" + // too long
		"\n# a comment\n" +
		"UK21341EAH4421434.11customer4   \n" +
		"ÉK21341EAH4521535.11cüstomer5\n" // characters, not bytes
	r, err := reader.NewFixedWidth(reader.FixedWidthConfig[trade]{
		Path: writeFile(t, "t.txt", content), Columns: tradeColumns, Map: mapTrade, MaxLineBytes: 100, Comment: "#",
	})
	require.NoError(t, err)
	require.NoError(t, r.Open(t.Context(), nil))
	defer r.Close(context.Background())
	var got []trade
	var errs []string
	for {
		it, err := r.Read(t.Context())
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *reader.ParseError
			require.ErrorAs(t, err, &pe)
			errs = append(errs, err.Error())
			continue
		}
		got = append(got, it)
	}
	require.Equal(t, []string{
		`reader: fixed-width t.txt line 2: column "quantity" (13-15): the line has only 12 characters`,
		`reader: fixed-width t.txt line 3: column "quantity": strconv.ParseInt: parsing "abc": invalid syntax`,
		`reader: fixed-width t.txt line 4: record too long: more than 100 bytes`,
	}, errs)
	require.Len(t, got, 3)
	require.Equal(t, "customer4", got[1].Customer)
	require.Equal(t, trade{ISIN: "ÉK21341EAH45", Quantity: 215, Price: 35.11, Customer: "cüstomer5"}, got[2])
}

func TestFixedWidthSplit(t *testing.T) {
	t.Parallel()
	// The layout depends on the record type in the first character.
	content := "A0001Alice     \nB0002  42.50\n"
	r, err := reader.NewFixedWidth(reader.FixedWidthConfig[string]{
		Path: writeFile(t, "mixed.txt", content),
		Split: func(line string) ([]string, error) {
			switch line[0] {
			case 'A':
				return []string{line[:1], line[1:5], line[5:]}, nil
			case 'B':
				return []string{line[:1], line[1:5], line[5:]}, nil
			}
			return nil, errors.New("unknown record type")
		},
		Map: func(rec reader.Record) (string, error) { return strings.Join(rec.Fields, "|"), nil },
	})
	require.NoError(t, err)
	require.NoError(t, r.Open(t.Context(), nil))
	defer r.Close(context.Background())
	require.Equal(t, []string{"A|0001|Alice", "B|0002|42.50"}, readAll(t, r))
}

func TestNewFixedWidthInvalid(t *testing.T) {
	t.Parallel()
	m := func(reader.Record) (int, error) { return 0, nil }
	for _, tt := range []struct {
		cfg  reader.FixedWidthConfig[int]
		want string
	}{
		{reader.FixedWidthConfig[int]{Columns: tradeColumns, Map: m}, "exactly one of Path and Open"},
		{reader.FixedWidthConfig[int]{Path: "x", Map: m}, "exactly one of Columns and Split"},
		{reader.FixedWidthConfig[int]{Path: "x", Columns: tradeColumns}, "no Map func"},
		{reader.FixedWidthConfig[int]{Path: "x", Map: m, Columns: []reader.Column{{Name: "a", From: 0, To: 2}}}, "invalid range 0-2"},
		{reader.FixedWidthConfig[int]{Path: "x", Map: m, Columns: []reader.Column{{Name: "a", From: 3, To: 2}}}, "invalid range 3-2"},
		{reader.FixedWidthConfig[int]{Path: "x", Map: m, Columns: []reader.Column{{Name: "a", From: 1, To: 2}, {Name: "a", From: 3, To: 4}}}, `column "a" named twice`},
		{reader.FixedWidthConfig[int]{Path: "x", Map: m, Columns: tradeColumns, Footer: func([]string, int64) error { return nil }}, "a Footer func needs FooterLines"},
	} {
		_, err := reader.NewFixedWidth(tt.cfg)
		require.ErrorContains(t, err, tt.want)
	}
}

type jsonEvent struct {
	ID   int    `json:"id"`
	Kind string `json:"kind"`
}

func TestJSONLines(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "{\"id\": %d, \"kind\": \"k%d\"}\n", i, i%3)
		if i%10 == 0 {
			b.WriteString("\n")
		}
	}
	content := b.String()
	dir := t.TempDir()
	for _, file := range []struct {
		name string
		data []byte
	}{{"e.jsonl", []byte(content)}, {"e.jsonl.gz", gzipped(t, content)}, {"crlf.jsonl", []byte(strings.ReplaceAll(content, "\n", "\r\n"))}} {
		path := filepath.Join(dir, file.name)
		require.NoError(t, os.WriteFile(path, file.data, 0o600))
		all := restartEverywhere(t, func() streamReader[jsonEvent] {
			r, err := reader.NewJSONLines(reader.JSONLinesConfig[jsonEvent]{Path: path})
			require.NoError(t, err)
			return r
		})
		require.Len(t, all, 40, file.name)
		require.Equal(t, jsonEvent{ID: 40, Kind: "k1"}, all[39])
	}
}

func TestJSONLinesBadLines(t *testing.T) {
	t.Parallel()
	content := `{"id": 1, "kind": "a"}
{"id": "two"}
{"id": 3, "kind": "c", "extra": true}
{"id": 4,
{"id": 5} {"id": 6}
{"id": 7, "kind": "g"}
`
	r, err := reader.NewJSONLines(reader.JSONLinesConfig[jsonEvent]{Path: writeFile(t, "e.jsonl", content), DisallowUnknownFields: true})
	require.NoError(t, err)
	require.NoError(t, r.Open(t.Context(), nil))
	defer r.Close(context.Background())
	var ids []int
	var errs []string
	for {
		it, err := r.Read(t.Context())
		if err == io.EOF {
			break
		}
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		ids = append(ids, it.ID)
	}
	require.Equal(t, []int{1, 7}, ids)
	require.Equal(t, []string{
		`reader: jsonl e.jsonl line 2: json: cannot unmarshal string into Go struct field jsonEvent.id of type int`,
		`reader: jsonl e.jsonl line 3: json: unknown field "extra"`,
		`reader: jsonl e.jsonl line 4: unexpected EOF`,
		`reader: jsonl e.jsonl line 5: more than one JSON value on the line`,
	}, errs)
}

func TestJSONArraySpringTrades(t *testing.T) {
	t.Parallel()
	path := "../../shared/anchors/spring-batch-samples/file-json/trades.json"
	if _, err := os.Stat(path); err != nil {
		t.Skip("the Spring Batch sample data is not beside the checkout")
	}
	type jsonTrade struct {
		ISIN     string  `json:"isin"`
		Quantity int     `json:"quantity"`
		Price    float64 `json:"price"`
		Customer string  `json:"customer"`
	}
	all := restartEverywhere(t, func() streamReader[jsonTrade] {
		r, err := reader.NewJSONArray(reader.JSONArrayConfig[jsonTrade]{Path: path})
		require.NoError(t, err)
		return r
	})
	require.Equal(t, []jsonTrade{{"123", 5, 10.5, "foo"}, {"456", 10, 20.5, "bar"}, {"789", 15, 30.5, "baz"}}, all)
}

func TestJSONArrayShapes(t *testing.T) {
	t.Parallel()
	big := make([]string, 0, 3000)
	for i := range 3000 {
		big = append(big, fmt.Sprintf(`{"id":%d,"kind":%q}`, i, strings.Repeat("k", i%50)))
	}
	for name, content := range map[string]string{
		"empty":       "[]",
		"spaced":      " \n[ \n]\n ",
		"bom":         "\uFEFF[{\"id\":1}]",
		"one":         `[{"id":1,"kind":"a"}]`,
		"compact":     `[{"id":1},{"id":2},{"id":3}]`,
		"pretty":      "[\n  {\n    \"id\": 1\n  } ,\n  {\"id\": 2}\n\n]\n",
		"big":         "[" + strings.Join(big, ",\n") + "]",
		"big-gzipped": "gz:[" + strings.Join(big, ",") + "]",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data := []byte(content)
			if rest, ok := strings.CutPrefix(content, "gz:"); ok {
				data = gzipped(t, rest)
			}
			path := filepath.Join(t.TempDir(), "a.json")
			require.NoError(t, os.WriteFile(path, data, 0o600))
			all := restartEverywhere(t, func() streamReader[jsonEvent] {
				r, err := reader.NewJSONArray(reader.JSONArrayConfig[jsonEvent]{Path: path})
				require.NoError(t, err)
				return r
			})
			for i, e := range all {
				if strings.HasPrefix(name, "big") {
					require.Equal(t, jsonEvent{ID: i, Kind: strings.Repeat("k", i%50)}, e)
				} else {
					require.Equal(t, i+1, e.ID)
				}
			}
		})
	}
}

func TestJSONArrayBadInput(t *testing.T) {
	t.Parallel()
	read := func(content string, cfg reader.JSONArrayConfig[jsonEvent]) (ids []int, errs []string, openErr error) {
		cfg.Path = writeFile(t, "a.json", content)
		r, err := reader.NewJSONArray(cfg)
		require.NoError(t, err)
		if err := r.Open(t.Context(), nil); err != nil {
			return nil, nil, err
		}
		defer r.Close(context.Background())
		for range 10 {
			it, err := r.Read(t.Context())
			if err == io.EOF {
				return ids, errs, nil
			}
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			ids = append(ids, it.ID)
		}
		return ids, errs, nil
	}
	_, _, err := read(`{"id": 1}`, reader.JSONArrayConfig[jsonEvent]{})
	require.EqualError(t, err, "reader: json a.json line 1: not a JSON array: it starts with {")
	_, _, err = read(`<html>`, reader.JSONArrayConfig[jsonEvent]{})
	require.ErrorContains(t, err, "reader: json a.json line 1: not a JSON array: invalid JSON: invalid character '<' looking for beginning of value")

	// A wrong type is the element's error; the next goes on.
	ids, errs, err := read("[\n{\"id\": 1},\n{\"id\": \"x\"},\n{\"id\": 3}]", reader.JSONArrayConfig[jsonEvent]{})
	require.NoError(t, err)
	require.Equal(t, []int{1, 3}, ids)
	require.Equal(t, []string{`reader: json a.json line 3: element 2: json: cannot unmarshal string into Go struct field jsonEvent.id of type int`}, errs)

	// Invalid JSON ends the reader.
	ids, errs, err = read("[{\"id\": 1},\n {\"id\": 2 \"kind\": 3}, {\"id\": 4}]", reader.JSONArrayConfig[jsonEvent]{})
	require.NoError(t, err)
	require.Equal(t, []int{1}, ids)
	require.Len(t, errs, 9, "the error is sticky")
	require.Contains(t, errs[0], "reader: json a.json line 2: element 2: invalid JSON: invalid character")

	// An element over the cap, however it is spread.
	long := `{"id": 2, "kind": "` + strings.Repeat("y", 100000) + `"}`
	ids, errs, err = read(`[{"id": 1}, `+long+`, {"id": 3}]`, reader.JSONArrayConfig[jsonEvent]{MaxItemBytes: 1000})
	require.NoError(t, err)
	require.Equal(t, []int{1}, ids)
	require.Contains(t, errs[0], "element 2: record too long: more than 1000 bytes")

	ids, errs, err = read(`[{"id": 1}] {"id": 2}`, reader.JSONArrayConfig[jsonEvent]{})
	require.NoError(t, err)
	require.Equal(t, []int{1}, ids)
	require.Contains(t, errs[0], "data after the end of the array")
	ids, errs, err = read(`[{"id": 1}`, reader.JSONArrayConfig[jsonEvent]{})
	require.NoError(t, err)
	require.Equal(t, []int{1}, ids)
	require.Contains(t, errs[0], "after element 1: unexpected EOF")
}

// TestFileReadersRefuseChangedInput: a restart on another file, or on a
// gzip file whose content changed before the checkpoint, is refused.
func TestFileReadersRefuseChangedInput(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := range 200 {
		fmt.Fprintf(&b, "{\"id\": %d}\n", i)
	}
	content := b.String()
	path := filepath.Join(t.TempDir(), "e.jsonl.gz")
	require.NoError(t, os.WriteFile(path, gzipped(t, content), 0o600))
	newReader := func() *reader.JSONLines[jsonEvent] {
		r, err := reader.NewJSONLines(reader.JSONLinesConfig[jsonEvent]{Path: path})
		require.NoError(t, err)
		return r
	}
	r := newReader()
	require.NoError(t, r.Open(t.Context(), nil))
	for range 150 {
		_, err := r.Read(t.Context())
		require.NoError(t, err)
	}
	ec := batch.ExecutionContext{}
	require.NoError(t, r.Update(t.Context(), ec))
	require.NoError(t, r.Close(t.Context()))

	require.NoError(t, os.WriteFile(path, gzipped(t, strings.Replace(content, `"id": 140`, `"id": 999`, 1)), 0o600))
	err := newReader().Open(t.Context(), roundTrip(t, ec))
	require.ErrorIs(t, err, reader.ErrInputChanged)
	require.ErrorContains(t, err, "reader: jsonl e.jsonl.gz: restart at line 151")

	require.NoError(t, os.WriteFile(path, gzipped(t, content[:100]), 0o600))
	err = newReader().Open(t.Context(), roundTrip(t, ec))
	require.ErrorIs(t, err, reader.ErrInputChanged)
	require.ErrorContains(t, err, "fewer than the")

	require.NoError(t, os.WriteFile(path, gzipped(t, content), 0o600))
	r = newReader()
	require.NoError(t, r.Open(t.Context(), roundTrip(t, ec)))
	defer r.Close(context.Background())
	rest := readAll(t, r)
	require.Len(t, rest, 50)
	require.Equal(t, 150, rest[0].ID)

}

// TestCSVPreambleAndFooter: lines before the header are skipped and given
// to Preamble, on a restart too; the trailer record, with its own number of
// fields, is checked by Footer against the records read over all restarts.
func TestCSVPreambleAndFooter(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("Sales export\ngenerated 2026-12-01, \"quoted\" text\nid,amount\n")
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&b, "%d,%d.50\n", i, i)
	}
	b.WriteString("TOTAL,30,480.00\n")
	content := b.String()
	dir := t.TempDir()
	plain, compressed := filepath.Join(dir, "sales.csv"), filepath.Join(dir, "sales.csv.gz")
	require.NoError(t, os.WriteFile(plain, []byte(content), 0o600))
	require.NoError(t, os.WriteFile(compressed, gzipped(t, content), 0o600))
	for _, path := range []string{plain, compressed} {
		var preambles [][]string
		all := restartEverywhere(t, func() streamReader[row] {
			r, err := reader.NewCSV(reader.CSVConfig[row]{
				Path: path, Header: true, Map: toRow, SkipLines: 2,
				Preamble: func(lines []string) error {
					preambles = append(preambles, lines)
					return nil
				},
				FooterRecords: 1,
				Footer: func(footer []reader.Record, records int64) error {
					if footer[0].Fields[0] != "TOTAL" || footer[0].Fields[1] != strconv.FormatInt(records, 10) {
						return fmt.Errorf("trailer %v does not match %d records", footer[0].Fields, records)
					}
					return nil
				},
			})
			require.NoError(t, err)
			return r
		})
		require.Len(t, all, 30, path)
		require.Equal(t, row{Fields: []string{"1", "1.50"}, Line: 4}, all[0])
		require.Equal(t, row{Fields: []string{"30", "30.50"}, Line: 33}, all[29])
		for _, p := range preambles {
			require.Equal(t, []string{"Sales export", `generated 2026-12-01, "quoted" text`}, p)
		}
	}

	// A trailer that does not match fails the end, and stays failed.
	bad := strings.Replace(content, "TOTAL,30", "TOTAL,31", 1)
	r, err := reader.NewCSV(reader.CSVConfig[row]{
		Path: writeFile(t, "bad.csv", bad), Header: true, Map: toRow, SkipLines: 2, FooterRecords: 1,
		Footer: func(footer []reader.Record, records int64) error {
			if footer[0].Fields[1] != strconv.FormatInt(records, 10) {
				return fmt.Errorf("trailer says %s records, the file has %d", footer[0].Fields[1], records)
			}
			return nil
		},
	})
	require.NoError(t, err)
	require.NoError(t, r.Open(t.Context(), nil))
	defer r.Close(context.Background())
	require.Len(t, readUntilErr(t, r), 30)
	for range 2 {
		_, err = r.Read(t.Context())
		require.EqualError(t, err, "reader: csv bad.csv line 34: footer: trailer says 31 records, the file has 30")
	}

	// A file too short for its footer.
	r, err = reader.NewCSV(reader.CSVConfig[row]{Path: writeFile(t, "short.csv", "id,amount\n"), Header: true, Map: toRow, FooterRecords: 1})
	require.NoError(t, err)
	require.NoError(t, r.Open(t.Context(), nil))
	defer r.Close(context.Background())
	_, err = r.Read(t.Context())
	require.ErrorContains(t, err, "footer: 1 records expected at the end, found 0")

	// Fewer lines than SkipLines.
	r, err = reader.NewCSV(reader.CSVConfig[row]{Path: writeFile(t, "empty.csv", "title\n"), Map: toRow, SkipLines: 2})
	require.NoError(t, err)
	require.EqualError(t, r.Open(t.Context(), nil), "reader: csv empty.csv line 2: line 2 of the 2 to skip: EOF")
}

// readUntilErr reads items up to the first error.
func readUntilErr[T any](t *testing.T, r batch.ItemReader[T]) []T {
	t.Helper()
	var items []T
	for {
		it, err := r.Read(t.Context())
		if err != nil {
			require.NotEqual(t, io.EOF, err)
			return items
		}
		items = append(items, it)
	}
}
