package batch

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"
)

// ErrorMatcher decides whether an error belongs to a class: skippable,
// retryable, no-rollback. Build one with MatchErrors, MatchType, MatchFunc or
// Transient, and combine them with Or.
type ErrorMatcher func(err error) bool

// Matches reports whether m matches err; a nil matcher matches nothing.
func (m ErrorMatcher) Matches(err error) bool { return m != nil && err != nil && m(err) }

// Or returns a matcher that matches what m or any of others matches.
func (m ErrorMatcher) Or(others ...ErrorMatcher) ErrorMatcher {
	return func(err error) bool {
		if m.Matches(err) {
			return true
		}
		for _, o := range others {
			if o.Matches(err) {
				return true
			}
		}
		return false
	}
}

// MatchErrors matches an error that is (errors.Is) one of targets.
func MatchErrors(targets ...error) ErrorMatcher {
	return func(err error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
}

// MatchType matches an error that has an E in its chain (errors.As).
func MatchType[E error]() ErrorMatcher {
	return func(err error) bool {
		var e E
		return errors.As(err, &e)
	}
}

// ErrSkippable is matched by the errors that [Skippable] marks.
var ErrSkippable = errors.New("skippable")

// Skippable marks err as the fault of the one item it concerns: a chunk step
// skips that item — read, process or write — as if ChunkConfig.Skip matched
// err, counting it against the skip limit and telling the skip listeners.
// A component uses it for errors it knows are the item's own (a record
// that fails validation it was configured to skip). errors.Is(err,
// ErrSkippable) reports the mark; the message is err's.
func Skippable(err error) error {
	if err == nil {
		return nil
	}
	return skippable{err}
}

type skippable struct{ error }

func (e skippable) Unwrap() error        { return e.error }
func (e skippable) Is(target error) bool { return target == ErrSkippable }

// MatchFunc adapts a predicate.
func MatchFunc(f func(err error) bool) ErrorMatcher { return f }

// Transient matches errors that are worth retrying because the same work may
// succeed a moment later: PostgreSQL serialization failures (40001),
// deadlocks (40P01), lock timeouts (55P03), connection exceptions (08xxx),
// an administrator or crash shutdown of the backend (57P01, 57P02, 57P03),
// SQLite's busy and locked errors, a broken driver connection, connection
// resets, refused connections, network timeouts and temporary DNS failures
// (not "no such host", which a retry will not change). It never matches
// context cancellation.
var Transient ErrorMatcher = isTransient

func isTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var state interface{ SQLState() string }
	if errors.As(err, &state) {
		s := state.SQLState()
		switch {
		case s == "40001", s == "40P01", s == "55P03", s == "57P01", s == "57P02", s == "57P03",
			strings.HasPrefix(s, "08"):
			return true
		}
	}
	var code interface{ Code() int }
	if errors.As(err, &code) {
		// modernc.org/sqlite: the primary result code is the low byte.
		if c := code.Code() & 0xff; (c == 5 || c == 6) && strings.Contains(err.Error(), "SQLITE_") {
			return true // SQLITE_BUSY, SQLITE_LOCKED
		}
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		// "no such host" stays so; a failing or slow resolver may not.
		return !dns.IsNotFound && (dns.IsTemporary || dns.IsTimeout)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var oe *net.OpError
	return errors.As(err, &oe)
}

// NoErrors matches no error: as ChunkConfig.ReadRetry, it turns read retries
// off.
var NoErrors ErrorMatcher = func(error) bool { return false }

// Backoff is how long to wait before each retry: Initial before the first,
// multiplied by Multiplier for each next one, at most Max, each wait drawn at
// random between (1-Jitter) and 1 times that.
type Backoff struct {
	// Initial is the wait before the first retry. Default 100ms.
	Initial time.Duration
	// Max caps a single wait. Default 10s.
	Max time.Duration
	// Multiplier grows the wait between retries. Default 2.
	Multiplier float64
	// Jitter, up to 1, is the fraction of each wait drawn at random, so that
	// retrying processes do not wake in step. Zero means the default, 0.5;
	// a negative value means none.
	Jitter float64
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = 100 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 10 * time.Second
	}
	if b.Multiplier < 1 {
		b.Multiplier = 2
	}
	switch {
	case b.Jitter == 0:
		b.Jitter = 0.5
	case b.Jitter < 0:
		b.Jitter = 0
	case b.Jitter > 1:
		b.Jitter = 1
	}
	return b
}

// Delay returns the wait before retry number attempt (1 for the first retry).
func (b Backoff) Delay(attempt int) time.Duration {
	b = b.withDefaults()
	d := float64(b.Initial)
	for i := 1; i < attempt && d < float64(b.Max); i++ {
		d *= b.Multiplier
	}
	d = min(d, float64(b.Max))
	d -= d * b.Jitter * rand.Float64()
	return time.Duration(d)
}

// Wait waits the delay before retry number attempt, or until ctx is done,
// and returns ctx's error in that case.
func (b Backoff) Wait(ctx context.Context, attempt int) error {
	return sleep(ctx, b.Delay(attempt))
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Skip describes one skipped item to a SkipListener.
type Skip[T, U any] struct {
	Step string
	// Phase is "read", "process" or "write".
	Phase string
	// Item is the item's number within the step, counted over all its
	// executions from 1; for a read skip, the number the next item read
	// will have. The error of a read skip names the record's place in the
	// input (file and line, for the CSV reader). In a replay (see
	// Replayer), the number the item had in the execution that skipped it.
	Item int64
	// Input is the item as read (zero for a read skip); Output the
	// processed item (write skips only).
	Input  T
	Output U
	Err    error
	// Commit numbers the commit attempt that reports the skip. A commit
	// that fails and is retried reports its skips again, with a new
	// number: a listener that buffers skips until the transaction commits
	// drops what it holds when the number changes.
	Commit uint64
}

// SkipListener is told about every skipped item. OnSkip is called inside the
// transaction of the chunk that counts the skip, after the chunk's write and
// before the streams' Update: a listener that writes to the repository's
// database through JoinTx records each skip exactly once, and one that
// is also an ItemStream can make its own output durable in Update. If the
// transaction fails and is retried, OnSkip is called again for its skips
// (see Skip.Commit). An error fails the commit.
type SkipListener[T, U any] interface {
	OnSkip(ctx context.Context, s *Skip[T, U]) error
}

// RetryEvent describes a retry to a RetryListener.
type RetryEvent struct {
	Step    string
	Phase   string // "read" (the next record), "process" (one item) or "write" (the chunk's transaction)
	Chunk   int64
	Item    int64 // the item, or the chunk's first item
	Attempt int   // 1 for the first retry
	Delay   time.Duration
	Err     error // the error being retried
}

// RetryListener is told before every retry. A chunk step tells its step
// context too when that is a RetryListener (the launcher's count retries
// in its metrics).
type RetryListener interface {
	OnRetry(ctx context.Context, r *RetryEvent)
}

// ErrSkipLimitExceeded is matched (errors.Is) by the error of a step that
// skipped more items than its skip limit allows.
var ErrSkipLimitExceeded = errors.New("batch: skip limit exceeded")

// SkipLimitError is the error of the item that went past the skip limit.
type SkipLimitError struct {
	Limit int
	Err   error // the error of the last bad item
}

func (e *SkipLimitError) Error() string {
	return fmt.Sprintf("skip limit %d exceeded: %v", e.Limit, e.Err)
}

// Unwrap returns the bad item's error.
func (e *SkipLimitError) Unwrap() error { return e.Err }

// Is matches ErrSkipLimitExceeded.
func (e *SkipLimitError) Is(target error) bool { return target == ErrSkipLimitExceeded }

// ErrStartLimitExceeded: a step was started more times for one job instance
// than its start limit allows.
var ErrStartLimitExceeded = errors.New("batch: step start limit exceeded")
