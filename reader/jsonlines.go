package reader

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/chunkwise/chunkwise/batch"
)

// JSONLinesConfig configures a [JSONLines] reader. Path or Open is required;
// every other field has a usable zero value.
type JSONLinesConfig[T any] struct {
	// Name prefixes the reader's keys in the execution context and names
	// the input in errors. Default: the base name of Path, or "jsonl".
	Name string
	// Path is the file to read. A file that starts with the gzip magic
	// bytes is decompressed as it is read; a restart decompresses it again
	// from its start up to the stored offset (reading, not keeping, what
	// comes before). Exactly one of Path and Open is required.
	Path string
	// Open opens the input when it is not a file on disk, as in
	// [CSVConfig.Open].
	Open func() (io.ReadSeekCloser, error)
	// DisallowUnknownFields makes a line with a field T does not have an
	// error, as [json.Decoder.DisallowUnknownFields]. Default false.
	DisallowUnknownFields bool
	// MaxLineBytes caps the length of one line, as in
	// [FixedWidthConfig.MaxLineBytes]. Default [DefaultMaxLineBytes].
	MaxLineBytes int
	// InputCheck says which changes of the input a restart accepts; see
	// [InputCheck]. Default [SameInput].
	InputCheck InputCheck
}

// JSONLines reads a file of JSON values, one per line (JSON Lines, NDJSON),
// and decodes each into a T. Blank lines are skipped. A line that is not
// valid JSON, or does not decode into T, is a [*ParseError] naming the file
// and line, and the next Read goes on with the line after it. Create one
// with [NewJSONLines].
//
// It stores the same restart position as [FixedWidth]: a restart seeks to
// the line after the last one whose item was returned.
//
// A JSONLines is not safe for concurrent use.
type JSONLines[T any] struct {
	lineFile[T]
}

var (
	_ batch.ItemReader[int] = (*JSONLines[int])(nil)
	_ batch.ItemStream      = (*JSONLines[int])(nil)
)

// NewJSONLines returns a reader configured by cfg, or an error if cfg is
// invalid. It does not open the file.
func NewJSONLines[T any](cfg JSONLinesConfig[T]) (*JSONLines[T], error) {
	if cfg.Name == "" {
		cfg.Name = "jsonl"
		if cfg.Path != "" {
			cfg.Name = filepath.Base(cfg.Path)
		}
	}
	opts := lineOptions{format: "jsonl", name: cfg.Name, path: cfg.Path, open: cfg.Open, check: cfg.InputCheck,
		maxLine: int64(cfg.MaxLineBytes)}
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("reader: jsonl %s: %w", cfg.Name, err)
	}
	r := &JSONLines[T]{lineFile[T]{opts: opts}}
	r.parse = func(l rawLine, _ int64) (T, error) {
		var item T
		dec := json.NewDecoder(bytes.NewReader([]byte(l.text)))
		if cfg.DisallowUnknownFields {
			dec.DisallowUnknownFields()
		}
		if err := dec.Decode(&item); err != nil {
			return item, jsonError(err, 0, "of the line")
		}
		if _, err := dec.Token(); err != io.EOF {
			return item, errors.New("more than one JSON value on the line")
		}
		return item, nil
	}
	return r, nil
}

// jsonError adds to a decoding error where the syntax error is: the byte
// base+offset, counted from 1, of what.
func jsonError(err error, base int64, what string) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d %s: %w", base+se.Offset, what, err)
	}
	return err
}
