package launcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

// PartitionWork is a partition handed to a worker: the ids it claims and
// runs the partition by. It carries no items, and nothing a worker must
// trust: the job repository says what the partition is and who runs it.
type PartitionWork struct {
	JobExecutionID  int64  `json:"job_execution"`
	StepExecutionID int64  `json:"step_execution"`
	Step            string `json:"step"` // the partition's step: "load:p3"
	// Dispatch is the partition's generation of work: 1 when first handed
	// out, 2 once a worker's lease of it expired, and so on. A partition
	// handed out again because no worker took it in time keeps its
	// generation: a queue that still holds the work (NATSQueue) can tell
	// the repeat and drop it.
	Dispatch int `json:"dispatch"`
}

// Dispatcher hands partitions to workers: it publishes the work where a
// worker (Launcher.RunPartition) picks it up. Handing out the same work
// twice is harmless — one claim wins — and so is losing it: the manager
// hands it out again.
type Dispatcher interface {
	Dispatch(ctx context.Context, w PartitionWork) error
}

// DispatcherFunc is a Dispatcher that is a function.
type DispatcherFunc func(ctx context.Context, w PartitionWork) error

// Dispatch calls f.
func (f DispatcherFunc) Dispatch(ctx context.Context, w PartitionWork) error { return f(ctx, w) }

// RemoteConfig makes a launcher hand the partitions of its partitioned
// steps to workers elsewhere instead of running them itself. The job
// repository must be a repository.StepLeaser shared with the workers.
type RemoteConfig struct {
	// Dispatcher hands out the partitions. Default nil: partitions run in
	// this process.
	Dispatcher Dispatcher
	// Poll is how often the manager reads a partition's state. Default
	// 500ms.
	Poll time.Duration
	// Unclaimed is how long a partition handed out may wait for a worker
	// before it is handed out again, the first time or after its worker's
	// lease expired. Default: the launcher's Lease.
	Unclaimed time.Duration
	// MaxClaims is how many times a partition may be claimed: one whose
	// last claim's lease expired without an end is marked FAILED instead
	// of handed out again. Default 3.
	MaxClaims int
	// Timeout bounds how long the partitioned step waits for its
	// partitions, from its start: once it passed, the partitions that have
	// not ended are marked FAILED, and a worker still running one commits
	// nothing more (the mark bumps the version its checkpoints must match).
	// Default 0: no bound.
	Timeout time.Duration
}

func (c RemoteConfig) withDefaults(lease time.Duration) RemoteConfig {
	if c.Poll <= 0 {
		c.Poll = 500 * time.Millisecond
	}
	if c.Unclaimed <= 0 {
		c.Unclaimed = lease
	}
	if c.MaxClaims <= 0 {
		c.MaxClaims = 3
	}
	return c
}

// runRemote runs a partition through the dispatcher: it creates the
// partition's step execution (STARTING), hands it out, and follows it in
// the repository until it ends — handing it out again when no worker took
// it in time or its worker's lease expired, failing it after MaxClaims
// claims, and stopping it if the job stops before a worker took it.
func (sc *stepContext) runRemote(ctx context.Context, step batch.Step, stop <-chan struct{}) (*batch.StepExecution, error) {
	r := sc.run
	book := context.WithoutCancel(ctx)
	cfg := r.engine.remote
	sl, ok := r.repo().(repository.StepLeaser)
	if !ok {
		return nil, fmt.Errorf("step %s: remote partitions need a repository that leases steps; %T does not", step.Name(), r.repo())
	}
	se, skip, err := r.newStepExecution(book, step, batch.StatusStarting)
	if err != nil {
		return nil, err
	}
	if skip {
		sc.log.Info("step already completed, skipped", "child", step.Name())
		return r.repo().LastStepExecution(book, r.instanceID, step.Name())
	}
	log := sc.log.With("child", step.Name(), "step_execution", se.ID)
	work := PartitionWork{JobExecutionID: r.id, StepExecutionID: se.ID, Step: step.Name()}
	dispatched := time.Time{}
	dispatch := func(generation bool) {
		if generation {
			work.Dispatch++
		}
		if err := cfg.Dispatcher.Dispatch(ctx, work); err != nil {
			// Tried again once Unclaimed has passed.
			log.Warn("partition not handed out", "dispatch", work.Dispatch, "error", err)
		}
		dispatched = time.Now()
	}
	dispatch(true)
	expiredClaims := 0 // the claims when a lease last expired
	var deadline time.Time
	if cfg.Timeout > 0 {
		deadline = sc.se.StartTime.Add(cfg.Timeout) // the partitioned step's start
	}
	t := time.NewTicker(cfg.Poll)
	defer t.Stop()
	claims := 0
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			// The run was interrupted (a stop's grace ran out) or fenced
			// off: the workers find out from the repository at their next
			// commit.
			return se, context.Cause(ctx)
		}
		cur, ok := r.storedStep(book, se.ID)
		if !ok {
			continue // the repository is out of reach: read again
		}
		if !cur.Status.Running() {
			log.Info("partition ended", "status", cur.Status, "read", cur.ReadCount, "written", cur.WriteCount)
			if cur.Status == batch.StatusFailed {
				return cur, &batch.StepError{Step: step.Name(), Err: errors.New(cur.ExitStatus.Description)}
			}
			return cur, nil
		}
		l, err := sl.StepLease(book, se.ID)
		if err != nil {
			continue
		}
		if l.Claims != claims {
			claims = l.Claims
			log.Info("partition claimed", "owner", l.Owner, "claims", l.Claims)
		}
		stopping := r.stopRequested() || closed(stop)
		held := l.Owner != "" // no owner: never claimed, or given back
		switch {
		case !deadline.IsZero() && time.Now().After(deadline):
			desc := fmt.Sprintf("not ended within the step's timeout of %s", cfg.Timeout)
			if held {
				desc += fmt.Sprintf(" (held by %s, claimed %d times)", l.Owner, l.Claims)
			}
			cur.Status, cur.ExitStatus, cur.EndTime = batch.StatusFailed, batch.ExitFailed.WithDescription(desc), r.engine.clock().UTC()
			if err := r.repo().UpdateStepExecution(book, cur); err != nil {
				continue // a chunk committed meanwhile: read it again
			}
			log.Warn("partition failed: timeout", "timeout", cfg.Timeout, "owner", l.Owner)
			return cur, &batch.StepError{Step: step.Name(), Err: errors.New(desc)}
		case !held && stopping:
			// No worker took it: it ends here, restartable.
			cur.Status, cur.ExitStatus, cur.EndTime = batch.StatusStopped, batch.ExitStopped.WithDescription("stopped before a worker took it"), r.engine.clock().UTC()
			if err := r.repo().UpdateStepExecution(book, cur); err != nil {
				continue // claimed meanwhile: follow it
			}
			return cur, nil
		case !held && time.Since(dispatched) >= cfg.Unclaimed:
			// Behind other partitions, or its work lost: the same work
			// again.
			log.Info("partition still waiting for a worker; handed out again", "waited", time.Since(dispatched).Round(time.Millisecond))
			dispatch(false)
		case l.Expired && l.Claims >= cfg.MaxClaims:
			desc := fmt.Sprintf("claimed %d times, and the lease of the last (%s) expired before it ended", l.Claims, l.Owner)
			cur.Status, cur.ExitStatus, cur.EndTime = batch.StatusFailed, batch.ExitFailed.WithDescription(desc), r.engine.clock().UTC()
			if err := r.repo().UpdateStepExecution(book, cur); err != nil {
				continue // claimed again meanwhile
			}
			return cur, &batch.StepError{Step: step.Name(), Err: errors.New(desc)}
		case l.Expired && time.Since(dispatched) >= cfg.Unclaimed:
			// At once when the lease expires (the last dispatch is older
			// than that), then no oftener than Unclaimed while no worker
			// takes it: the queue is not flooded.
			log.Warn("partition's lease expired; handing it out again", "owner", l.Owner, "claims", l.Claims)
			dispatch(l.Claims != expiredClaims)
			expiredClaims = l.Claims
		}
	}
}

func closed(c <-chan struct{}) bool {
	if c == nil {
		return false
	}
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// ErrHandedBack is the error of RunPartition when the partition was handed
// back: its handBack channel closed before it ended.
var ErrHandedBack = errors.New("partition handed back")

// RunPartition claims the partition of w for owner (a name unique to this
// claim: a worker's host, process and slot) and runs it to its end, as the
// manager would have: from its last checkpoint, with the job as this
// launcher's registry builds it, its lease renewed as it runs. It returns
// the partition's step execution as it ended.
//
// Closing handBack (nil for never) hands the partition back at its next
// chunk boundary, as a worker shutting down does: what was committed
// stays, the claim is given back (repository.StepLeaser.ReleaseStep) for
// another worker to resume it at once, and RunPartition returns
// ErrHandedBack. A stop of the job wins over a hand back: the partition
// then ends STOPPED.
//
// It fails with an error wrapping repository.ErrStepClaimed when another
// worker holds the partition, or repository.ErrNotClaimable when it ended
// or its job execution did; the work is then done or another's, and
// nothing is to be retried. A worker whose lease was taken over commits
// nothing more: it ends with an error wrapping batch.ErrFenced (or
// batch.ErrStaleVersion), and the partition is the new owner's.
func (l *Launcher) RunPartition(ctx context.Context, w PartitionWork, owner string, handBack <-chan struct{}) (*batch.StepExecution, error) {
	repo := l.Repository()
	sl, ok := repo.(repository.StepLeaser)
	if !ok {
		return nil, fmt.Errorf("run partition: %T does not lease steps", repo)
	}
	// The step is built before the claim: a worker that cannot run it
	// (another program, a job it does not have) leaves it to others.
	exec, err := repo.JobExecution(ctx, w.JobExecutionID)
	if err != nil {
		return nil, fmt.Errorf("run partition %s: %w", w.Step, err)
	}
	if !strings.Contains(w.Step, ":") {
		return nil, fmt.Errorf("run partition %s of job %s: not a partition", w.Step, exec.JobName)
	}
	job, err := l.jobFor(ctx, exec.JobName, exec.Parameters)
	if err != nil {
		return nil, fmt.Errorf("run partition %s: %w", w.Step, err)
	}
	step, err := job.FindStep(w.Step, func(parent string) ([]batch.Partition, error) {
		return l.partitionsOf(ctx, exec.ID, parent)
	})
	if err != nil {
		return nil, fmt.Errorf("run partition %s of job %s: %w", w.Step, exec.JobName, err)
	}
	lease := l.engine.lease
	se, err := sl.ClaimStep(ctx, w.StepExecutionID, owner, lease)
	if err != nil {
		return nil, fmt.Errorf("run partition %s: %w", w.Step, err)
	}
	if se.StepName != w.Step || se.JobExecutionID != exec.ID {
		return nil, fmt.Errorf("run partition %s: step execution %d is %s of execution %d", w.Step, se.ID, se.StepName, se.JobExecutionID)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if l.engine.dryRun {
		ctx = batch.WithDryRun(ctx)
	}
	r := &jobRun{id: exec.ID, instanceID: exec.InstanceID, engine: l.engine, job: job, exec: exec, lease: lease,
		log: l.engine.logger.With("job", exec.JobName, "execution", exec.ID, "owner", owner), stopCh: make(chan struct{}), cancelRun: cancel}
	if exec.Status == batch.StatusStopping {
		r.requestStop()
	}
	if handBack != nil {
		r.handBack = func(ctx context.Context, se *batch.StepExecution) error {
			return sl.ReleaseStep(ctx, se.ID, owner)
		}
	}
	defer func() {
		if t := r.graceTimer.Load(); t != nil {
			t.Stop()
		}
	}()
	// The lease is renewed until the step's end is saved. A renewal that
	// finds the partition taken over stops the work at once, and so does
	// a lease that renewals could not reach the repository to extend: the
	// partition may be another's by now.
	renewed := make(chan struct{})
	renewCtx, stopRenew := context.WithCancel(context.WithoutCancel(ctx))
	// The step's goroutine rewrites se at every commit: the renewals keep
	// their own copy of what they need.
	id, name := se.ID, se.StepName
	go func() {
		defer close(renewed)
		t := time.NewTicker(l.engine.heartbeatInterval)
		defer t.Stop()
		renewedAt := time.Now()
		for {
			select {
			case <-renewCtx.Done():
				return
			case <-t.C:
			}
			err := sl.RenewStepLease(renewCtx, id, owner, lease)
			switch {
			case errors.Is(err, repository.ErrLeaseLost):
				r.fenceOff(fmt.Errorf("%w: partition %s: %w", batch.ErrFenced, name, err))
				return
			case err == nil:
				renewedAt = time.Now()
				r.touch()
			case time.Since(renewedAt) > lease:
				r.fenceOff(fmt.Errorf("%w: partition %s: its lease could not be renewed for %s: %w",
					batch.ErrFenced, name, time.Since(renewedAt).Round(time.Millisecond), err))
				return
			default:
				r.log.Warn("partition lease not renewed", "step", name, "error", err)
			}
		}
	}()
	book := context.WithoutCancel(ctx)
	_, runErr := r.runStepWith(ctx, book, step, se, handBack)
	stopRenew()
	<-renewed
	if errors.Is(runErr, ErrHandedBack) {
		return se, runErr // the renewal after the release found the lease gone: no fence
	}
	if r.fenced.Load() {
		// A renewal just after the step's end was saved finds the lease
		// gone (the step ended): the end is this worker's when its save is
		// the partition's last write.
		if cur, ok := r.storedStep(book, se.ID); ok && !cur.Status.Running() && cur.Version == se.Version {
			return se, runErr
		}
		cause := batch.ErrFenced
		if c := r.fenceCause.Load(); c != nil {
			cause = *c
		}
		return se, fmt.Errorf("run partition %s: %w", se.StepName, cause)
	}
	return se, runErr
}
