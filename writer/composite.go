package writer

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"

	"github.com/chunkwise/chunkwise/batch"
)

// Composite writes each chunk to several writers, one after the other, in
// the order given: the same items to each. Writers that join the chunk's
// transaction all write in it, so that their rows commit together with the
// step's checkpoint, or none do: a failure of any writer rolls back what the
// ones before it wrote in the transaction. A writer that commits on its own
// (OwnTransaction) has committed when a later one fails. The file writers
// write at Update, after every writer of the chunk: nothing of theirs is
// written when one fails.
//
// Composite is a batch.ItemStream: it opens, updates and closes those of its
// writers that are streams (a writer given twice, once), so that a step that
// sees only the Composite still gives them their restart state. It keeps
// none of its own. Its guarantee is the weakest of its writers'.
type Composite[T any] struct {
	writers []batch.ItemWriter[T]
	streams streamSet
}

var _ batch.ItemStream = (*Composite[int])(nil)

// NewComposite returns a writer that writes each chunk to writers in turn.
// No writers, or a nil one, is an error.
func NewComposite[T any](writers ...batch.ItemWriter[T]) (*Composite[T], error) {
	if len(writers) == 0 {
		return nil, errors.New("writer: composite: no writers")
	}
	c := &Composite[T]{writers: append([]batch.ItemWriter[T](nil), writers...)}
	for i, w := range writers {
		if w == nil {
			return nil, fmt.Errorf("writer: composite: writer %d of %d is nil", i+1, len(writers))
		}
		c.streams.add(w, c.label(i))
	}
	return c, nil
}

func (c *Composite[T]) label(i int) string {
	return fmt.Sprintf("writer %d of %d (%s)", i+1, len(c.writers), typeName(c.writers[i]))
}

// Write writes items to each writer in turn, and stops at the first error,
// which names the writer.
func (c *Composite[T]) Write(ctx context.Context, items []T) error {
	for i, w := range c.writers {
		if err := w.Write(ctx, items); err != nil {
			return fmt.Errorf("writer: composite: %s: %w", c.label(i), err)
		}
	}
	return nil
}

// Open opens the writers that are streams, in order; when one fails, it
// closes those it opened.
func (c *Composite[T]) Open(ctx context.Context, ec batch.ExecutionContext) error {
	return c.streams.open(ctx, ec, "composite")
}

// Update updates the writers that are streams.
func (c *Composite[T]) Update(ctx context.Context, ec batch.ExecutionContext) error {
	return c.streams.update(ctx, ec, "composite")
}

// Close closes the writers that are streams, in reverse order, every one
// even when some fail.
func (c *Composite[T]) Close(ctx context.Context) error {
	return c.streams.close(ctx, "composite")
}

// typeName returns the type of v without the import paths of packages:
// "*writer.SQL[main.person]".
func typeName(v any) string {
	return importPath.ReplaceAllString(fmt.Sprintf("%T", v), "")
}

var importPath = regexp.MustCompile(`[\w.\-]+/`)

// streamSet is the streams among a set of writers, each once, with how
// errors name them.
type streamSet []labeledStream

type labeledStream struct {
	batch.ItemStream
	label string
}

// add adds w if it is a stream that the set does not hold yet.
func (s *streamSet) add(w any, label string) {
	st, ok := w.(batch.ItemStream)
	if !ok {
		return
	}
	if reflect.TypeOf(st).Comparable() {
		for _, x := range *s {
			if x.ItemStream == st {
				return
			}
		}
	}
	*s = append(*s, labeledStream{ItemStream: st, label: label})
}

func (s streamSet) open(ctx context.Context, ec batch.ExecutionContext, name string) error {
	for i, st := range s {
		if err := st.Open(ctx, ec); err != nil {
			closeErr := s[:i].close(ctx, name)
			return errors.Join(fmt.Errorf("writer: %s: open %s: %w", name, st.label, err), closeErr)
		}
	}
	return nil
}

func (s streamSet) update(ctx context.Context, ec batch.ExecutionContext, name string) error {
	for _, st := range s {
		if err := st.Update(ctx, ec); err != nil {
			return fmt.Errorf("writer: %s: update %s: %w", name, st.label, err)
		}
	}
	return nil
}

func (s streamSet) close(ctx context.Context, name string) error {
	var errs []error
	for i := len(s) - 1; i >= 0; i-- {
		if err := s[i].Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("writer: %s: close %s: %w", name, s[i].label, err))
		}
	}
	return errors.Join(errs...)
}
