package reader

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/chunkwise/chunkwise/batch"
)

// JSONArrayConfig configures a [JSONArray] reader. Path or Open is required;
// every other field has a usable zero value.
type JSONArrayConfig[T any] struct {
	// Name prefixes the reader's keys in the execution context and names
	// the input in errors. Default: the base name of Path, or "json".
	Name string
	// Path is the file to read; a gzip file is decompressed, as in
	// [JSONLinesConfig.Path]. Exactly one of Path and Open is required.
	Path string
	// Open opens the input when it is not a file on disk, as in
	// [CSVConfig.Open].
	Open func() (io.ReadSeekCloser, error)
	// DisallowUnknownFields makes an element with a field T does not have
	// an error. Default false.
	DisallowUnknownFields bool
	// MaxItemBytes caps the size of one element of the array; a larger one
	// ends the reader with a [*ParseError] wrapping [ErrRecordTooLong]
	// instead of being held in memory. Default [DefaultMaxLineBytes] (4 MiB).
	MaxItemBytes int
	// InputCheck says which changes of the input a restart accepts; see
	// [InputCheck]. Default [SameInput].
	InputCheck InputCheck
}

// JSONArray reads the elements of a JSON array — a file holding one array
// at its top — one at a time, decoding each into a T, in constant memory
// whatever the size of the array. Create one with [NewJSONArray].
//
// An element that is valid JSON but does not decode into T is a
// [*ParseError] naming the line it starts on and its index, and the next
// Read goes on with the next element. Invalid JSON ends the reader: there is
// no telling where the next element starts.
//
// Update stores the byte offset just after the last element Read returned,
// its line, the number of elements returned and the input's identity; a
// restart seeks there (a gzip file is decompressed again up to it) and goes
// on with the next element.
//
// A JSONArray is not safe for concurrent use.
type JSONArray[T any] struct {
	cfg JSONArrayConfig[T]
	max int64

	// Set by Open, cleared by Close.
	in    *input
	src   *jsonSource
	dec   *json.Decoder
	shift int64 // stream offset = shift + decoder offset
	read  int64 // elements read, good or bad
	pos   jsonPos
	err   error // sticky
}

var (
	_ batch.ItemReader[int] = (*JSONArray[int])(nil)
	_ batch.ItemStream      = (*JSONArray[int])(nil)
)

type jsonPos struct {
	offset int64 // just after the last element returned
	line   int64 // line breaks before offset
	count  int64 // elements before offset
}

// NewJSONArray returns a reader configured by cfg, or an error if cfg is
// invalid. It does not open the file.
func NewJSONArray[T any](cfg JSONArrayConfig[T]) (*JSONArray[T], error) {
	if cfg.Name == "" {
		cfg.Name = "json"
		if cfg.Path != "" {
			cfg.Name = filepath.Base(cfg.Path)
		}
	}
	opts := lineOptions{path: cfg.Path, open: cfg.Open, maxLine: int64(cfg.MaxItemBytes)}
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("reader: json %s: %w", cfg.Name, err)
	}
	return &JSONArray[T]{cfg: cfg, max: opts.maxLine}, nil
}

func (r *JSONArray[T]) key(suffix string) string { return r.cfg.Name + "." + suffix }

func (r *JSONArray[T]) errorf(format string, args ...any) error {
	return fmt.Errorf("reader: json %s: "+format, append([]any{r.cfg.Name}, args...)...)
}

func (r *JSONArray[T]) parseError(offset int64, err error) *ParseError {
	return &ParseError{Format: "json", File: r.cfg.Name, Line: r.src.lineAt(offset), Err: err}
}

// Open opens the input: on a first run at its start, where it must find
// the opening bracket of an array; on a restart at the stored offset, after
// checking that the input is the one the position was taken on.
func (r *JSONArray[T]) Open(_ context.Context, ec batch.ExecutionContext) error {
	if r.in != nil {
		return r.errorf("already open")
	}
	var pos jsonPos
	var was *inputIdentity
	restart, err := ec.Get(r.key("offset"), &pos.offset)
	if err == nil && restart {
		var id inputIdentity
		ok, ierr := ec.Get(r.key("input"), &id)
		if ok && ierr == nil {
			was = &id
		}
		err = errors.Join(get(ec, r.key("line"), &pos.line), get(ec, r.key("count"), &pos.count), ierr)
	}
	if err != nil {
		return r.errorf("restore: %w", err)
	}
	in, err := openInput(r.cfg.Path, r.cfg.Open)
	if err != nil {
		return r.errorf("%w", err)
	}
	if restart {
		if err := in.resume(pos.offset, was, r.cfg.InputCheck); err != nil {
			_ = in.Close()
			return r.errorf("restart after element %d (byte %d): %w", pos.count, pos.offset, err)
		}
	}
	r.in, r.pos, r.read, r.err = in, pos, pos.count, nil
	r.src = &jsonSource{in: in, br: bufio.NewReaderSize(in, bufferSize), pos: pos.offset,
		lineOff: pos.offset, line: pos.line, max: r.max}
	if err := r.start(restart); err != nil {
		_ = r.Close(context.Background())
		return err
	}
	return nil
}

// start positions the decoder before the next element: after the opening
// bracket on a first run, after the comma that follows the last element
// returned on a restart.
func (r *JSONArray[T]) start(restart bool) error {
	if !restart {
		br := r.src.br
		if b, _ := br.Peek(len(utf8BOM)); bytes.Equal(b, utf8BOM) {
			_, _ = br.Discard(len(utf8BOM))
			r.src.pos += int64(len(utf8BOM))
		}
		r.shift = r.src.pos
		r.dec = json.NewDecoder(r.src)
		tok, err := r.dec.Token()
		if err != nil {
			return r.parseError(r.src.pos, fmt.Errorf("not a JSON array: %w", invalidJSON(err)))
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return r.parseError(r.shift, fmt.Errorf("not a JSON array: it starts with %v", tok))
		}
		r.pos.offset = r.shift + r.dec.InputOffset()
		r.in.hist.setPin(r.pos.offset)
		return nil
	}
	// Go on as if in an array whose elements before the restart point were
	// one empty object: the decoder then meets the bytes after the last
	// element committed exactly as it met them the first time.
	prefix := "["
	if r.pos.count > 0 {
		prefix = "[{}"
	}
	r.shift = r.src.pos - int64(len(prefix))
	r.dec = json.NewDecoder(io.MultiReader(strings.NewReader(prefix), r.src))
	if _, err := r.dec.Token(); err != nil {
		return err
	}
	if r.pos.count > 0 {
		var done json.RawMessage
		if err := r.dec.Decode(&done); err != nil {
			return err
		}
	}
	return nil
}

// Read returns the next element of the array, and io.EOF after the last.
func (r *JSONArray[T]) Read(ctx context.Context) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if r.in == nil {
		return zero, r.errorf("not open")
	}
	if r.err != nil {
		return zero, r.err
	}
	index := r.read + 1
	if !r.dec.More() {
		if _, err := r.dec.Token(); err != nil { // the closing bracket
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			r.err = r.parseError(r.src.pos, fmt.Errorf("after element %d: %w", index-1, invalidJSON(err)))
			return zero, r.err
		}
		if tok, err := r.dec.Token(); err != io.EOF {
			r.err = r.parseError(r.shift+r.dec.InputOffset(), fmt.Errorf("data after the end of the array: %v", tok))
			return zero, r.err
		}
		r.err = io.EOF
		return zero, io.EOF
	}
	start := r.shift + r.dec.InputOffset()
	r.src.start = start
	var raw json.RawMessage
	if err := r.dec.Decode(&raw); err != nil {
		switch {
		case r.src.tooLong:
			err = fmt.Errorf("element %d: %w: more than %d bytes", index, ErrRecordTooLong, r.max)
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			err = fmt.Errorf("after element %d: %w", index-1, io.ErrUnexpectedEOF)
		default:
			err = fmt.Errorf("element %d: %w", index, invalidJSON(err))
		}
		r.err = r.parseError(start, err)
		return zero, r.err
	}
	r.read++
	end := r.shift + r.dec.InputOffset()
	if end-start > r.max {
		r.err = r.parseError(start, fmt.Errorf("element %d: %w: more than %d bytes", index, ErrRecordTooLong, r.max))
		return zero, r.err
	}
	var item T
	dec := json.NewDecoder(bytes.NewReader(raw))
	if r.cfg.DisallowUnknownFields {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(&item); err != nil {
		// The next Read goes on after the element; the restart position
		// stays before it, so that a restart meets it again.
		return zero, r.parseError(start, fmt.Errorf("element %d: %w", index, err))
	}
	r.pos = jsonPos{offset: end, count: index}
	r.in.hist.setPin(end)
	return item, nil
}

// Update stores the restart position in ec: the byte offset just after the
// last element Read returned, its line, the number of elements before it,
// and the input's identity (see [InputCheck]).
func (r *JSONArray[T]) Update(_ context.Context, ec batch.ExecutionContext) error {
	if r.in == nil {
		return r.errorf("not open")
	}
	if ec == nil {
		return r.errorf("Update with a nil execution context")
	}
	err := errors.Join(
		ec.Put(r.key("offset"), r.pos.offset),
		ec.Put(r.key("line"), r.src.linesBefore(r.pos.offset)),
		ec.Put(r.key("count"), r.pos.count),
	)
	id, ierr := r.in.hist.identity(r.pos.offset)
	err = errors.Join(err, ierr)
	if ierr == nil {
		err = errors.Join(err, ec.Put(r.key("input"), id))
	}
	if err != nil {
		return r.errorf("%w", err)
	}
	return nil
}

// Close closes the input. Closing a reader that is not open does nothing.
func (r *JSONArray[T]) Close(context.Context) error {
	if r.in == nil {
		return nil
	}
	err := r.in.Close()
	*r = JSONArray[T]{cfg: r.cfg, max: r.max}
	if err != nil {
		return r.errorf("close: %w", err)
	}
	return nil
}

// invalidJSON says that a decoding error is a syntax error: the element's
// line is in the ParseError, and the decoder's offsets are of its own
// stream, not of the file.
func invalidJSON(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	return err
}

// get reads a key that must be present.
func get(ec batch.ExecutionContext, key string, v any) error {
	ok, err := ec.Get(key, v)
	if err == nil && !ok {
		err = fmt.Errorf("key %q missing", key)
	}
	return err
}

// jsonSource feeds a json.Decoder a little at a time, so that it never reads
// far beyond the element it decodes: the bytes before a restart position
// stay in the input's history, an element larger than the cap is refused
// before it is held whole, and lines can be counted up to any offset the
// decoder reports.
type jsonSource struct {
	in      *input
	br      *bufio.Reader
	pos     int64 // offset of the next byte to read
	start   int64 // offset where the element being decoded starts
	max     int64
	tooLong bool
	lineOff int64   // line breaks are counted up to lineOff
	line    int64   // line breaks before lineOff
	breaks  []int64 // offsets of the line breaks read at or after lineOff
}

// jsonReadSize is the most the decoder gets per read.
const jsonReadSize = 16 << 10

func (s *jsonSource) Read(p []byte) (int, error) {
	if s.pos-s.start > s.max+jsonReadSize {
		s.tooLong = true
		return 0, ErrRecordTooLong
	}
	if len(p) > jsonReadSize {
		p = p[:jsonReadSize]
	}
	n, err := s.br.Read(p)
	for i := 0; i < n; {
		j := bytes.IndexByte(p[i:n], '\n')
		if j < 0 {
			break
		}
		s.breaks = append(s.breaks, s.pos+int64(i+j))
		i += j + 1
	}
	s.pos += int64(n)
	return n, err
}

// linesBefore returns the number of line breaks before offset, which must
// not be before the last offset asked about, nor after the bytes read.
func (s *jsonSource) linesBefore(offset int64) int64 {
	if offset > s.lineOff {
		k := 0
		for k < len(s.breaks) && s.breaks[k] < offset {
			k++
		}
		s.line += int64(k)
		s.breaks = append(s.breaks[:0], s.breaks[k:]...)
		s.lineOff = offset
	}
	return s.line
}

// lineAt returns the 1-based line of the byte at offset, skipping the white
// space that precedes an element.
func (s *jsonSource) lineAt(offset int64) int64 {
	line := s.linesBefore(offset)
	if b, ok := s.in.hist.window(offset, min(s.in.hist.end, offset+4096)); ok {
		for _, c := range b {
			if c == '\n' {
				line++
			} else if c != ' ' && c != '\t' && c != '\r' && c != ',' {
				break
			}
		}
	}
	return line + 1
}
