package writer

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/chunkwise/chunkwise/batch"
)

// CSVFileConfig configures a [CSVFile]. Path and Fields are required; every
// other field has a usable zero value.
type CSVFileConfig[T any] struct {
	// Path is the file to write. Required.
	Path string
	// Name prefixes the writer's keys in the execution context
	// ("writer.out.csv.offset"). Two file writers of one step need
	// different names. Default "writer." plus the base name of Path.
	Name string
	// Comma is the field delimiter. It must be a valid rune and not a
	// quote, '\r' or '\n'. Default ','.
	Comma rune
	// UseCRLF ends the records with "\r\n". Default false: "\n".
	UseCRLF bool
	// Columns, when set, are written as the header row of a new file, and
	// every item must have that many fields. Default none: no header row,
	// and items may have any number of fields.
	Columns []string
	// Fields returns the fields of one item's record, quoted as needed when
	// written. An error it returns fails the Write with an [*ItemError].
	// Required.
	Fields func(item T) ([]string, error)
	// Header, when set, writes the start of a new file, before the Columns
	// row. Default none.
	Header func(w io.Writer) error
	// Footer, when set, writes the end of the file after the items:
	// written is the number of items in the file (written by this step,
	// with Append). It is rewritten after every commit. Default none.
	Footer func(w io.Writer, written int64) error
	// Append keeps what an existing file holds on a first run and writes
	// after it; the header is then written only if the file is empty, and
	// the footer follows this step's items. Default false: a first run
	// empties the file.
	Append bool
}

// CSVFile writes items as the records of a delimited file, quoting fields
// as encoding/csv does.
//
// The file is a header (the Header function, then the Columns row), the
// records of the committed chunks, and a footer (the Footer function, for
// the number of records). Write formats a chunk in memory; Update, in the
// chunk's commit, writes it at the offset stored with the last committed
// checkpoint, rewrites the footer after it, syncs the file, and stores the
// new offset (before the footer) and record count under Name. A restart
// cuts the file back to the stored offset and rewrites the footer for the
// stored count.
//
// Guarantee: every item is written exactly once, across crashes and
// restarts, as long as no one else writes the file: a chunk whose commit
// fails leaves nothing of itself in the file after the next Open or Update.
// After every commit the file is complete — header, the committed records,
// footer — but a chunk being committed may appear in it and be taken out
// again if its commit fails: consumers should wait for the job to complete.
type CSVFile[T any] struct {
	file    *txFile
	comma   rune
	crlf    bool
	columns int
	fields  func(T) ([]string, error)
}

var (
	_ batch.ItemWriter[int] = (*CSVFile[int])(nil)
	_ batch.ItemStream      = (*CSVFile[int])(nil)
)

// NewCSVFile returns a CSV file writer. A missing Path or Fields and an
// invalid Comma are errors.
func NewCSVFile[T any](cfg CSVFileConfig[T]) (*CSVFile[T], error) {
	if cfg.Comma == 0 {
		cfg.Comma = ','
	}
	switch {
	case cfg.Path == "":
		return nil, errors.New("writer: csv file: no Path")
	case cfg.Fields == nil:
		return nil, fmt.Errorf("writer: csv file %s: no Fields function", cfg.Path)
	case !utf8.ValidRune(cfg.Comma) || cfg.Comma == utf8.RuneError || cfg.Comma == '"' || cfg.Comma == '\r' || cfg.Comma == '\n':
		return nil, fmt.Errorf("writer: csv file %s: invalid Comma %q", cfg.Path, cfg.Comma)
	}
	w := &CSVFile[T]{comma: cfg.Comma, crlf: cfg.UseCRLF, columns: len(cfg.Columns), fields: cfg.Fields}
	header := cfg.Header
	if len(cfg.Columns) > 0 {
		columns := append([]string(nil), cfg.Columns...)
		header = func(out io.Writer) error {
			if cfg.Header != nil {
				if err := cfg.Header(out); err != nil {
					return err
				}
			}
			cw := w.csvWriter(out)
			if err := cw.Write(columns); err != nil {
				return err
			}
			cw.Flush()
			return cw.Error()
		}
	}
	f, err := newTxFile(fileConfig{kind: "csv file", path: cfg.Path, name: cfg.Name, append: cfg.Append,
		header: header, footer: cfg.Footer})
	if err != nil {
		return nil, err
	}
	w.file = f
	return w, nil
}

func (w *CSVFile[T]) csvWriter(out io.Writer) *csv.Writer {
	cw := csv.NewWriter(out)
	cw.Comma, cw.UseCRLF = w.comma, w.crlf
	return cw
}

// Open opens the file: on a first run it creates or empties it (keeps it,
// with Append) and writes the header and the footer; on a restart it cuts
// it back to the last committed checkpoint and rewrites the footer.
func (w *CSVFile[T]) Open(ctx context.Context, ec batch.ExecutionContext) error {
	if err := w.file.refuseDryRun(ctx); err != nil {
		return err
	}
	return w.file.open(ec)
}

// Write formats the records of items, to be written by the Update of the
// same commit; a retried commit's Write replaces them. An item that cannot
// be formatted fails the Write with an [*ItemError], and nothing of the
// chunk is written.
func (w *CSVFile[T]) Write(ctx context.Context, items []T) error {
	return stageChunk(ctx, w.file, items, func(out *bytes.Buffer) error {
		cw := w.csvWriter(out)
		for i, it := range items {
			rec, err := w.fields(it)
			if err != nil {
				return w.file.itemError(i+1, it, fmt.Errorf("fields: %w", err))
			}
			if w.columns > 0 && len(rec) != w.columns {
				return w.file.itemError(i+1, it, fmt.Errorf("%d fields for %d columns", len(rec), w.columns))
			}
			if err := cw.Write(rec); err != nil {
				return w.file.errorf("%w", err)
			}
		}
		cw.Flush()
		return cw.Error()
	})
}

// Update writes the records formatted by Write and the footer at the offset
// stored in ec, syncs the file, and stores the new offset and record count
// in ec.
func (w *CSVFile[T]) Update(ctx context.Context, ec batch.ExecutionContext) error {
	return w.file.update(ctx, ec)
}

// Close closes the file; Open may be called again.
func (w *CSVFile[T]) Close(context.Context) error { return w.file.close() }
