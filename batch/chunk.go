package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
)

// DefaultChunkSize is the chunk size used when none is configured.
const DefaultChunkSize = 100

// itemsKey is the step context key holding the number of items read through
// committed chunks over all executions of the step, so that error messages
// can number items the same way across restarts.
const itemsKey = "batch.chunk.items"

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
	// Listeners receive the step's and chunks' events. Default none.
	Listeners []Listener
	// AllowStartIfComplete makes a restart run the step again even if it
	// completed in an earlier execution. Default false: a completed step is
	// skipped on restart.
	AllowStartIfComplete bool
}

// ChunkStep reads, processes and writes items in chunks, one transaction per
// chunk. Build one with [NewChunkStep].
type ChunkStep[T, U any] struct {
	name    string
	cfg     ChunkConfig[T, U]
	streams []ItemStream
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
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if err := validateListeners("step "+name, chunkListeners, cfg.Listeners); err != nil {
		return nil, err
	}
	s := &ChunkStep[T, U]{name: name, cfg: cfg}
	for _, c := range []any{cfg.Reader, cfg.Processor, cfg.Writer} {
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

// Name returns the step's name.
func (s *ChunkStep[T, U]) Name() string { return s.name }

// AllowStartIfComplete reports whether a restart runs the step again after it
// completed.
func (s *ChunkStep[T, U]) AllowStartIfComplete() bool { return s.cfg.AllowStartIfComplete }

// Listeners returns the step's listeners.
func (s *ChunkStep[T, U]) Listeners() []Listener { return s.cfg.Listeners }

// Execute runs the step: it opens the streams with the step's context, then
// reads, processes and writes chunks until the reader is exhausted, a stop is
// requested, or an error occurs, and closes the streams.
func (s *ChunkStep[T, U]) Execute(ctx context.Context, sc *StepContext) (err error) {
	se := sc.StepExecution
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
	base, _ := se.Context.Int64(itemsKey)
	for chunk := int64(1); ; chunk++ {
		if sc.StopRequested() {
			return ErrStopped
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		items, eof, err := s.read(ctx, chunk, base)
		if err != nil {
			se.RollbackCount++
			s.chunkError(ctx, se, chunk, len(items), err)
			return err
		}
		if len(items) == 0 {
			return nil
		}
		out, filtered, err := s.process(ctx, chunk, base, items)
		if err != nil {
			se.RollbackCount++
			s.chunkError(ctx, se, chunk, len(items), err)
			return err
		}
		ev := &ChunkEvent{Step: se, Chunk: chunk, Items: len(items)}
		for _, l := range s.cfg.Listeners {
			if bl, ok := l.(BeforeChunkListener); ok {
				bl.BeforeChunk(ctx, ev)
			}
		}
		err = sc.Commit(ctx, func(ctx context.Context, w *StepExecution) error {
			if len(out) > 0 {
				if err := s.cfg.Writer.Write(ctx, out); err != nil {
					return &StepError{Step: s.name, Chunk: chunk, Item: base + 1, Phase: "write",
						Err: fmt.Errorf("chunk of items %d-%d: %w", base+1, base+int64(len(items)), err)}
				}
			}
			w.ReadCount += int64(len(items))
			w.FilterCount += filtered
			w.WriteCount += int64(len(out))
			w.CommitCount++
			if err := w.Context.Put(itemsKey, base+int64(len(items))); err != nil {
				return err
			}
			for _, st := range s.streams {
				if err := st.Update(ctx, w.Context); err != nil {
					return &StepError{Step: s.name, Chunk: chunk, Phase: "update", Err: err}
				}
			}
			return nil
		})
		if err != nil {
			var se2 *StepError
			if !errors.As(err, &se2) {
				err = &StepError{Step: s.name, Chunk: chunk, Phase: "commit", Err: err}
			}
			s.chunkError(ctx, se, chunk, len(items), err)
			return err
		}
		ev.Step = sc.StepExecution
		for _, l := range s.cfg.Listeners {
			if al, ok := l.(AfterChunkListener); ok {
				al.AfterChunk(ctx, ev)
			}
		}
		base += int64(len(items))
		if eof {
			return nil
		}
	}
}

func (s *ChunkStep[T, U]) read(ctx context.Context, chunk, base int64) ([]T, bool, error) {
	items := make([]T, 0, s.cfg.ChunkSize)
	for len(items) < s.cfg.ChunkSize {
		it, err := s.cfg.Reader.Read(ctx)
		if err == io.EOF {
			return items, true, nil
		}
		if err != nil {
			return items, false, &StepError{Step: s.name, Chunk: chunk, Item: base + int64(len(items)) + 1, Phase: "read", Err: err}
		}
		items = append(items, it)
	}
	return items, false, nil
}

func (s *ChunkStep[T, U]) process(ctx context.Context, chunk, base int64, items []T) ([]U, int64, error) {
	out := make([]U, 0, len(items))
	var filtered int64
	for i, it := range items {
		if s.cfg.Processor == nil {
			out = append(out, any(it).(U))
			continue
		}
		u, err := s.cfg.Processor.Process(ctx, it)
		if errors.Is(err, ErrFilter) {
			filtered++
			continue
		}
		if err != nil {
			return nil, 0, &StepError{Step: s.name, Chunk: chunk, Item: base + int64(i) + 1, Phase: "process", Err: err}
		}
		out = append(out, u)
	}
	return out, filtered, nil
}

func (s *ChunkStep[T, U]) chunkError(ctx context.Context, se *StepExecution, chunk int64, n int, err error) {
	ev := &ChunkEvent{Step: se, Chunk: chunk, Items: n, Err: err}
	for _, l := range s.cfg.Listeners {
		if el, ok := l.(ChunkErrorListener); ok {
			el.AfterChunkError(ctx, ev)
		}
	}
}
