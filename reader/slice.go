package reader

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/chunkwise/chunkwise/batch"
)

// SliceIndexKey is the [batch.ExecutionContext] key under which a [Slice]
// stores the index of the next item to read.
const SliceIndexKey = "slice.index"

// Slice reads the items of a slice in order. It implements
// [batch.ItemStream], so a restarted step resumes at the first item of the
// chunk that was not committed. Create one with [FromSlice].
type Slice[T any] struct {
	items []T
	next  int
}

var (
	_ batch.ItemReader[int] = (*Slice[int])(nil)
	_ batch.ItemStream      = (*Slice[int])(nil)
)

// FromSlice returns a reader of items. The slice is not copied: it must not
// change while the reader is in use.
func FromSlice[T any](items []T) *Slice[T] {
	return &Slice[T]{items: items}
}

// Read returns the next item, and io.EOF after the last one.
func (s *Slice[T]) Read(ctx context.Context) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if s.next >= len(s.items) {
		return zero, io.EOF
	}
	item := s.items[s.next]
	s.next++
	return item, nil
}

// Open restores the index stored under [SliceIndexKey], if ec has one, and
// starts from the first item otherwise.
func (s *Slice[T]) Open(_ context.Context, ec batch.ExecutionContext) error {
	var next int
	ok, err := ec.Get(SliceIndexKey, &next)
	if err != nil {
		return fmt.Errorf("reader: slice: %w", err)
	}
	if ok && (next < 0 || next > len(s.items)) {
		return fmt.Errorf("reader: slice: stored index %d out of range [0, %d]", next, len(s.items))
	}
	s.next = next
	return nil
}

// Update stores the index of the next item under [SliceIndexKey].
func (s *Slice[T]) Update(_ context.Context, ec batch.ExecutionContext) error {
	if ec == nil {
		return errors.New("reader: slice: Update with a nil execution context")
	}
	if err := ec.Put(SliceIndexKey, s.next); err != nil {
		return fmt.Errorf("reader: slice: %w", err)
	}
	return nil
}

// Close does nothing: a Slice holds no resources.
func (s *Slice[T]) Close(context.Context) error { return nil }

// Progress implements batch.ProgressReader: items read of the slice's.
func (s *Slice[T]) Progress() batch.Progress {
	return batch.Progress{Done: int64(s.next), Total: int64(len(s.items)), Unit: "items"}
}
