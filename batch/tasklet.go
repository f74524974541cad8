package batch

import "context"

// RepeatStatus tells the tasklet step whether to call the tasklet again.
type RepeatStatus int

const (
	// Finished: the tasklet's work is done.
	Finished RepeatStatus = iota
	// Continuable: call the tasklet again, in a new transaction.
	Continuable
)

// Tasklet is a step's whole work in one function, for work that is not
// item-oriented: create a table, delete old rows, call a procedure, move a
// file. Each call runs in its own chunk transaction: a tasklet whose database
// is the repository's joins it with [JoinTx]. step is a working copy of
// the step execution; what the tasklet puts in step.Context or its counts is
// committed with the transaction.
//
// A stop request is seen between calls. A tasklet that works long within one
// call watches [StopRequested] or [Stopping] on its ctx and returns
// [ErrStopped] (after undoing or committing what it must): the step ends
// STOPPED.
type Tasklet interface {
	Execute(ctx context.Context, step *StepExecution) (RepeatStatus, error)
}

// TaskletFunc adapts a function to a [Tasklet].
type TaskletFunc func(ctx context.Context, step *StepExecution) (RepeatStatus, error)

// Execute calls f.
func (f TaskletFunc) Execute(ctx context.Context, step *StepExecution) (RepeatStatus, error) {
	return f(ctx, step)
}

// TaskletConfig configures a tasklet step.
type TaskletConfig struct {
	// Tasklet does the work. Required.
	Tasklet Tasklet
	// Listeners receive the step's events. Default none.
	Listeners []Listener
	// AllowStartIfComplete makes a restart run the step again even if it
	// completed in an earlier execution. Default false.
	AllowStartIfComplete bool
	// StartLimit is how many times the step may be started for one job
	// instance; the next start fails with ErrStartLimitExceeded. Default 0:
	// no limit.
	StartLimit int
}

// TaskletStep runs a [Tasklet]. Build one with [NewTaskletStep].
type TaskletStep struct {
	name string
	cfg  TaskletConfig
}

// NewTaskletStep returns a tasklet step. It fails with ErrInvalidConfig if the
// configuration is incomplete.
func NewTaskletStep(name string, cfg TaskletConfig) (*TaskletStep, error) {
	if name == "" {
		return nil, configError("tasklet step: empty name")
	}
	if cfg.Tasklet == nil {
		return nil, configError("step %s: no tasklet", name)
	}
	if cfg.StartLimit < 0 {
		return nil, configError("step %s: negative start limit %d", name, cfg.StartLimit)
	}
	if err := validateListeners("step "+name, stepListeners, cfg.Listeners); err != nil {
		return nil, err
	}
	return &TaskletStep{name: name, cfg: cfg}, nil
}

// Name returns the step's name.
func (s *TaskletStep) Name() string { return s.name }

// AllowStartIfComplete reports whether a restart runs the step again after it
// completed.
func (s *TaskletStep) AllowStartIfComplete() bool { return s.cfg.AllowStartIfComplete }

// StartLimit returns how many times the step may be started for one job
// instance; 0 means no limit.
func (s *TaskletStep) StartLimit() int { return s.cfg.StartLimit }

// Listeners returns the step's listeners.
func (s *TaskletStep) Listeners() []Listener { return s.cfg.Listeners }

// Execute calls the tasklet, each call in its own transaction, until it
// returns Finished or an error, or a stop is requested.
func (s *TaskletStep) Execute(ctx context.Context, sc StepContext) error {
	ctx = WithStepContext(ctx, sc)
	for {
		if sc.StopRequested() {
			return ErrStopped
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var rs RepeatStatus
		err := sc.Commit(ctx, func(ctx context.Context, w *StepExecution) error {
			ctx, at := withAttempt(ctx)
			var err error
			rs, err = s.cfg.Tasklet.Execute(ctx, w)
			w.Changes.Add(at.changes)
			if err != nil {
				return &StepError{Step: s.name, Phase: "tasklet", Err: err}
			}
			w.CommitCount++
			return nil
		})
		if err != nil {
			return err
		}
		if rs != Continuable {
			return nil
		}
	}
}
