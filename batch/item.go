package batch

import (
	"context"
	"errors"
)

// ItemReader reads the items a chunk step works on, one per call.
//
// Read returns the next item. At the end of the input it returns the zero T
// and [io.EOF] — exactly io.EOF, not wrapped — and keeps returning io.EOF if
// called again. Any other error fails the step (or, once a skip policy says so,
// skips the item). Errors should name where the bad input is: file and line,
// page, key.
//
// A reader that must resume where it stopped after a restart also implements
// [ItemStream].
type ItemReader[T any] interface {
	Read(ctx context.Context) (T, error)
}

// ItemProcessor turns a read item into the item to write. To drop an item
// without writing it, Process returns [ErrFilter]; the item then counts as
// filtered, not as an error.
type ItemProcessor[T, U any] interface {
	Process(ctx context.Context, item T) (U, error)
}

// ItemWriter writes one chunk of items. Write is called once per chunk, with
// every item of the chunk that was not filtered, inside the chunk's
// transaction: a writer whose database is the job repository's joins that
// transaction through [JoinTx], so that its rows and the step's checkpoint
// commit together (exactly once). A writer that commits on its own (another
// database, a file, an API) commits before the checkpoint: after a crash its
// last chunk may be written again, and its documentation says so.
//
// Write must not keep items once it returns: the step reuses the slice for
// the next chunk. A writer that holds items for later copies them.
type ItemWriter[U any] interface {
	Write(ctx context.Context, items []U) error
}

// ItemStream is implemented by readers, processors and writers that keep
// restart state. The step calls Open once before the first item with the
// step's [ExecutionContext] (empty on a first run, the last committed one on a
// restart), Update before every chunk commit so that the stream records its
// position in the context that is committed with the chunk, and Close once at
// the end of the step, whatever the outcome.
//
// Update is called inside the chunk's transaction, after the writer's Write.
// The context it gets is a fresh copy of the last committed checkpoint's
// context: on the first attempt of a commit and on every retry alike, it
// holds the values the stream stored at the last commit that landed, never
// those of an attempt that rolled back. A stream that writes outside the
// transaction (a file) can therefore find there where its committed output
// ends. A stream that a wrapper hides from the step is named in
// ChunkConfig.ReaderStream (a reader's) or ChunkConfig.Streams (any other).
//
// A step with ChunkConfig.ReadAhead calls its reader's Update once the
// chunk's last item is read, before it reads on: outside the transaction,
// with the same copy; what the reader stores there is committed with the
// chunk.
type ItemStream interface {
	Open(ctx context.Context, ec ExecutionContext) error
	Update(ctx context.Context, ec ExecutionContext) error
	Close(ctx context.Context) error
}

// ErrFilter is returned by an [ItemProcessor] to drop an item: it is counted
// in the step's filter count and not written.
var ErrFilter = errors.New("batch: item filtered")

// ReaderFunc adapts a function to an [ItemReader].
type ReaderFunc[T any] func(ctx context.Context) (T, error)

// Read calls f.
func (f ReaderFunc[T]) Read(ctx context.Context) (T, error) { return f(ctx) }

// ProcessorFunc adapts a function to an [ItemProcessor].
type ProcessorFunc[T, U any] func(ctx context.Context, item T) (U, error)

// Process calls f.
func (f ProcessorFunc[T, U]) Process(ctx context.Context, item T) (U, error) { return f(ctx, item) }

// WriterFunc adapts a function to an [ItemWriter].
type WriterFunc[U any] func(ctx context.Context, items []U) error

// Write calls f.
func (f WriterFunc[U]) Write(ctx context.Context, items []U) error { return f(ctx, items) }
