package launcher

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

// engine launches and runs jobs against a repository. It is the Launcher's
// core; it knows nothing of registries and command lines.
type engine struct {
	repo              repository.JobRepository
	lease             time.Duration
	heartbeatInterval time.Duration
	stopGrace         time.Duration
	logger            *slog.Logger
	dryRun            bool // mark the runs' contexts with batch.WithDryRun
	tel               *telemetry
	remote            RemoteConfig // with a Dispatcher: partitions run by workers
	// clock is this machine's clock, which the times an execution records
	// (start, end, rate) are read from; nothing that decides — leases,
	// heartbeats, launches, schedules — reads it: those go by the
	// repository's.
	clock func() time.Time

	mu   sync.Mutex
	runs map[int64]*jobRun // the executions this engine is running
}

// stop asks an execution that this engine is running to stop at its next
// chunk boundary, and reports whether the engine is running it.
func (e *engine) stop(executionID int64) bool {
	e.mu.Lock()
	r, ok := e.runs[executionID]
	e.mu.Unlock()
	if ok {
		r.requestStop()
	}
	return ok
}

// launch creates a new execution of job with params, in STARTING, applying
// the launch rules of repository.JobRepository.CreateJobExecution.
func (e *engine) launch(ctx context.Context, job *batch.Job, params batch.JobParameters) (*batch.JobExecution, error) {
	if params == nil {
		params = batch.JobParameters{}
	}
	params, err := job.Parameters().Apply(params)
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", job.Name(), err)
	}
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", batch.ErrInvalidConfig, err)
	}
	req := repository.LaunchRequest{JobName: job.Name(), Parameters: params, Lease: e.lease, PreventRestart: !job.Restartable()}
	// A connection the database dropped (a restart, a terminated backend)
	// fails the launch with a transient error: it is tried again, twice at
	// most. If an attempt landed although its answer was lost, the next is
	// refused as running, by the repository's unique guard: never two.
	for attempt := 1; ; attempt++ {
		exec, err := e.repo.CreateJobExecution(ctx, req)
		var le *batch.LaunchError
		if err == nil || attempt == 3 || ctx.Err() != nil || errors.As(err, &le) || !batch.Transient.Matches(err) {
			return exec, err
		}
		e.logger.Warn("launch: retrying after a transient error", "job", job.Name(), "attempt", attempt, "error", err)
	}
}

// run runs exec, an execution of job created by launch, to its end and
// returns it as finally saved.
func (e *engine) run(ctx context.Context, job *batch.Job, exec *batch.JobExecution) (*batch.JobExecution, error) {
	if e.dryRun {
		ctx = batch.WithDryRun(ctx)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lease := exec.Lease
	if lease <= 0 {
		lease = e.lease
	}
	r := &jobRun{id: exec.ID, instanceID: exec.InstanceID, engine: e, job: job, exec: exec.Clone(), lease: lease,
		log: e.logger.With("job", job.Name(), "execution", exec.ID), stopCh: make(chan struct{}), cancelRun: cancel}
	defer func() {
		if t := r.graceTimer.Load(); t != nil {
			t.Stop()
		}
	}()
	e.mu.Lock()
	if e.runs == nil {
		e.runs = map[int64]*jobRun{}
	}
	e.runs[exec.ID] = r
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.runs, exec.ID)
		e.mu.Unlock()
	}()
	return r.run(ctx)
}

type jobRun struct {
	id         int64 // the execution's id; r.exec changes as it is saved
	instanceID int64
	engine     *engine
	job        *batch.Job
	// mu guards exec once steps may run at the same time; they work on
	// copies of it (fork, join).
	mu   sync.Mutex
	exec *batch.JobExecution
	// ran counts the steps run, passed those passed over as completed.
	ran, passed atomic.Int64
	lease       time.Duration // the execution's own
	log         *slog.Logger
	// lastContact is when the run last heard from its repository (a
	// heartbeat or a commit that succeeded), in Unix nanoseconds.
	lastContact atomic.Int64

	stop       atomic.Bool
	stopOnce   sync.Once
	stopCh     chan struct{} // closed when a stop is requested
	graceTimer atomic.Pointer[time.Timer]
	fenced     atomic.Bool
	fenceCause atomic.Pointer[error] // why, when not the execution's stored status
	cancelRun  context.CancelCauseFunc
	// handBack, when set, gives back a partition that stopped on its stop
	// channel (its worker shuts down) instead of saving it STOPPED.
	handBack func(ctx context.Context, se *batch.StepExecution) error
}

// errStopGrace interrupts a step that did not reach a chunk boundary within
// the stop's grace period.
var errStopGrace = errors.New("launcher: the step did not reach a chunk boundary within the stop's grace period")

func (r *jobRun) stopRequested() bool { return r.stop.Load() }

func (r *jobRun) requestStop() {
	r.stop.Store(true)
	r.stopOnce.Do(func() {
		close(r.stopCh)
		// A step blocked in a read (a pipe, a hung call) never reaches a
		// chunk boundary: after the grace period its context is cancelled,
		// the chunk in flight rolls back and the step ends STOPPED.
		r.graceTimer.Store(time.AfterFunc(r.engine.stopGrace, func() {
			r.log.Warn("stop: no chunk boundary within the grace period; interrupting the step", "grace", r.engine.stopGrace)
			r.cancelRun(errStopGrace)
		}))
	})
}

func (r *jobRun) noteStatus(s batch.BatchStatus) {
	switch {
	case s == batch.StatusStopping:
		r.requestStop()
	case !s.Running():
		r.fenceOff(fmt.Errorf("%w: execution %d is now %s", batch.ErrFenced, r.id, s))
	}
}

// fenceOff ends the run without another write: the execution is no longer
// this process's (cause wraps batch.ErrFenced).
func (r *jobRun) fenceOff(cause error) {
	r.fenceCause.CompareAndSwap(nil, &cause)
	r.fenced.Store(true)
	r.cancelRun(cause)
}

func (r *jobRun) repo() repository.JobRepository { return r.engine.repo }

// PanicError is the error a step or job fails with when user code — a
// reader, processor, writer, listener or tasklet — panicked: the panic value
// and the goroutine's stack.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("panic: %v\n\n%s", e.Value, e.Stack)
}

// protect calls fn and turns a panic into a *PanicError.
func protect(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return fn()
}

func (r *jobRun) run(ctx context.Context) (*batch.JobExecution, error) {
	// Bookkeeping must survive the interruption of the work.
	book := context.WithoutCancel(ctx)

	// A restart carries on the job-level context of the execution before.
	if len(r.exec.Context) == 0 {
		prev, err := r.repo().JobExecutions(book, batch.ExecutionQuery{InstanceID: r.exec.InstanceID, Limit: 2})
		if err != nil {
			return r.exec, fmt.Errorf("job %s execution %d: %w", r.job.Name(), r.id, err)
		}
		for _, p := range prev {
			if p.ID < r.id {
				r.exec.Context = p.Context.Clone()
				break
			}
		}
	}
	if r.exec.Context == nil {
		r.exec.Context = batch.ExecutionContext{}
	}
	// The job's span, linked to the trace of the execution restarted; its
	// own trace is saved in the job's context for the next restart.
	started := time.Now()
	ctx, span := r.engine.tel.startJob(ctx, r.exec, r.job.Name())
	book = trace.ContextWithSpan(book, span)
	defer func() {
		r.engine.tel.endJob(book, span, r.job.Name(), r.exec.Status, r.exec.ExitStatus, time.Since(started))
	}()

	if err := r.saveJob(book, func(e *batch.JobExecution) {
		e.Status = batch.StatusStarted
		if r.stopRequested() {
			e.Status = batch.StatusStopping
		}
		e.StartTime = r.engine.clock().UTC()
		e.ExitStatus = batch.ExitExecuting
	}); err != nil {
		return r.exec, err
	}
	r.log.Info("job started", "instance", r.exec.InstanceID, "parameters", r.exec.Parameters.Format())

	// The heartbeat goes on until the end is saved: after-job listeners
	// may take their time.
	var wg sync.WaitGroup
	hbCtx, stopHB := context.WithCancel(book)
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.heartbeat(hbCtx)
	}()
	defer func() {
		stopHB()
		wg.Wait()
	}()
	status, exit, runErr := r.steps(ctx, book)

	if r.fenced.Load() {
		err := fmt.Errorf("job %s execution %d: %w", r.job.Name(), r.id, batch.ErrFenced)
		if cause := r.fenceCause.Load(); cause != nil {
			err = fmt.Errorf("job %s execution %d: %w", r.job.Name(), r.id, *cause)
		}
		r.log.Error("job fenced off", "error", err)
		return r.exec, err
	}
	final := r.exec.Clone()
	final.Status, final.ExitStatus = status, exit
	for _, l := range r.job.Listeners() {
		if al, ok := l.(batch.AfterJobListener); ok {
			if err := protect(func() error { return al.AfterJob(book, final) }); err != nil && runErr == nil {
				runErr = fmt.Errorf("job %s: after-job listener: %w", r.job.Name(), err)
				final.Status, final.ExitStatus = batch.StatusFailed, batch.ExitFailed.WithDescription(runErr.Error())
			}
		}
	}
	status, exit = final.Status, final.ExitStatus
	if err := r.saveJob(book, func(e *batch.JobExecution) {
		e.Status, e.ExitStatus, e.Context = status, exit, final.Context
		e.EndTime = r.engine.clock().UTC()
	}); err != nil {
		r.log.Error("job end not saved", "status", status, "error", err)
		if runErr != nil {
			return r.exec, fmt.Errorf("%w (and its end was not saved: %w)", runErr, err)
		}
		return r.exec, err
	}
	r.log.Info("job finished", "status", status, "exit", exit.Code, "duration", r.exec.EndTime.Sub(r.exec.StartTime).Round(time.Millisecond))
	if status == batch.StatusFailed {
		if runErr == nil {
			runErr = errors.New(exit.Description)
		}
		return r.exec, runErr
	}
	return r.exec, nil
}

// steps runs the job's steps and returns the job's outcome.
func (r *jobRun) steps(ctx, book context.Context) (batch.BatchStatus, batch.ExitStatus, error) {
	for _, l := range r.job.Listeners() {
		if bl, ok := l.(batch.BeforeJobListener); ok {
			if err := protect(func() error { return bl.BeforeJob(ctx, r.exec) }); err != nil {
				err = fmt.Errorf("job %s: before-job listener: %w", r.job.Name(), err)
				return batch.StatusFailed, batch.ExitFailed.WithDescription(err.Error()), err
			}
		}
	}
	if r.job.HasFlow() {
		return r.flow(ctx, book)
	}
	ran := 0
	for _, step := range r.job.Steps() {
		if r.stopRequested() {
			return batch.StatusStopped, batch.ExitStopped.WithDescription("stopped before step " + step.Name()), nil
		}
		se, skip, err := r.newStepExecution(book, step, batch.StatusStarted)
		if err != nil {
			return batch.StatusFailed, batch.ExitFailed.WithDescription(err.Error()), err
		}
		if skip {
			r.log.Info("step already completed, skipped", "step", step.Name())
			continue
		}
		ran++
		status, stepErr := r.runStep(ctx, book, step, se)
		if status == batch.StatusCompleted {
			// Save the job-level context the step may have changed.
			if err := r.saveJob(book, func(*batch.JobExecution) {}); err != nil {
				return batch.StatusFailed, batch.ExitFailed.WithDescription(err.Error()), err
			}
		}
		if status != batch.StatusCompleted {
			exit := batch.ExitStatus{Code: se.ExitStatus.Code, Description: se.ExitStatus.Description}
			return status, exit, stepErr
		}
	}
	if ran == 0 {
		return batch.StatusCompleted, batch.ExitNoop.WithDescription("all steps already completed"), nil
	}
	return batch.StatusCompleted, batch.ExitCompleted, nil
}

// flow runs the job's flow from its start (or where a Stop transition said
// a restart begins).
func (r *jobRun) flow(ctx, book context.Context) (batch.BatchStatus, batch.ExitStatus, error) {
	end := r.walk(ctx, book, r.job.FlowStart(), batch.FlowRestartKey)
	if end.status == batch.StatusCompleted && r.ran.Load() == 0 && r.passed.Load() > 0 {
		return batch.StatusCompleted, batch.ExitNoop.WithDescription("all steps already completed"), nil
	}
	return end.status, end.exit, end.err
}

// lineEnd is how a line of a flow — the main one, or a branch of a split —
// ended, and the step that ran last in it.
type lineEnd struct {
	status batch.BatchStatus
	exit   batch.ExitStatus
	err    error
	last   *batch.StepExecution
}

// walk runs a line of the flow from node: each step, decider or split,
// then the transition its exit code matches, until one ends the line. A
// step that completed in an earlier execution is passed with its stored
// exit code, so a restart takes the same ways. restartKey is the job
// context key where a Stop transition of this line leaves where a restart
// begins.
func (r *jobRun) walk(ctx, book context.Context, node, restartKey string) lineEnd {
	var last *batch.StepExecution
	failed := func(err error) lineEnd {
		return lineEnd{batch.StatusFailed, batch.ExitFailed.WithDescription(err.Error()), err, last}
	}
	if at := r.restartAt(restartKey); at != "" {
		node = at
	}
	for {
		if r.stopRequested() {
			return lineEnd{batch.StatusStopped, batch.ExitStopped.WithDescription("stopped before " + node), nil, last}
		}
		var (
			code    string
			exit    batch.ExitStatus
			status  = batch.StatusCompleted
			stepErr error
		)
		if d, ok := r.job.Decider(node); ok {
			je, _ := r.fork()
			err := protect(func() error {
				var err error
				code, err = d.Decide(ctx, je, last)
				return err
			})
			if err != nil {
				return failed(fmt.Errorf("job %s: decider %s: %w", r.job.Name(), node, err))
			}
			r.log.Info("decided", "decider", node, "exit", code)
			exit = batch.ExitStatus{Code: code}
		} else if sp, ok := r.job.Split(node); ok {
			end := r.split(ctx, book, sp)
			if end.last != nil {
				last = end.last
			}
			if end.status == batch.StatusStopped || r.fenced.Load() {
				return end
			}
			status, stepErr, code, exit = end.status, end.err, end.exit.Code, end.exit
		} else {
			step, _ := r.job.Step(node)
			se, skip, err := r.newStepExecution(book, step, batch.StatusStarted)
			if err != nil {
				return failed(err)
			}
			if skip {
				if se, err = r.repo().LastStepExecution(book, r.instanceID, node); err != nil {
					return failed(fmt.Errorf("step %s: %w", node, err))
				}
				r.passed.Add(1)
				r.log.Info("step already completed, skipped", "step", node, "exit", se.ExitStatus.Code)
			} else {
				r.ran.Add(1)
				status, stepErr = r.runStep(ctx, book, step, se)
				switch status {
				case batch.StatusCompleted:
					// Save the job-level context the step may have changed.
					if err := r.saveJob(book, func(*batch.JobExecution) {}); err != nil {
						return failed(err)
					}
				case batch.StatusFailed, batch.StatusStopped:
					if r.fenced.Load() || status == batch.StatusStopped {
						// Stopped on request, or cut off: a restart goes on
						// with this step.
						return lineEnd{status, batch.ExitStatus{Code: se.ExitStatus.Code, Description: se.ExitStatus.Description}, stepErr, se}
					}
				}
			}
			last, code = se, se.ExitStatus.Code
			exit = batch.ExitStatus{Code: se.ExitStatus.Code, Description: se.ExitStatus.Description}
		}
		t, ok := r.job.Next(node, code)
		switch {
		case !ok && status == batch.StatusCompleted:
			return lineEnd{batch.StatusCompleted, batch.ExitCompleted, nil, last}
		case !ok:
			return lineEnd{status, exit, stepErr, last}
		case t.End:
			return lineEnd{batch.StatusCompleted, batch.ExitCompleted, nil, last}
		case t.Fail:
			return failed(fmt.Errorf("job %s: the flow fails after %s ended %s", r.job.Name(), node, code))
		case t.Stop:
			if err := r.putRestartAt(book, restartKey, t.To); err != nil {
				return failed(err)
			}
			return lineEnd{batch.StatusStopped, batch.ExitStopped.WithDescription(fmt.Sprintf(
				"the flow stops after %s ended %s; a restart begins at %s", node, code, t.To)), nil, last}
		}
		r.log.Info("transition", "from", node, "exit", code, "to", t.To)
		node = t.To
	}
}

// split runs the branches of sp at the same time, each a line of the flow
// of its own, and returns their joint end: FAILED if one failed, else
// STOPPED if one stopped, else COMPLETED; the last step is the one of all
// branches that ended last.
func (r *jobRun) split(ctx, book context.Context, sp batch.Split) lineEnd {
	r.log.Info("split started", "split", sp.Name, "branches", sp.Branches)
	ends := make([]lineEnd, len(sp.Branches))
	var wg sync.WaitGroup
	for i, b := range sp.Branches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ends[i] = r.walk(ctx, book, b, batch.FlowRestartKey+"/"+b)
		}()
	}
	wg.Wait()
	end := lineEnd{status: batch.StatusCompleted, exit: batch.ExitCompleted}
	var (
		errs  []error
		descs []string
	)
	for i, e := range ends {
		if e.last != nil && (end.last == nil || e.last.EndTime.After(end.last.EndTime)) {
			end.last = e.last
		}
		switch e.status {
		case batch.StatusCompleted:
			continue
		case batch.StatusFailed:
			end.status, end.exit.Code = batch.StatusFailed, batch.ExitCodeFailed
		default:
			if end.status != batch.StatusFailed {
				end.status, end.exit.Code = batch.StatusStopped, batch.ExitCodeStopped
			}
		}
		descs = append(descs, fmt.Sprintf("branch %s: %s", sp.Branches[i], e.exit.Description))
		if e.err != nil {
			errs = append(errs, fmt.Errorf("split %s: branch %s: %w", sp.Name, sp.Branches[i], e.err))
		}
	}
	end.exit.Description = strings.Join(descs, "; ")
	end.err = errors.Join(errs...)
	r.log.Info("split ended", "split", sp.Name, "status", end.status)
	return end
}

// restartAt returns, and forgets, where a Stop transition said the line of
// key begins on restart.
func (r *jobRun) restartAt(key string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var at string
	if ok, _ := r.exec.Context.Get(key, &at); ok {
		delete(r.exec.Context, key)
	}
	return at
}

// putRestartAt leaves in the job's context where a restart begins the line
// of key; the job's end saves it.
func (r *jobRun) putRestartAt(ctx context.Context, key, at string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.exec.Context.Put(key, at)
}

// fork returns a copy of the job execution for a step (or a decider) to
// work on — steps may run at the same time, in the branches of a split or
// the partitions of a step — and a copy of its context as it was, for join.
func (r *jobRun) fork() (*batch.JobExecution, batch.ExecutionContext) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.exec.Clone(), r.exec.Context.Clone()
}

// join applies to the job's context the keys a step changed in its copy
// since fork (base is the context as forked): a key two steps running at
// once both changed has the value of the one that ended last.
func (r *jobRun) join(base, changed batch.ExecutionContext) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, v := range changed {
		if b, ok := base[k]; !ok || !bytes.Equal(b, v) {
			r.exec.Context[k] = v
		}
	}
	for k := range base {
		if _, ok := changed[k]; !ok {
			delete(r.exec.Context, k)
		}
	}
}

func (r *jobRun) newStepExecution(ctx context.Context, step batch.Step, status batch.BatchStatus) (*batch.StepExecution, bool, error) {
	last, err := r.repo().LastStepExecution(ctx, r.instanceID, step.Name())
	if errors.Is(err, batch.ErrNotFound) {
		last, err = nil, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("step %s: %w", step.Name(), err)
	}
	se := &batch.StepExecution{
		JobExecutionID: r.id,
		StepName:       step.Name(),
		Status:         status,
		ExitStatus:     batch.ExitExecuting,
		StartTime:      r.engine.clock().UTC(),
		Context:        batch.ExecutionContext{},
	}
	policy, _ := step.(batch.StartPolicy)
	if last != nil {
		if last.Status == batch.StatusCompleted {
			if policy == nil || !policy.AllowStartIfComplete() {
				return nil, true, nil
			}
		} else {
			se.Context = last.Context.Clone()
		}
	}
	if policy != nil && policy.StartLimit() > 0 {
		n, err := r.repo().StepExecutionCount(ctx, r.instanceID, step.Name())
		if err != nil {
			return nil, false, fmt.Errorf("step %s: %w", step.Name(), err)
		}
		if n >= policy.StartLimit() {
			return nil, false, &batch.StepError{Step: step.Name(),
				Err: fmt.Errorf("%w: started %d times, limit %d", batch.ErrStartLimitExceeded, n, policy.StartLimit())}
		}
	}
	err = r.persist(ctx, "create step execution", func(retry bool) error {
		if retry {
			// The answer of an earlier attempt may have been lost after it
			// landed: a running step of this name in this execution is it.
			steps, err := r.repo().StepExecutions(ctx, r.id)
			if err != nil {
				return err
			}
			for _, s := range steps {
				if s.StepName == se.StepName && s.Status.Running() {
					*se = *s
					return nil
				}
			}
		}
		return r.repo().CreateStepExecution(ctx, se)
	})
	if err != nil {
		return nil, false, fmt.Errorf("step %s: %w", step.Name(), err)
	}
	return se, false, nil
}

// persist calls save until it succeeds, fails with an error that is not
// transient, or the execution's lease has passed: a save that meets a
// restarting database or a dropped connection is not given up at the first
// error, which would leave the execution running in the repository with its
// real outcome unrecorded. save is told whether it is a retry, so that it
// can find out whether an earlier attempt landed although its answer was
// lost.
func (r *jobRun) persist(ctx context.Context, what string, save func(retry bool) error) error {
	deadline := time.Now().Add(r.lease)
	backoff := batch.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	for attempt := 1; ; attempt++ {
		err := save(attempt > 1)
		if err == nil || !batch.Transient.Matches(err) || time.Now().After(deadline) {
			return err
		}
		r.log.Warn("save failed; retrying", "what", what, "attempt", attempt, "error", err)
		if backoff.Wait(ctx, attempt) != nil {
			return err
		}
	}
}

func (r *jobRun) runStep(ctx, book context.Context, step batch.Step, se *batch.StepExecution) (batch.BatchStatus, error) {
	return r.runStepWith(ctx, book, step, se, nil)
}

// runStepWith runs a step that also stops once stop is closed.
func (r *jobRun) runStepWith(ctx, book context.Context, step batch.Step, se *batch.StepExecution, stop <-chan struct{}) (batch.BatchStatus, error) {
	log := r.log.With("step", step.Name(), "step_execution", se.ID)
	var stopping <-chan struct{}
	if stop != nil {
		done := make(chan struct{})
		defer close(done)
		stopping = r.childStopping(stop, done)
	}
	log.Info("step started", "restart", len(se.Context) > 0)
	var listeners []batch.Listener
	if sl, ok := step.(batch.StepListeners); ok {
		listeners = sl.Listeners()
	}
	job, base := r.fork()
	started := time.Now()
	ctx, span := r.engine.tel.startStep(ctx, r.job.Name(), step.Name(), se.ID)
	book = trace.ContextWithSpan(book, span)
	defer func() {
		r.engine.tel.endStep(book, span, r.job.Name(), step.Name(), se.Status, se.ExitStatus, time.Since(started))
	}()
	sc := &stepContext{run: r, job: job, se: se, log: log, stop: stop, stopping: stopping, chunkStart: started,
		metrics: r.engine.tel.forStep(r.job.Name(), step.Name()), rate: newRater(se, r.engine.clock()), rollbacks: se.RollbackCount}
	// Step listeners find the step, and the job's context, in theirs.
	ctx, book = batch.WithStepContext(ctx, sc), batch.WithStepContext(book, sc)

	var err error
	for _, l := range listeners {
		if bl, ok := l.(batch.BeforeStepListener); ok {
			if err = protect(func() error { return bl.BeforeStep(ctx, se) }); err != nil {
				err = &batch.StepError{Step: step.Name(), Phase: "before-step listener", Err: err}
				break
			}
		}
	}
	if err == nil {
		err = protect(func() error { return step.Execute(ctx, sc) })
	}
	if errors.Is(err, batch.ErrStopped) && r.handBack != nil && closed(stop) && !r.stopRequested() {
		// The partition has not ended: it goes back to be claimed at once
		// by another worker, from the checkpoint just committed. Its
		// after-step listeners run where it ends.
		if herr := r.handBack(book, se); herr != nil {
			r.fenced.Store(true)
			return batch.StatusFailed, fmt.Errorf("step %s: hand back: %w", step.Name(), herr)
		}
		log.Info("step handed back", "read", se.ReadCount, "written", se.WriteCount, "commits", se.CommitCount)
		return batch.StatusStarting, ErrHandedBack
	}
	if !sc.parent.Load() {
		// The rollbacks of a chunk that failed the step (a partitioned
		// step's are its partitions', counted by theirs).
		sc.rollbacks = r.engine.tel.rolledBack(book, sc.metrics, se, sc.rollbacks)
	}
	var pe *PanicError
	switch {
	case err == nil:
		se.Status, se.ExitStatus = batch.StatusCompleted, batch.ExitCompleted
	case errors.Is(err, batch.ErrStopped):
		se.Status, se.ExitStatus = batch.StatusStopped, batch.ExitStopped.WithDescription("stopped on request")
		err = nil
	case errors.Is(context.Cause(ctx), batch.ErrFenced):
		err = context.Cause(ctx)
		se.Status, se.ExitStatus = batch.StatusFailed, batch.ExitFailed.WithDescription(err.Error())
	case ctx.Err() != nil && !errors.As(err, &pe):
		se.Status, se.ExitStatus = batch.StatusStopped, batch.ExitStopped.WithDescription("interrupted: "+context.Cause(ctx).Error())
		err = nil
	default:
		var stepErr *batch.StepError
		if !errors.As(err, &stepErr) {
			err = &batch.StepError{Step: step.Name(), Err: err}
		}
		se.Status, se.ExitStatus = batch.StatusFailed, batch.ExitFailed.WithDescription(err.Error())
	}
	for _, l := range listeners {
		if al, ok := l.(batch.AfterStepListener); ok {
			if lerr := protect(func() error { return al.AfterStep(book, se) }); lerr != nil && se.Status == batch.StatusCompleted {
				err = &batch.StepError{Step: step.Name(), Phase: "after-step listener", Err: lerr}
				se.Status, se.ExitStatus = batch.StatusFailed, batch.ExitFailed.WithDescription(err.Error())
			}
		}
	}
	if job.Context == nil {
		job.Context = batch.ExecutionContext{}
	}
	r.join(base, job.Context)
	se.EndTime = r.engine.clock().UTC()
	uerr := r.persist(book, "save step end", func(retry bool) error {
		err := r.repo().UpdateStepExecution(book, se)
		if retry && errors.Is(err, batch.ErrStaleVersion) {
			// An earlier attempt may have landed with its answer lost.
			if stored, ok := r.storedStep(book, se.ID); ok && stored.Version == se.Version+1 && stored.Status == se.Status {
				se.Version++
				return nil
			}
		}
		return err
	})
	if uerr != nil {
		if errors.Is(uerr, batch.ErrStaleVersion) || errors.Is(uerr, batch.ErrFenced) {
			r.fenced.Store(true)
		}
		uerr = fmt.Errorf("step %s: save: %w", step.Name(), uerr)
		// The step's own error is logged even though its end is not saved.
		log.Error("step not saved", "status", se.Status, "error", uerr, "step_error", err)
		if err != nil {
			return batch.StatusFailed, fmt.Errorf("%w (and its end was not saved: %w)", err, uerr)
		}
		return batch.StatusFailed, uerr
	}
	attrs := []any{"status", se.Status, "read", se.ReadCount, "written", se.WriteCount,
		"filtered", se.FilterCount, "commits", se.CommitCount, "rollbacks", se.RollbackCount}
	if err != nil {
		log.Error("step finished", append(attrs, "error", err)...)
	} else {
		log.Info("step finished", attrs...)
	}
	return se.Status, err
}

// saveJob applies mutate to a copy of the execution and saves it, retrying
// with the stored version when the stored execution changed meanwhile (a stop
// request, which is kept); the execution takes the copy's values only once
// saved. It fails with ErrFenced when the stored execution is no longer
// running.
func (r *jobRun) saveJob(ctx context.Context, mutate func(*batch.JobExecution)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	lost := false // an attempt failed in a way that may hide that it landed
	for attempt := 0; ; attempt++ {
		next := r.exec.Clone()
		mutate(next)
		if next.Status == batch.StatusStarted && r.stopRequested() {
			next.Status = batch.StatusStopping
		}
		err := r.persist(ctx, "save job execution", func(retry bool) error {
			if retry {
				lost = true
			}
			return r.repo().UpdateJobExecution(ctx, next)
		})
		if err == nil {
			*r.exec = *next
			return nil
		}
		if !errors.Is(err, batch.ErrStaleVersion) || attempt >= 20 {
			return fmt.Errorf("job %s execution %d: save: %w", r.job.Name(), r.id, err)
		}
		var cur *batch.JobExecution
		gerr := r.persist(ctx, "read job execution", func(bool) error {
			var err error
			cur, err = r.repo().JobExecution(ctx, r.id)
			return err
		})
		if gerr != nil {
			return fmt.Errorf("job %s execution %d: save: %w", r.job.Name(), r.id, gerr)
		}
		if lost && cur.Version == next.Version+1 && cur.Status == next.Status && cur.ExitStatus == next.ExitStatus {
			// The save landed; its answer was lost.
			next.Version = cur.Version
			*r.exec = *next
			return nil
		}
		if !cur.Status.Running() {
			r.fenced.Store(true)
			return fmt.Errorf("job %s execution %d is %s: %w", r.job.Name(), r.id, cur.Status, batch.ErrFenced)
		}
		if cur.Status == batch.StatusStopping {
			r.requestStop()
		}
		r.exec.Version = cur.Version
	}
}

func (r *jobRun) heartbeat(ctx context.Context) {
	t := time.NewTicker(r.engine.heartbeatInterval)
	defer t.Stop()
	r.touch()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// A heartbeat may wait behind a chunk transaction (SQLite has
			// one writer): being slow is not losing the repository. Its
			// waits are bounded below: SQLite's busy timeout, PostgreSQL's
			// lock, connect and TCP user timeouts.
			status, err := r.repo().Heartbeat(ctx, r.id)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				r.log.Warn("heartbeat failed", "error", err)
				if lost := time.Since(time.Unix(0, r.lastContact.Load())); lost > r.lease {
					// Neither heartbeats nor commits have reached the
					// repository for longer than the lease: the execution may
					// be taken over, and could not commit anyway. It stops.
					r.fenceOff(fmt.Errorf("%w: no contact with the job repository for %s, longer than the lease (%s): %w",
						batch.ErrFenced, lost.Round(time.Millisecond), r.lease, err))
					return
				}
				continue
			}
			r.touch()
			r.noteStatus(status)
		}
	}
}

// touch records that the repository answered.
func (r *jobRun) touch() { r.lastContact.Store(time.Now().UnixNano()) }

// storedStep reads the stored step execution with id.
func (r *jobRun) storedStep(ctx context.Context, id int64) (*batch.StepExecution, bool) {
	steps, err := r.repo().StepExecutions(ctx, r.id)
	if err != nil {
		return nil, false
	}
	for _, s := range steps {
		if s.ID == id {
			return s, true
		}
	}
	return nil, false
}

// stepContext is the batch.StepContext of one step execution.
type stepContext struct {
	run  *jobRun
	job  *batch.JobExecution // the step's copy (see fork)
	se   *batch.StepExecution
	log  *slog.Logger
	stop <-chan struct{} // of a child step: its parent's stop, besides the run's
	// stopping is closed when either stop is: a child's Stopping.
	stopping <-chan struct{}
	// chunkStart is when the chunk being committed began: the step's
	// start, then the end of the chunk before.
	chunkStart time.Time
	metrics    *stepMetrics
	rate       *rater // the step's rate, stored with each checkpoint
	// rollbacks is the step's rollback count as last counted in the
	// metrics; parent is set once the step ran a child (a partition),
	// whose rollbacks its own step context counts.
	rollbacks int64
	parent    atomic.Bool
}

func (sc *stepContext) JobExecution() *batch.JobExecution   { return sc.job }
func (sc *stepContext) StepExecution() *batch.StepExecution { return sc.se }
func (sc *stepContext) Logger() *slog.Logger                { return sc.log }
func (sc *stepContext) StopRequested() bool {
	if sc.stop != nil {
		select {
		case <-sc.stop:
			return true
		default:
		}
	}
	return sc.run.stopRequested()
}

// RunStep implements batch.StepContext.
func (sc *stepContext) RunStep(ctx context.Context, step batch.Step, stop <-chan struct{}) (*batch.StepExecution, error) {
	sc.parent.Store(true)
	if sc.run.engine.remote.Dispatcher != nil {
		return sc.runRemote(ctx, step, stop)
	}
	book := context.WithoutCancel(ctx)
	se, skip, err := sc.run.newStepExecution(book, step, batch.StatusStarted)
	if err != nil {
		return nil, err
	}
	if skip {
		sc.log.Info("step already completed, skipped", "child", step.Name())
		return sc.run.repo().LastStepExecution(book, sc.run.instanceID, step.Name())
	}
	_, err = sc.run.runStepWith(ctx, book, step, se, stop)
	return se, err
}

// childStopping returns a channel closed when stop or the run's stop
// channel is, for as long as done is open.
func (r *jobRun) childStopping(stop, done <-chan struct{}) <-chan struct{} {
	merged := make(chan struct{})
	go func() {
		select {
		case <-stop:
		case <-r.stopCh:
		case <-done:
			return
		}
		close(merged)
	}()
	return merged
}
func (sc *stepContext) Stopping() <-chan struct{} {
	if sc.stopping != nil {
		return sc.stopping
	}
	return sc.run.stopCh
}

// OnRetry implements batch.RetryListener: the retry is counted in the
// metrics.
func (sc *stepContext) OnRetry(ctx context.Context, ev *batch.RetryEvent) {
	sc.run.engine.tel.retry(ctx, sc.metrics, ev.Phase)
}

// RecordReject implements batch.RejectRecorder: the reject goes to the job
// repository, in the chunk's transaction, when it keeps rejects.
func (sc *stepContext) RecordReject(ctx context.Context, r batch.Reject) error {
	rs, ok := sc.run.repo().(repository.RejectStore)
	if !ok {
		return nil
	}
	return rs.SaveReject(ctx, sc.se.ID, r)
}

func (sc *stepContext) Save(ctx context.Context) error {
	return sc.run.repo().UpdateStepExecution(ctx, sc.se)
}

func (sc *stepContext) Commit(ctx context.Context, fn func(ctx context.Context, w *batch.StepExecution) error) error {
	tel := sc.run.engine.tel
	before, start := itemCounts(sc.se), sc.chunkStart
	var span trace.Span
	if tel.chunkSpans {
		ctx, span = tel.tracer.Start(ctx, "chunk", trace.WithTimestamp(start))
	}
	err := sc.commit(ctx, fn)
	now := time.Now()
	sc.chunkStart = now
	tel.chunk(ctx, sc.metrics, err == nil, now.Sub(start), before, itemCounts(sc.se))
	sc.rollbacks = tel.rolledBack(ctx, sc.metrics, sc.se, sc.rollbacks)
	if span != nil {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		}
		span.End(trace.WithTimestamp(now))
	}
	return err
}

// commit commits a chunk: see Commit.
func (sc *stepContext) commit(ctx context.Context, fn func(ctx context.Context, w *batch.StepExecution) error) error {
	w := sc.se.Clone()
	wrote := false
	var rate rater
	status, err := sc.run.repo().CommitChunk(ctx, w, func(ctx context.Context) error {
		if err := fn(ctx, w); err != nil {
			return err
		}
		var err error
		if rate, err = sc.rate.next(w, sc.run.engine.clock()); err != nil {
			return err
		}
		wrote = true
		return nil
	})
	// The commit failed after the write succeeded. If its outcome is
	// unknown — or it is refused as stale because an earlier attempt whose
	// answer was lost did land — the stored checkpoint tells.
	if err != nil && wrote && !errors.Is(err, batch.ErrFenced) {
		if st, ok := sc.committedAnyway(context.WithoutCancel(ctx), w); ok {
			w.Version++
			status, err = st, nil
		}
	}
	if err != nil {
		sc.se.RollbackCount++
		return err
	}
	sc.run.touch()
	*sc.se = *w
	if wrote {
		*sc.rate = rate
	}
	sc.run.noteStatus(status)
	return nil
}

// committedAnyway reports whether the checkpoint w was stored although its
// commit reported an error, and the job execution's status if so. The
// connection that lost the answer may still be down: the stored state is
// read with a few retries.
func (sc *stepContext) committedAnyway(ctx context.Context, w *batch.StepExecution) (batch.BatchStatus, bool) {
	backoff := batch.Backoff{Initial: 50 * time.Millisecond, Max: time.Second}
	var (
		steps []*batch.StepExecution
		err   error
	)
	for attempt := 1; attempt <= 5; attempt++ {
		if steps, err = sc.run.repo().StepExecutions(ctx, w.JobExecutionID); err == nil {
			break
		}
		if backoff.Wait(ctx, attempt) != nil {
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
				je, err := sc.run.repo().JobExecution(ctx, w.JobExecutionID)
				if err == nil {
					return je.Status, true
				}
				if attempt == 5 || backoff.Wait(ctx, attempt) != nil {
					// Committed; the status is read again at the next chunk.
					return batch.StatusStarted, true
				}
			}
		}
	}
	return "", false
}
