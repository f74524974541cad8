package writer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/chunkwise/chunkwise/batch"
)

// ItemError is the error of a Write with an item that cannot be formatted:
// fields that could not be computed, a value too wide for its column, an item
// that does not encode as JSON. Nothing of the chunk is written. The error
// concerns that item only: a step whose Skip policy matches it (for example
// batch.MatchType[*writer.ItemError]()) writes the chunk again item by item
// and skips just that one. Every other error of a file writer (opening,
// writing or syncing the file) ends the step.
type ItemError struct {
	File     string // the file's path
	Position int    // 1-based position of the item in the chunk given to Write
	Value    any    // the item
	Err      error  // what is wrong with it

	kind string // "csv file", "json lines file", ...
}

// Error returns "writer: KIND PATH: item N of the chunk (VALUE): ERR", the
// value shortened if long.
func (e *ItemError) Error() string {
	v := []rune(fmt.Sprintf("%+v", e.Value))
	if len(v) > 80 {
		v = append(v[:77], '.', '.', '.')
	}
	return fmt.Sprintf("writer: %s %s: item %d of the chunk (%s): %v", e.kind, e.File, e.Position, string(v), e.Err)
}

// Unwrap returns Err.
func (e *ItemError) Unwrap() error { return e.Err }

// ErrValueTooWide is matched by the error of an item whose value is wider
// than its fixed-width column: values are never cut.
var ErrValueTooWide = errors.New("value wider than its column")

// Key suffixes of a file writer in the execution context, after its name.
const (
	offsetSuffix  = ".offset"  // end of the committed data, before the footer
	writtenSuffix = ".written" // items in the committed data
)

// txFile is the mechanism of the file writers and of RejectFile: a file
// whose content moves with the step's checkpoints. The file holds a header,
// the data of the committed chunks, and a footer for the number of items
// written. A commit attempt stages its data (Write, OnSkip); Update then
// writes it at the data offset stored with the last committed checkpoint —
// over anything a failed attempt left there — followed by the footer, syncs
// the file, and stores the new data offset and item count in the checkpoint
// being committed. A restart (Open with a stored offset) cuts the file back
// to the committed offset and rewrites the footer. So whatever the moment of
// a crash, after the restart the file holds every committed item once and
// nothing of a chunk that did not commit.
//
// Each rewrite is one write at the offset, covering the old footer and
// padded with spaces over anything longer that follows (then cut off): the
// file goes from one complete form to the next without an intermediate state
// in which a process killed between two system calls leaves it without its
// footer.
//
// Staged data is written only by the Update of the commit attempt that
// staged it: an attempt that fails between Write and Update (a writer after
// this one fails) and is followed by an attempt without a Write (the skip
// of that item, committed alone) must not write it. Attempts are told apart
// by batch.CommitAttempt.
type txFile struct {
	path                  string
	kind                  string // names the writer in errors: "csv file"
	offsetKey, writtenKey string
	append                bool
	header                func(w io.Writer) error
	footer                func(w io.Writer, written int64) error
	// lead, when set, returns what goes before a chunk's data given the
	// number of items before it (the comma between the items of a JSON
	// array).
	lead func(written int64) []byte

	mu      sync.Mutex
	f       *os.File
	start   position // where the data of a first run begins
	at      position // what the file holds; valid is false when unknown
	pending staged
}

// position is an end of the data in the file: its byte offset and the
// number of items before it.
type position struct {
	offset, written int64
	valid           bool
}

// staged is what a commit attempt will write at Update.
type staged struct {
	attempt uint64 // batch.CommitAttempt of the attempt that staged it
	data    []byte
	items   int64
}

// fileConfig holds what every file writer configures.
// refuseDryRun refuses a dry run: the file cannot be rolled back with the
// chunk's transaction.
func (f *txFile) refuseDryRun(ctx context.Context) error {
	if batch.IsDryRun(ctx) {
		return fmt.Errorf("writer: %s %s: %w: the file is written outside the chunk's transaction", f.kind, f.path, batch.ErrDryRun)
	}
	return nil
}

type fileConfig struct {
	kind   string
	path   string
	name   string
	append bool
	header func(w io.Writer) error
	footer func(w io.Writer, written int64) error
	lead   func(written int64) []byte
}

func newTxFile(cfg fileConfig) (*txFile, error) {
	if cfg.path == "" {
		return nil, fmt.Errorf("writer: %s: no Path", cfg.kind)
	}
	if cfg.name == "" {
		cfg.name = "writer." + filepath.Base(cfg.path)
	}
	return &txFile{
		path: cfg.path, kind: cfg.kind,
		offsetKey: cfg.name + offsetSuffix, writtenKey: cfg.name + writtenSuffix,
		append: cfg.append, header: cfg.header, footer: cfg.footer, lead: cfg.lead,
	}, nil
}

func (t *txFile) errorf(format string, args ...any) error {
	return fmt.Errorf("writer: %s %s: "+format, append([]any{t.kind, t.path}, args...)...)
}

func (t *txFile) itemError(pos int, v any, err error) error {
	return &ItemError{File: t.path, Position: pos, Value: v, Err: err, kind: t.kind}
}

// stored returns the position stored in ec, and whether there is one.
func (t *txFile) stored(ec batch.ExecutionContext) (position, bool, error) {
	var p position
	ok, err := ec.Get(t.offsetKey, &p.offset)
	if err != nil || !ok {
		if err != nil {
			err = t.errorf("%w", err)
		}
		return p, false, err
	}
	has, err := ec.Get(t.writtenKey, &p.written)
	switch {
	case err != nil:
		return p, false, t.errorf("%w", err)
	case !has && (t.footer != nil || t.lead != nil):
		return p, false, t.errorf("the execution context has %s but not %s", t.offsetKey, t.writtenKey)
	case p.offset < 0 || p.written < 0:
		return p, false, t.errorf("invalid position in the execution context: offset %d, %d items", p.offset, p.written)
	}
	p.valid = true
	return p, true, nil
}

// open opens the file. With a position in ec (a restart) it cuts the file
// back to it and rewrites the footer; without one (a first run) it creates
// or empties the file and writes the header and the footer — or, when
// appending, keeps what the file holds and writes the header only into an
// empty file.
func (t *txFile) open(ec batch.ExecutionContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f != nil {
		_ = t.f.Close()
		t.f = nil
	}
	t.pending, t.at = staged{}, position{}
	pos, restart, err := t.stored(ec)
	if err != nil {
		return err
	}
	flag := os.O_RDWR | os.O_CREATE
	switch {
	case restart && pos.offset > 0:
		flag = os.O_RDWR // the file must be there
	case !restart && !t.append:
		flag |= os.O_TRUNC
	}
	f, err := os.OpenFile(t.path, flag, 0o644)
	if err != nil {
		return fmt.Errorf("writer: %s: %w", t.kind, err)
	}
	t.f = f
	fail := func(err error) error {
		_ = f.Close()
		t.f = nil
		return err
	}
	if err := syncDir(filepath.Dir(t.path)); err != nil {
		return fail(t.errorf("%w", err))
	}
	if restart {
		if _, err := t.rewrite(pos, staged{}); err != nil {
			return fail(err)
		}
		t.start = pos
		return nil
	}
	start := position{valid: true}
	if t.append {
		fi, err := f.Stat()
		if err != nil {
			return fail(t.errorf("%w", err))
		}
		start.offset = fi.Size()
	}
	var head bytes.Buffer
	if t.header != nil && start.offset == 0 {
		if err := t.header(&head); err != nil {
			return fail(t.errorf("header: %w", err))
		}
	}
	// The header goes in as data of no items.
	if t.start, err = t.rewrite(start, staged{data: head.Bytes()}); err != nil {
		return fail(err)
	}
	return nil
}

// syncDir syncs a directory, so that a file created in it is there after a
// power failure.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// stage makes data, formatted from items items, what the commit attempt of
// ctx writes at Update, replacing what an earlier attempt staged.
func (t *txFile) stage(ctx context.Context, data []byte, items int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending = staged{attempt: batch.CommitAttempt(ctx), data: data, items: items}
}

// add adds data to what the commit attempt of ctx writes at Update. What an
// earlier attempt staged is dropped.
func (t *txFile) add(ctx context.Context, data []byte, items int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a := batch.CommitAttempt(ctx); t.pending.attempt != a {
		t.pending = staged{attempt: a}
	}
	t.pending.data = append(t.pending.data, data...)
	t.pending.items += items
}

// stageChunk formats a chunk with format and stages it for the Update of
// the commit attempt of ctx. When format fails nothing is staged.
func stageChunk[T any](ctx context.Context, t *txFile, items []T, format func(out *bytes.Buffer) error) error {
	if err := ctx.Err(); err != nil {
		t.stage(ctx, nil, 0)
		return err
	}
	var buf bytes.Buffer
	if err := format(&buf); err != nil {
		t.stage(ctx, nil, 0)
		return err
	}
	t.stage(ctx, buf.Bytes(), int64(len(items)))
	return nil
}

// update writes the staged data and the footer at the position stored in ec
// (on a first run, the start), syncs the file, and stores the new position
// in ec. Data staged by another commit attempt (one that failed between its
// Write and its Update) is dropped.
func (t *txFile) update(ctx context.Context, ec batch.ExecutionContext) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f == nil {
		return t.errorf("not open")
	}
	pos, ok, err := t.stored(ec)
	if err != nil {
		return err
	}
	if !ok {
		pos = t.start
	}
	p := t.pending
	t.pending = staged{}
	if p.attempt != batch.CommitAttempt(ctx) {
		p = staged{}
	}
	if p.items > 0 || len(p.data) > 0 || pos != t.at {
		if pos, err = t.rewrite(pos, p); err != nil {
			return err
		}
	}
	if err := ec.Put(t.offsetKey, pos.offset); err != nil {
		return t.errorf("%w", err)
	}
	if err := ec.Put(t.writtenKey, pos.written); err != nil {
		return t.errorf("%w", err)
	}
	return nil
}

// rewrite makes the file end, from pos, with p's data and the footer, syncs
// it, and returns the end of the data.
func (t *txFile) rewrite(pos position, p staged) (position, error) {
	t.at = position{} // unknown until the rewrite completes
	fi, err := t.f.Stat()
	if err != nil {
		return pos, t.errorf("%w", err)
	}
	size := fi.Size()
	if pos.offset > size {
		return pos, t.errorf("the file has %d bytes, fewer than the %d of the last checkpoint: was it changed by another program?", size, pos.offset)
	}
	var buf bytes.Buffer
	if p.items > 0 && t.lead != nil {
		buf.Write(t.lead(pos.written))
	}
	buf.Write(p.data)
	next := position{offset: pos.offset + int64(buf.Len()), written: pos.written + p.items, valid: true}
	if t.footer != nil {
		if err := t.footer(&buf, next.written); err != nil {
			return pos, t.errorf("footer: %w", err)
		}
	}
	end := pos.offset + int64(buf.Len())
	if size > end {
		// Spaces over the rest, cut off next: the file is never without
		// its footer.
		buf.Write(bytes.Repeat([]byte{' '}, int(size-end)))
	}
	if buf.Len() > 0 {
		if _, err := t.f.WriteAt(buf.Bytes(), pos.offset); err != nil {
			return pos, t.errorf("%w", err)
		}
	}
	if size > end {
		if err := t.f.Truncate(end); err != nil {
			return pos, t.errorf("%w", err)
		}
	}
	if err := t.f.Sync(); err != nil {
		return pos, t.errorf("%w", err)
	}
	t.at = next
	return next, nil
}

// close closes the file; open may be called again.
func (t *txFile) close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending, t.at = staged{}, position{}
	if t.f == nil {
		return nil
	}
	err := t.f.Close()
	t.f = nil
	if err != nil {
		return t.errorf("%w", err)
	}
	return nil
}
