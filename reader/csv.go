package reader

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/chunkwise/chunkwise/batch"
)

// DefaultMaxRecordBytes is the default of [CSVConfig.MaxRecordBytes].
const DefaultMaxRecordBytes = 1 << 20

// bufferSize is the size of the buffer between the file and the csv.Reader.
// It is also the most the buffer can have read ahead of the record being
// parsed, which the record size cap allows for.
const bufferSize = 64 << 10

// ErrRecordTooLong is the error inside a [*ParseError] when a record is
// longer than [CSVConfig.MaxRecordBytes]. The reader cannot go on after it:
// every later Read returns the same error.
var ErrRecordTooLong = errors.New("record too long")

// ErrInvalidUTF8 is matched by the error of a record with a field that is not
// valid UTF-8 (unless CSVConfig.AllowInvalidUTF8 is set).
var ErrInvalidUTF8 = errors.New("invalid UTF-8")

// utf8BOM is the byte order mark some programs write at the start of a
// UTF-8 file.
var utf8BOM = []byte("\uFEFF")

// CSVConfig configures a [CSV] reader. Path or Open and Map are required;
// every other field has a usable zero value.
type CSVConfig[T any] struct {
	// Name prefixes the reader's keys in the execution context
	// ("people.csv.offset") and names the input in errors and in
	// [Record.File]. Two restartable readers of one step need different
	// names. Default: the base name of Path, or "csv" when Path is empty.
	Name string

	// Path is the file to read. Exactly one of Path and Open is required.
	Path string

	// Open opens the input when it is not a file on disk: embedded bytes, a
	// file of an fs.FS that can seek, a download kept in a temporary file.
	// It is called once per [CSV.Open]; the reader closes what it returns.
	// Exactly one of Path and Open is required.
	Open func() (io.ReadSeekCloser, error)

	// Comma is the field delimiter. It must be a valid rune and not a quote,
	// '\r' or '\n'. Default: ','.
	Comma rune

	// Comment, if not zero, starts a comment line: a line beginning with it
	// is skipped. It must differ from Comma. Default: 0, no comments.
	Comment rune

	// Header says that the first record is a header whose fields name the
	// columns, for [Record.Get] and [MapStruct]. The header is not handed to
	// Map. Default: false, every record is data.
	Header bool

	// SkipLines is the number of lines at the start of the file, before
	// the header or the first record, that are not records: a title, a
	// date. They are read as lines, without quoting. Default 0.
	SkipLines int
	// Preamble is called with the skipped lines whenever the reader opens —
	// on a restart with the lines stored at the first run — to check them
	// or take values from them. Its error fails Open. Optional.
	Preamble func(lines []string) error
	// FooterRecords is the number of records at the end of the file that
	// are not data: a trailer with a count or a total. They may have any
	// number of fields. The reader keeps that many records of look-ahead.
	// Default 0.
	FooterRecords int
	// Footer is called at the end of the input with the footer records and
	// the number of data records before them (good or bad, over all runs
	// of the step): a trailer that does not match fails the last Read with
	// a [*ParseError]. Optional.
	Footer func(footer []Record, records int64) error

	// LazyQuotes allows a quote in an unquoted field and a quote not
	// followed by the delimiter in a quoted field, as in [csv.Reader].
	// Default: false, such quotes are errors.
	LazyQuotes bool

	// TrimLeadingSpace ignores white space at the start of a field, as in
	// [csv.Reader]. Default: false.
	TrimLeadingSpace bool

	// AllowInvalidUTF8 passes fields that are not valid UTF-8 on as they
	// are. Default false: such a record is an error naming its line and
	// field (a file in another encoding, say Latin-1, is then caught at its
	// first non-ASCII byte instead of reaching a database that refuses it).
	AllowInvalidUTF8 bool

	// MaxRecordBytes caps the size in bytes of one record, counting any
	// blank and comment lines before it, so that a file with a runaway line
	// or an unclosed quote cannot exhaust memory. A longer record is a
	// [*ParseError] wrapping [ErrRecordTooLong]. Default:
	// [DefaultMaxRecordBytes] (1 MiB).
	MaxRecordBytes int

	// InputCheck says which changes of the input a restart accepts; any
	// other fails Open with an error wrapping [ErrInputChanged]. Default
	// [SameInput]: the input must be the one the checkpoint was taken on.
	InputCheck InputCheck

	// Range, when set, limits the reader to one part of the input: the
	// records that start at Range.Start or after it and before Range.End,
	// as [CSVRanges] cuts an input into partitions (see [CSVRangeOf]). A
	// gzip input cannot be read in parts, and FooterRecords cannot be used
	// with a range. Default nil: the whole input.
	Range *CSVRange

	// Map turns a record into an item. An error it returns fails that Read,
	// wrapped in a [*ParseError] naming the file and line unless it already
	// is or wraps one (as the errors of the [Record] helpers do). Required.
	Map func(rec Record) (T, error)

	// ReuseRecord, as encoding/csv's, hands Map a Record whose Fields slice
	// the reader reuses for the next record: valid until Map returns (the
	// strings in it stay valid). A Map that keeps only the values it
	// parses, or strings of the record, saves a copy and 16 bytes per field
	// of garbage per record. Without effect with FooterRecords, which
	// reads ahead. Default false: Fields is Map's to keep.
	ReuseRecord bool
}

// ParseError is the error of a Read that found bad input: a malformed line,
// a record with the wrong number of fields, a record too long, or a record
// that Map rejected. Err says what was wrong; [errors.Is] finds
// [csv.ErrBareQuote], [csv.ErrQuote], [csv.ErrFieldCount] and
// [ErrRecordTooLong] through it.
//
// After a ParseError a Read continues with the next record, except after
// ErrRecordTooLong. The reader's restart position stays after the last
// record read without error, so a restarted step meets the bad record
// again.
type ParseError struct {
	Format string // the input's format: "csv", "fixed-width", "jsonl" or "json"
	File   string // the reader's name ([CSVConfig.Name] and the like)
	Line   int64  // 1-based line of the file where the bad record starts
	Err    error
}

// Error returns "reader: FORMAT NAME line N: " followed by Err's message.
func (e *ParseError) Error() string {
	format := e.Format
	if format != "" {
		format += " "
	}
	return fmt.Sprintf("reader: %s%s line %d: %v", format, e.File, e.Line, e.Err)
}

// Unwrap returns Err.
func (e *ParseError) Unwrap() error { return e.Err }

// fieldCountError is the error of a record whose field count differs from
// the first record's.
type fieldCountError struct{ got, want int }

func (e fieldCountError) Error() string {
	return fmt.Sprintf("field count %d, want %d", e.got, e.want)
}

func (e fieldCountError) Unwrap() error { return csv.ErrFieldCount }

// CSV reads the records of a delimited file and maps each to a T. Create one
// with [NewCSV]; call Open before the first Read and Close at the end, as a
// step does for an [batch.ItemStream].
//
// Every record must have as many fields as the header, or as the first
// record when there is no header. Blank lines are skipped. A UTF-8 byte
// order mark at the start of the file is skipped.
//
// Update stores, under keys prefixed by the reader's name, the byte offset
// and line just after the last record Read returned without error, the
// number of items returned, the number of fields per record and the header.
// Open with such a context seeks to that offset: a restart does not read the
// file again from the start.
//
// A CSV is not safe for concurrent use.
type CSV[T any] struct {
	cfg CSVConfig[T]
	max int64 // cfg.MaxRecordBytes with its default applied

	// Set by Open, cleared by Close.
	in       *input
	src      *capReader
	r        *csv.Reader
	base     int64 // offset of the first byte r reads
	baseLine int64 // lines before base
	header   []string
	cols     map[string]int
	fields   int   // fields per record; 0 until the first record
	line     int64 // lines read up to the end of the last record
	err      error // sticky: io.EOF or an error the reader cannot go on after
	pos      position
	records  int64      // data records read, good or bad
	preamble []string   // the skipped lines
	ahead    []csvAhead // look-ahead for the footer
	block    []string   // room for the fields of the next records
	eof      bool       // the look-ahead reached the end of the input
	// footerChecked is set once the footer was checked.
	footerChecked bool
}

// csvAhead is a record read ahead, and the position just after it.
type csvAhead struct {
	rec rawRecord
	err error
	pos position
}

// rawRecord is a record as read, before it becomes a [Record] for Map.
type rawRecord struct {
	fields []string
	line   int64 // where it starts
}

// blockRecords is how many records' fields one allocation holds.
const blockRecords = 32

var (
	_ batch.ItemReader[int] = (*CSV[int])(nil)
	_ batch.ItemStream      = (*CSV[int])(nil)
)

// position is the restart state: where the last record returned ends.
type position struct {
	offset  int64
	line    int64
	count   int64
	fields  int
	records int64 // data records up to offset, good or bad
}

// NewCSV returns a reader configured by cfg, or an error if cfg is invalid.
// It does not open the file: [CSV.Open] does.
func NewCSV[T any](cfg CSVConfig[T]) (*CSV[T], error) {
	if (cfg.Path == "") == (cfg.Open == nil) {
		return nil, errors.New("reader: csv: exactly one of Path and Open is required")
	}
	if cfg.Map == nil {
		return nil, errors.New("reader: csv: Map is required")
	}
	if cfg.Name == "" {
		cfg.Name = "csv"
		if cfg.Path != "" {
			cfg.Name = filepath.Base(cfg.Path)
		}
	}
	if cfg.Comma == 0 {
		cfg.Comma = ','
	}
	if !validDelim(cfg.Comma) {
		return nil, fmt.Errorf("reader: csv %s: invalid Comma %q", cfg.Name, cfg.Comma)
	}
	if cfg.Comment != 0 && (!validDelim(cfg.Comment) || cfg.Comment == cfg.Comma) {
		return nil, fmt.Errorf("reader: csv %s: invalid Comment %q", cfg.Name, cfg.Comment)
	}
	if cfg.MaxRecordBytes < 0 {
		return nil, fmt.Errorf("reader: csv %s: negative MaxRecordBytes %d", cfg.Name, cfg.MaxRecordBytes)
	}
	if cfg.MaxRecordBytes == 0 {
		cfg.MaxRecordBytes = DefaultMaxRecordBytes
	}
	switch {
	case cfg.SkipLines < 0 || cfg.FooterRecords < 0:
		return nil, fmt.Errorf("reader: csv %s: negative SkipLines or FooterRecords", cfg.Name)
	case cfg.Preamble != nil && cfg.SkipLines == 0:
		return nil, fmt.Errorf("reader: csv %s: a Preamble func needs SkipLines", cfg.Name)
	case cfg.Footer != nil && cfg.FooterRecords == 0:
		return nil, fmt.Errorf("reader: csv %s: a Footer func needs FooterRecords", cfg.Name)
	}
	if r := cfg.Range; r != nil {
		switch {
		case r.Start < 0 || r.End < 0 || r.End > 0 && r.End < r.Start || r.Line < 0:
			return nil, fmt.Errorf("reader: csv %s: invalid Range %+v", cfg.Name, *r)
		case cfg.FooterRecords > 0:
			return nil, fmt.Errorf("reader: csv %s: FooterRecords cannot be used with a Range: the footer is at the end of the whole input", cfg.Name)
		case cfg.Header && len(r.Header) == 0:
			return nil, fmt.Errorf("reader: csv %s: the Range has no header and the input has one (make ranges with CSVRanges)", cfg.Name)
		case len(r.Preamble) != cfg.SkipLines:
			return nil, fmt.Errorf("reader: csv %s: the Range has %d skipped lines, want SkipLines %d (make ranges with CSVRanges)", cfg.Name, len(r.Preamble), cfg.SkipLines)
		}
	}
	return &CSV[T]{cfg: cfg, max: int64(cfg.MaxRecordBytes)}, nil
}

// validDelim reports whether r can be a delimiter or comment character, by
// the rules of encoding/csv.
func validDelim(r rune) bool {
	return r != 0 && r != '"' && r != '\r' && r != '\n' && utf8.ValidRune(r) && r != utf8.RuneError
}

// Open opens the input. When ec holds no position of this reader (a first
// run), it starts at the beginning and, with [CSVConfig.Header] set, reads
// the header; a malformed header is a [*ParseError]. When ec holds what an
// earlier Update stored (a restart), it seeks to the stored offset and goes
// on from there with the stored header, reading nothing before the offset.
// A reader that is open must be closed before it is opened again.
func (c *CSV[T]) Open(_ context.Context, ec batch.ExecutionContext) error {
	if c.in != nil {
		return fmt.Errorf("reader: csv %s: already open", c.cfg.Name)
	}
	pos, header, restart, err := c.restore(ec)
	if err != nil {
		return err
	}
	var preamble []string
	if r := c.cfg.Range; r != nil && !restart {
		// The start of a range is entered as a restart is, at a record's
		// start, with the header and the skipped lines read by CSVRanges.
		pos, header, preamble, restart = position{offset: r.Start, line: r.Line}, r.Header, r.Preamble, true
		if c.cfg.Header {
			pos.fields = len(header)
		}
	} else if restart && c.cfg.SkipLines > 0 {
		if _, err := ec.Get(c.key("preamble"), &preamble); err != nil || len(preamble) != c.cfg.SkipLines {
			return fmt.Errorf("reader: csv %s: restore: key %q: want %d lines: %v", c.cfg.Name, c.key("preamble"), c.cfg.SkipLines, err)
		}
	}
	was, err := c.restoreIdentity(ec)
	if err != nil {
		return err
	}
	in, err := openInput(c.cfg.Path, c.cfg.Open)
	if err != nil {
		return fmt.Errorf("reader: csv %s: %w", c.cfg.Name, err)
	}
	if c.cfg.Range != nil && in.gz != nil {
		_ = in.Close()
		return fmt.Errorf("reader: csv %s: a gzip input cannot be read by byte ranges", c.cfg.Name)
	}
	if restart {
		if err := in.resume(pos.offset, was, c.cfg.InputCheck); err != nil {
			_ = in.Close()
			return fmt.Errorf("reader: csv %s: restart at line %d (byte %d): %w", c.cfg.Name, pos.line+1, pos.offset, err)
		}
	}

	c.in = in
	c.src = &capReader{r: in, pos: pos.offset, start: pos.offset, limit: satAdd(c.max, bufferSize)}
	br := bufio.NewReaderSize(c.src, bufferSize)
	c.base, c.baseLine = pos.offset, pos.line
	if !restart {
		lines, size, err := readStart(br, c.src, c.cfg.Name, c.cfg.SkipLines, c.max)
		if err != nil {
			_ = in.Close()
			c.in, c.src = nil, nil
			return err
		}
		preamble = lines
		c.base += size
		c.baseLine += int64(len(lines))
		pos.line = c.baseLine
	}
	c.preamble = preamble
	if c.cfg.Preamble != nil {
		if err := c.cfg.Preamble(preamble); err != nil {
			_ = in.Close()
			c.in, c.src = nil, nil
			return &ParseError{Format: "csv", File: c.cfg.Name, Line: 1, Err: fmt.Errorf("preamble: %w", err)}
		}
	}
	c.r = csv.NewReader(br)
	c.r.Comma = c.cfg.Comma
	c.r.Comment = c.cfg.Comment
	c.r.LazyQuotes = c.cfg.LazyQuotes
	c.r.TrimLeadingSpace = c.cfg.TrimLeadingSpace
	c.r.FieldsPerRecord = -1 // checked by next, against the first well-formed record
	c.r.ReuseRecord = true   // next copies the fields (own)
	c.fields = pos.fields
	c.line = pos.line
	c.setHeader(header)
	c.err = nil
	c.pos = pos
	c.pos.offset = c.base
	c.records, c.ahead, c.eof = pos.records, nil, false

	if c.cfg.Header && c.header == nil {
		rec, err := c.next()
		switch {
		case err == io.EOF:
			// An empty file: Read returns io.EOF.
		case err != nil:
			_ = c.Close(context.Background())
			return err
		default:
			c.setHeader(rec.fields)
			c.pos = c.here()
		}
	}
	c.in.hist.setPin(c.pos.offset)
	return nil
}

// readStart passes over a byte order mark at the start of an input and
// reads the n lines to skip after it, from br reading src from the input's
// first byte; it returns the lines and the bytes read. A line that cannot
// be read is a *ParseError naming it (an error at the end of the input, or
// a failing read, when there are no lines to skip, is left for the first
// record to meet).
func readStart(br *bufio.Reader, src *capReader, name string, n int, max int64) (lines []string, size int64, err error) {
	if b, _ := br.Peek(len(utf8BOM)); bytes.Equal(b, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
		size += int64(len(utf8BOM))
	}
	for len(lines) < n {
		src.start = size
		line, err := br.ReadString('\n')
		if src.tooLong || int64(len(line)) > max {
			err = fmt.Errorf("%w: more than %d bytes", ErrRecordTooLong, max)
		} else if err == io.EOF && line != "" {
			err = nil
		}
		if err != nil {
			return nil, 0, &ParseError{Format: "csv", File: name, Line: int64(len(lines)) + 1,
				Err: fmt.Errorf("line %d of the %d to skip: %w", len(lines)+1, n, err)}
		}
		size += int64(len(line))
		lines = append(lines, strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r"))
	}
	return lines, size, nil
}

func (c *CSV[T]) setHeader(header []string) {
	c.header, c.cols = header, nil
	if header == nil {
		return
	}
	c.cols = make(map[string]int, len(header))
	for i, name := range header {
		if _, dup := c.cols[name]; !dup {
			c.cols[name] = i
		}
	}
}

func (c *CSV[T]) key(suffix string) string { return c.cfg.Name + "." + suffix }

// restoreIdentity reads the input's identity stored by Update; nil when ec
// holds none (a first run, or a checkpoint of a version that stored none).
func (c *CSV[T]) restoreIdentity(ec batch.ExecutionContext) (*inputIdentity, error) {
	var id inputIdentity
	ok, err := ec.Get(c.key("input"), &id)
	if err != nil {
		return nil, fmt.Errorf("reader: csv %s: restore: %w", c.cfg.Name, err)
	}
	if !ok {
		return nil, nil
	}
	return &id, nil
}

// restore reads the position stored by Update. restart is false when ec
// holds none.
func (c *CSV[T]) restore(ec batch.ExecutionContext) (pos position, header []string, restart bool, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("reader: csv %s: restore: %w", c.cfg.Name, err)
		}
	}()
	restart, err = ec.Get(c.key("offset"), &pos.offset)
	if !restart || err != nil {
		return position{}, nil, false, err
	}
	for _, v := range []struct {
		suffix string
		dst    any
	}{
		{"line", &pos.line},
		{"count", &pos.count},
		{"fields", &pos.fields},
	} {
		ok, err := ec.Get(c.key(v.suffix), v.dst)
		if err != nil {
			return position{}, nil, false, err
		}
		if !ok {
			return position{}, nil, false, fmt.Errorf("key %q missing", c.key(v.suffix))
		}
	}
	pos.records = pos.count // a checkpoint that stored no record count
	if _, err := ec.Get(c.key("records"), &pos.records); err != nil {
		return position{}, nil, false, err
	}
	if pos.offset < 0 || pos.line < 0 || pos.count < 0 || pos.fields < 0 || pos.records < pos.count {
		return position{}, nil, false, fmt.Errorf("invalid position %+v", pos)
	}
	if c.cfg.Header {
		ok, err := ec.Get(c.key("header"), &header)
		if err != nil {
			return position{}, nil, false, err
		}
		if !ok {
			return position{}, nil, false, fmt.Errorf("key %q missing", c.key("header"))
		}
	}
	return pos, header, true, nil
}

// Read returns the item made of the next record, and io.EOF after the last
// one. Bad input is reported as a [*ParseError]; the next Read goes on with
// the record after it, unless the error is [ErrRecordTooLong]. Read returns
// ctx's error if ctx is done.
func (c *CSV[T]) Read(ctx context.Context) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	raw, pos, err := c.nextData()
	if err != nil {
		return zero, err
	}
	rec := c.record(raw)
	rec.Index = c.pos.count + 1
	item, err := c.cfg.Map(rec)
	if err != nil {
		if pe := (*ParseError)(nil); errors.As(err, &pe) {
			return zero, err
		}
		return zero, &ParseError{Format: "csv", File: c.cfg.Name, Line: rec.Line, Err: err}
	}
	pos.count = c.pos.count + 1
	c.pos = pos
	c.in.hist.setPin(pos.offset)
	return item, nil
}

// readError turns an error of encoding/csv into the reader's: a
// *ParseError naming the line and column, or, sticky, any other. (Apart
// from next, so that the target of errors.As, which escapes, is allocated
// only for an error, not for every record.)
func (c *CSV[T]) readError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		c.line = c.baseLine + int64(pe.Line)
		e := &ParseError{Format: "csv", File: c.cfg.Name, Line: c.baseLine + int64(pe.StartLine)}
		if pe.Line != pe.StartLine {
			e.Err = fmt.Errorf("line %d, column %d: %w", c.baseLine+int64(pe.Line), pe.Column, pe.Err)
		} else {
			e.Err = fmt.Errorf("column %d: %w", pe.Column, pe.Err)
		}
		return e
	}
	c.err = fmt.Errorf("reader: csv %s: read after line %d: %w", c.cfg.Name, c.line, err)
	return c.err
}

// nextData returns the next data record and the position just after it,
// keeping FooterRecords records of look-ahead. At the end of the data it
// checks the footer and returns io.EOF.
func (c *CSV[T]) nextData() (rawRecord, position, error) {
	if c.cfg.FooterRecords == 0 {
		rec, err := c.next()
		if err == nil || c.err == nil {
			c.records++ // a data record, good or bad
		}
		if err != nil {
			return rawRecord{}, position{}, err
		}
		return rec, c.here(), nil
	}
	for !c.eof && len(c.ahead) <= c.cfg.FooterRecords {
		rec, err := c.next()
		if err == io.EOF {
			c.eof = true
			break
		}
		if err != nil && c.err != nil {
			// The reader cannot go on: what was read before comes first.
			c.ahead = append(c.ahead, csvAhead{err: err})
			c.eof = true
			break
		}
		c.records++
		c.ahead = append(c.ahead, csvAhead{rec: rec, err: err, pos: c.here()})
	}
	stuck := c.err != nil && c.err != io.EOF
	if len(c.ahead) > c.cfg.FooterRecords || stuck && len(c.ahead) > 0 {
		a := c.ahead[0]
		c.ahead = append(c.ahead[:0], c.ahead[1:]...)
		return a.rec, a.pos, a.err
	}
	if stuck || c.err == io.EOF && len(c.ahead) == 0 && c.footerChecked {
		return rawRecord{}, position{}, c.err
	}
	return rawRecord{}, position{}, c.checkFooter()
}

// checkFooter checks the records left at the end of the input, and makes
// the result sticky.
func (c *CSV[T]) checkFooter() error {
	c.footerChecked = true
	footer := make([]Record, 0, len(c.ahead))
	var err error
	for _, a := range c.ahead {
		var fc fieldCountError
		if a.err != nil && !errors.As(a.err, &fc) {
			err = a.err // a footer record may have any number of fields, but must be well-formed
			break
		}
		footer = append(footer, c.record(a.rec))
	}
	switch {
	case err != nil:
	case len(footer) < c.cfg.FooterRecords:
		err = &ParseError{Format: "csv", File: c.cfg.Name, Line: c.line,
			Err: fmt.Errorf("footer: %d records expected at the end, found %d", c.cfg.FooterRecords, len(footer))}
	case c.cfg.Footer != nil:
		if ferr := c.cfg.Footer(footer, c.records-int64(len(footer))); ferr != nil {
			err = &ParseError{Format: "csv", File: c.cfg.Name, Line: footer[0].Line, Err: fmt.Errorf("footer: %w", ferr)}
		}
	}
	c.ahead = nil
	if err == nil {
		err = io.EOF
	}
	c.err = err
	return err
}

// next reads the next well-formed record.
func (c *CSV[T]) next() (rawRecord, error) {
	if c.r == nil {
		return rawRecord{}, fmt.Errorf("reader: csv %s: not open", c.cfg.Name)
	}
	if c.err != nil {
		return rawRecord{}, c.err
	}
	start := c.base + c.r.InputOffset()
	if c.cfg.Range != nil && c.cfg.Range.End > 0 && start >= c.cfg.Range.End {
		c.err = io.EOF // the next range's records start here
		return rawRecord{}, io.EOF
	}
	c.src.start = start
	fields, err := c.r.Read()
	if c.src.tooLong || c.base+c.r.InputOffset()-start > c.max {
		c.err = &ParseError{Format: "csv", File: c.cfg.Name, Line: c.line + 1, Err: fmt.Errorf("%w: more than %d bytes", ErrRecordTooLong, c.max)}
		return rawRecord{}, c.err
	}
	if err == io.EOF {
		c.err = io.EOF
		return rawRecord{}, io.EOF
	}
	if err != nil {
		return rawRecord{}, c.readError(err)
	}
	if len(fields) == 0 { // encoding/csv never returns an empty record
		c.err = fmt.Errorf("reader: csv %s: empty record after line %d", c.cfg.Name, c.line)
		return rawRecord{}, c.err
	}

	first, _ := c.r.FieldPos(0)
	last, _ := c.r.FieldPos(len(fields) - 1)
	// A record ends on the line its last field starts on, plus one line for
	// every line break quoted inside that field.
	c.line = c.baseLine + int64(last) + int64(strings.Count(fields[len(fields)-1], "\n"))
	rec := rawRecord{fields: fields, line: c.baseLine + int64(first)}
	if !c.cfg.ReuseRecord || c.cfg.FooterRecords > 0 || c.cfg.Header && c.header == nil {
		rec.fields = c.own(fields) // the header, and records kept past the next read
	}
	if c.fields == 0 {
		c.fields = len(fields)
	} else if len(fields) != c.fields {
		// The record goes with the error: a footer record may have another
		// number of fields.
		return rec, &ParseError{Format: "csv", File: c.cfg.Name, Line: rec.line, Err: fieldCountError{got: len(fields), want: c.fields}}
	}
	if !c.cfg.AllowInvalidUTF8 && !ascii(fields) {
		for i, f := range fields {
			if !utf8.ValidString(f) {
				return rawRecord{}, &ParseError{Format: "csv", File: c.cfg.Name, Line: rec.line,
					Err: fmt.Errorf("field %d: %w (is the file UTF-8?)", i+1, ErrInvalidUTF8)}
			}
		}
	}
	return rec, nil
}

// ascii reports whether every byte of fields is below 0x80 (and so valid
// UTF-8), eight bytes at a time: cheaper than a utf8.ValidString call per
// field for the short fields of most records.
func ascii(fields []string) bool {
	const high = 0x8080808080808080
	var acc uint64
	for _, f := range fields {
		b := unsafe.Slice(unsafe.StringData(f), len(f))
		for len(b) >= 8 {
			acc |= binary.LittleEndian.Uint64(b)
			b = b[8:]
		}
		for _, c := range b {
			acc |= uint64(c)
		}
	}
	return acc&high == 0
}

// own copies the fields of a record, which the csv.Reader reuses, into a
// slice of their own, taken from a block that holds the fields of
// blockRecords records: one allocation for many records, and no slice
// ever handed out twice.
func (c *CSV[T]) own(fields []string) []string {
	n := len(fields)
	if len(c.block) < n {
		c.block = make([]string, n*blockRecords)
	}
	out := c.block[:n:n]
	c.block = c.block[n:]
	copy(out, fields)
	return out
}

// record makes the Record handed to Map.
func (c *CSV[T]) record(raw rawRecord) Record {
	return Record{Fields: raw.fields, Line: raw.line, File: c.cfg.Name, Header: c.header, cols: c.cols, format: "csv"}
}

// here returns the position just after the record last read.
func (c *CSV[T]) here() position {
	return position{
		offset:  c.base + c.r.InputOffset(),
		line:    c.line,
		count:   c.pos.count,
		fields:  c.fields,
		records: c.records,
	}
}

// Update stores the restart position in ec: the byte offset and line just
// after the last record returned without error, the number of items
// returned and of data records passed, the fields per record, with a
// header the header, with SkipLines the skipped lines, and the input's
// identity (its size and hashes of its first bytes and of those before the
// offset; see [InputCheck]).
func (c *CSV[T]) Update(_ context.Context, ec batch.ExecutionContext) error {
	if c.r == nil {
		return fmt.Errorf("reader: csv %s: not open", c.cfg.Name)
	}
	if ec == nil {
		return fmt.Errorf("reader: csv %s: Update with a nil execution context", c.cfg.Name)
	}
	err := errors.Join(
		ec.Put(c.key("offset"), c.pos.offset),
		ec.Put(c.key("line"), c.pos.line),
		ec.Put(c.key("count"), c.pos.count),
		ec.Put(c.key("fields"), c.pos.fields),
		ec.Put(c.key("records"), c.pos.records),
	)
	if c.cfg.SkipLines > 0 {
		err = errors.Join(err, ec.Put(c.key("preamble"), c.preamble))
	}
	if c.cfg.Header {
		err = errors.Join(err, ec.Put(c.key("header"), c.header))
	}
	id, ierr := c.in.hist.identity(c.pos.offset)
	err = errors.Join(err, ierr)
	if ierr == nil {
		err = errors.Join(err, ec.Put(c.key("input"), id))
	}
	if err != nil {
		return fmt.Errorf("reader: csv %s: %w", c.cfg.Name, err)
	}
	return nil
}

// Close closes the input. Closing a reader that is not open does nothing.
func (c *CSV[T]) Close(context.Context) error {
	if c.in == nil {
		return nil
	}
	err := c.in.Close()
	*c = CSV[T]{cfg: c.cfg, max: c.max}
	if err != nil {
		return fmt.Errorf("reader: csv %s: close: %w", c.cfg.Name, err)
	}
	return nil
}

// capReader passes reads through until the record being parsed, which
// started at offset start, has had limit bytes; then it fails, so that a
// runaway record cannot grow without bound in the csv.Reader's buffers.
type capReader struct {
	r       io.Reader
	pos     int64 // offset of the next byte to read
	start   int64 // offset where the current record starts
	limit   int64
	tooLong bool
}

func (c *capReader) Read(p []byte) (int, error) {
	room := c.limit - (c.pos - c.start)
	if room <= 0 {
		c.tooLong = true
		return 0, ErrRecordTooLong
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.pos += int64(n)
	return n, err
}

// satAdd returns a+b, or math.MaxInt64 if that overflows.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Progress implements batch.ProgressReader: the bytes of the file (of its
// range, with CSVConfig.Range) up to the last record returned, of the
// file's (the range's) size; the size is unknown (0) for a compressed file.
func (c *CSV[T]) Progress() batch.Progress {
	p := batch.Progress{Unit: "bytes"}
	if c.in == nil {
		return p
	}
	p.Done = c.pos.offset
	if c.in.gz == nil {
		p.Total = c.in.hist.size
	}
	if r := c.cfg.Range; r != nil {
		p.Done -= r.Start
		if r.End > 0 {
			p.Total = r.End - r.Start
		} else if p.Total > 0 {
			p.Total -= r.Start
		}
	}
	return p
}
