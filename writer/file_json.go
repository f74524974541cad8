package writer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/chunkwise/chunkwise/batch"
)

// JSONLinesFileConfig configures a [JSONLinesFile]. Path is required; every
// other field has a usable zero value.
type JSONLinesFileConfig[T any] struct {
	// Path is the file to write. Required.
	Path string
	// Name prefixes the writer's keys in the execution context
	// ("writer.out.jsonl.offset"). Two file writers of one step need
	// different names. Default "writer." plus the base name of Path.
	Name string
	// Marshal encodes one item. Its output is compacted onto one line; an
	// error it returns, or output that is not JSON, fails the Write with an
	// [*ItemError]. Default json.Marshal.
	Marshal func(item T) ([]byte, error)
	// Header, when set, writes the start of a new file (lines of JSON, if
	// the file is to stay JSON Lines). Default none.
	Header func(w io.Writer) error
	// Footer, when set, writes the end of the file after the items (a
	// summary line): written is the number of items in the file (written
	// by this step, with Append). It is rewritten after every commit.
	// Default none.
	Footer func(w io.Writer, written int64) error
	// Append keeps what an existing file holds on a first run and writes
	// after it; the header is then written only if the file is empty, and
	// the footer follows this step's items. Default false: a first run
	// empties the file.
	Append bool
}

// JSONLinesFile writes items as JSON Lines: one JSON value a line.
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
type JSONLinesFile[T any] struct {
	file    *txFile
	marshal func(T) ([]byte, error)
}

var (
	_ batch.ItemWriter[int] = (*JSONLinesFile[int])(nil)
	_ batch.ItemStream      = (*JSONLinesFile[int])(nil)
)

// NewJSONLinesFile returns a JSON Lines file writer. A missing Path is an
// error.
func NewJSONLinesFile[T any](cfg JSONLinesFileConfig[T]) (*JSONLinesFile[T], error) {
	if cfg.Path == "" {
		return nil, errors.New("writer: json lines file: no Path")
	}
	f, err := newTxFile(fileConfig{kind: "json lines file", path: cfg.Path, name: cfg.Name, append: cfg.Append,
		header: cfg.Header, footer: cfg.Footer})
	if err != nil {
		return nil, err
	}
	return &JSONLinesFile[T]{file: f, marshal: cfg.Marshal}, nil
}

// Open opens the file: on a first run it creates or empties it (keeps it,
// with Append) and writes the header and the footer; on a restart it cuts
// it back to the last committed checkpoint and rewrites the footer.
func (w *JSONLinesFile[T]) Open(ctx context.Context, ec batch.ExecutionContext) error {
	if err := w.file.refuseDryRun(ctx); err != nil {
		return err
	}
	return w.file.open(ec)
}

// Write encodes items, to be written by the Update of the same commit; a
// retried commit's Write replaces them. An item that does not encode fails
// the Write with an [*ItemError], and nothing of the chunk is written.
func (w *JSONLinesFile[T]) Write(ctx context.Context, items []T) error {
	return stageChunk(ctx, w.file, items, func(out *bytes.Buffer) error {
		for i, it := range items {
			if err := encodeJSON(out, it, w.marshal); err != nil {
				return w.file.itemError(i+1, it, err)
			}
			out.WriteByte('\n')
		}
		return nil
	})
}

// Update writes the lines encoded by Write and the footer at the offset
// stored in ec, syncs the file, and stores the new offset and line count in
// ec.
func (w *JSONLinesFile[T]) Update(ctx context.Context, ec batch.ExecutionContext) error {
	return w.file.update(ctx, ec)
}

// Close closes the file; Open may be called again.
func (w *JSONLinesFile[T]) Close(context.Context) error { return w.file.close() }

// encodeJSON appends item as compact JSON to out.
func encodeJSON[T any](out *bytes.Buffer, item T, marshal func(T) ([]byte, error)) error {
	if marshal == nil {
		b, err := json.Marshal(item)
		if err != nil {
			return err
		}
		out.Write(b) // compact already
		return nil
	}
	b, err := marshal(item)
	if err != nil {
		return err
	}
	if err := json.Compact(out, b); err != nil {
		return fmt.Errorf("marshal: %w", err)
	}
	return nil
}

// JSONArrayFileConfig configures a [JSONArrayFile]. Path is required; every
// other field has a usable zero value.
type JSONArrayFileConfig[T any] struct {
	// Path is the file to write. Required.
	Path string
	// Name prefixes the writer's keys in the execution context
	// ("writer.out.json.offset"). Two file writers of one step need
	// different names. Default "writer." plus the base name of Path.
	Name string
	// Marshal encodes one item. Its output is compacted onto one line; an
	// error it returns, or output that is not JSON, fails the Write with an
	// [*ItemError]. Default json.Marshal.
	Marshal func(item T) ([]byte, error)
}

// JSONArrayFile writes items as one JSON array, an item a line:
//
//	[
//	{"id":1},
//	{"id":2}
//	]
//
// The file is a JSON array of the committed items after every commit: the
// closing bracket is rewritten after each chunk, and the offset stored under
// Name is the end of the items, before it. A restart cuts the file back to
// that offset and closes the array again. A chunk and the bracket after it
// go into the file with one write over the previous bracket, so a process
// killed at any moment after its first Open leaves a JSON array (of the
// committed items, perhaps with the chunk being committed), unless the kill
// interrupts that write itself, which the kernel may cut short between
// memory pages; a power failure may leave anything after the last sync. In
// every case the restart makes the file the array of the committed items.
//
// Guarantee: every item is written exactly once, across crashes and
// restarts, as long as no one else writes the file: a chunk whose commit
// fails leaves nothing of itself in the file after the next Open or Update.
// Consumers should still wait for the job to complete, since a chunk being
// committed may appear and be taken out again.
type JSONArrayFile[T any] struct {
	file    *txFile
	marshal func(T) ([]byte, error)
}

var (
	_ batch.ItemWriter[int] = (*JSONArrayFile[int])(nil)
	_ batch.ItemStream      = (*JSONArrayFile[int])(nil)
)

// NewJSONArrayFile returns a JSON array file writer. A missing Path is an
// error.
func NewJSONArrayFile[T any](cfg JSONArrayFileConfig[T]) (*JSONArrayFile[T], error) {
	if cfg.Path == "" {
		return nil, errors.New("writer: json array file: no Path")
	}
	f, err := newTxFile(fileConfig{kind: "json array file", path: cfg.Path, name: cfg.Name,
		header: func(w io.Writer) error {
			_, err := io.WriteString(w, "[")
			return err
		},
		footer: func(w io.Writer, _ int64) error {
			_, err := io.WriteString(w, "\n]\n")
			return err
		},
		// Each item starts a line; a comma ends the line before it.
		lead: func(written int64) []byte {
			if written > 0 {
				return []byte{','}
			}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	return &JSONArrayFile[T]{file: f, marshal: cfg.Marshal}, nil
}

// Open opens the file: on a first run it creates or empties it and writes
// an empty array; on a restart it cuts it back to the last committed
// checkpoint and closes the array.
func (w *JSONArrayFile[T]) Open(ctx context.Context, ec batch.ExecutionContext) error {
	if err := w.file.refuseDryRun(ctx); err != nil {
		return err
	}
	return w.file.open(ec)
}

// Write encodes items, to be written by the Update of the same commit; a
// retried commit's Write replaces them. An item that does not encode fails
// the Write with an [*ItemError], and nothing of the chunk is written.
func (w *JSONArrayFile[T]) Write(ctx context.Context, items []T) error {
	return stageChunk(ctx, w.file, items, func(out *bytes.Buffer) error {
		for i, it := range items {
			if i > 0 {
				out.WriteByte(',')
			}
			out.WriteByte('\n')
			if err := encodeJSON(out, it, w.marshal); err != nil {
				return w.file.itemError(i+1, it, err)
			}
		}
		return nil
	})
}

// Update writes the items encoded by Write and the closing bracket at the
// offset stored in ec, syncs the file, and stores the new offset (before the
// bracket) and item count in ec.
func (w *JSONArrayFile[T]) Update(ctx context.Context, ec batch.ExecutionContext) error {
	return w.file.update(ctx, ec)
}

// Close closes the file; Open may be called again.
func (w *JSONArrayFile[T]) Close(context.Context) error { return w.file.close() }
