package repository

import (
	"context"
	"errors"
	"time"

	"github.com/chunkwise/chunkwise/batch"
)

// StepLeaser is a [JobRepository] whose step executions can be claimed by
// one process at a time, under a lease: how the partitions of a step are
// handed to workers on other machines, with the repository as the only
// judge of who runs which. The SQL repositories and the memory repository
// are StepLeasers.
//
// A claim bumps the step execution's version, so every checkpoint and
// update of whoever held the step before — it was paused past its lease,
// cut off from the network — fails with batch.ErrStaleVersion: it commits
// nothing more. The owner keeps its lease alive with RenewStepLease; once
// the lease expires, another may claim the step and resume it from its
// last checkpoint.
type StepLeaser interface {
	// ClaimStep gives step execution id to owner (a token unique to this
	// claim) until lease from the repository's clock, if no one holds it:
	// the step is STARTING, or STARTED or STOPPING under a lease that
	// expired, and its job execution is running. The step becomes STARTED
	// and its claims are counted. ClaimStep returns the step as claimed, to
	// run and commit with; it fails with an error wrapping ErrStepClaimed
	// while another's lease is alive, and ErrNotClaimable when the step or
	// its job execution has ended or the step was never leased (it runs
	// where it was started).
	ClaimStep(ctx context.Context, id int64, owner string, lease time.Duration) (*batch.StepExecution, error)
	// RenewStepLease extends owner's lease of step execution id to lease
	// from now. It fails with an error wrapping ErrLeaseLost when the step
	// was claimed by another, or ended.
	RenewStepLease(ctx context.Context, id int64, owner string, lease time.Duration) error
	// ReleaseStep gives back owner's claim of step execution id before the
	// step ended — its worker is shutting down: the step is STARTING
	// again, for another to claim at once and resume from its last
	// checkpoint, and the claim given back is not counted. The version is
	// bumped: nothing more of owner's commits. It fails with an error
	// wrapping ErrLeaseLost when owner no longer holds the step.
	ReleaseStep(ctx context.Context, id int64, owner string) error
	// StepLease returns the lease of step execution id: who holds it,
	// until when, and how many times it was claimed. A step never claimed
	// has none (a zero StepLease).
	StepLease(ctx context.Context, id int64) (StepLease, error)
}

// StepLease is the lease of a step execution.
type StepLease struct {
	Owner string
	Until time.Time // by the repository's clock
	// Claims is how many times the step execution was claimed, less the
	// claims given back.
	Claims int
	// Expired reports whether the step is held (Owner is set) and Until
	// had passed when the lease was read, by the repository's clock: a
	// reader on another machine need not trust its own.
	Expired bool
}

// Errors of a StepLeaser.
var (
	// ErrStepClaimed: another holds the step execution under a live lease.
	ErrStepClaimed = errors.New("step execution claimed by another")
	// ErrNotClaimable: the step execution, or its job execution, ended;
	// or it was started where it runs, not handed out.
	ErrNotClaimable = errors.New("step execution cannot be claimed")
	// ErrLeaseLost: the lease was taken over, or the step ended.
	ErrLeaseLost = errors.New("step lease lost")
)

// Claimable reports whether a step with status, lease and job execution
// status can be claimed at now, and why not: for implementations.
func Claimable(status batch.BatchStatus, l StepLease, job batch.BatchStatus, now time.Time) error {
	switch {
	case !job.Running():
		return ErrNotClaimable
	case status == batch.StatusStarting:
		return nil
	case !status.Running() || l.Claims == 0:
		return ErrNotClaimable
	case now.Before(l.Until):
		return ErrStepClaimed
	}
	return nil
}
