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

	"github.com/chunkwise/chunkwise/batch"
)

// Config configures a Launcher.
type Config struct {
	// Registry holds the jobs. Required.
	Registry *Registry
	// Repository stores the executions. Required.
	Repository batch.JobRepository
	// DB is the repository's SQL database, handed to job factories. Default:
	// the repository's own when it has a DB() method, else nil.
	DB *sqlx.DB
	// Lease is how old a running execution's heartbeat may be before it is
	// presumed crashed. Default batch.DefaultLease (30s).
	Lease time.Duration
	// Logger receives structured logs. Default: discard.
	Logger *slog.Logger
	// Stdout is handed to job factories. Default io.Discard.
	Stdout io.Writer
}

// Launcher starts jobs, synchronously or in the background, and operates on
// their executions: restart, stop, abandon, list and summarize. It is safe
// for concurrent use.
type Launcher struct {
	reg    *Registry
	engine *batch.Engine
	env    Env

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
	if cfg.Registry == nil || cfg.Repository == nil {
		return nil, fmt.Errorf("launcher: Registry and Repository are required")
	}
	if cfg.Lease < 0 {
		return nil, fmt.Errorf("launcher: negative lease %v", cfg.Lease)
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
	return &Launcher{
		reg:     cfg.Registry,
		engine:  &batch.Engine{Repository: cfg.Repository, Lease: cfg.Lease, Logger: cfg.Logger},
		env:     Env{DB: cfg.DB, Repository: cfg.Repository, Logger: cfg.Logger, Stdout: cfg.Stdout},
		running: map[int64]chan struct{}{},
		results: map[int64]result{},
	}, nil
}

// Repository returns the launcher's job repository.
func (l *Launcher) Repository() batch.JobRepository { return l.engine.Repository }

// Launch creates an execution of the named job with params (a new instance,
// or a restart of a failed or stopped one) without running it. Run it with
// Execute. Most callers want Run or Start.
func (l *Launcher) Launch(ctx context.Context, jobName string, params batch.JobParameters) (*batch.Job, *batch.JobExecution, error) {
	if params == nil {
		params = batch.JobParameters{}
	}
	env := l.env
	env.Parameters = params
	job, err := l.reg.Job(jobName, env)
	if err != nil {
		return nil, nil, err
	}
	exec, err := l.engine.Launch(ctx, job, params)
	if err != nil {
		return nil, nil, err
	}
	return job, exec, nil
}

// Execute runs an execution made by Launch to its end; see batch.Engine.Run.
func (l *Launcher) Execute(ctx context.Context, job *batch.Job, exec *batch.JobExecution) (*batch.JobExecution, error) {
	return l.engine.Run(ctx, job, exec)
}

// Run launches the named job and runs it to its end. The error is non-nil
// when the launch is refused (see batch.JobRepository.CreateJobExecution) or
// the execution FAILED; a STOPPED execution is not an error.
func (l *Launcher) Run(ctx context.Context, jobName string, params batch.JobParameters) (*batch.JobExecution, error) {
	job, exec, err := l.Launch(ctx, jobName, params)
	if err != nil {
		return nil, err
	}
	return l.Execute(ctx, job, exec)
}

// Start launches the named job and runs it in the background. It returns the
// execution's id once the execution exists; Wait waits for its end.
// Cancelling ctx interrupts the run.
func (l *Launcher) Start(ctx context.Context, jobName string, params batch.JobParameters) (int64, error) {
	job, exec, err := l.Launch(ctx, jobName, params)
	if err != nil {
		return 0, err
	}
	done := make(chan struct{})
	l.mu.Lock()
	l.running[exec.ID] = done
	l.mu.Unlock()
	go func() {
		final, err := l.Execute(ctx, job, exec)
		l.mu.Lock()
		l.results[exec.ID] = result{exec: final, err: err}
		delete(l.running, exec.ID)
		l.mu.Unlock()
		close(done)
	}()
	return exec.ID, nil
}

// Wait waits for a run that Start began in this launcher and returns its
// final execution and error. For an execution this launcher is not running,
// it returns the execution as stored.
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
	l.mu.Unlock()
	if ok {
		return res.exec, res.err
	}
	return l.Repository().JobExecution(ctx, executionID)
}

// Restart launches again the instance of a FAILED or STOPPED execution, with
// the same parameters, and runs it to its end. Completed steps are skipped;
// the failed or stopped step resumes from its last commit.
func (l *Launcher) Restart(ctx context.Context, executionID int64) (*batch.JobExecution, error) {
	prev, err := l.Repository().JobExecution(ctx, executionID)
	if err != nil {
		return nil, err
	}
	if prev.Status == batch.StatusCompleted {
		return nil, &batch.LaunchError{JobName: prev.JobName, InstanceID: prev.InstanceID, ExecutionID: prev.ID, Err: batch.ErrJobComplete}
	}
	return l.Run(ctx, prev.JobName, prev.Parameters)
}

// Stop asks a running execution to stop. The process running it — this one
// at once, another when its next chunk commit or heartbeat reads the request —
// stops at the next chunk boundary, commits nothing more, and ends the
// execution STOPPED, restartable. Stop returns an error wrapping
// batch.ErrNotRunning for an execution that is not running.
func (l *Launcher) Stop(ctx context.Context, executionID int64) error {
	local := l.engine.Stop(executionID)
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

// Abandon marks a FAILED or STOPPED execution ABANDONED: its instance will
// never be restarted. A running execution must be stopped first, unless its
// heartbeat is older than the lease (its process is gone).
func (l *Launcher) Abandon(ctx context.Context, executionID int64) error {
	return l.setStatus(ctx, executionID, func(e *batch.JobExecution) error {
		switch {
		case e.Status == batch.StatusAbandoned:
			return errNoChange
		case e.Status == batch.StatusCompleted:
			return fmt.Errorf("abandon execution %d: it completed", e.ID)
		case e.Status.Running() && time.Since(e.Heartbeat) <= l.lease():
			return fmt.Errorf("abandon execution %d: it is %s; stop it first: %w", e.ID, e.Status, batch.ErrJobRunning)
		}
		e.Status = batch.StatusAbandoned
		e.ExitStatus = batch.ExitStatus{Code: "ABANDONED", Description: "abandoned by an operator"}
		if e.EndTime.IsZero() {
			e.EndTime = time.Now().UTC()
		}
		return nil
	})
}

func (l *Launcher) lease() time.Duration {
	if l.engine.Lease > 0 {
		return l.engine.Lease
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
