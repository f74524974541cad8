package writer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/chunkwise/chunkwise/batch"
)

// Align is how a value sits in a fixed-width column.
type Align int

const (
	// AlignLeft puts the value at the start of the column, the padding
	// after it.
	AlignLeft Align = iota
	// AlignRight puts the value at the end of the column, the padding
	// before it (for numbers).
	AlignRight
)

// FixedWidthColumn is one column of a [FixedWidthFile].
type FixedWidthColumn struct {
	// Name names the column in errors and in the header row. Required.
	Name string
	// Width is the column's width in characters (runes, not bytes: a file
	// read by byte positions needs ASCII values). Required, positive.
	Width int
	// Align places the value in the column. Default AlignLeft.
	Align Align
	// Pad fills the rest of the column. Default ' '.
	Pad rune
}

// FixedWidthFileConfig configures a [FixedWidthFile]. Path, Columns and
// Fields are required; every other field has a usable zero value.
type FixedWidthFileConfig[T any] struct {
	// Path is the file to write. Required.
	Path string
	// Name prefixes the writer's keys in the execution context
	// ("writer.out.txt.offset"). Two file writers of one step need
	// different names. Default "writer." plus the base name of Path.
	Name string
	// Columns are the columns of a line, in order. Required.
	Columns []FixedWidthColumn
	// Fields returns the values of one item, one per column, each at most
	// its column's width: a longer value is an error, never cut. An error
	// it returns fails the Write with an [*ItemError]. Required.
	Fields func(item T) ([]string, error)
	// HeaderRow writes the columns' names, aligned as the values and
	// padded with spaces, as the first line of a new file. Every name must
	// then fit its column. Default false.
	HeaderRow bool
	// UseCRLF ends the lines with "\r\n". Default false: "\n".
	UseCRLF bool
	// Header, when set, writes the start of a new file, before the header
	// row. Default none.
	Header func(w io.Writer) error
	// Footer, when set, writes the end of the file after the items (a
	// trailer record with totals): written is the number of items in the
	// file (written by this step, with Append). It is rewritten after
	// every commit. Default none.
	Footer func(w io.Writer, written int64) error
	// Append keeps what an existing file holds on a first run and writes
	// after it; the header is then written only if the file is empty, and
	// the footer follows this step's items. Default false: a first run
	// empties the file.
	Append bool
}

// FixedWidthFile writes items as lines of fixed-width columns. A value
// wider than its column fails the Write with an [*ItemError] naming the
// item and the column and wrapping [ErrValueTooWide]; a value with a line
// break does too.
//
// Like [CSVFile], the file is a header, the lines of the committed chunks
// and a footer, rewritten after every commit; the writer stores the offset
// and line count under Name, and a restart cuts the file back to them.
//
// Guarantee: every item is written exactly once, across crashes and
// restarts, as long as no one else writes the file: a chunk whose commit
// fails leaves nothing of itself in the file after the next Open or Update.
// After every commit the file is complete; consumers should still wait for
// the job to complete, since a chunk being committed may appear and be taken
// out again.
type FixedWidthFile[T any] struct {
	file    *txFile
	columns []FixedWidthColumn
	eol     string
	fields  func(T) ([]string, error)
}

var (
	_ batch.ItemWriter[int] = (*FixedWidthFile[int])(nil)
	_ batch.ItemStream      = (*FixedWidthFile[int])(nil)
)

// NewFixedWidthFile returns a fixed-width file writer. A missing Path,
// Columns or Fields, a column without a name or a positive width, and a
// header row whose names do not fit are errors.
func NewFixedWidthFile[T any](cfg FixedWidthFileConfig[T]) (*FixedWidthFile[T], error) {
	switch {
	case cfg.Path == "":
		return nil, errors.New("writer: fixed-width file: no Path")
	case len(cfg.Columns) == 0:
		return nil, fmt.Errorf("writer: fixed-width file %s: no Columns", cfg.Path)
	case cfg.Fields == nil:
		return nil, fmt.Errorf("writer: fixed-width file %s: no Fields function", cfg.Path)
	}
	w := &FixedWidthFile[T]{columns: append([]FixedWidthColumn(nil), cfg.Columns...), eol: "\n", fields: cfg.Fields}
	if cfg.UseCRLF {
		w.eol = "\r\n"
	}
	names := make([]string, len(w.columns))
	for i := range w.columns {
		c := &w.columns[i]
		if c.Pad == 0 {
			c.Pad = ' '
		}
		switch {
		case c.Name == "":
			return nil, fmt.Errorf("writer: fixed-width file %s: column %d has no name", cfg.Path, i+1)
		case c.Width <= 0:
			return nil, fmt.Errorf("writer: fixed-width file %s: column %q: width %d", cfg.Path, c.Name, c.Width)
		case c.Align != AlignLeft && c.Align != AlignRight:
			return nil, fmt.Errorf("writer: fixed-width file %s: column %q: invalid alignment %d", cfg.Path, c.Name, c.Align)
		case !utf8.ValidRune(c.Pad) || c.Pad == '\r' || c.Pad == '\n':
			return nil, fmt.Errorf("writer: fixed-width file %s: column %q: invalid pad %q", cfg.Path, c.Name, c.Pad)
		}
		names[i] = c.Name
	}
	header := cfg.Header
	if cfg.HeaderRow {
		var row bytes.Buffer
		if err := w.line(&row, names, true); err != nil {
			return nil, fmt.Errorf("writer: fixed-width file %s: header row: %w", cfg.Path, err)
		}
		header = func(out io.Writer) error {
			if cfg.Header != nil {
				if err := cfg.Header(out); err != nil {
					return err
				}
			}
			_, err := out.Write(row.Bytes())
			return err
		}
	}
	f, err := newTxFile(fileConfig{kind: "fixed-width file", path: cfg.Path, name: cfg.Name, append: cfg.Append,
		header: header, footer: cfg.Footer})
	if err != nil {
		return nil, err
	}
	w.file = f
	return w, nil
}

// line appends the line of values to out; a header line is padded with
// spaces.
func (w *FixedWidthFile[T]) line(out *bytes.Buffer, values []string, header bool) error {
	if len(values) != len(w.columns) {
		return fmt.Errorf("%d values for %d columns", len(values), len(w.columns))
	}
	for i, v := range values {
		c := w.columns[i]
		n := utf8.RuneCountInString(v)
		switch {
		case n > c.Width:
			return fmt.Errorf("column %q: value %q is %d characters: %w of %d", c.Name, v, n, ErrValueTooWide, c.Width)
		case strings.ContainsAny(v, "\r\n"):
			return fmt.Errorf("column %q: value %q has a line break", c.Name, v)
		}
		padRune := c.Pad
		if header {
			padRune = ' '
		}
		pad := strings.Repeat(string(padRune), c.Width-n)
		if c.Align == AlignRight {
			out.WriteString(pad)
			out.WriteString(v)
		} else {
			out.WriteString(v)
			out.WriteString(pad)
		}
	}
	out.WriteString(w.eol)
	return nil
}

// Open opens the file: on a first run it creates or empties it (keeps it,
// with Append) and writes the header and the footer; on a restart it cuts
// it back to the last committed checkpoint and rewrites the footer.
func (w *FixedWidthFile[T]) Open(ctx context.Context, ec batch.ExecutionContext) error {
	if err := w.file.refuseDryRun(ctx); err != nil {
		return err
	}
	return w.file.open(ec)
}

// Write formats the lines of items, to be written by the Update of the same
// commit; a retried commit's Write replaces them. An item that cannot be
// formatted fails the Write with an [*ItemError], and nothing of the chunk
// is written.
func (w *FixedWidthFile[T]) Write(ctx context.Context, items []T) error {
	return stageChunk(ctx, w.file, items, func(out *bytes.Buffer) error {
		for i, it := range items {
			values, err := w.fields(it)
			if err != nil {
				return w.file.itemError(i+1, it, fmt.Errorf("fields: %w", err))
			}
			if err := w.line(out, values, false); err != nil {
				return w.file.itemError(i+1, it, err)
			}
		}
		return nil
	})
}

// Update writes the lines formatted by Write and the footer at the offset
// stored in ec, syncs the file, and stores the new offset and line count in
// ec.
func (w *FixedWidthFile[T]) Update(ctx context.Context, ec batch.ExecutionContext) error {
	return w.file.update(ctx, ec)
}

// Close closes the file; Open may be called again.
func (w *FixedWidthFile[T]) Close(context.Context) error { return w.file.close() }
