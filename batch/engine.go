package batch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Engine launches and runs jobs against a [JobRepository]. The zero value is
// not usable: Repository is required. The launcher package wraps an Engine
// with a job registry, an operator API and a command line; use the Engine
// directly when you want none of that.
type Engine struct {
	// Repository stores the executions. Required.
	Repository JobRepository
	// Lease is how old a running execution's heartbeat may be before a new
	// launch of its instance presumes it dead. Default DefaultLease (30s).
	Lease time.Duration
	// HeartbeatInterval is how often a running execution records that it is
	// alive. Default Lease/3.
	HeartbeatInterval time.Duration
	// Logger receives the engine's structured logs. Default: discard.
	Logger *slog.Logger

	mu   sync.Mutex
	runs map[int64]*jobRun // the executions this engine is running
}

// Stop asks an execution that this engine is running to stop at its next
// chunk boundary, without a round trip to the repository, and reports whether
// the engine is running it. Operators in other processes stop an execution
// through the repository (launcher.Launcher.Stop does both).
func (e *Engine) Stop(executionID int64) bool {
	e.mu.Lock()
	r, ok := e.runs[executionID]
	e.mu.Unlock()
	if ok {
		r.requestStop()
	}
	return ok
}

func (e *Engine) lease() time.Duration {
	if e.Lease > 0 {
		return e.Lease
	}
	return DefaultLease
}

func (e *Engine) heartbeatInterval() time.Duration {
	if e.HeartbeatInterval > 0 {
		return e.HeartbeatInterval
	}
	return e.lease() / 3
}

func (e *Engine) logger() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Launch creates a new execution of job with params, in STARTING, applying
// the launch rules of [JobRepository.CreateJobExecution]: a new instance, a
// restart of a failed or stopped one, or a refusal (*LaunchError). It does
// not run it; call Run.
func (e *Engine) Launch(ctx context.Context, job *Job, params JobParameters) (*JobExecution, error) {
	if e.Repository == nil {
		return nil, configError("engine: no repository")
	}
	if params == nil {
		params = JobParameters{}
	}
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return e.Repository.CreateJobExecution(ctx, LaunchRequest{JobName: job.Name(), Parameters: params, Lease: e.lease(),
		PreventRestart: !job.Restartable()})
}

// Run runs exec, an execution of job created by Launch, to its end and
// returns it as finally saved. Completed steps of earlier executions of the
// instance are skipped; a step that failed or stopped resumes from its last
// committed context.
//
// The returned error is nil when the execution COMPLETED or STOPPED, the
// step's error when it FAILED, and an error wrapping ErrFenced when another
// process took the instance over. Cancelling ctx interrupts the running chunk
// (it rolls back) and ends the execution STOPPED. To stop gracefully at the
// next chunk boundary, ask the repository to stop it (launcher.Operator.Stop).
func (e *Engine) Run(ctx context.Context, job *Job, exec *JobExecution) (*JobExecution, error) {
	r := &jobRun{id: exec.ID, engine: e, job: job, exec: exec.Clone(), log: e.logger().With("job", job.Name(), "execution", exec.ID),
		stopCh: make(chan struct{})}
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
	id     int64 // the execution's id; r.exec changes as it is saved
	engine *Engine
	job    *Job
	exec   *JobExecution
	log    *slog.Logger

	stop      atomic.Bool
	stopOnce  sync.Once
	stopCh    chan struct{} // closed when a stop is requested
	fenced    atomic.Bool
	cancelRun context.CancelCauseFunc
}

func (r *jobRun) stopRequested() bool { return r.stop.Load() }

func (r *jobRun) requestStop() {
	r.stop.Store(true)
	r.stopOnce.Do(func() { close(r.stopCh) })
}

type stopKey struct{}

// StopRequested reports whether a stop was requested for the job execution
// running the step that ctx was handed to. A tasklet doing long work checks
// it (or waits on Stopping) to end early: it returns ErrStopped, and the
// step ends STOPPED.
func StopRequested(ctx context.Context) bool {
	r, ok := ctx.Value(stopKey{}).(*jobRun)
	return ok && r.stopRequested()
}

// Stopping returns a channel that is closed when a stop is requested for the
// job execution running the step that ctx was handed to; nil (never ready)
// for another context.
func Stopping(ctx context.Context) <-chan struct{} {
	if r, ok := ctx.Value(stopKey{}).(*jobRun); ok {
		return r.stopCh
	}
	return nil
}

func (r *jobRun) noteStatus(s BatchStatus) {
	switch {
	case s == StatusStopping:
		r.requestStop()
	case !s.Running():
		r.fenced.Store(true)
		if r.cancelRun != nil {
			r.cancelRun(fmt.Errorf("%w: execution %d is now %s", ErrFenced, r.id, s))
		}
	}
}

func (r *jobRun) repo() JobRepository { return r.engine.Repository }

func (r *jobRun) run(parent context.Context) (*JobExecution, error) {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	r.cancelRun = cancel
	// Bookkeeping must survive the interruption of the work.
	book := context.WithoutCancel(parent)

	// A restart carries on the job-level context of the execution before.
	if len(r.exec.Context) == 0 {
		prev, err := r.repo().JobExecutions(book, ExecutionQuery{InstanceID: r.exec.InstanceID, Limit: 2})
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
		r.exec.Context = ExecutionContext{}
	}

	if err := r.saveJob(book, func(e *JobExecution) {
		e.Status = StatusStarted
		if r.stopRequested() {
			e.Status = StatusStopping
		}
		e.StartTime = time.Now().UTC()
		e.ExitStatus = ExitExecuting
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
		err := fmt.Errorf("job %s execution %d: %w", r.job.Name(), r.id, ErrFenced)
		r.log.Error("job fenced off", "error", err)
		return r.exec, err
	}
	final := r.exec.Clone()
	final.Status, final.ExitStatus = status, exit
	for _, l := range r.job.listeners {
		if al, ok := l.(AfterJobListener); ok {
			if err := al.AfterJob(book, final); err != nil && runErr == nil {
				runErr = fmt.Errorf("job %s: after-job listener: %w", r.job.Name(), err)
				final.Status, final.ExitStatus = StatusFailed, ExitFailed.WithDescription(runErr.Error())
			}
		}
	}
	status, exit = final.Status, final.ExitStatus
	if err := r.saveJob(book, func(e *JobExecution) {
		e.Status, e.ExitStatus, e.Context = status, exit, final.Context
		e.EndTime = time.Now().UTC()
	}); err != nil {
		r.log.Error("job end not saved", "status", status, "error", err)
		return r.exec, err
	}
	r.log.Info("job finished", "status", status, "exit", exit.Code, "duration", r.exec.EndTime.Sub(r.exec.StartTime).Round(time.Millisecond))
	if status == StatusFailed {
		if runErr == nil {
			runErr = errors.New(exit.Description)
		}
		return r.exec, runErr
	}
	return r.exec, nil
}

// steps runs the job's steps and returns the job's outcome.
func (r *jobRun) steps(ctx, book context.Context) (BatchStatus, ExitStatus, error) {
	for _, l := range r.job.listeners {
		if bl, ok := l.(BeforeJobListener); ok {
			if err := bl.BeforeJob(ctx, r.exec); err != nil {
				err = fmt.Errorf("job %s: before-job listener: %w", r.job.Name(), err)
				return StatusFailed, ExitFailed.WithDescription(err.Error()), err
			}
		}
	}
	ran := 0
	for _, step := range r.job.steps {
		if r.stopRequested() {
			return StatusStopped, ExitStopped.WithDescription("stopped before step " + step.Name()), nil
		}
		se, skip, err := r.newStepExecution(book, step)
		if err != nil {
			return StatusFailed, ExitFailed.WithDescription(err.Error()), err
		}
		if skip {
			r.log.Info("step already completed, skipped", "step", step.Name())
			continue
		}
		ran++
		status, stepErr := r.runStep(ctx, book, step, se)
		if status == StatusCompleted {
			// Save the job-level context the step may have changed.
			if err := r.saveJob(book, func(*JobExecution) {}); err != nil {
				return StatusFailed, ExitFailed.WithDescription(err.Error()), err
			}
		}
		if status != StatusCompleted {
			exit := ExitStatus{Code: se.ExitStatus.Code, Description: se.ExitStatus.Description}
			return status, exit, stepErr
		}
	}
	if ran == 0 {
		return StatusCompleted, ExitNoop.WithDescription("all steps already completed"), nil
	}
	return StatusCompleted, ExitCompleted, nil
}

func (r *jobRun) newStepExecution(ctx context.Context, step Step) (*StepExecution, bool, error) {
	last, err := r.repo().LastStepExecution(ctx, r.exec.InstanceID, step.Name())
	if errors.Is(err, ErrNotFound) {
		last, err = nil, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("step %s: %w", step.Name(), err)
	}
	se := &StepExecution{
		JobExecutionID: r.id,
		StepName:       step.Name(),
		Status:         StatusStarted,
		ExitStatus:     ExitExecuting,
		StartTime:      time.Now().UTC(),
		Context:        ExecutionContext{},
	}
	if last != nil {
		if last.Status == StatusCompleted {
			if a, ok := step.(allowStartIfComplete); !ok || !a.AllowStartIfComplete() {
				return nil, true, nil
			}
		} else {
			se.Context = last.Context.Clone()
		}
	}
	if sl, ok := step.(startLimited); ok && sl.StartLimit() > 0 {
		n, err := r.repo().StepExecutionCount(ctx, r.exec.InstanceID, step.Name())
		if err != nil {
			return nil, false, fmt.Errorf("step %s: %w", step.Name(), err)
		}
		if n >= sl.StartLimit() {
			return nil, false, &StepError{Step: step.Name(),
				Err: fmt.Errorf("%w: started %d times, limit %d", ErrStartLimitExceeded, n, sl.StartLimit())}
		}
	}
	if err := r.repo().CreateStepExecution(ctx, se); err != nil {
		return nil, false, fmt.Errorf("step %s: %w", step.Name(), err)
	}
	return se, false, nil
}

func (r *jobRun) runStep(ctx, book context.Context, step Step, se *StepExecution) (BatchStatus, error) {
	log := r.log.With("step", step.Name(), "step_execution", se.ID)
	restart := len(se.Context) > 0
	log.Info("step started", "restart", restart)
	var listeners []Listener
	if sl, ok := step.(listenerLister); ok {
		listeners = sl.Listeners()
	}
	sc := &StepContext{JobExecution: r.exec, StepExecution: se, Repository: r.repo(), Logger: log, run: r}

	var err error
	for _, l := range listeners {
		if bl, ok := l.(BeforeStepListener); ok {
			if err = bl.BeforeStep(ctx, se); err != nil {
				err = &StepError{Step: step.Name(), Phase: "before-step listener", Err: err}
				break
			}
		}
	}
	if err == nil {
		err = step.Execute(context.WithValue(ctx, stopKey{}, r), sc)
	}
	se = sc.StepExecution
	switch {
	case err == nil:
		se.Status, se.ExitStatus = StatusCompleted, ExitCompleted
	case errors.Is(err, ErrStopped):
		se.Status, se.ExitStatus = StatusStopped, ExitStopped.WithDescription("stopped on request")
		err = nil
	case errors.Is(context.Cause(ctx), ErrFenced):
		err = context.Cause(ctx)
		se.Status, se.ExitStatus = StatusFailed, ExitFailed.WithDescription(err.Error())
	case ctx.Err() != nil:
		se.Status, se.ExitStatus = StatusStopped, ExitStopped.WithDescription("interrupted: "+context.Cause(ctx).Error())
		err = nil
	default:
		var stepErr *StepError
		if !errors.As(err, &stepErr) {
			err = &StepError{Step: step.Name(), Err: err}
		}
		se.Status, se.ExitStatus = StatusFailed, ExitFailed.WithDescription(err.Error())
	}
	for _, l := range listeners {
		if al, ok := l.(AfterStepListener); ok {
			if lerr := al.AfterStep(book, se); lerr != nil && se.Status == StatusCompleted {
				err = &StepError{Step: step.Name(), Phase: "after-step listener", Err: lerr}
				se.Status, se.ExitStatus = StatusFailed, ExitFailed.WithDescription(err.Error())
			}
		}
	}
	se.EndTime = time.Now().UTC()
	if uerr := r.repo().UpdateStepExecution(book, se); uerr != nil {
		if errors.Is(uerr, ErrStaleVersion) {
			r.fenced.Store(true)
		}
		uerr = fmt.Errorf("step %s: save: %w", step.Name(), uerr)
		log.Error("step not saved", "error", uerr)
		return StatusFailed, uerr
	}
	log.Info("step finished", "status", se.Status, "read", se.ReadCount, "written", se.WriteCount,
		"filtered", se.FilterCount, "commits", se.CommitCount, "rollbacks", se.RollbackCount)
	if err != nil {
		log.Error("step failed", "error", err)
	}
	return se.Status, err
}

// saveJob applies mutate to a copy of the execution and saves it, retrying
// with the stored version when the stored execution changed meanwhile (a stop
// request, which is kept); the execution takes the copy's values only once
// saved. It fails with ErrFenced when the stored execution is no longer
// running.
func (r *jobRun) saveJob(ctx context.Context, mutate func(*JobExecution)) error {
	for attempt := 0; ; attempt++ {
		next := r.exec.Clone()
		mutate(next)
		if next.Status == StatusStarted && r.stopRequested() {
			next.Status = StatusStopping
		}
		err := r.repo().UpdateJobExecution(ctx, next)
		if err == nil {
			*r.exec = *next
			return nil
		}
		if !errors.Is(err, ErrStaleVersion) || attempt >= 20 {
			return fmt.Errorf("job %s execution %d: save: %w", r.job.Name(), r.id, err)
		}
		cur, gerr := r.repo().JobExecution(ctx, r.id)
		if gerr != nil {
			return fmt.Errorf("job %s execution %d: save: %w", r.job.Name(), r.id, gerr)
		}
		if !cur.Status.Running() {
			r.fenced.Store(true)
			return fmt.Errorf("job %s execution %d is %s: %w", r.job.Name(), r.id, cur.Status, ErrFenced)
		}
		if cur.Status == StatusStopping {
			r.requestStop()
		}
		r.exec.Version = cur.Version
	}
}

func (r *jobRun) heartbeat(ctx context.Context) {
	t := time.NewTicker(r.engine.heartbeatInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			status, err := r.repo().Heartbeat(ctx, r.id, now.UTC())
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("heartbeat failed", "error", err)
				}
				continue
			}
			r.noteStatus(status)
		}
	}
}
