package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Job is a named sequence of steps. Build one with [NewJob].
type Job struct {
	name           string
	steps          []Step
	listeners      []Listener
	preventRestart bool
}

// JobConfig configures a [Job].
type JobConfig struct {
	// Steps run in order; a step that does not complete ends the execution
	// with its status. Required, at least one; step names must be unique.
	Steps []Step
	// Listeners receive the job's events (BeforeJobListener,
	// AfterJobListener). Default none.
	Listeners []Listener
	// PreventRestart makes an instance that failed or stopped impossible to
	// run again: a launch of it fails with ErrJobNotRestartable. For jobs
	// whose work must not be repeated partly. Default false.
	PreventRestart bool
}

// NewJob returns a job. It fails with ErrInvalidConfig if the configuration
// is incomplete or inconsistent.
func NewJob(name string, cfg JobConfig) (*Job, error) {
	if name == "" {
		return nil, configError("job: empty name")
	}
	if len(cfg.Steps) == 0 {
		return nil, configError("job %s: no steps", name)
	}
	seen := map[string]bool{}
	for i, s := range cfg.Steps {
		if s == nil {
			return nil, configError("job %s: step %d is nil", name, i)
		}
		if s.Name() == "" {
			return nil, configError("job %s: step %d has no name", name, i)
		}
		if seen[s.Name()] {
			return nil, configError("job %s: two steps named %q", name, s.Name())
		}
		seen[s.Name()] = true
	}
	if err := validateListeners("job "+name, jobListeners, cfg.Listeners); err != nil {
		return nil, err
	}
	return &Job{name: name, steps: append([]Step(nil), cfg.Steps...), listeners: cfg.Listeners,
		preventRestart: cfg.PreventRestart}, nil
}

// Name returns the job's name.
func (j *Job) Name() string { return j.name }

// Restartable reports whether a failed or stopped instance of the job may be
// run again.
func (j *Job) Restartable() bool { return !j.preventRestart }

// Steps returns the job's steps in order.
func (j *Job) Steps() []Step { return append([]Step(nil), j.steps...) }

// Step is one step of a job. The chunk step ([NewChunkStep]) and the tasklet
// step ([NewTaskletStep]) implement it; so can user types.
type Step interface {
	// Name returns the step's name, unique within its job.
	Name() string
	// Execute does the step's work. It returns nil when the step completed,
	// an error wrapping ErrStopped when it stopped on request, and any other
	// error when it failed. Counts and context go in sc.StepExecution.
	Execute(ctx context.Context, sc *StepContext) error
}

// StepContext is what a running step is given by the engine: its executions,
// the repository, and the means to commit and to see stop requests.
type StepContext struct {
	// JobExecution is the running job execution. Its Context is the
	// job-level execution context, for values steps hand on to later
	// steps: it is saved after every step that completes and carried over
	// to a restart.
	JobExecution *JobExecution
	// StepExecution is this step's execution: its counts and the
	// step-level context that its chunks commit.
	StepExecution *StepExecution
	Repository    JobRepository
	Logger        *slog.Logger

	run *jobRun
}

// StopRequested reports whether an operator asked the job execution to stop.
// Steps check it at every chunk boundary and return ErrStopped.
func (sc *StepContext) StopRequested() bool {
	return sc.run != nil && sc.run.stopRequested()
}

// Commit runs fn in one chunk transaction. fn gets a working copy of the step
// execution to update (counts, context) and a context carrying the chunk's
// transaction; the copy is saved in the same transaction, and becomes
// sc.StepExecution only if everything committed. On failure the rollback
// count is incremented and the error returned.
//
// When the commit itself fails in a way that leaves its outcome unknown (the
// connection broke during COMMIT), Commit reads the stored step execution:
// if the checkpoint is there, the chunk committed and Commit returns nil.
func (sc *StepContext) Commit(ctx context.Context, fn func(ctx context.Context, w *StepExecution) error) error {
	w := sc.StepExecution.Clone()
	wrote := false
	status, err := sc.Repository.CommitChunk(ctx, w, func(ctx context.Context) error {
		if err := fn(ctx, w); err != nil {
			return err
		}
		wrote = true
		return nil
	})
	// The commit failed after the write succeeded. If its outcome is
	// unknown — or it is refused as stale because an earlier attempt whose
	// answer was lost did land — the stored checkpoint tells.
	if err != nil && wrote && !errors.Is(err, ErrFenced) {
		if st, ok := sc.committedAnyway(context.WithoutCancel(ctx), w); ok {
			w.Version++
			status, err = st, nil
		}
	}
	if err != nil {
		sc.StepExecution.RollbackCount++
		return err
	}
	*sc.StepExecution = *w
	if sc.run != nil {
		sc.run.noteStatus(status)
	}
	return nil
}

// committedAnyway reports whether the checkpoint w was stored although its
// commit reported an error, and the job execution's status if so. The
// connection that lost the answer may still be down: the stored state is
// read with a few retries.
func (sc *StepContext) committedAnyway(ctx context.Context, w *StepExecution) (BatchStatus, bool) {
	var (
		steps []*StepExecution
		err   error
	)
	for attempt := 1; attempt <= 5; attempt++ {
		if steps, err = sc.Repository.StepExecutions(ctx, w.JobExecutionID); err == nil {
			break
		}
		if sleep(ctx, Backoff{Initial: 50 * time.Millisecond, Max: time.Second}.Delay(attempt)) != nil {
			return "", false
		}
	}
	if err != nil {
		return "", false
	}
	for _, s := range steps {
		if s.ID == w.ID {
			if s.Version != w.Version+1 || s.CommitCount != w.CommitCount || s.ReadCount != w.ReadCount ||
				s.WriteCount != w.WriteCount {
				return "", false
			}
			for attempt := 1; ; attempt++ {
				je, err := sc.Repository.JobExecution(ctx, w.JobExecutionID)
				if err == nil {
					return je.Status, true
				}
				if attempt == 5 || sleep(ctx, Backoff{Initial: 50 * time.Millisecond, Max: time.Second}.Delay(attempt)) != nil {
					// Committed; the status is read again at the next chunk.
					return StatusStarted, true
				}
			}
		}
	}
	return "", false
}

type allowStartIfComplete interface{ AllowStartIfComplete() bool }

type startLimited interface{ StartLimit() int }

func (sc *StepContext) logger() *slog.Logger {
	if sc.Logger != nil {
		return sc.Logger
	}
	return slog.New(slog.DiscardHandler)
}

type listenerLister interface{ Listeners() []Listener }

func configError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}
