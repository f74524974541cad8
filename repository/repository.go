package repository

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/chunktx"
)

// JobRepository stores job instances, job executions and step executions. It
// is the seam between the engine (package launcher) and a store.
//
// Every method returns a copy: changing a returned value changes nothing in
// the store until it is passed to an update. Errors callers branch on wrap
// batch.ErrNotFound, batch.ErrStaleVersion and batch.ErrFenced.
type JobRepository interface {
	// CreateJobExecution applies the launch rules atomically and, when they
	// allow it, creates a new execution in STARTING for the instance that
	// req's job name and identifying parameters address (creating the
	// instance on first launch), with req.Lease as its lease:
	//
	//   - no earlier execution, or the last one FAILED or STOPPED: allowed
	//     (the latter is a restart);
	//   - the last one COMPLETED: batch.ErrJobComplete;
	//   - the last one ABANDONED: batch.ErrJobAbandoned;
	//   - the last one FAILED or STOPPED and req.PreventRestart:
	//     batch.ErrJobNotRestartable;
	//   - one still running whose heartbeat is within its own lease (the
	//     lease it was created with, whatever req.Lease says):
	//     batch.ErrJobRunning. One whose heartbeat is older is marked FAILED
	//     (with its running steps) as crashed, and the launch is allowed.
	//
	// Refusals are *batch.LaunchError. Of any number of concurrent launches
	// of one instance, at most one succeeds. [ApplyLaunchRules] implements
	// the rules.
	CreateJobExecution(ctx context.Context, req LaunchRequest) (*batch.JobExecution, error)

	// JobExecution returns the execution with id, or batch.ErrNotFound.
	JobExecution(ctx context.Context, id int64) (*batch.JobExecution, error)

	// UpdateJobExecution saves e's status, exit status, times and context
	// if e.Version is the stored version (else batch.ErrStaleVersion), and
	// increments e.Version.
	UpdateJobExecution(ctx context.Context, e *batch.JobExecution) error

	// Heartbeat records that the execution's process is alive, at the
	// repository's time (its database's clock where it has one, so that
	// the clocks of the machines that run and launch jobs do not matter),
	// and returns the execution's stored status. It changes nothing if the
	// execution is not running.
	Heartbeat(ctx context.Context, executionID int64) (batch.BatchStatus, error)

	// JobExecutions lists executions, newest first.
	JobExecutions(ctx context.Context, q batch.ExecutionQuery) ([]*batch.JobExecution, error)

	// JobInstance returns the instance with id, or batch.ErrNotFound.
	JobInstance(ctx context.Context, id int64) (*batch.JobInstance, error)

	// JobNames returns the names of all jobs that have an instance, sorted.
	JobNames(ctx context.Context) ([]string, error)

	// CreateStepExecution stores a new step execution of a running job
	// execution (else batch.ErrFenced) and sets its ID and Version.
	CreateStepExecution(ctx context.Context, s *batch.StepExecution) error

	// UpdateStepExecution saves s if s.Version is the stored version (else
	// batch.ErrStaleVersion) and its job execution is running (else
	// batch.ErrFenced), and increments s.Version.
	UpdateStepExecution(ctx context.Context, s *batch.StepExecution) error

	// StepExecutions returns the step executions of a job execution in the
	// order they were created.
	StepExecutions(ctx context.Context, jobExecutionID int64) ([]*batch.StepExecution, error)

	// LastStepExecution returns the most recent execution of the named step
	// in any execution of the instance, or batch.ErrNotFound.
	LastStepExecution(ctx context.Context, instanceID int64, stepName string) (*batch.StepExecution, error)

	// StepExecutionCount returns how many times the named step was started
	// for the instance.
	StepExecutionCount(ctx context.Context, instanceID int64, stepName string) (int, error)

	// CommitChunk is the chunk transaction. It calls write with a context
	// made by [BeginChunk] when the repository is a SQL database (so that a
	// writer on the same database joins the transaction with
	// batch.JoinTx), or by [WithoutChunkTx] when it is not. Then, in the
	// same transaction, it checks that the step's job execution is still
	// running (else batch.ErrFenced) and saves s — its counts and context —
	// if s.Version is the stored version (else batch.ErrStaleVersion).
	// Either all of it commits or none of it does. On success s.Version is
	// incremented and the job execution's status, as read inside the
	// transaction, is returned, so that a requested stop is seen at the
	// chunk boundary.
	CommitChunk(ctx context.Context, s *batch.StepExecution, write func(ctx context.Context) error) (batch.BatchStatus, error)
}

// LaunchRequest asks [JobRepository.CreateJobExecution] for a new execution.
type LaunchRequest struct {
	JobName    string
	Parameters batch.JobParameters
	// Lease is the new execution's lease, stored with it: how old its
	// heartbeat may grow before it is presumed dead. Zero means
	// batch.DefaultLease. It never applies to earlier executions, which are
	// judged by their own.
	Lease time.Duration
	// Now is the time the launch happens, for tests; zero means the
	// repository's time, the clock its heartbeats are written with.
	Now time.Time
	// PreventRestart refuses the launch with batch.ErrJobNotRestartable
	// when the instance has an earlier execution.
	PreventRestart bool
}

// At returns the time of the launch: r.Now, or the current time.
func (r LaunchRequest) At() time.Time {
	if r.Now.IsZero() {
		return time.Now().UTC()
	}
	return r.Now.UTC()
}

// LeaseOrDefault returns r.Lease, or batch.DefaultLease when it is not set.
func (r LaunchRequest) LeaseOrDefault() time.Duration {
	if r.Lease <= 0 {
		return batch.DefaultLease
	}
	return r.Lease
}

// LastExecution is what the launch rules look at: the last execution of the
// instance, as stored.
type LastExecution struct {
	ID        int64
	Status    batch.BatchStatus
	Heartbeat time.Time
	// Lease is the execution's own lease; zero means batch.DefaultLease.
	Lease time.Duration
}

// LaunchRule is what the launch rules decide given an instance's last
// execution. An implementation applies it in the transaction that creates
// the execution.
type LaunchRule struct {
	// Crashed, when not empty, is the exit description with which the last
	// execution, and its running step executions, are to be marked FAILED:
	// it was running, with a heartbeat older than its lease.
	Crashed string
	// Refusal, when not nil, refuses the launch (a *batch.LaunchError). A
	// crash mark is recorded all the same.
	Refusal error
}

// ApplyLaunchRules applies the launch rules of
// JobRepository.CreateJobExecution to the last execution of an instance at
// the time now.
func ApplyLaunchRules(req LaunchRequest, instanceID int64, last LastExecution, now time.Time) LaunchRule {
	lease := last.Lease
	if lease <= 0 {
		lease = batch.DefaultLease
	}
	refuse := func(err error) error {
		le := &batch.LaunchError{JobName: req.JobName, InstanceID: instanceID, ExecutionID: last.ID, Err: err}
		if errors.Is(err, batch.ErrJobRunning) {
			le.Heartbeat, le.Lease = last.Heartbeat.UTC(), lease
			le.HeartbeatAge = now.Sub(last.Heartbeat)
		}
		return le
	}
	var rule LaunchRule
	switch {
	case last.Status.Running() && now.Sub(last.Heartbeat) <= lease:
		return LaunchRule{Refusal: refuse(batch.ErrJobRunning)}
	case last.Status.Running():
		rule.Crashed = batch.CrashedDescription + " since " + last.Heartbeat.UTC().Format(time.RFC3339) + " (lease " + lease.String() + ")"
	case last.Status == batch.StatusCompleted:
		return LaunchRule{Refusal: refuse(batch.ErrJobComplete)}
	case last.Status == batch.StatusAbandoned:
		return LaunchRule{Refusal: refuse(batch.ErrJobAbandoned)}
	}
	if req.PreventRestart {
		rule.Refusal = refuse(batch.ErrJobNotRestartable)
	}
	return rule
}

// ChunkTx is the transaction of one chunk in a SQL job repository, made by
// [BeginChunk]. It begins when a writer joins it or when the repository asks
// for it with Tx, whichever comes first.
type ChunkTx struct{ t *chunktx.Tx }

// BeginChunk returns the context to hand to the chunk's write function,
// carrying a transaction on db that begins on first use with opts and with
// ctx (so that it lives as long as the chunk whatever context a writer joins
// it with), and the transaction itself, for the repository to add the
// checkpoint to and commit. Writers reach it with batch.JoinTx only when
// their handle is db's *sql.DB.
func BeginChunk(ctx context.Context, db *sqlx.DB, opts *sql.TxOptions) (context.Context, *ChunkTx) {
	t := chunktx.New(ctx, db, opts)
	return chunktx.With(ctx, t), &ChunkTx{t: t}
}

// WithoutChunkTx returns the context to hand to the chunk's write function
// of a repository that keeps no SQL transaction; reason says why, for the
// batch.ErrNoChunkTx that a writer asking to join gets.
func WithoutChunkTx(ctx context.Context, reason string) context.Context {
	return chunktx.Without(ctx, reason)
}

// Tx returns the transaction, beginning it if no writer has.
func (c *ChunkTx) Tx() (*sqlx.Tx, error) { return c.t.Tx() }

// Began reports whether the transaction began: a writer joined it, or Tx
// was called.
func (c *ChunkTx) Began() bool { return c.t.Began() }

// Commit commits the transaction if it began.
func (c *ChunkTx) Commit() error { return c.t.Commit() }

// Rollback rolls the transaction back if it began; a transaction already
// done is not an error.
func (c *ChunkTx) Rollback() error { return c.t.Rollback() }

// MarshalContext encodes an execution context for storage. A nil context
// encodes as "{}".
func MarshalContext(c batch.ExecutionContext) ([]byte, error) {
	if c == nil {
		return []byte("{}"), nil
	}
	return json.Marshal(map[string]json.RawMessage(c))
}

// UnmarshalContext decodes a stored execution context.
func UnmarshalContext(b []byte) (batch.ExecutionContext, error) {
	c := batch.ExecutionContext{}
	if len(b) == 0 {
		return c, nil
	}
	if err := json.Unmarshal(b, (*map[string]json.RawMessage)(&c)); err != nil {
		return nil, fmt.Errorf("repository: decode execution context: %w", err)
	}
	if c == nil { // JSON null
		c = batch.ExecutionContext{}
	}
	return c, nil
}

// Pruner is a [JobRepository] that can delete old history. The SQL
// repositories and the memory repository are Pruners.
type Pruner interface {
	// Prune deletes the job executions that req selects, with their step
	// executions, and the job instances left without executions, a batch
	// of executions per transaction, and says what it deleted (with
	// req.DryRun: what it would delete). See [PruneRequest] for what is
	// never deleted.
	Prune(ctx context.Context, req PruneRequest) (PruneResult, error)
}

// ErrNoPruneCriteria is the error of a [PruneRequest] with neither
// OlderThan nor KeepLast: it would select every execution.
var ErrNoPruneCriteria = errors.New("prune: no criteria: give an age (OlderThan), a count to keep (KeepLast), or both")

// PruneRequest selects the executions [Pruner.Prune] deletes: those that
// meet every criterion given.
//
// Never deleted: an execution that is running (STARTING, STARTED,
// STOPPING), and any execution of an instance whose last execution is
// running. Without Restartable, also any execution of an instance whose
// last execution FAILED or STOPPED: such an instance can be restarted, and
// a restart needs the step executions of all its earlier runs (the steps
// that completed are not run again; start limits count earlier starts).
//
// An instance whose executions are all deleted is deleted too, and
// forgotten: launching its job with the same identifying parameters starts
// a new instance, even if the pruned one had completed.
type PruneRequest struct {
	// OlderThan selects executions that ended (or, when they have no end
	// time, were last updated) more than OlderThan before Now. Zero: no
	// age criterion.
	OlderThan time.Duration
	// KeepLast selects the executions of each job older than its KeepLast
	// newest ones (counting every execution of the job). Zero: no count
	// criterion.
	KeepLast int
	// Job limits the prune to the executions of one job; "" means all jobs.
	Job string
	// Restartable also selects executions of instances that could still
	// be restarted (their last execution FAILED or STOPPED). A restart of
	// such an instance after a prune runs again the steps whose executions
	// were deleted.
	Restartable bool
	// DryRun deletes nothing: the result says what would be deleted.
	DryRun bool
	// BatchSize is how many executions one transaction examines; zero
	// means 500. Small batches keep locks short: a prune never holds up a
	// running job for long.
	BatchSize int
	// Now is the time OlderThan counts back from; zero means the current
	// time.
	Now time.Time
}

// Check returns ErrNoPruneCriteria, or an error for a negative figure.
func (r PruneRequest) Check() error {
	switch {
	case r.OlderThan < 0 || r.KeepLast < 0 || r.BatchSize < 0:
		return fmt.Errorf("prune: OlderThan, KeepLast and BatchSize cannot be negative")
	case r.OlderThan == 0 && r.KeepLast == 0:
		return ErrNoPruneCriteria
	}
	return nil
}

// Batch returns BatchSize, or its default.
func (r PruneRequest) Batch() int {
	if r.BatchSize <= 0 {
		return 500
	}
	return r.BatchSize
}

// Selects reports whether the request selects an execution that ended at
// ended (its end time, else its last update), has status, whose instance's
// last execution has lastStatus, and which is (newest) or is not among the
// KeepLast newest of its job. Repositories apply it to each candidate.
func (r PruneRequest) Selects(ended time.Time, newest bool, status, lastStatus batch.BatchStatus) bool {
	now := r.Now
	if now.IsZero() {
		now = time.Now()
	}
	switch {
	case status.Running() || lastStatus.Running():
		return false
	case !r.Restartable && (lastStatus == batch.StatusFailed || lastStatus == batch.StatusStopped):
		return false
	case r.OlderThan > 0 && !ended.Before(now.Add(-r.OlderThan)):
		return false
	case r.KeepLast > 0 && newest:
		return false
	}
	return true
}

// PruneResult says what a prune deleted, per job.
type PruneResult struct {
	Jobs []PrunedJob // sorted by job name; jobs with nothing pruned are left out
}

// PrunedJob is what a prune deleted of one job.
type PrunedJob struct {
	Job            string
	Executions     int64
	StepExecutions int64
	Instances      int64
	// Oldest and Newest are the end times (else last updates) of the
	// oldest and newest executions deleted.
	Oldest, Newest time.Time
}

// Total returns the sums over all jobs.
func (r PruneResult) Total() PrunedJob {
	var t PrunedJob
	for _, j := range r.Jobs {
		t.Executions += j.Executions
		t.StepExecutions += j.StepExecutions
		t.Instances += j.Instances
		if !j.Oldest.IsZero() && (t.Oldest.IsZero() || j.Oldest.Before(t.Oldest)) {
			t.Oldest = j.Oldest
		}
		if j.Newest.After(t.Newest) {
			t.Newest = j.Newest
		}
	}
	return t
}

// Add counts one execution of the job, ended at ended: for
// implementations.
func (j *PrunedJob) Add(ended time.Time) {
	j.Executions++
	if j.Oldest.IsZero() || ended.Before(j.Oldest) {
		j.Oldest = ended
	}
	if ended.After(j.Newest) {
		j.Newest = ended
	}
}

// SortPruned returns the result of the jobs' counts, for implementations.
func SortPruned(jobs map[string]*PrunedJob) PruneResult {
	res := PruneResult{Jobs: []PrunedJob{}}
	for _, j := range jobs {
		res.Jobs = append(res.Jobs, *j)
	}
	slices.SortFunc(res.Jobs, func(a, b PrunedJob) int { return strings.Compare(a.Job, b.Job) })
	return res
}

// RejectStore is a [JobRepository] that keeps the rejects of its step
// executions — the skipped items, with why and where — for a person to
// list and act on (the command line's rejects). The SQL repositories and
// the memory repository are RejectStores.
type RejectStore interface {
	// SaveReject stores r, skipped in step execution stepExecutionID,
	// inside the chunk transaction ctx carries (the write function's
	// context of CommitChunk): it commits with the chunk's checkpoint, or
	// not at all.
	SaveReject(ctx context.Context, stepExecutionID int64, r batch.Reject) error
	// Rejects returns the rejects of a job execution's steps, in the
	// order they were saved.
	Rejects(ctx context.Context, jobExecutionID int64) ([]StoredReject, error)
}

// StoredReject is a reject as a RejectStore keeps it.
type StoredReject struct {
	batch.Reject
	ID              int64
	JobExecutionID  int64
	StepExecutionID int64
	CreatedAt       time.Time
}
