package batch

import "context"

// ItemListener is told about every item of a chunk step as it is read,
// processed and written. Set the hooks you need; nil ones are not called.
// Give a *ItemListener[T, U] — T and U those of the step — in
// ChunkConfig.Listeners. The hooks observe: they cannot fail the step (a
// panic in one fails it, as any panic does).
//
// The write hooks run inside the chunk's transaction: AfterWrite means the
// writer returned, not that the chunk committed (an AfterChunkListener is
// told that). Retries call the hooks again for each attempt. As for the
// writer, the items slice the write hooks get is reused for the next chunk:
// a hook that keeps items copies them.
type ItemListener[T, U any] struct {
	// BeforeRead is called before each call to the reader.
	BeforeRead func(ctx context.Context)
	// AfterRead is called with each item the reader returned.
	AfterRead func(ctx context.Context, item T)
	// OnReadError is called with each error the reader returned, other
	// than the end of the input.
	OnReadError func(ctx context.Context, err error)
	// BeforeProcess is called with each item before it is processed.
	BeforeProcess func(ctx context.Context, item T)
	// AfterProcess is called with each item and its result, unless the
	// processor filtered it out.
	AfterProcess func(ctx context.Context, item T, result U)
	// OnFilter is called with each item the processor filtered out.
	OnFilter func(ctx context.Context, item T)
	// OnProcessError is called with each item and the error its processing
	// returned.
	OnProcessError func(ctx context.Context, item T, err error)
	// BeforeWrite is called with the items of each write.
	BeforeWrite func(ctx context.Context, items []U)
	// AfterWrite is called with the items of each write that succeeded.
	AfterWrite func(ctx context.Context, items []U)
	// OnWriteError is called with the items of each write that failed,
	// and its error.
	OnWriteError func(ctx context.Context, items []U, err error)
}

// Call describes one call of a chunk step to its reader, processor or
// writer, for an [Interceptor].
type Call struct {
	Step  string
	Phase string // "read", "process" or "write"
	Chunk int64  // 1-based number of the chunk within the step execution
	// Item is the number of the item read or processed, or of the first
	// item of a write, counted from 1 over all executions of the step; in
	// a replay, the number the item had where it was skipped.
	Item  int64
	Items int // the items of a write; 1 for a read or a process
}

// Interceptor wraps the calls of a chunk step to its reader, processor and
// writer, as HTTP middleware wraps a handler: it calls next exactly once,
// may do something before and after — time the call, trace it, count it —
// and returns next's error, which it may wrap but not drop. The read that
// finds the end of the input returns nil to the interceptor.
type Interceptor func(ctx context.Context, call Call, next func(ctx context.Context) error) error

// intercept runs fn inside the interceptors, the first outermost.
func intercept(ctx context.Context, ics []Interceptor, call Call, fn func(ctx context.Context) error) error {
	if len(ics) == 0 {
		return fn(ctx)
	}
	return ics[0](ctx, call, func(ctx context.Context) error {
		return intercept(ctx, ics[1:], call, fn)
	})
}
