package reader

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/chunkwise/chunkwise/batch"
)

// Column is a field of a fixed-width line: the characters From to To,
// counted from 1 and both included, as record layouts print them ("ISIN:
// columns 1-12").
type Column struct {
	Name     string
	From, To int
}

// FixedWidthConfig configures a [FixedWidth] reader. Path or Open, Columns or
// Split, and Map are required; every other field has a usable zero value.
type FixedWidthConfig[T any] struct {
	// Name prefixes the reader's keys in the execution context and names
	// the input in errors and in [Record.File]. Default: the base name of
	// Path, or "fixed-width".
	Name string
	// Path is the file to read; a gzip file is decompressed (see
	// [JSONLinesConfig.Path]). Exactly one of Path and Open is required.
	Path string
	// Open opens the input when it is not a file on disk, as in
	// [CSVConfig.Open].
	Open func() (io.ReadSeekCloser, error)

	// Columns cut a line into fields, named for [Record.Get] and
	// [MapStruct]. Columns are counted in characters (runes), not bytes.
	// A line that ends before a column starts is an error; one that ends
	// inside its last column gives the characters it has (trailing spaces
	// are often stripped by editors). Characters beyond the last column are
	// ignored.
	Columns []Column
	// Split cuts a line into fields when a list of columns cannot: a line
	// whose layout depends on a record type in its first characters, say.
	// Its error is the line's [*ParseError]. Exactly one of Columns and
	// Split is required.
	Split func(line string) ([]string, error)
	// KeepPadding keeps the spaces that pad fields. Default false: each
	// field has its leading and trailing spaces removed.
	KeepPadding bool

	// HeaderLines is the number of lines at the start of the file that are
	// not data. Default 0.
	HeaderLines int
	// Header is called with the header lines whenever the reader opens —
	// also on a restart, with the lines stored at the first run — to check
	// them or take values from them. Its error fails Open. Optional.
	Header func(lines []string) error
	// FooterLines is the number of lines at the end of the file that are
	// not data (a trailer with a record count, say). The reader keeps that
	// many lines of look-ahead. Default 0.
	FooterLines int
	// Footer is called at the end of the input with the footer lines and
	// the number of data lines before them (good or bad, over all runs of
	// the step): a trailer that does not match fails the last Read with a
	// [*ParseError]. Optional.
	Footer func(lines []string, records int64) error
	// Comment, if not empty, starts lines that are skipped. Blank lines are
	// always skipped.
	Comment string
	// MaxLineBytes caps the length of one line. A longer line is a
	// [*ParseError] wrapping [ErrRecordTooLong], and the next Read goes on
	// after it, so that a skip policy can skip it; it is never held in
	// memory whole. Default [DefaultMaxLineBytes] (4 MiB).
	MaxLineBytes int
	// InputCheck says which changes of the input a restart accepts; see
	// [InputCheck]. Default [SameInput].
	InputCheck InputCheck

	// Map turns a record into an item; its Header holds the column names
	// when Columns are given. Its error is the line's [*ParseError], as in
	// [CSVConfig.Map]. Required.
	Map func(rec Record) (T, error)
}

// FixedWidth reads a file of fixed-width lines — each field in the same
// columns of every line, padded with spaces — and maps each line to a T.
// Create one with [NewFixedWidth].
//
// Update stores, under keys prefixed by the reader's name, the byte offset
// and line just after the last line whose item Read returned, the number of
// items and data lines passed, the header lines and the input's identity;
// a restart seeks there (a gzip file is decompressed again up to it).
//
// A FixedWidth is not safe for concurrent use.
type FixedWidth[T any] struct {
	lineFile[T]
}

var (
	_ batch.ItemReader[int] = (*FixedWidth[int])(nil)
	_ batch.ItemStream      = (*FixedWidth[int])(nil)
)

// NewFixedWidth returns a reader configured by cfg, or an error if cfg is
// invalid. It does not open the file.
func NewFixedWidth[T any](cfg FixedWidthConfig[T]) (*FixedWidth[T], error) {
	if cfg.Name == "" {
		cfg.Name = "fixed-width"
		if cfg.Path != "" {
			cfg.Name = filepath.Base(cfg.Path)
		}
	}
	opts := lineOptions{
		format: "fixed-width", name: cfg.Name, path: cfg.Path, open: cfg.Open, check: cfg.InputCheck,
		maxLine: int64(cfg.MaxLineBytes), headerLines: cfg.HeaderLines, header: cfg.Header,
		footerLines: cfg.FooterLines, footer: cfg.Footer, comment: cfg.Comment,
	}
	err := opts.validate()
	switch {
	case err != nil:
	case cfg.Map == nil:
		err = errors.New("no Map func")
	case (len(cfg.Columns) == 0) == (cfg.Split == nil):
		err = errors.New("exactly one of Columns and Split is required")
	}
	var names []string
	cols := map[string]int{}
	for i, c := range cfg.Columns {
		if err != nil {
			break
		}
		switch {
		case c.Name == "":
			err = fmt.Errorf("column %d has no name", i+1)
		case c.From < 1 || c.To < c.From:
			err = fmt.Errorf("column %q: invalid range %d-%d (From is counted from 1, To is included)", c.Name, c.From, c.To)
		}
		if _, dup := cols[c.Name]; dup && err == nil {
			err = fmt.Errorf("column %q named twice", c.Name)
		}
		names = append(names, c.Name)
		cols[c.Name] = i
	}
	if err != nil {
		return nil, fmt.Errorf("reader: fixed-width %s: %w", cfg.Name, err)
	}
	columns := append([]Column(nil), cfg.Columns...)
	split := cfg.Split
	if split == nil {
		split = func(line string) ([]string, error) { return cutColumns(line, columns) }
	} else {
		names, cols = nil, nil
	}
	r := &FixedWidth[T]{lineFile[T]{opts: opts}}
	r.parse = func(l rawLine, index int64) (T, error) {
		var zero T
		fields, err := split(l.text)
		if err != nil {
			return zero, err
		}
		if !cfg.KeepPadding {
			for i, f := range fields {
				fields[i] = strings.TrimSpace(f)
			}
		}
		return cfg.Map(Record{Fields: fields, Line: l.line, Index: index, File: cfg.Name, Header: names,
			cols: cols, format: "fixed-width"})
	}
	return r, nil
}

// cutColumns cuts line into the fields of columns.
func cutColumns(line string, columns []Column) ([]string, error) {
	// Byte offsets of the characters, computed only for a line that is not
	// all ASCII.
	var starts []int
	for i := 0; i < len(line); i++ {
		if line[i] >= utf8.RuneSelf {
			starts = make([]int, 0, len(line))
			for j := range line {
				starts = append(starts, j)
			}
			break
		}
	}
	chars := len(line)
	at := func(c int) int { return c } // byte offset of character c (0-based)
	if starts != nil {
		chars = len(starts)
		at = func(c int) int {
			if c >= len(starts) {
				return len(line)
			}
			return starts[c]
		}
	}
	fields := make([]string, len(columns))
	for i, c := range columns {
		if c.From > chars {
			return nil, fmt.Errorf("column %q (%d-%d): the line has only %d characters", c.Name, c.From, c.To, chars)
		}
		fields[i] = line[at(c.From-1):at(min(c.To, chars))]
	}
	return fields, nil
}
