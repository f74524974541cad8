package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

// Config configures a Launcher.
type Config struct {
	// Repository stores the executions. Required.
	Repository repository.JobRepository
	// Registry holds the jobs by name, for Job and Restart. Default none:
	// the launcher runs the *batch.Job values it is given.
	Registry *Registry
	// DB is the repository's SQL database, handed to job factories in Env.
	// Default: the repository's own when it has a DB() *sqlx.DB method,
	// else nil.
	DB *sqlx.DB
	// Lease is the lease of the executions this launcher starts, stored
	// with each: how old its heartbeat may grow before a launch elsewhere
	// presumes it crashed. It has no bearing on executions started by
	// others, which are judged by their own. Default batch.DefaultLease
	// (30s).
	Lease time.Duration
	// HeartbeatInterval is how often a running execution records that it
	// is alive; it should be well within the lease. Default Lease/3. A run
	// whose heartbeats fail for longer than its lease stops working (it may
	// be taken over, and could not commit anyway) and ends with an error
	// wrapping batch.ErrFenced.
	HeartbeatInterval time.Duration
	// StopGrace is how long a stopping execution may take to reach its next
	// chunk boundary; after it, the step's context is cancelled (a reader
	// blocked on a pipe or a hung call returns), the chunk in flight rolls
	// back and the execution ends STOPPED. Default Lease.
	StopGrace time.Duration
	// Logger receives structured logs. Default: discard.
	Logger *slog.Logger
	// Stdout is handed to job factories in Env. Default io.Discard.
	Stdout io.Writer
	// MeterProvider receives the launcher's metrics (see docs/operations.md:
	// durations of jobs, steps and chunks, executions running, items by
	// operation). Default: OpenTelemetry's global one, which does nothing
	// until the program installs an SDK.
	MeterProvider metric.MeterProvider
	// TracerProvider receives a span per job execution and per step
	// execution, and with ChunkSpans per chunk. Default: OpenTelemetry's
	// global one.
	TracerProvider trace.TracerProvider
	// ChunkSpans adds a span per chunk, under its step's. Default false: a
	// step of a million chunks would make a trace no one can read.
	ChunkSpans bool
	// Remote, with a Dispatcher, hands the partitions of partitioned steps
	// to workers (Launcher.RunPartition in other processes) instead of
	// running them here. Default: partitions run here.
	Remote RemoteConfig
}

// Launcher runs jobs and operates on their executions. Run runs a job to its
// end, Start in the background (Wait waits for it); Restart, Stop and
// Abandon act on an execution by its id, from this process or any other
// that shares the repository; Executions and Summary describe them. It is
// safe for concurrent use.
type Launcher struct {
	reg    *Registry
	engine *engine
	env    Env
	// history is the repository whose executions Replay replays: the
	// launcher's own, or a dry run's real one.
	history repository.JobRepository

	mu      sync.Mutex
	running map[int64]chan struct{} // closed when a background run ends
	results map[int64]result
}

type result struct {
	exec *batch.JobExecution
	err  error
}

// New returns a launcher.
func New(cfg Config) (*Launcher, error) {
	if cfg.Repository == nil {
		return nil, fmt.Errorf("launcher: Repository is required")
	}
	if cfg.Lease < 0 || cfg.HeartbeatInterval < 0 {
		return nil, fmt.Errorf("launcher: negative lease %v or heartbeat interval %v", cfg.Lease, cfg.HeartbeatInterval)
	}
	if cfg.Lease == 0 {
		cfg.Lease = batch.DefaultLease
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = cfg.Lease / 3
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = cfg.Lease
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	if cfg.DB == nil {
		if d, ok := cfg.Repository.(interface{ DB() *sqlx.DB }); ok {
			cfg.DB = d.DB()
		}
	}
	if cfg.Registry == nil {
		cfg.Registry = &Registry{}
	}
	tel, err := newTelemetry(cfg.MeterProvider, cfg.TracerProvider, cfg.ChunkSpans)
	if err != nil {
		return nil, fmt.Errorf("launcher: telemetry: %w", err)
	}
	return &Launcher{
		reg: cfg.Registry,
		engine: &engine{repo: cfg.Repository, lease: cfg.Lease, heartbeatInterval: cfg.HeartbeatInterval,
			stopGrace: cfg.StopGrace, logger: cfg.Logger, tel: tel, remote: cfg.Remote.withDefaults(cfg.Lease), clock: time.Now},
		env:     Env{DB: cfg.DB, Repository: cfg.Repository, Logger: cfg.Logger, Stdout: cfg.Stdout},
		history: cfg.Repository,
		running: map[int64]chan struct{}{},
		results: map[int64]result{},
	}, nil
}

// Repository returns the launcher's job repository.
func (l *Launcher) Repository() repository.JobRepository { return l.engine.repo }

// Job builds the job registered under name for a launch with params.
func (l *Launcher) Job(name string, params batch.JobParameters) (*batch.Job, error) {
	if params == nil {
		params = batch.JobParameters{}
	}
	env := l.env
	env.Parameters = params
	return l.reg.Job(name, env)
}

// Run launches job with params — a new instance, or a restart of its failed
// or stopped instance — and runs it to its end. Completed steps of earlier
// executions of the instance are skipped; a step that failed or stopped
// resumes from its last committed context.
//
// The error is a *batch.LaunchError when the launch is refused (see
// repository.JobRepository.CreateJobExecution), the step's error when the
// execution FAILED, and an error wrapping batch.ErrFenced when another
// process took the instance over; a STOPPED execution is not an error.
// Cancelling ctx interrupts the running chunk (it rolls back) and ends the
// execution STOPPED; Stop stops it gracefully at the next chunk boundary.
func (l *Launcher) Run(ctx context.Context, job *batch.Job, params batch.JobParameters) (*batch.JobExecution, error) {
	exec, err := l.engine.launch(ctx, job, params)
	if err != nil {
		return nil, err
	}
	return l.engine.run(ctx, job, exec)
}

// Start launches job with params as Run does and runs it in the background.
// It returns the new execution once it exists (in STARTING); Wait waits for
// its end. Cancelling ctx interrupts the run.
func (l *Launcher) Start(ctx context.Context, job *batch.Job, params batch.JobParameters) (*batch.JobExecution, error) {
	exec, err := l.engine.launch(ctx, job, params)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	l.mu.Lock()
	l.running[exec.ID] = done
	l.mu.Unlock()
	go func() {
		final, err := l.engine.run(ctx, job, exec)
		l.mu.Lock()
		l.results[exec.ID] = result{exec: final, err: err}
		delete(l.running, exec.ID)
		l.mu.Unlock()
		close(done)
	}()
	return exec.Clone(), nil
}

// Wait waits for a run that Start began in this launcher and returns its
// final execution and error, as Run would. For an execution this launcher is
// not running, it returns the execution as stored.
func (l *Launcher) Wait(ctx context.Context, executionID int64) (*batch.JobExecution, error) {
	l.mu.Lock()
	done, ok := l.running[executionID]
	l.mu.Unlock()
	if ok {
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	l.mu.Lock()
	res, ok := l.results[executionID]
	delete(l.results, executionID)
	l.mu.Unlock()
	if ok {
		return res.exec, res.err
	}
	return l.Repository().JobExecution(ctx, executionID)
}

// Restart launches again the instance of a FAILED or STOPPED execution, with
// the same parameters, and runs it to its end as Run does. The job is built
// from the registry (for a replay, as Replay builds it).
func (l *Launcher) Restart(ctx context.Context, executionID int64) (*batch.JobExecution, error) {
	job, params, err := l.restartable(ctx, executionID)
	if err != nil {
		return nil, err
	}
	return l.Run(ctx, job, params)
}

// StartRestart restarts as Restart does, in the background as Start runs:
// it returns the new execution once it exists, and Wait waits for its end.
func (l *Launcher) StartRestart(ctx context.Context, executionID int64) (*batch.JobExecution, error) {
	job, params, err := l.restartable(ctx, executionID)
	if err != nil {
		return nil, err
	}
	return l.Start(ctx, job, params)
}

// restartable returns the job and parameters that restart execution
// executionID.
func (l *Launcher) restartable(ctx context.Context, executionID int64) (*batch.Job, batch.JobParameters, error) {
	prev, err := l.Repository().JobExecution(ctx, executionID)
	if err != nil {
		return nil, nil, err
	}
	if prev.Status == batch.StatusCompleted {
		return nil, nil, &batch.LaunchError{JobName: prev.JobName, InstanceID: prev.InstanceID, ExecutionID: prev.ID, Err: batch.ErrJobComplete}
	}
	job, err := l.jobFor(ctx, prev.JobName, prev.Parameters)
	if err != nil {
		return nil, nil, err
	}
	return job, prev.Parameters, nil
}

// Stop asks a running execution to stop. The process running it — this one
// at once, another when its next chunk commit or heartbeat reads the request —
// stops at the next chunk boundary, commits nothing more, and ends the
// execution STOPPED, restartable. Stop returns an error wrapping
// batch.ErrNotRunning for an execution that is not running.
func (l *Launcher) Stop(ctx context.Context, executionID int64) error {
	local := l.engine.stop(executionID)
	err := l.setStatus(ctx, executionID, func(e *batch.JobExecution) error {
		switch {
		case e.Status == batch.StatusStopping:
			return errNoChange
		case !e.Status.Running():
			return fmt.Errorf("stop execution %d (%s): %w", e.ID, e.Status, batch.ErrNotRunning)
		}
		e.Status = batch.StatusStopping
		return nil
	})
	if local && errors.Is(err, batch.ErrNotRunning) {
		return nil // it stopped meanwhile
	}
	return err
}

// ErrCannotPrune is the error of Prune on a repository that is not a
// repository.Pruner.
var ErrCannotPrune = errors.New("this job repository cannot prune its history")

// Prune deletes old executions from the job repository: see
// repository.PruneRequest for which, and for what is always kept.
func (l *Launcher) Prune(ctx context.Context, req repository.PruneRequest) (repository.PruneResult, error) {
	p, ok := l.Repository().(repository.Pruner)
	if !ok {
		return repository.PruneResult{}, fmt.Errorf("prune: %w (%T)", ErrCannotPrune, l.Repository())
	}
	return p.Prune(ctx, req)
}

// Abandon marks a FAILED or STOPPED execution ABANDONED: its instance will
// never be restarted. A running execution must be stopped first, unless its
// heartbeat is older than its lease (its process is gone); ForceAbandon does
// not wait.
func (l *Launcher) Abandon(ctx context.Context, executionID int64) error {
	return l.abandon(ctx, executionID, false)
}

// ForceAbandon marks an execution ABANDONED even while it is running or
// stopping: for one whose process is stuck where a stop cannot reach it, on
// a host out of reach. Its process, if it still runs, is fenced off: its next
// commit or heartbeat finds the execution ended and it writes nothing more to
// the repository — but what it does elsewhere (files, calls to other
// systems) until then is not undone.
func (l *Launcher) ForceAbandon(ctx context.Context, executionID int64) error {
	return l.abandon(ctx, executionID, true)
}

func (l *Launcher) abandon(ctx context.Context, executionID int64, force bool) error {
	return l.setStatus(ctx, executionID, func(e *batch.JobExecution) error {
		switch {
		case e.Status == batch.StatusAbandoned:
			return errNoChange
		case e.Status == batch.StatusCompleted:
			return fmt.Errorf("abandon execution %d: it completed", e.ID)
		case !force && e.Status.Running() && time.Since(e.Heartbeat) <= leaseOf(e):
			return fmt.Errorf("abandon execution %d: it is %s (heartbeat %s ago); stop it first, or abandon -force: %w",
				e.ID, e.Status, time.Since(e.Heartbeat).Round(time.Second), batch.ErrJobRunning)
		}
		e.Status = batch.StatusAbandoned
		e.ExitStatus = batch.ExitStatus{Code: "ABANDONED", Description: "abandoned by an operator"}
		if e.EndTime.IsZero() {
			e.EndTime = l.engine.clock().UTC()
		}
		return nil
	})
}

// leaseOf returns the lease an execution was started with.
func leaseOf(e *batch.JobExecution) time.Duration {
	if e.Lease > 0 {
		return e.Lease
	}
	return batch.DefaultLease
}

var errNoChange = errors.New("no change")

func (l *Launcher) setStatus(ctx context.Context, id int64, change func(e *batch.JobExecution) error) error {
	for attempt := 0; ; attempt++ {
		e, err := l.Repository().JobExecution(ctx, id)
		if err != nil {
			return err
		}
		if err := change(e); err != nil {
			if errors.Is(err, errNoChange) {
				return nil
			}
			return fmt.Errorf("launcher: %w", err)
		}
		err = l.Repository().UpdateJobExecution(ctx, e)
		if !errors.Is(err, batch.ErrStaleVersion) || attempt >= 20 {
			return err
		}
	}
}

// Executions lists executions, newest first (see batch.ExecutionQuery).
func (l *Launcher) Executions(ctx context.Context, q batch.ExecutionQuery) ([]*batch.JobExecution, error) {
	return l.Repository().JobExecutions(ctx, q)
}

// JobNames returns the registered job names, sorted.
func (l *Launcher) JobNames() []string { return l.reg.Names() }
