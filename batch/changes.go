package batch

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
)

// Changes counts what a step's writes did to their target, as far as its
// writers can tell: rows inserted, rows updated, rows that an upsert or an
// update found already equal and left alone, and rows deleted. A writer
// reports them with [ReportChanges]; a tasklet adds to its
// StepExecution.Changes directly. They are stored with the step's other
// counts and shown next to its write count ("1000 written: 20 inserted, 80
// updated, 900 unchanged").
type Changes struct {
	Inserted  int64
	Updated   int64
	Unchanged int64
	Deleted   int64
}

// Add adds o to c.
func (c *Changes) Add(o Changes) {
	c.Inserted += o.Inserted
	c.Updated += o.Updated
	c.Unchanged += o.Unchanged
	c.Deleted += o.Deleted
}

// IsZero reports whether nothing was counted.
func (c Changes) IsZero() bool { return c == Changes{} }

// String lists the non-zero counts, as "20 inserted, 80 updated".
func (c Changes) String() string {
	var parts []string
	for _, p := range []struct {
		n    int64
		what string
	}{{c.Inserted, "inserted"}, {c.Updated, "updated"}, {c.Unchanged, "unchanged"}, {c.Deleted, "deleted"}} {
		if p.n != 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	if len(parts) == 0 {
		return "no changes"
	}
	return strings.Join(parts, ", ")
}

// attempt is what a context carries through one commit attempt of a chunk
// or a tasklet: its number, and the changes its writers report.
type attempt struct {
	id      uint64
	changes Changes
}

type attemptKey struct{}

var attempts atomic.Uint64

// withAttempt returns a context for a new commit attempt.
func withAttempt(ctx context.Context) (context.Context, *attempt) {
	a := &attempt{id: attempts.Add(1)}
	return context.WithValue(ctx, attemptKey{}, a), a
}

// CommitAttempt returns a number that identifies the commit attempt ctx
// belongs to: the Write of the writers and the Update of the streams made
// for one attempt of a chunk's commit see the same number, and every other
// attempt — the retry of a commit that failed, the next chunk — another.
// It is 0 outside a commit. A stream that stages what Write gives it and
// writes it at Update (a file) uses it to drop what an attempt that failed
// between the two had staged.
func CommitAttempt(ctx context.Context) uint64 {
	if a, ok := ctx.Value(attemptKey{}).(*attempt); ok {
		return a.id
	}
	return 0
}

// ReportChanges adds c to the counts of the chunk being committed: a writer
// calls it from Write with what its statements reported (rows inserted,
// updated, unchanged, deleted), a stream from Update. The counts are
// committed with the chunk — a commit attempt that rolls back counts
// nothing — and added to the step execution's Changes. It reports whether
// ctx is a commit's; outside one it does nothing.
func ReportChanges(ctx context.Context, c Changes) bool {
	a, ok := ctx.Value(attemptKey{}).(*attempt)
	if ok {
		a.changes.Add(c)
	}
	return ok
}
