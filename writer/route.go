package writer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/chunkwise/chunkwise/batch"
)

// ErrNoRoute is wrapped by the error of a Route given an item whose key has
// no writer, when it has no Default. Match it with errors.Is, for instance
// in a step's Skip policy, to skip such items.
var ErrNoRoute = errors.New("writer: route: no writer for the item's key")

// RouteConfig configures a Route writer.
type RouteConfig[T any, K comparable] struct {
	// Key classifies an item: it returns the key of the writer the item
	// goes to. Required.
	Key func(item T) K
	// Writers are the writers by key. Several keys may share one writer,
	// which then gets their items together, in order. Required: at least
	// one writer.
	Writers map[K]batch.ItemWriter[T]
	// Default gets the items whose key is not in Writers. Default nil: such
	// an item fails the chunk with an error that names it and wraps
	// ErrNoRoute.
	Default batch.ItemWriter[T]
}

// Route writes each item of a chunk with the writer its key selects: the
// chunk is split, every writer gets its items in the order they have in the
// chunk, and the writers are called in the order their first item comes in
// the chunk; a writer that gets no item is not called. Items are all
// classified before any is written, so an item with no writer fails the
// chunk before anything is written. Two items of one chunk that concern the
// same row through different writers (an upsert and a delete of one key)
// are therefore applied in the order of their writers, not of the chunk.
//
// In a writer's error, item numbers count the items that writer was given,
// not the chunk's; the Route's error says which writer and how many items
// it had.
//
// Route is a batch.ItemStream: it opens, updates and closes those of its
// writers that are streams (each once), so that a step that sees only the
// Route still gives them their restart state. It keeps none of its own. The
// writers that join the chunk's transaction all write in it; the guarantee
// is the weakest of the writers'.
type Route[T any, K comparable] struct {
	key     func(T) K
	index   map[K]int // the writer of a key, in writers
	writers []batch.ItemWriter[T]
	def     int // the Default's index in writers, or -1
	streams streamSet
}

var _ batch.ItemStream = (*Route[int, string])(nil)

// NewRoute returns a Route writer. No Key function, no writers and a nil
// writer are errors.
func NewRoute[T any, K comparable](cfg RouteConfig[T, K]) (*Route[T, K], error) {
	if cfg.Key == nil {
		return nil, errors.New("writer: route: no Key function")
	}
	if len(cfg.Writers) == 0 {
		return nil, errors.New("writer: route: no Writers")
	}
	r := &Route[T, K]{key: cfg.Key, index: make(map[K]int, len(cfg.Writers)), def: -1}
	keys := slices.Collect(maps.Keys(cfg.Writers))
	slices.SortFunc(keys, func(a, b K) int { return strings.Compare(fmtKey(a), fmtKey(b)) }) // streams open in a stable order
	for _, k := range keys {
		w := cfg.Writers[k]
		if w == nil {
			return nil, fmt.Errorf("writer: route: the writer for key %s is nil", fmtKey(k))
		}
		r.index[k] = r.indexOf(w)
		r.streams.add(w, fmt.Sprintf("writer for key %s (%s)", fmtKey(k), typeName(w)))
	}
	if cfg.Default != nil {
		r.def = r.indexOf(cfg.Default)
		r.streams.add(cfg.Default, fmt.Sprintf("default writer (%s)", typeName(cfg.Default)))
	}
	return r, nil
}

// indexOf returns w's index in r.writers, adding it if it is not there; a
// writer whose type cannot be compared counts as new.
func (r *Route[T, K]) indexOf(w batch.ItemWriter[T]) int {
	if reflect.TypeOf(w).Comparable() {
		for i, x := range r.writers {
			if x == w {
				return i
			}
		}
	}
	r.writers = append(r.writers, w)
	return len(r.writers) - 1
}

// Write splits items by key and writes each writer's share, stopping at the
// first error, which names the writer.
func (r *Route[T, K]) Write(ctx context.Context, items []T) error {
	if len(items) == 0 {
		return nil
	}
	groups := make([][]T, len(r.writers))
	first := make([]K, len(r.writers)) // the key of each writer's first item
	var order []int
	for i, it := range items {
		k := r.key(it)
		w, ok := r.index[k]
		if !ok {
			if r.def < 0 {
				return fmt.Errorf("writer: route: item %d of the chunk (key %s): %w", i+1, fmtKey(k), ErrNoRoute)
			}
			w = r.def
		}
		if groups[w] == nil {
			order = append(order, w)
			first[w] = k
		}
		groups[w] = append(groups[w], it)
	}
	for _, w := range order {
		if err := r.writers[w].Write(ctx, groups[w]); err != nil {
			which := "writer for key " + fmtKey(first[w])
			if _, ok := r.index[first[w]]; !ok {
				which = "default writer"
			}
			return fmt.Errorf("writer: route: %s (%s, given %d of the chunk's %d items): %w", which, typeName(r.writers[w]), len(groups[w]), len(items), err)
		}
	}
	return nil
}

// Open opens the writers that are streams; when one fails, it closes those
// it opened.
func (r *Route[T, K]) Open(ctx context.Context, ec batch.ExecutionContext) error {
	return r.streams.open(ctx, ec, "route")
}

// Update updates the writers that are streams.
func (r *Route[T, K]) Update(ctx context.Context, ec batch.ExecutionContext) error {
	return r.streams.update(ctx, ec, "route")
}

// Close closes the writers that are streams, every one even when some fail.
func (r *Route[T, K]) Close(ctx context.Context) error {
	return r.streams.close(ctx, "route")
}

// fmtKey formats a key for an error message: strings quoted.
func fmtKey(k any) string {
	if s, ok := k.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%v", k)
}
