package processor

import (
	"context"
	"errors"

	"github.com/chunkwise/chunkwise/batch"
)

// Chain returns a processor that runs first, then second on its result. An
// item that first filters out (batch.ErrFilter) never reaches second.
// Longer chains nest: Chain(a, Chain(b, c)).
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
// can treat validation failures alike (fail, or skip once skip policies
// name it).
var ErrInvalid = errors.New("processor: invalid item")

// Is reports whether target is ErrInvalid.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// Validate returns a processor that passes items for which check returns nil
// and fails the others with a *ValidationError wrapping check's error.
func Validate[T any](check func(item T) error) batch.ItemProcessor[T, T] {
	return batch.ProcessorFunc[T, T](func(_ context.Context, item T) (T, error) {
		if err := check(item); err != nil {
			return item, &ValidationError{Err: err}
		}
		return item, nil
	})
}
