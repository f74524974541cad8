package processor

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/chunkwise/chunkwise/batch"
)

// Chain returns a processor that runs first, then second on its result. An
// item that first filters out (batch.ErrFilter) or fails never reaches
// second. [Chain3] and [Chain4] chain more stages whose types change;
// [Sequence] chains any number that keep the type.
func Chain[T, U, V any](first batch.ItemProcessor[T, U], second batch.ItemProcessor[U, V]) batch.ItemProcessor[T, V] {
	return batch.ProcessorFunc[T, V](func(ctx context.Context, item T) (V, error) {
		u, err := first.Process(ctx, item)
		if err != nil {
			var zero V
			return zero, err
		}
		return second.Process(ctx, u)
	})
}

// Chain3 chains three processors, as [Chain] does two.
func Chain3[T, U, V, W any](p1 batch.ItemProcessor[T, U], p2 batch.ItemProcessor[U, V], p3 batch.ItemProcessor[V, W]) batch.ItemProcessor[T, W] {
	return Chain(Chain(p1, p2), p3)
}

// Chain4 chains four processors, as [Chain] does two.
func Chain4[T, U, V, W, X any](p1 batch.ItemProcessor[T, U], p2 batch.ItemProcessor[U, V], p3 batch.ItemProcessor[V, W], p4 batch.ItemProcessor[W, X]) batch.ItemProcessor[T, X] {
	return Chain(Chain3(p1, p2, p3), p4)
}

// Sequence returns a processor that runs ps in order, each on the result of
// the one before, stopping at the first that filters the item out or fails.
// With no processors it passes items through.
func Sequence[T any](ps ...batch.ItemProcessor[T, T]) batch.ItemProcessor[T, T] {
	ps = append([]batch.ItemProcessor[T, T](nil), ps...)
	return batch.ProcessorFunc[T, T](func(ctx context.Context, item T) (T, error) {
		for _, p := range ps {
			var err error
			if item, err = p.Process(ctx, item); err != nil {
				return item, err
			}
		}
		return item, nil
	})
}

// Filter returns a processor that passes items for which keep is true and
// filters the others out: they are counted in the step's filter count and not
// written.
func Filter[T any](keep func(item T) bool) batch.ItemProcessor[T, T] {
	return batch.ProcessorFunc[T, T](func(_ context.Context, item T) (T, error) {
		if !keep(item) {
			return item, batch.ErrFilter
		}
		return item, nil
	})
}

// ValidationError is the error of an item that failed validation.
type ValidationError struct {
	Err error
}

func (e *ValidationError) Error() string { return "processor: invalid item: " + e.Err.Error() }

func (e *ValidationError) Unwrap() error { return e.Err }

// ErrInvalid matches every *ValidationError with errors.Is, so that a step
// can treat validation failures alike.
var ErrInvalid = errors.New("processor: invalid item")

// Is reports whether target is ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Invalid says what [Validate] does with an item that fails validation.
type Invalid int

const (
	// FailInvalid fails the item with a *ValidationError: the step fails,
	// unless its skip policy matches ErrInvalid.
	FailInvalid Invalid = iota
	// SkipInvalid skips the item (batch.Skippable): it counts as a
	// process skip, within the step's skip limit, and skip listeners — a
	// reject file or table — get it with its *ValidationError.
	SkipInvalid
	// FilterInvalid filters the item out: it counts as filtered, and
	// nothing records why.
	FilterInvalid
)

// Validate returns a processor that passes items for which check returns
// nil, and treats the others as on says.
func Validate[T any](check func(item T) error, on Invalid) batch.ItemProcessor[T, T] {
	return batch.ProcessorFunc[T, T](func(_ context.Context, item T) (T, error) {
		err := check(item)
		if err == nil {
			return item, nil
		}
		switch on {
		case SkipInvalid:
			return item, batch.Skippable(&ValidationError{Err: err})
		case FilterInvalid:
			return item, batch.ErrFilter
		default:
			return item, &ValidationError{Err: err}
		}
	})
}

// Classify returns a processor that hands each item to the processor that
// routes holds under the key classify returns for it: one processor per
// kind of item. An item whose key has no processor fails with an error
// naming the key, unless fallback is given (non-nil), which then processes
// it.
func Classify[T, U any, K comparable](classify func(item T) K, routes map[K]batch.ItemProcessor[T, U], fallback batch.ItemProcessor[T, U]) batch.ItemProcessor[T, U] {
	routes = maps.Clone(routes)
	return batch.ProcessorFunc[T, U](func(ctx context.Context, item T) (U, error) {
		k := classify(item)
		p, ok := routes[k]
		if !ok {
			p = fallback
		}
		if p == nil {
			var zero U
			return zero, fmt.Errorf("processor: classify: no processor for %v", k)
		}
		return p.Process(ctx, item)
	})
}
