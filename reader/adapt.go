package reader

import (
	"context"
	"fmt"
	"io"
	"iter"

	"github.com/chunkwise/chunkwise/batch"
)

// FromChannel returns a reader of the values received from ch, until ch is
// closed. Read waits for the next value, or for ctx to be done.
//
// It is not restartable: what a channel delivered cannot be asked for
// again, so a restarted step gets what the channel delivers then. Use it
// for sources that are idempotent by nature, or for in-process pipelines.
func FromChannel[T any](ch <-chan T) batch.ItemReader[T] {
	return batch.ReaderFunc[T](func(ctx context.Context) (T, error) {
		var zero T
		select {
		case v, ok := <-ch:
			if !ok {
				return zero, io.EOF
			}
			return v, nil
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	})
}

// Seq reads the values of an iterator. Create one with [FromSeq] or
// [FromSeq2].
//
// It is restartable by skipping: Update stores how many values were read,
// and a restarted step runs the iterator again from its start and passes
// over that many. That is right when the iterator yields the same values in
// the same order every time it runs (a generator, a sorted query that the
// step does not change); for anything else, give the iterator a starting
// point of its own instead.
type Seq[T any] struct {
	name string
	seq  iter.Seq2[T, error]
	next func() (T, error, bool)
	stop func()
	read int64
}

var (
	_ batch.ItemReader[int] = (*Seq[int])(nil)
	_ batch.ItemStream      = (*Seq[int])(nil)
)

// FromSeq returns a reader of the values of seq.
func FromSeq[T any](name string, seq iter.Seq[T]) *Seq[T] {
	return FromSeq2(name, func(yield func(T, error) bool) {
		for v := range seq {
			if !yield(v, nil) {
				return
			}
		}
	})
}

// FromSeq2 returns a reader of the values of seq. A value that comes with a
// non-nil error is not an item: Read returns the error (the step fails, or
// skips it if a skip policy says so) and goes on with the next pair.
func FromSeq2[T any](name string, seq iter.Seq2[T, error]) *Seq[T] {
	if name == "" {
		name = "seq"
	}
	return &Seq[T]{name: name, seq: seq}
}

func (s *Seq[T]) key() string { return s.name + ".read" }

// Open starts the iterator and, on a restart, passes over the values
// already read.
func (s *Seq[T]) Open(ctx context.Context, ec batch.ExecutionContext) error {
	if s.next != nil {
		return fmt.Errorf("reader: seq %s: already open", s.name)
	}
	skip, _ := ec.Int64(s.key())
	s.next, s.stop = iter.Pull2(s.seq)
	s.read = 0
	for ; s.read < skip; s.read++ {
		if err := ctx.Err(); err != nil {
			_ = s.Close(ctx)
			return err
		}
		if _, _, ok := s.next(); !ok {
			_ = s.Close(ctx)
			return fmt.Errorf("reader: seq %s: %w: %d values were read before the restart, the iterator now has %d",
				s.name, ErrInputChanged, skip, s.read)
		}
	}
	return nil
}

// Read returns the next value, and io.EOF when the iterator is done.
func (s *Seq[T]) Read(ctx context.Context) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if s.next == nil {
		return zero, fmt.Errorf("reader: seq %s: not open", s.name)
	}
	v, err, ok := s.next()
	if !ok {
		return zero, io.EOF
	}
	s.read++
	if err != nil {
		return zero, fmt.Errorf("reader: seq %s: value %d: %w", s.name, s.read, err)
	}
	return v, nil
}

// Update stores the number of values read.
func (s *Seq[T]) Update(_ context.Context, ec batch.ExecutionContext) error {
	return ec.Put(s.key(), s.read)
}

// Close stops the iterator.
func (s *Seq[T]) Close(context.Context) error {
	if s.stop != nil {
		s.stop()
	}
	s.next, s.stop = nil, nil
	return nil
}
