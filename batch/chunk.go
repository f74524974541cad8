package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultChunkSize is the chunk size used when none is configured.
const DefaultChunkSize = 100

// Step context keys kept by the chunk step itself.
const (
	// itemsKey holds the number of items read through committed chunks over
	// all executions of the step, so that error messages number items the
	// same way across restarts.
	itemsKey = "batch.chunk.items"
	// doneKey is set while a chunk is committed in parts (a scan after a
	// skippable write error, or a no-rollback processor error): the number
	// of the chunk's items already handled. A restart reads the chunk again
	// from its start and passes over that many items.
	doneKey = "batch.chunk.done"
	// readErrorsKey goes with doneKey: the number of read errors of the
	// chunk, already counted and reported, that the re-read passes over.
	readErrorsKey = "batch.chunk.read-errors"
	// eofKey is set by the last commit of the step, made after the reader
	// returned io.EOF: a restart (after a failure past that commit) has
	// nothing left to read, and must not read again the bad records that
	// may follow the last item.
	eofKey = "batch.chunk.eof"
	// resumedKey is set by a restarted step before its first chunk: the
	// number of the first item it reads (see StepExecution.ResumedAt).
	resumedKey = "batch.chunk.resumed-at"
)

// Defaults of the fault-tolerance settings.
const (
	DefaultSkipLimit  = 10
	DefaultRetryLimit = 3
)

// ChunkConfig configures a chunk step.
type ChunkConfig[T, U any] struct {
	// Reader reads the items. Required.
	Reader ItemReader[T]
	// Processor turns each item into the item to write, or filters it out.
	// Optional when T and U are the same type: items are then written as
	// read.
	Processor ItemProcessor[T, U]
	// Writer writes each chunk. Required.
	Writer ItemWriter[U]
	// ChunkSize is the number of items read, processed and written per
	// transaction. Default DefaultChunkSize (100).
	ChunkSize int
	// Listeners receive the step's, chunks', items', skips' and retries'
	// events. A listener that is also an ItemStream is opened, updated and
	// closed with the step (a reject file keeps its offset that way).
	// Default none.
	Listeners []Listener
	// ReaderStream is the stream of the reader when Reader is a wrapper
	// that hides it: a function or decorator around a restartable reader.
	// The step keeps the reader's position through it — a chunk that is
	// read again after a restart starts where the stream stood at the
	// chunk's start. Default: Reader itself, when it is an ItemStream.
	ReaderStream ItemStream
	// Streams are opened, updated and closed with the step, besides the
	// reader, processor, writer and listeners that are streams themselves:
	// the other streams a wrapper hides (a writer that delegates to one it
	// keeps in a field, a processor's state). Not the reader's: that is
	// ReaderStream. A stream listed twice, or also found among the
	// components, is used once; one that a component opens itself (a
	// writer inside writer.Composite or writer.Route) must not be listed.
	// Default none.
	Streams []ItemStream
	// AllowStartIfComplete makes a restart run the step again even if it
	// completed in an earlier execution. Default false: a completed step is
	// skipped on restart.
	AllowStartIfComplete bool
	// StartLimit is how many times the step may be started for one job
	// instance; the next start fails with ErrStartLimitExceeded. Default 0:
	// no limit.
	StartLimit int

	// Skip matches the errors that skip an item instead of failing the
	// step: a read error skips the record, a process error the item, and a
	// write error makes the step roll the chunk back and write its items one
	// by one, each in its own transaction, so that only the items whose
	// write fails are skipped. Default nil: nothing is skipped.
	Skip ErrorMatcher
	// SkipLimit is the most items one step execution may skip, all phases
	// together; one more fails the step with ErrSkipLimitExceeded. Default
	// DefaultSkipLimit (10) when Skip is set; negative means no limit.
	SkipLimit int
	// Retry matches the errors that are retried: a process error retries
	// that item, a write or commit error the whole chunk transaction.
	// Default Transient (serialization failures, deadlocks, broken
	// connections).
	Retry ErrorMatcher
	// ReadRetry matches the read errors that are retried: Read is called
	// again after the backoff, as for writes. Default: Retry. Set NoErrors
	// for a reader that cannot be asked again after an error (one that
	// moves past the record that failed).
	ReadRetry ErrorMatcher
	// RetryLimit is how many times one item, read or chunk is retried
	// before its error counts as final (and is then skipped if Skip matches
	// it): it counts retries, not attempts (Spring Batch's retryLimit counts
	// attempts: its 3 is this 2). Default DefaultRetryLimit (3); negative
	// means no retries.
	RetryLimit int
	// Backoff spaces the retries. Default: see Backoff.
	Backoff Backoff
	// NoRollback matches processor errors that must not undo the chunk: the
	// items processed before the failing one are written and committed, and
	// then the step fails at that item; a restart resumes with it. Default
	// nil.
	NoRollback ErrorMatcher
	// ProcessWorkers processes the items of each chunk on that many
	// goroutines (the step's own and ProcessWorkers-1 more), for a
	// processor that is CPU-bound: the items are written in their order,
	// and filter, skip and retry behave and count exactly as with one
	// goroutine. The processor, the interceptors and the item and retry
	// listeners are then called from several goroutines at once and must
	// be safe for that; the items after one that fails the step may have
	// been processed too. With ReadAhead the next chunk's items are
	// processed while this one is written and committed. A chunk written
	// item by item after a skippable write error is processed again one
	// item at a time. Between chunks the goroutines poll for work for
	// some 50µs before they sleep: waking a sleeping goroutine can cost
	// more than a short commit. Default 1: one item after another, on the
	// step's goroutine.
	ProcessWorkers int
	// ReadAhead reads the next chunk while this one is processed, written
	// and committed, so that the reading (parsing a file, waiting for the
	// next page of an API) overlaps the processor, the writer and the
	// commit instead of waiting for them. The reader — with the
	// interceptors' and the item listeners' read calls — then runs on a
	// goroutine of its own, concurrently with the processor, the writer,
	// the chunk listeners and the checkpoint of the chunk before, and must
	// share no unsynchronised state with them; it is never called by two
	// goroutines at once, and never inside a chunk's transaction. Each
	// checkpoint still saves the reader's position at the end of the chunk
	// it commits, taken before the reading ahead began: a restart reads the
	// next chunk again, and nothing read (or processed) ahead is lost or
	// counted. A read error ahead is handled (retried, skipped or failing
	// the step) once the chunk before has committed, as without
	// read-ahead. Default false: the reader is called between commits only.
	ReadAhead bool
	// Interceptors wrap every call to the reader, the processor and the
	// writer, the first outermost: where timing, tracing and metrics plug
	// in. Default none.
	Interceptors []Interceptor
	// ProcessorNonTransactional declares that the processor has no effects
	// a rollback should undo and may not be called twice for an item: a
	// chunk written item by item after a skippable write error reuses the
	// processed items instead of processing them again. Default false.
	ProcessorNonTransactional bool
}

// ChunkStep reads, processes and writes items in chunks, one transaction per
// chunk. Build one with [NewChunkStep].
type ChunkStep[T, U any] struct {
	name    string
	cfg     ChunkConfig[T, U]
	streams []ItemStream
	reader  ItemStream // the reader's stream, when it has one
	items   []*ItemListener[T, U]
	// numbers are the items' numbers in a replay (see number).
	numbers []int64
}

// NewChunkStep returns a chunk step. It fails with ErrInvalidConfig if the
// configuration is incomplete.
func NewChunkStep[T, U any](name string, cfg ChunkConfig[T, U]) (*ChunkStep[T, U], error) {
	if name == "" {
		return nil, configError("chunk step: empty name")
	}
	if cfg.Reader == nil {
		return nil, configError("step %s: no reader", name)
	}
	if cfg.Writer == nil {
		return nil, configError("step %s: no writer", name)
	}
	if cfg.Processor == nil && reflect.TypeFor[T]() != reflect.TypeFor[U]() {
		return nil, configError("step %s: no processor from %v to %v", name, reflect.TypeFor[T](), reflect.TypeFor[U]())
	}
	if cfg.ChunkSize < 0 {
		return nil, configError("step %s: negative chunk size %d", name, cfg.ChunkSize)
	}
	if cfg.StartLimit < 0 {
		return nil, configError("step %s: negative start limit %d", name, cfg.StartLimit)
	}
	if cfg.ProcessWorkers < 0 {
		return nil, configError("step %s: negative ProcessWorkers %d", name, cfg.ProcessWorkers)
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.SkipLimit == 0 {
		cfg.SkipLimit = DefaultSkipLimit
	}
	if cfg.Retry == nil {
		cfg.Retry = Transient
	}
	if cfg.ReadRetry == nil {
		cfg.ReadRetry = cfg.Retry
	}
	if cfg.RetryLimit == 0 {
		cfg.RetryLimit = DefaultRetryLimit
	}
	if cfg.RetryLimit < 0 {
		cfg.RetryLimit = 0
	}
	for i, l := range cfg.Listeners {
		if _, ok := l.(SkipListener[T, U]); !ok && hasMethod(l, "OnSkip") {
			return nil, configError("step %s: listener %d (%T) is not a SkipListener[%v, %v]",
				name, i, l, reflect.TypeFor[T](), reflect.TypeFor[U]())
		}
	}
	if err := validateListeners("step "+name, chunkListeners, cfg.Listeners, func(l Listener) bool {
		_, ok := l.(SkipListener[T, U])
		return ok
	}, func(l Listener) bool {
		il, ok := l.(*ItemListener[T, U])
		return ok && il != nil
	}); err != nil {
		return nil, err
	}
	s := &ChunkStep[T, U]{name: name, cfg: cfg}
	for _, l := range cfg.Listeners {
		if il, ok := l.(*ItemListener[T, U]); ok {
			s.items = append(s.items, il)
		}
	}
	if st, ok := cfg.Reader.(ItemStream); ok {
		s.reader = st
	}
	if cfg.ReaderStream != nil {
		if s.reader != nil && s.reader != cfg.ReaderStream {
			return nil, configError("step %s: ReaderStream is set, and Reader is a stream of its own", name)
		}
		s.reader = cfg.ReaderStream
	}
	components := []any{s.reader, cfg.Reader, cfg.Processor, cfg.Writer}
	for _, l := range cfg.Listeners {
		components = append(components, l)
	}
	for _, st := range cfg.Streams {
		components = append(components, st)
	}
	for _, c := range components {
		if st, ok := c.(ItemStream); ok && !containsStream(s.streams, st) {
			s.streams = append(s.streams, st)
		}
	}
	return s, nil
}

func containsStream(list []ItemStream, s ItemStream) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// skips reports whether err skips the item it concerns.
func (s *ChunkStep[T, U]) skips(err error) bool {
	return s.cfg.Skip.Matches(err) || errors.Is(err, ErrSkippable)
}

// Name returns the step's name.
func (s *ChunkStep[T, U]) Name() string { return s.name }

// AllowStartIfComplete reports whether a restart runs the step again after it
// completed.
func (s *ChunkStep[T, U]) AllowStartIfComplete() bool { return s.cfg.AllowStartIfComplete }

// StartLimit returns how many times the step may be started for one job
// instance; 0 means no limit.
func (s *ChunkStep[T, U]) StartLimit() int { return s.cfg.StartLimit }

// Listeners returns the step's listeners.
func (s *ChunkStep[T, U]) Listeners() []Listener { return s.cfg.Listeners }

// Execute runs the step: it opens the streams with the step's context, then
// reads, processes and writes chunks until the reader is exhausted, a stop is
// requested, or an error occurs, and closes the streams.
func (s *ChunkStep[T, U]) Execute(ctx context.Context, sc StepContext) (err error) {
	ctx = WithStepContext(ctx, sc)
	se := sc.StepExecution()
	opened := 0
	defer func() {
		for i := opened - 1; i >= 0; i-- {
			if cerr := s.streams[i].Close(context.WithoutCancel(ctx)); cerr != nil && err == nil {
				err = &StepError{Step: s.name, Phase: "close", Err: cerr}
			}
		}
	}()
	for _, st := range s.streams {
		if err := st.Open(ctx, se.Context); err != nil {
			return &StepError{Step: s.name, Phase: "open", Err: err}
		}
		opened++
	}
	// Record the streams' starting state before the first chunk, so that a
	// stream that appends to a file knows where this execution began even
	// if its first commit does not land.
	for _, st := range s.streams {
		if err := st.Update(ctx, se.Context); err != nil {
			return &StepError{Step: s.name, Phase: "update", Err: err}
		}
	}
	var atEOF bool
	if _, err := se.Context.Get(eofKey, &atEOF); err == nil && atEOF {
		return nil // the last chunk committed before a failure at the very end
	}
	base, _ := se.Context.Int64(itemsKey)
	done, _ := se.Context.Int64(doneKey)
	readErrors, _ := se.Context.Int64(readErrorsKey)
	if s.reader == nil {
		// A reader without a position starts again from its beginning: the
		// chunk-relative state of a partial commit does not apply.
		base, done, readErrors = 0, 0, 0
	}
	delete(se.Context, resumedKey)
	if base+done > 0 {
		if err := se.Context.Put(resumedKey, base+done+1); err != nil {
			return &StepError{Step: s.name, Phase: "update", Err: err}
		}
	}
	if len(s.streams) > 0 || base+done > 0 {
		if err := sc.Save(ctx); err != nil {
			return &StepError{Step: s.name, Phase: "update", Err: err}
		}
	}
	base, _ = se.Context.Int64(itemsKey) // item numbers go on counting
	var (
		commitSeq uint64
		bufs      chunkBuffers[T, U]
		start     ExecutionContext // with ReadAhead, the reader's state where the next chunk starts
		cur       *chunk[T, U]     // the chunk being run
		next      *chunk[T, U]     // the chunk being read ahead
		waitAhead func() *workerPanic
	)
	var pool *processPool[T, U]
	if s.cfg.ProcessWorkers > 1 && s.cfg.Processor != nil {
		pool = startProcessPool[T, U](s.cfg.ProcessWorkers - 1)
	}
	// The reading and processing ahead end before the streams close
	// (deferred before).
	aheadCtx, stopAhead := context.WithCancel(ctx)
	defer func() {
		stopAhead()
		if waitAhead != nil {
			if p := waitAhead(); p != nil {
				// The step fails for another reason already.
				sc.Logger().Error("the reader panicked reading ahead", "panic", p.String())
			}
		}
		if pool != nil {
			pool.stop()
			// The step fails for another reason already, at an item before.
			for _, x := range []*chunk[T, U]{cur, next} {
				if p := x.unraised(); p != nil {
					sc.Logger().Error("the processor panicked on an item the step did not get to", "chunk", x.n, "panic", p.String())
				}
			}
		}
	}()
	for n := int64(1); ; n++ {
		if sc.StopRequested() {
			return ErrStopped
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		c := next
		if c != nil {
			next = nil
			p := waitAhead()
			waitAhead = nil
			if p != nil {
				panic(*p)
			}
		} else {
			c = &chunk[T, U]{s: s, sc: sc, n: n, base: base, commitSeq: &commitSeq, bufs: &bufs, pool: pool,
				done: int(done), replayReadErrors: readErrors}
		}
		c.readerStart = start
		if s.reader != nil && c.readerStart == nil {
			c.readerStart = ExecutionContext{}
			if err := s.reader.Update(ctx, c.readerStart); err != nil {
				return &StepError{Step: s.name, Chunk: n, Phase: "update", Err: err}
			}
		}
		if s.cfg.ReadAhead {
			c.readAhead = func() {
				next = &chunk[T, U]{s: s, sc: sc, n: n + 1, base: c.base + int64(len(c.slots)), commitSeq: &commitSeq,
					bufs: &bufs, buf: 1 - c.buf, pool: pool, replayReadErrors: c.replayReadErrors, ahead: true}
				waitAhead = next.fill(aheadCtx)
			}
		}
		cur = c
		eof, err := c.run(ctx)
		if err != nil {
			return err
		}
		base += int64(len(c.slots))
		done, readErrors = 0, c.replayReadErrors // errors counted before, still ahead
		start = c.readerEnd
		if eof {
			return nil
		}
	}
}

// What became of an item of a chunk.
type slotState int

const (
	slotRead           slotState = iota // read, not processed yet
	slotProcessed                       // processed, to be written
	slotFiltered                        // the processor filtered it out
	slotSkippedProcess                  // skipped after a process error
	slotSkippedWrite                    // skipped after a write error
	slotDone                            // handled before a restart; passed over
)

type slot[T, U any] struct {
	in    T
	out   U
	state slotState
	err   error
}

type readSkip struct {
	index int64 // the number the next item would have had
	err   error
}

// chunkBuffers are the slices a step's chunks reuse, one chunk after the
// other: the slots (two sets with ReadAhead: the chunk committed and the
// one read ahead), and the items handed to the writer.
type chunkBuffers[T, U any] struct {
	slots    [2][]slot[T, U]
	outcomes [2][]outcome[U] // with ProcessWorkers, one per slot
	out      []U
}

// chunk is one chunk of a step: its items and how far its commit got.
type chunk[T, U any] struct {
	s    *ChunkStep[T, U]
	sc   StepContext
	n    int64 // chunk number within this step execution
	base int64 // items of the step before this chunk
	// readerStart is the reader's state at the chunk's start: a partial
	// commit saves it, so that a restart reads the chunk again.
	readerStart ExecutionContext
	// readerEnd and progress, with ReadAhead, are what the reader's Update
	// changed in the last committed context, and its progress, when the
	// chunk's last item was read: what its final commit saves, and where
	// the next chunk starts.
	readerEnd ExecutionContext
	progress  *Progress
	commitSeq *uint64 // numbers the commit attempts of the step
	bufs      *chunkBuffers[T, U]
	buf       int // which of bufs.slots the chunk's slots are
	// ahead: the chunk's first items were read ahead, up to and without
	// aheadErr, the error (or io.EOF) that stopped that reading, which the
	// chunk's read handles first. readAhead, when set, starts reading the
	// next chunk ahead; run calls it once the chunk is processed.
	ahead     bool
	aheadErr  error
	readAhead func()
	// With ProcessWorkers, pool processes the chunk's items (with
	// workCtx): their results land in outcomes, pending counts those not
	// done yet, and panicked holds the first panic of the processor;
	// raised tells that the step's goroutine raised one again.
	pool     *processPool[T, U]
	work     []slot[T, U] // the slots, as the pool sees them
	workCtx  context.Context
	outcomes []outcome[U]
	taken    atomic.Int64 // the items taken to process
	limit    atomic.Int64 // the items submitted (from 0)
	queued   bool         // in the pool's queue (under its lock)
	pending  sync.WaitGroup
	left     atomic.Int64 // pending, to poll
	panicked atomic.Pointer[workerPanic]
	raised   bool

	slots     []slot[T, U]
	readSkips []readSkip
	// done is how many leading slots were handled by an earlier execution;
	// replayReadErrors how many read errors it already reported, and
	// replayedReadErrors how many of those the re-read passed over.
	done               int
	replayReadErrors   int64
	replayedReadErrors int64
	// committed is how many leading slots are committed (with done ones);
	// readSkipsCommitted whether readSkips are.
	committed          int
	readSkipsCommitted bool
	eof                bool // the reader returned io.EOF for this chunk
}

func (c *chunk[T, U]) cfg() *ChunkConfig[T, U] { return &c.s.cfg }

func (c *chunk[T, U]) stepErr(phase string, item int64, err error) error {
	return &StepError{Step: c.s.name, Chunk: c.n, Item: c.s.number(item), Phase: phase, Err: err}
}

// run reads, processes and commits the chunk. It reports whether the reader
// is exhausted.
func (c *chunk[T, U]) run(ctx context.Context) (bool, error) {
	eof, err := c.read(ctx)
	c.eof = eof
	if err != nil {
		c.sc.StepExecution().RollbackCount++
		c.chunkError(ctx, err)
		return false, err
	}
	if c.pool != nil {
		c.submit(ctx)
	}
	if c.readAhead != nil && !eof {
		// The next chunk is read (and its items processed, with
		// ProcessWorkers, after this one's) while this one is processed
		// and committed.
		c.readAhead()
	}
	for i := 0; i < c.done && i < len(c.slots); i++ {
		c.slots[i].state = slotDone
	}
	c.committed = min(c.done, len(c.slots))
	c.readSkipsCommitted = len(c.readSkips) == 0
	if c.committed == len(c.slots) && (len(c.readSkips) == 0 || c.readSkipsCommitted) {
		if c.committed > 0 {
			// Everything was handled; commit the end of the chunk.
			if err := c.commit(ctx, len(c.slots), true); err != nil {
				return false, err
			}
		}
		return eof, nil
	}
	var parallel []outcome[U]
	if c.pool != nil {
		parallel = c.processed()
		defer clear(parallel[:len(c.slots)])
	}
	for i := c.committed; i < len(c.slots); i++ {
		var err error
		if parallel != nil {
			o := parallel[i]
			if o.panic != nil {
				// Raised in the order of the chunk, as on one goroutine:
				// an item before it may have ended the chunk first.
				c.raised = true
				panic(*o.panic)
			}
			err = c.apply(ctx, i, o.out, o.err)
		} else {
			err = c.process(ctx, i)
		}
		if err != nil {
			if c.cfg().NoRollback.Matches(err) && i > c.committed {
				cerr := c.commitWithRetry(ctx, i, false)
				if cerr != nil && ctx.Err() == nil && c.s.skips(cerr) && !isCommitFailure(cerr) {
					cerr = c.scan(ctx, i, false)
				}
				if cerr != nil {
					return false, cerr
				}
			}
			c.sc.StepExecution().RollbackCount++
			c.chunkError(ctx, err)
			return false, err
		}
	}
	for _, l := range c.cfg().Listeners {
		if bl, ok := l.(BeforeChunkListener); ok {
			bl.BeforeChunk(ctx, c.event(nil))
		}
	}
	err = c.commitWithRetry(ctx, len(c.slots), true)
	if err != nil && ctx.Err() == nil && c.s.skips(err) && !isCommitFailure(err) {
		err = c.scan(ctx, len(c.slots), true)
	}
	if err != nil {
		c.chunkError(ctx, err)
		return false, err
	}
	for _, l := range c.cfg().Listeners {
		if al, ok := l.(AfterChunkListener); ok {
			al.AfterChunk(ctx, c.event(nil))
		}
	}
	return eof, nil
}

func (c *chunk[T, U]) event(err error) *ChunkEvent {
	return &ChunkEvent{Step: c.sc.StepExecution(), Chunk: c.n, Items: len(c.slots), Err: err}
}

func (c *chunk[T, U]) chunkError(ctx context.Context, err error) {
	for _, l := range c.cfg().Listeners {
		if el, ok := l.(ChunkErrorListener); ok {
			el.AfterChunkError(ctx, c.event(err))
		}
	}
}

// read fills the chunk with up to ChunkSize items, skipping the records
// whose read errors are skippable.
func (c *chunk[T, U]) read(ctx context.Context) (bool, error) {
	// A replayed chunk is read at least up to its handled items, whatever
	// the chunk size now.
	size := max(c.cfg().ChunkSize, c.done)
	if !c.ahead {
		c.slots = c.slotBuffer(size)
	}
	// The items of the chunk before that used the buffer are overwritten
	// as this one's are read; what is left of them past its end is
	// cleared.
	defer func() {
		buf := c.bufs.slots[c.buf]
		clear(buf[len(c.slots):cap(buf)])
	}()
	// Without item listeners and interceptors the reader is called
	// directly: one call less per item.
	plain := len(c.s.items) == 0 && len(c.cfg().Interceptors) == 0
	for len(c.slots) < size {
		index := c.base + int64(len(c.slots)) + 1
		// The item is read into its slot, not copied there.
		c.slots = append(c.slots, slot[T, U]{})
		sl := &c.slots[len(c.slots)-1]
		var err error
		switch {
		case c.aheadErr != nil: // what stopped the reading ahead
			err, c.aheadErr = c.aheadErr, nil
		case plain:
			sl.in, err = c.cfg().Reader.Read(ctx)
		default:
			sl.in, err = c.readItem(ctx, index)
		}
		for attempt := 1; err != nil && err != io.EOF && attempt <= c.cfg().RetryLimit &&
			ctx.Err() == nil && c.cfg().ReadRetry.Matches(err); attempt++ {
			if werr := c.retryWait(ctx, "read", index, attempt, err); werr != nil {
				c.slots = c.slots[:len(c.slots)-1]
				return false, c.stepErr("read", index, werr)
			}
			sl.in, err = c.readItem(ctx, index)
		}
		if err != nil {
			c.slots = c.slots[:len(c.slots)-1]
		}
		if err == io.EOF {
			return true, c.snapshot(ctx)
		}
		if err != nil {
			if c.replayReadErrors > 0 {
				c.replayReadErrors-- // counted and reported before the restart
				c.replayedReadErrors++
				continue
			}
			if ctx.Err() == nil && c.s.skips(err) {
				if lerr := c.checkSkipLimit("read", index, err); lerr != nil {
					return false, lerr
				}
				c.readSkips = append(c.readSkips, readSkip{index: index, err: err})
				continue
			}
			return false, c.stepErr("read", index, err)
		}
	}
	return false, c.snapshot(ctx)
}

// setAll sets the keys of src in dst, and removes those whose value in src
// is nil.
func setAll(dst, src ExecutionContext) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
		} else {
			dst[k] = v
		}
	}
}

// slotBuffer returns the chunk's buffer of slots, empty, with room for
// size.
func (c *chunk[T, U]) slotBuffer(size int) []slot[T, U] {
	if cap(c.bufs.slots[c.buf]) < size {
		c.bufs.slots[c.buf] = make([]slot[T, U], 0, size)
	}
	return c.bufs.slots[c.buf][:0]
}

// fill reads the chunk's items ahead, on a goroutine of its own, while the
// chunk before is processed and committed, and hands them to the
// processing goroutines, if any; an error (or io.EOF) stops it, and is
// left for read, which goes on from there once the chunk before has
// committed. The
// returned function waits for the goroutine, and returns a panic of the
// reader, to be raised again on the step's goroutine.
func (c *chunk[T, U]) fill(ctx context.Context) func() *workerPanic {
	done := make(chan *workerPanic, 1)
	go func() {
		var p *workerPanic
		defer func() {
			if v := recover(); v != nil {
				p = &workerPanic{value: v, stack: debug.Stack(), where: "reading ahead"}
			}
			done <- p
		}()
		size := c.cfg().ChunkSize
		c.slots = c.slotBuffer(size)
		plain := len(c.s.items) == 0 && len(c.cfg().Interceptors) == 0
		for len(c.slots) < size {
			c.slots = append(c.slots, slot[T, U]{})
			sl := &c.slots[len(c.slots)-1]
			var err error
			if plain {
				sl.in, err = c.cfg().Reader.Read(ctx)
			} else {
				sl.in, err = c.readItem(ctx, c.base+int64(len(c.slots)))
			}
			if err != nil {
				c.slots = c.slots[:len(c.slots)-1]
				c.aheadErr = err
				break
			}
		}
		if c.pool != nil {
			c.submit(ctx)
		}
	}()
	return func() *workerPanic { return <-done }
}

// snapshot takes the reader's state and progress at the end of the chunk,
// for its checkpoint, when the step reads ahead: once the next chunk is
// read, the reader is past it. Without ReadAhead the commit asks the
// reader. As in a commit, the reader's Update gets a copy of the last
// committed context; what it changed there is what the chunk's final
// commit sets, and where the next chunk starts.
func (c *chunk[T, U]) snapshot(ctx context.Context) error {
	if !c.cfg().ReadAhead {
		return nil
	}
	if c.s.reader != nil {
		last := c.sc.StepExecution().Context
		ec := last.Clone()
		if err := c.s.reader.Update(ctx, ec); err != nil {
			return &StepError{Step: c.s.name, Chunk: c.n, Phase: "update", Err: err}
		}
		c.readerEnd = ExecutionContext{}
		for k, v := range ec {
			if old, ok := last[k]; !ok || !bytes.Equal(old, v) {
				c.readerEnd[k] = v
			}
		}
		for k := range last {
			if _, ok := ec[k]; !ok {
				c.readerEnd[k] = nil // removed
			}
		}
	}
	if pr, ok := c.cfg().Reader.(ProgressReader); ok {
		p := pr.Progress()
		c.progress = &p
	}
	return nil
}

// readItem calls the reader, with the item listeners and interceptors.
func (c *chunk[T, U]) readItem(ctx context.Context, index int64) (T, error) {
	for _, il := range c.s.items {
		if il.BeforeRead != nil {
			il.BeforeRead(ctx)
		}
	}
	var (
		it  T
		err error
	)
	if len(c.cfg().Interceptors) == 0 {
		it, err = c.cfg().Reader.Read(ctx)
	} else {
		it, err = c.interceptRead(ctx, index)
	}
	for _, il := range c.s.items {
		switch {
		case err == nil && il.AfterRead != nil:
			il.AfterRead(ctx, it)
		case err != nil && err != io.EOF && il.OnReadError != nil:
			il.OnReadError(ctx, err)
		}
	}
	return it, err
}

// interceptRead calls the reader through the interceptors. (Apart from
// readItem, so that the item does not escape to the heap when there are
// none.)
func (c *chunk[T, U]) interceptRead(ctx context.Context, index int64) (T, error) {
	var it T
	eof := false
	err := intercept(ctx, c.cfg().Interceptors, Call{Step: c.s.name, Phase: "read", Chunk: c.n, Item: c.s.number(index), Items: 1},
		func(ctx context.Context) error {
			var rerr error
			it, rerr = c.cfg().Reader.Read(ctx)
			if rerr == io.EOF {
				eof, rerr = true, nil
			}
			return rerr
		})
	if eof && err == nil {
		err = io.EOF
	}
	return it, err
}

// interceptProcess calls the processor through the interceptors.
func (c *chunk[T, U]) interceptProcess(ctx context.Context, index int64, in T) (U, error) {
	var out U
	err := intercept(ctx, c.cfg().Interceptors, Call{Step: c.s.name, Phase: "process", Chunk: c.n, Item: c.s.number(index), Items: 1},
		func(ctx context.Context) error {
			var perr error
			out, perr = c.cfg().Processor.Process(ctx, in)
			return perr
		})
	return out, err
}

// processItem calls the processor, with the item listeners and
// interceptors.
func (c *chunk[T, U]) processItem(ctx context.Context, index int64, in T) (U, error) {
	for _, il := range c.s.items {
		if il.BeforeProcess != nil {
			il.BeforeProcess(ctx, in)
		}
	}
	var (
		out U
		err error
	)
	if len(c.cfg().Interceptors) == 0 {
		out, err = c.cfg().Processor.Process(ctx, in)
	} else {
		out, err = c.interceptProcess(ctx, index, in)
	}
	for _, il := range c.s.items {
		switch {
		case err == nil && il.AfterProcess != nil:
			il.AfterProcess(ctx, in, out)
		case errors.Is(err, ErrFilter) && il.OnFilter != nil:
			il.OnFilter(ctx, in)
		case err != nil && !errors.Is(err, ErrFilter) && il.OnProcessError != nil:
			il.OnProcessError(ctx, in, err)
		}
	}
	return out, err
}

// writeItems calls the writer, with the item listeners and interceptors.
func (c *chunk[T, U]) writeItems(ctx context.Context, first int64, items []U) error {
	for _, il := range c.s.items {
		if il.BeforeWrite != nil {
			il.BeforeWrite(ctx, items)
		}
	}
	var err error
	if len(c.cfg().Interceptors) == 0 {
		err = c.cfg().Writer.Write(ctx, items)
	} else {
		err = intercept(ctx, c.cfg().Interceptors, Call{Step: c.s.name, Phase: "write", Chunk: c.n, Item: c.s.number(first), Items: len(items)},
			func(ctx context.Context) error { return c.cfg().Writer.Write(ctx, items) })
	}
	for _, il := range c.s.items {
		switch {
		case err == nil && il.AfterWrite != nil:
			il.AfterWrite(ctx, items)
		case err != nil && il.OnWriteError != nil:
			il.OnWriteError(ctx, items, err)
		}
	}
	return err
}

// process processes slot i, retrying and skipping as configured. A
// returned error fails the step.
func (c *chunk[T, U]) process(ctx context.Context, i int) error {
	if c.cfg().Processor == nil {
		sl := &c.slots[i]
		sl.out, sl.state = any(sl.in).(U), slotProcessed
		return nil
	}
	sl := &c.slots[i]
	// Without item listeners and interceptors the processor is called
	// directly: one call less per item.
	plain := len(c.s.items) == 0 && len(c.cfg().Interceptors) == 0
	index := c.base + int64(i) + 1
	var err error
	for attempt := 0; ; attempt++ {
		// The result goes into the slot, not through copies.
		if plain {
			sl.out, err = c.cfg().Processor.Process(ctx, sl.in)
		} else {
			sl.out, err = c.processItem(ctx, index, sl.in)
		}
		if err == nil {
			sl.state = slotProcessed
			return nil
		}
		if errors.Is(err, ErrFilter) || ctx.Err() != nil || attempt >= c.cfg().RetryLimit || !c.cfg().Retry.Matches(err) {
			break
		}
		if werr := c.retryWait(ctx, "process", index, attempt+1, err); werr != nil {
			err = waitError{werr}
			break
		}
	}
	var zero U
	sl.out = zero
	return c.apply(ctx, i, zero, err)
}

// outcome is what the processing of one item came to.
type outcome[U any] struct {
	out   U
	err   error
	panic *workerPanic // the processor panicked
}

// waitError is the error of a retry whose backoff wait was interrupted.
type waitError struct{ err error }

func (e waitError) Error() string { return e.err.Error() }

// attempts runs the processor on item index, retrying as configured, and
// returns the result or the final error. It changes no slot: the items of
// a chunk may be processed concurrently.
func (c *chunk[T, U]) attempts(ctx context.Context, index int64, in T) (U, error) {
	for attempt := 0; ; attempt++ {
		out, err := c.processItem(ctx, index, in)
		if err == nil || errors.Is(err, ErrFilter) || ctx.Err() != nil ||
			attempt >= c.cfg().RetryLimit || !c.cfg().Retry.Matches(err) {
			return out, err
		}
		if werr := c.retryWait(ctx, "process", index, attempt+1, err); werr != nil {
			var zero U
			return zero, waitError{werr}
		}
	}
}

// apply records in slot i what its processing came to, in the order of the
// chunk: a skip is checked against the skip limit here. A returned error
// fails the step.
func (c *chunk[T, U]) apply(ctx context.Context, i int, out U, err error) error {
	sl := &c.slots[i]
	index := c.base + int64(i) + 1
	switch {
	case err == nil:
		sl.out, sl.state = out, slotProcessed
		return nil
	case errors.Is(err, ErrFilter):
		sl.state = slotFiltered
		return nil
	}
	if we, ok := err.(waitError); ok {
		return c.stepErr("process", index, we.err)
	}
	if ctx.Err() == nil && c.s.skips(err) {
		if lerr := c.checkSkipLimit("process", index, err); lerr != nil {
			return lerr
		}
		sl.state, sl.err = slotSkippedProcess, err
		return nil
	}
	return c.stepErr("process", index, err)
}

// processPool is the step execution's processing goroutines, with
// ProcessWorkers: ProcessWorkers-1 of them, and the step's goroutine helps
// with its chunk's items. They take the items of the chunks submitted, the
// oldest chunk first, until the pool stops. With ReadAhead the next
// chunk's items are submitted while the current one's are processed, so
// that the pool goes on working while the chunk before is applied, written
// and committed.
type processPool[T, U any] struct {
	mu      sync.Mutex
	more    sync.Cond      // broadcast when a chunk is queued or the pool stops
	queue   []*chunk[T, U] // the chunks with items to take, oldest first
	closed  bool
	wg      sync.WaitGroup
	changes atomic.Int64 // how many times a chunk was queued, or the pool stopped
}

// spinFor is how long a processing goroutine, or the step's goroutine
// waiting for them, polls before it sleeps: waking a sleeping goroutine
// takes tens to hundreds of microseconds on some machines, more than the
// step's goroutine takes between two chunks of a step bound by its
// processor.
const spinFor = 50 * time.Microsecond

// spin polls done, letting other goroutines run, for up to spinFor.
func spin(done func() bool) bool {
	var start time.Time
	for i := 0; ; i++ {
		if done() {
			return true
		}
		if i%16 == 0 {
			if i == 0 {
				start = time.Now()
			} else if time.Since(start) > spinFor {
				return false
			}
		}
		runtime.Gosched()
	}
}

func startProcessPool[T, U any](goroutines int) *processPool[T, U] {
	p := &processPool[T, U]{}
	p.more.L = &p.mu
	for range goroutines {
		p.wg.Go(func() {
			for c := p.take(); c != nil; c = p.take() {
				c.processTaken()
			}
		})
	}
	return p
}

// take returns the oldest chunk with items left to take, waiting for one;
// nil once the pool stops.
func (p *processPool[T, U]) take() *chunk[T, U] {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		for len(p.queue) > 0 && p.queue[0].exhausted() {
			p.queue[0].queued = false
			p.queue = p.queue[1:]
		}
		if len(p.queue) > 0 {
			return p.queue[0]
		}
		if p.closed {
			return nil
		}
		seen := p.changes.Load()
		p.mu.Unlock()
		more := spin(func() bool { return p.changes.Load() != seen })
		p.mu.Lock()
		if !more && p.changes.Load() == seen {
			p.more.Wait()
		}
	}
}

func (p *processPool[T, U]) enqueue(c *chunk[T, U]) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.queued {
		c.queued = true
		p.queue = append(p.queue, c)
	}
	p.changes.Add(1)
	p.more.Broadcast() // a chunk has work for all of them
}

// stop ends the goroutines once they have taken all that was submitted.
func (p *processPool[T, U]) stop() {
	p.mu.Lock()
	p.closed = true
	p.changes.Add(1)
	p.more.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

// submit hands the slots read since the last submit to the pool, but for
// those handled before a restart. The items are processed with ctx.
func (c *chunk[T, U]) submit(ctx context.Context) {
	if c.work == nil {
		c.work = c.slots[:cap(c.slots)] // appending to c.slots does not move it
		buf := &c.bufs.outcomes[c.buf]
		if len(*buf) < len(c.work) {
			*buf = make([]outcome[U], len(c.work))
		}
		c.outcomes = *buf
		c.workCtx = ctx
		c.taken.Store(int64(c.done))
		c.limit.Store(int64(c.done))
	}
	from, to := c.limit.Load(), int64(len(c.slots))
	if to <= from {
		return
	}
	c.pending.Add(int(to - from))
	c.left.Add(to - from)
	c.limit.Store(to)
	c.pool.enqueue(c)
}

// claim takes the next item to process, if any is left.
func (c *chunk[T, U]) claim() (int, bool) {
	for {
		i := c.taken.Load()
		if i >= c.limit.Load() {
			return 0, false
		}
		if c.taken.CompareAndSwap(i, i+1) {
			return int(i), true
		}
	}
}

func (c *chunk[T, U]) exhausted() bool { return c.taken.Load() >= c.limit.Load() }

// processTaken processes the chunk's items until none is left to take.
func (c *chunk[T, U]) processTaken() {
	for i, ok := c.claim(); ok; i, ok = c.claim() {
		c.processWork(i)
	}
}

// processed processes the chunk's items left to take on the calling
// goroutine, waits for those the pool took, and returns the outcomes.
func (c *chunk[T, U]) processed() []outcome[U] {
	c.processTaken()
	spin(func() bool { return c.left.Load() == 0 })
	c.pending.Wait()
	return c.outcomes
}

// unraised returns a panic of the processor on the chunk's items that was
// not raised again, if any.
func (c *chunk[T, U]) unraised() *workerPanic {
	if c == nil || c.raised {
		return nil
	}
	return c.panicked.Load()
}

func (c *chunk[T, U]) processWork(i int) {
	defer c.pending.Done()
	defer c.left.Add(-1)
	defer func() {
		if v := recover(); v != nil {
			p := &workerPanic{value: v, stack: debug.Stack()}
			c.outcomes[i] = outcome[U]{panic: p}
			c.panicked.CompareAndSwap(nil, p)
		}
	}()
	if err := c.workCtx.Err(); err != nil {
		c.outcomes[i] = outcome[U]{err: err} // the step ended
		return
	}
	out, err := c.attempts(c.workCtx, c.base+int64(i)+1, c.work[i].in)
	c.outcomes[i] = outcome[U]{out: out, err: err}
}

// workerPanic is the value of a panic raised again from a processing
// goroutine: it prints with that goroutine's stack.
type workerPanic struct {
	value any
	stack []byte
	where string // what the goroutine did; default processing
}

func (p workerPanic) String() string {
	where := "a processing goroutine"
	if p.where != "" {
		where = "the goroutine " + p.where
	}
	return fmt.Sprintf("%v\n\nin %s:\n%s", p.value, where, p.stack)
}

// retryWait tells the retry listeners and waits before retry attempt.
func (c *chunk[T, U]) retryWait(ctx context.Context, phase string, index int64, attempt int, err error) error {
	delay := c.cfg().Backoff.Delay(attempt)
	ev := &RetryEvent{Step: c.s.name, Phase: phase, Chunk: c.n, Item: c.s.number(index), Attempt: attempt, Delay: delay, Err: err}
	for _, l := range c.cfg().Listeners {
		if rl, ok := l.(RetryListener); ok {
			rl.OnRetry(ctx, ev)
		}
	}
	if rl, ok := c.sc.(RetryListener); ok {
		rl.OnRetry(ctx, ev)
	}
	c.sc.Logger().Warn("retrying", "phase", phase, "chunk", c.n, "item", ev.Item, "attempt", attempt, "delay", delay, "error", err)
	return sleep(ctx, delay)
}

func (c *chunk[T, U]) checkSkipLimit(phase string, index int64, err error) error {
	limit := c.cfg().SkipLimit
	if limit < 0 {
		return nil
	}
	pending := int64(0)
	if !c.readSkipsCommitted {
		pending += int64(len(c.readSkips))
	}
	for _, sl := range c.slots[min(c.committed, len(c.slots)):] {
		if sl.state == slotSkippedProcess || sl.state == slotSkippedWrite {
			pending++
		}
	}
	if c.sc.StepExecution().SkipCount()+pending+1 > int64(limit) {
		return c.stepErr(phase, index, &SkipLimitError{Limit: limit, Err: err})
	}
	return nil
}

// commitWithRetry commits slots [c.committed, to), retrying transient
// failures of the transaction.
func (c *chunk[T, U]) commitWithRetry(ctx context.Context, to int, final bool) error {
	for attempt := 0; ; attempt++ {
		err := c.commit(ctx, to, final)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, ErrFenced) || errors.Is(err, ErrStaleVersion) ||
			attempt >= c.cfg().RetryLimit || !c.cfg().Retry.Matches(err) {
			return err
		}
		if werr := c.retryWait(ctx, "write", c.base+int64(c.committed)+1, attempt+1, err); werr != nil {
			return c.stepErr("write", c.base+int64(c.committed)+1, werr)
		}
	}
}

// commit writes the processed items of slots [c.committed, to) and saves
// the checkpoint in one transaction. The final commit of a chunk saves the
// streams' positions; a partial one (final false) saves the chunk's starting
// context with the number of its items handled, so that a restart reads the
// chunk again and passes over them.
func (c *chunk[T, U]) commit(ctx context.Context, to int, final bool) error {
	from := c.committed
	out := c.bufs.out[:0]
	for i := from; i < to; i++ {
		if c.slots[i].state == slotProcessed {
			out = append(out, c.slots[i].out)
		}
	}
	c.bufs.out = out
	defer clear(out) // the writer keeps no item

	err := c.sc.Commit(ctx, func(ctx context.Context, w *StepExecution) error {
		ctx, at := withAttempt(ctx)
		if len(out) > 0 {
			if err := c.writeItems(ctx, c.base+int64(from)+1, out); err != nil {
				first, last := c.base+int64(from)+1, c.base+int64(to)
				if first == last {
					return c.stepErr("write", first, err)
				}
				return c.stepErr("write", first, fmt.Errorf("chunk of items %d-%d: %w", first, last, err))
			}
		}
		// What the writers and the streams reported counts with the
		// commit.
		defer func() { w.Changes.Add(at.changes) }()
		if err := c.notifySkips(ctx, from, to); err != nil {
			return err
		}
		for _, sl := range c.slots[from:to] {
			switch sl.state {
			case slotProcessed:
				w.WriteCount++
			case slotFiltered:
				w.FilterCount++
			case slotSkippedProcess:
				w.ProcessSkipCount++
			case slotSkippedWrite:
				w.WriteSkipCount++
			}
			if sl.state != slotDone {
				w.ReadCount++
			}
		}
		if !c.readSkipsCommitted {
			w.ReadSkipCount += int64(len(c.readSkips))
		}
		w.CommitCount++
		if final {
			delete(w.Context, doneKey)
			delete(w.Context, readErrorsKey)
			if c.eof {
				if err := w.Context.Put(eofKey, true); err != nil {
					return err
				}
			}
			if err := w.Context.Put(itemsKey, c.base+int64(len(c.slots))); err != nil {
				return err
			}
			for _, st := range c.s.streams {
				if st != c.s.reader || !c.cfg().ReadAhead {
					if err := st.Update(ctx, w.Context); err != nil {
						return c.stepErr("update", 0, err)
					}
					continue
				}
				// The reader read ahead: its Update ran when the chunk's
				// last item was read (see snapshot).
				setAll(w.Context, c.readerEnd)
			}
			if c.progress != nil {
				if err := w.Context.Put(ProgressKey, *c.progress); err != nil {
					return err
				}
			} else if pr, ok := c.cfg().Reader.(ProgressReader); ok {
				if err := w.Context.Put(ProgressKey, pr.Progress()); err != nil {
					return err
				}
			}
			return nil
		}
		setAll(w.Context, c.readerStart)
		if err := errors.Join(w.Context.Put(doneKey, to), w.Context.Put(readErrorsKey, c.replayedReadErrors+c.replayReadErrors+int64(len(c.readSkips)))); err != nil {
			return err
		}
		for _, st := range c.s.streams {
			if st == c.s.reader {
				continue // the reader stays at the chunk's start
			}
			if err := st.Update(ctx, w.Context); err != nil {
				return c.stepErr("update", 0, err)
			}
		}
		return nil
	})
	if err != nil {
		var stepErr *StepError
		if !errors.As(err, &stepErr) {
			err = c.stepErr("commit", 0, err)
		}
		return err
	}
	c.committed = to
	c.readSkipsCommitted = true
	return nil
}

// isCommitFailure reports whether err failed the checkpoint rather than the
// writer: such errors are never the item's fault.
func isCommitFailure(err error) bool {
	var se *StepError
	return errors.Is(err, ErrFenced) || errors.Is(err, ErrStaleVersion) ||
		errors.As(err, &se) && (se.Phase == "commit" || se.Phase == "update")
}

// notifySkips tells the skip listeners, inside the transaction that counts
// them, about the read skips (if not committed yet) and the skipped items
// of slots [from, to).
func (c *chunk[T, U]) notifySkips(ctx context.Context, from, to int) error {
	var listeners []SkipListener[T, U]
	for _, l := range c.cfg().Listeners {
		if sl, ok := l.(SkipListener[T, U]); ok {
			listeners = append(listeners, sl)
		}
	}
	recorder, _ := c.sc.(RejectRecorder)
	if len(listeners) == 0 && recorder == nil {
		return nil
	}
	*c.commitSeq++
	commit := *c.commitSeq
	var events []*Skip[T, U]
	if !c.readSkipsCommitted {
		for _, rs := range c.readSkips {
			events = append(events, &Skip[T, U]{Step: c.s.name, Phase: "read", Item: c.s.number(rs.index), Err: rs.err, Commit: commit})
		}
	}
	for i := from; i < to; i++ {
		sl := c.slots[i]
		switch sl.state {
		case slotSkippedProcess:
			events = append(events, &Skip[T, U]{Step: c.s.name, Phase: "process", Item: c.s.number(c.base + int64(i) + 1),
				Input: sl.in, Err: sl.err, Commit: commit})
		case slotSkippedWrite:
			events = append(events, &Skip[T, U]{Step: c.s.name, Phase: "write", Item: c.s.number(c.base + int64(i) + 1),
				Input: sl.in, Output: sl.out, Err: sl.err, Commit: commit})
		}
	}
	for _, ev := range events {
		for _, l := range listeners {
			if err := l.OnSkip(ctx, ev); err != nil {
				return &StepError{Step: c.s.name, Chunk: c.n, Item: ev.Item, Phase: "skip listener", Err: err} // numbered already
			}
		}
		if recorder != nil {
			if err := recorder.RecordReject(ctx, newReject(ev)); err != nil {
				return &StepError{Step: c.s.name, Chunk: c.n, Item: ev.Item, Phase: "reject", Err: err}
			}
		}
	}
	return nil
}

// scan writes the uncommitted items of the chunk up to end one by one, each
// in its own transaction, after a skippable write error rolled them back: items
// whose write fails with a skippable error are skipped, the others are
// written. The skip of an item is committed with the next item's write (its
// count and its skip listeners in that transaction), as Spring Batch counts
// commits. Each commit records how many items of the chunk are handled, so
// that a crash in the middle of the scan neither loses nor repeats an item.
func (c *chunk[T, U]) scan(ctx context.Context, end int, finalAtEnd bool) error {
	c.sc.Logger().Info("write failed with a skippable error; writing the chunk item by item", "chunk", c.n)
	for i := c.committed; i < end; i++ {
		final := finalAtEnd && i == end-1
		sl := &c.slots[i]
		if sl.state == slotProcessed && !c.cfg().ProcessorNonTransactional && c.cfg().Processor != nil {
			sl.state = slotRead
			if err := c.process(ctx, i); err != nil {
				return err
			}
		}
		err := c.commitWithRetry(ctx, i+1, final)
		if err == nil {
			continue
		}
		index := c.base + int64(i) + 1
		if sl.state != slotProcessed || ctx.Err() != nil || isCommitFailure(err) || !c.s.skips(err) {
			return err
		}
		if lerr := c.checkSkipLimit("write", index, err); lerr != nil {
			return lerr
		}
		sl.state, sl.err = slotSkippedWrite, unwrapStepError(err)
		// The skip is counted and reported with the next commit of the
		// scan, or with a commit of its own when the item is the last.
		if i == end-1 {
			if err := c.commitWithRetry(ctx, i+1, final); err != nil {
				return err
			}
		}
	}
	return nil
}

// unwrapStepError returns the error a StepError wraps, for reporting the
// cause of a skip without the step's own prefix.
func unwrapStepError(err error) error {
	var se *StepError
	if errors.As(err, &se) {
		return se.Err
	}
	return err
}
