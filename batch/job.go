package batch

import (
	"context"
	"fmt"
	"log/slog"
)

// Job is a named sequence of steps. Build one with [NewJob].
type Job struct {
	name           string
	steps          []Step
	listeners      []Listener
	params         ParamSpecs
	preventRestart bool
	flow           *flow // nil: the steps run in order
}

// JobConfig configures a [Job].
type JobConfig struct {
	// Steps run in order; a step that does not complete ends the execution
	// with its status. Required, at least one; step names must be unique.
	Steps []Step
	// Listeners receive the job's events (BeforeJobListener,
	// AfterJobListener). Default none.
	Listeners []Listener
	// Parameters declares the parameters the job takes; every launch is
	// checked against them (ParamSpecs.Apply): a missing required one, an
	// unknown one or one of the wrong type refuses the launch, and defaults
	// fill in the others. Default none: any parameters are taken as given.
	Parameters ParamSpecs
	// PreventRestart makes an instance that failed or stopped impossible to
	// run again: a launch of it fails with ErrJobNotRestartable. For jobs
	// whose work must not be repeated partly. Default false.
	PreventRestart bool
	// Transitions make the job a flow: it starts with the first of Steps
	// (or Start) and goes on as the transitions say, by each step's exit
	// code (see Transition). A restart walks the flow again from the start,
	// passing the steps that completed with their stored exit codes, so it
	// takes the same branches. Default none: the steps run in order. A job
	// with Splits or a Start is a flow too.
	Transitions []Transition
	// Deciders are nodes of the flow that choose a way without doing work.
	Deciders []Decider
	// Splits are nodes of the flow that run branches at the same time and
	// join them (see Split).
	Splits []Split
	// Start is the step, decider or split a flow begins with. Default the
	// first of Steps.
	Start string
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
	if err := cfg.Parameters.Validate(); err != nil {
		return nil, fmt.Errorf("job %s: %w", name, err)
	}
	f, err := newFlow(name, cfg)
	if err != nil {
		return nil, err
	}
	return &Job{name: name, steps: append([]Step(nil), cfg.Steps...), listeners: cfg.Listeners,
		params: append(ParamSpecs(nil), cfg.Parameters...), preventRestart: cfg.PreventRestart, flow: f}, nil
}

// Name returns the job's name.
func (j *Job) Name() string { return j.name }

// Restartable reports whether a failed or stopped instance of the job may be
// run again.
func (j *Job) Restartable() bool { return !j.preventRestart }

// Parameters returns the parameters the job declares.
func (j *Job) Parameters() ParamSpecs { return append(ParamSpecs(nil), j.params...) }

// Steps returns the job's steps in order.
func (j *Job) Steps() []Step { return append([]Step(nil), j.steps...) }

// Listeners returns the job's listeners.
func (j *Job) Listeners() []Listener { return append([]Listener(nil), j.listeners...) }

// Step is one step of a job. The chunk step ([NewChunkStep]) and the tasklet
// step ([NewTaskletStep]) implement it; so can user types, which may also
// implement [StartPolicy] and [StepListeners].
type Step interface {
	// Name returns the step's name, unique within its job.
	Name() string
	// Execute does the step's work. It returns nil when the step completed,
	// an error wrapping ErrStopped when it stopped on request, and any other
	// error when it failed. Counts and context go in sc.StepExecution(),
	// and are saved by sc.Commit and sc.Save.
	Execute(ctx context.Context, sc StepContext) error
}

// StartPolicy is implemented by a step that says when it may start. Steps
// that do not implement it are skipped on restart once they completed, and
// may start any number of times.
type StartPolicy interface {
	// AllowStartIfComplete reports whether a restart runs the step again
	// even though it completed in an earlier execution of the instance.
	AllowStartIfComplete() bool
	// StartLimit returns how many times the step may be started for one
	// job instance; 0 means no limit. The start after the last fails with
	// ErrStartLimitExceeded.
	StartLimit() int
}

// StepListeners is implemented by a step that has listeners: the engine
// calls their BeforeStep and AfterStep hooks around Execute. (Chunk hooks
// are the step's own to call.)
type StepListeners interface {
	Listeners() []Listener
}

// StepContext is what the engine gives a running step: its executions, a
// logger, the chunk transaction, and the stop requests.
type StepContext interface {
	// JobExecution is the running job execution, the step's copy of it.
	// Its Context is the job-level execution context, for values steps
	// hand on to later steps: the keys the step changed are merged into
	// the job's when it ends (see JobContext), saved after every step that
	// completes and carried over to a restart.
	JobExecution() *JobExecution
	// StepExecution is this step's execution: its counts and the
	// step-level context that its chunks commit. It is replaced by the
	// committed copy after each Commit.
	StepExecution() *StepExecution
	// Logger logs with the job, execution and step as attributes.
	Logger() *slog.Logger
	// Commit runs fn in one chunk transaction. fn gets a working copy of
	// the step execution to update (counts, context) and a context
	// carrying the chunk's transaction (see JoinTx); the copy is saved in
	// the same transaction and becomes StepExecution only if everything
	// committed. On failure the rollback count is incremented and the error
	// returned. A commit whose outcome is unknown (the connection broke
	// during COMMIT) is resolved by reading the stored checkpoint.
	Commit(ctx context.Context, fn func(ctx context.Context, w *StepExecution) error) error
	// Save stores StepExecution as it is, outside any chunk: for state a
	// step must record before its first chunk.
	Save(ctx context.Context) error
	// StopRequested reports whether an operator asked the job execution to
	// stop. Steps check it at every chunk boundary and return ErrStopped.
	StopRequested() bool
	// Stopping returns a channel that is closed when a stop is requested.
	Stopping() <-chan struct{}
	// RunStep runs step as a step of its own within the job execution —
	// its own StepExecution, counts, checkpoint and listeners, resumed from
	// its last execution in the instance, and passed over if it completed
	// — while this step goes on: the partitions of a partitioned step.
	// Several may run at once. The child also stops at its next chunk
	// boundary once stop is closed. It returns the child's execution as
	// saved (a completed one from an earlier execution when passed over)
	// and its error.
	RunStep(ctx context.Context, step Step, stop <-chan struct{}) (*StepExecution, error)
}

type stepContextKey struct{}

// WithStepContext returns ctx carrying sc, where [StopRequested], [Stopping]
// and [JobContext] find it. The steps of this package add it to the context
// they hand their components, and the launcher to the one it hands step
// listeners; a Step written from scratch adds it for its own components.
func WithStepContext(ctx context.Context, sc StepContext) context.Context {
	return context.WithValue(ctx, stepContextKey{}, sc)
}

// JobContext returns the job-level execution context of the job execution
// running the step that ctx was handed to, and nil for another context. A
// step stores there what a later step of the job needs (a file name found, a
// total computed); it is saved when the step completes, and a restart gets
// the last saved one.
//
// Each step works on a copy of the job's context taken when it began; the
// keys it changed are merged into the job's when it ends. So steps that run
// at the same time — the branches of a [Split], the partitions of a step —
// do not see each other's changes until they end, and when two change the
// same key the one that ends last wins. The copy is not safe for concurrent
// use by several goroutines of one step.
func JobContext(ctx context.Context) ExecutionContext {
	if e, ok := JobExecutionFrom(ctx); ok {
		return e.Context
	}
	return nil
}

// JobExecutionFrom returns the job execution running the step that ctx was
// handed to: its id, its instance's id, its parameters. Read it; change
// only its Context.
func JobExecutionFrom(ctx context.Context) (*JobExecution, bool) {
	if sc, ok := ctx.Value(stepContextKey{}).(StepContext); ok {
		return sc.JobExecution(), true
	}
	return nil, false
}

// StopRequested reports whether a stop was requested for the job execution
// running the step that ctx was handed to (by a chunk or tasklet step). A
// tasklet doing long work checks it (or waits on Stopping) to end early: it
// returns ErrStopped, and the step ends STOPPED.
func StopRequested(ctx context.Context) bool {
	sc, ok := ctx.Value(stepContextKey{}).(StepContext)
	return ok && sc.StopRequested()
}

// Stopping returns a channel that is closed when a stop is requested for the
// job execution running the step that ctx was handed to; nil (never ready)
// for another context.
func Stopping(ctx context.Context) <-chan struct{} {
	if sc, ok := ctx.Value(stepContextKey{}).(StepContext); ok {
		return sc.Stopping()
	}
	return nil
}

func configError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}
