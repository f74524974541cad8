package batch

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// JobRepository stores job instances, job executions and step executions. It
// is the seam between the engine and a store; the implementations are in
// repository/postgres, repository/sqlite and repository/memory, and
// repository/repotest holds the conformance suite every implementation
// passes.
//
// Every method returns a copy: changing a returned value changes nothing in
// the store until it is passed to an update.
type JobRepository interface {
	// CreateJobExecution applies the launch rules atomically and, when they
	// allow it, creates a new execution in STARTING for the instance that
	// req's job name and identifying parameters address (creating the
	// instance on first launch):
	//
	//   - no earlier execution, or the last one FAILED or STOPPED: allowed
	//     (the latter is a restart);
	//   - the last one COMPLETED: ErrJobComplete;
	//   - the last one ABANDONED: ErrJobAbandoned;
	//   - the last one FAILED or STOPPED and req.PreventRestart:
	//     ErrJobNotRestartable;
	//   - one still running whose heartbeat is within req.Lease:
	//     ErrJobRunning. One whose heartbeat is older is marked FAILED
	//     (with its running steps) as crashed, and the launch is allowed.
	//
	// Refusals are *LaunchError. Of any number of concurrent launches of one
	// instance, at most one succeeds.
	CreateJobExecution(ctx context.Context, req LaunchRequest) (*JobExecution, error)

	// JobExecution returns the execution with id, or ErrNotFound.
	JobExecution(ctx context.Context, id int64) (*JobExecution, error)

	// UpdateJobExecution saves e's status, exit status, times and context
	// if e.Version is the stored version (else ErrStaleVersion), and
	// increments e.Version.
	UpdateJobExecution(ctx context.Context, e *JobExecution) error

	// Heartbeat records that the execution's process is alive and returns
	// the execution's stored status. It changes nothing if the execution is
	// not running.
	Heartbeat(ctx context.Context, executionID int64, now time.Time) (BatchStatus, error)

	// JobExecutions lists executions, newest first.
	JobExecutions(ctx context.Context, q ExecutionQuery) ([]*JobExecution, error)

	// JobInstance returns the instance with id, or ErrNotFound.
	JobInstance(ctx context.Context, id int64) (*JobInstance, error)

	// JobNames returns the names of all jobs that have an instance, sorted.
	JobNames(ctx context.Context) ([]string, error)

	// CreateStepExecution stores a new step execution and sets its ID and
	// Version.
	CreateStepExecution(ctx context.Context, s *StepExecution) error

	// UpdateStepExecution saves s if s.Version is the stored version (else
	// ErrStaleVersion) and increments s.Version.
	UpdateStepExecution(ctx context.Context, s *StepExecution) error

	// StepExecutions returns the step executions of a job execution in the
	// order they were created.
	StepExecutions(ctx context.Context, jobExecutionID int64) ([]*StepExecution, error)

	// LastStepExecution returns the most recent execution of the named step
	// in any execution of the instance, or ErrNotFound.
	LastStepExecution(ctx context.Context, instanceID int64, stepName string) (*StepExecution, error)

	// StepExecutionCount returns how many times the named step was started
	// for the instance.
	StepExecutionCount(ctx context.Context, instanceID int64, stepName string) (int, error)

	// CommitChunk is the chunk transaction. It calls write with a context
	// that carries a [ChunkTx] when the repository is a SQL database (so a
	// writer on the same database joins the transaction), then, in the same
	// transaction, checks that the step's job execution is still running
	// (else ErrFenced) and saves s — its counts and context — if s.Version is
	// the stored version (else ErrStaleVersion). Either all of it commits or
	// none of it does. On success s.Version is incremented and the job
	// execution's status, as read inside the transaction, is returned, so
	// that a requested stop is seen at the chunk boundary.
	CommitChunk(ctx context.Context, s *StepExecution, write func(ctx context.Context) error) (BatchStatus, error)
}

// LaunchRequest asks [JobRepository.CreateJobExecution] for a new execution.
type LaunchRequest struct {
	JobName    string
	Parameters JobParameters
	// Lease is how old a running execution's heartbeat may be before the
	// execution is presumed dead. Zero means DefaultLease.
	Lease time.Duration
	// Now is the time the launch happens; zero means time.Now().
	Now time.Time
	// PreventRestart refuses the launch with ErrJobNotRestartable when the
	// instance has an earlier execution.
	PreventRestart bool
}

// At returns the time of the launch: r.Now, or the current time.
func (r LaunchRequest) At() time.Time {
	if r.Now.IsZero() {
		return time.Now().UTC()
	}
	return r.Now.UTC()
}

// LaunchRule is what the launch rules decide given an instance's last
// execution. It is for JobRepository implementations, which apply it in the
// transaction that creates the execution.
type LaunchRule struct {
	// Crashed, when not empty, is the exit description with which the last
	// execution, and its running step executions, are to be marked FAILED:
	// it was running, with a heartbeat older than the lease.
	Crashed string
	// Refusal, when not nil, refuses the launch (a *LaunchError). A crash
	// mark is recorded all the same.
	Refusal error
}

// ApplyLaunchRules applies the launch rules of
// JobRepository.CreateJobExecution to the last execution of an instance
// (its id, status and heartbeat), at the time now.
func ApplyLaunchRules(req LaunchRequest, instanceID, lastID int64, lastStatus BatchStatus, lastHeartbeat, now time.Time) LaunchRule {
	lease := req.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	refuse := func(err error) error {
		return &LaunchError{JobName: req.JobName, InstanceID: instanceID, ExecutionID: lastID, Err: err}
	}
	var rule LaunchRule
	switch {
	case lastStatus.Running() && now.Sub(lastHeartbeat) <= lease:
		return LaunchRule{Refusal: refuse(ErrJobRunning)}
	case lastStatus.Running():
		rule.Crashed = CrashedDescription + " since " + lastHeartbeat.UTC().Format(time.RFC3339) + " (lease " + lease.String() + ")"
	case lastStatus == StatusCompleted:
		return LaunchRule{Refusal: refuse(ErrJobComplete)}
	case lastStatus == StatusAbandoned:
		return LaunchRule{Refusal: refuse(ErrJobAbandoned)}
	}
	if req.PreventRestart {
		rule.Refusal = refuse(ErrJobNotRestartable)
	}
	return rule
}

// DefaultLease is the lease used when none is configured.
const DefaultLease = 30 * time.Second

// ExecutionQuery selects job executions.
type ExecutionQuery struct {
	JobName    string // "" for all jobs
	InstanceID int64  // 0 for all instances
	Running    bool   // only STARTING, STARTED and STOPPING executions
	Limit      int    // 0 for no limit
}

// CrashedDescription is the start of the exit description of an execution
// that was marked FAILED because its heartbeat lapsed.
const CrashedDescription = "presumed crashed: no heartbeat"

type chunkTxKey struct{}

// ChunkTx is the transaction of one chunk in a SQL job repository. The
// repository puts it in the context it hands to the writer; a writer whose
// database is the same gets the transaction with [JoinChunkTx], so that its
// statements commit or roll back together with the step's checkpoint.
//
// The transaction begins on first use.
type ChunkTx struct {
	ctx  context.Context
	db   *sqlx.DB
	opts *sql.TxOptions

	mu sync.Mutex
	tx *sqlx.Tx
}

// NewChunkTx returns a chunk transaction on db that has not begun yet; it
// will begin with ctx, the chunk's context, so that it lives as long as the
// chunk whatever context a writer joins it with. It is for JobRepository
// implementations.
func NewChunkTx(ctx context.Context, db *sqlx.DB, opts *sql.TxOptions) *ChunkTx {
	return &ChunkTx{ctx: ctx, db: db, opts: opts}
}

// DB returns the database the transaction runs on.
func (c *ChunkTx) DB() *sqlx.DB { return c.db }

// Tx returns the transaction, beginning it on first call.
func (c *ChunkTx) Tx() (*sqlx.Tx, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tx == nil {
		tx, err := c.db.BeginTxx(c.ctx, c.opts)
		if err != nil {
			return nil, err
		}
		c.tx = tx
	}
	return c.tx, nil
}

// Commit commits the transaction if it began. It is for JobRepository
// implementations.
func (c *ChunkTx) Commit() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tx == nil {
		return nil
	}
	err := c.tx.Commit()
	c.tx = nil
	return err
}

// Rollback rolls the transaction back if it began. It is for JobRepository
// implementations.
func (c *ChunkTx) Rollback() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tx == nil {
		return nil
	}
	err := c.tx.Rollback()
	c.tx = nil
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// WithChunkTx returns ctx carrying ct. It is for JobRepository
// implementations.
func WithChunkTx(ctx context.Context, ct *ChunkTx) context.Context {
	return context.WithValue(ctx, chunkTxKey{}, ct)
}

// ChunkTxFromContext returns the chunk transaction ctx carries, if any.
func ChunkTxFromContext(ctx context.Context) (*ChunkTx, bool) {
	ct, ok := ctx.Value(chunkTxKey{}).(*ChunkTx)
	return ct, ok
}

// JoinChunkTx returns the chunk's transaction when ctx carries one on db —
// the same *sqlx.DB the job repository was built on — beginning it if needed.
// It returns nil and no error when the chunk has no transaction on db; the
// writer then runs its own transaction, which commits before the step's
// checkpoint (at most one chunk is redone after a crash).
func JoinChunkTx(ctx context.Context, db *sqlx.DB) (*sqlx.Tx, error) {
	ct, ok := ChunkTxFromContext(ctx)
	if !ok || ct.db != db {
		return nil, nil
	}
	return ct.Tx()
}
