package writer

import (
	"context"
	"sync"
)

// Slice is a writer that keeps every item it is given, in order, in memory.
// It has no transaction: a chunk whose checkpoint fails after Write stays
// collected. For tests and small programs. The zero value is ready to use.
type Slice[T any] struct {
	mu     sync.Mutex
	items  []T
	chunks int
}

// Write appends items.
func (s *Slice[T]) Write(_ context.Context, items []T) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items = append(s.items, items...)
	s.chunks++
	return nil
}

// Items returns a copy of the items written so far.
func (s *Slice[T]) Items() []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]T(nil), s.items...)
}

// Chunks returns how many times Write was called.
func (s *Slice[T]) Chunks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.chunks
}
