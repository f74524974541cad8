package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

var _ repository.StepLeaser = (*Repository)(nil)

// ClaimStep implements repository.StepLeaser.
func (r *Repository) ClaimStep(_ context.Context, id int64, owner string, lease time.Duration) (*batch.StepExecution, error) {
	if owner == "" || lease <= 0 {
		return nil, fmt.Errorf("repository memory: claim step execution %d: want an owner and a positive lease", id)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.step(id)
	if s == nil {
		return nil, fmt.Errorf("step execution %d: %w", id, batch.ErrNotFound)
	}
	var job batch.BatchStatus
	if e := r.execution(s.JobExecutionID); e != nil {
		job = e.Status
	}
	now := time.Now().UTC()
	l := r.leases[id]
	if err := repository.Claimable(s.Status, l, job, now); err != nil {
		return nil, fmt.Errorf("repository memory: claim step execution %d (%s, held by %q): %w", id, s.Status, l.Owner, err)
	}
	if r.leases == nil {
		r.leases = map[int64]repository.StepLease{}
	}
	r.leases[id] = repository.StepLease{Owner: owner, Until: now.Add(lease), Claims: l.Claims + 1}
	s.Version++
	s.Status = batch.StatusStarted
	if s.StartTime.IsZero() {
		s.StartTime = now
	}
	s.UpdatedAt = now
	return s.Clone(), nil
}

// RenewStepLease implements repository.StepLeaser.
func (r *Repository) RenewStepLease(_ context.Context, id int64, owner string, lease time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, l := r.step(id), r.leases[id]
	if s == nil || l.Owner != owner || !s.Status.Running() {
		return fmt.Errorf("repository memory: renew step lease: step execution %d, owner %q: %w", id, owner, repository.ErrLeaseLost)
	}
	l.Until = time.Now().UTC().Add(lease)
	r.leases[id] = l
	return nil
}

// ReleaseStep implements repository.StepLeaser.
func (r *Repository) ReleaseStep(_ context.Context, id int64, owner string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, l := r.step(id), r.leases[id]
	if s == nil || l.Owner != owner || (s.Status != batch.StatusStarted && s.Status != batch.StatusStopping) {
		return fmt.Errorf("repository memory: release step: step execution %d, owner %q: %w", id, owner, repository.ErrLeaseLost)
	}
	r.leases[id] = repository.StepLease{Claims: l.Claims - 1}
	s.Version++
	s.Status = batch.StatusStarting
	s.UpdatedAt = time.Now().UTC()
	return nil
}

// StepLease implements repository.StepLeaser.
func (r *Repository) StepLease(_ context.Context, id int64) (repository.StepLease, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.step(id) == nil {
		return repository.StepLease{}, fmt.Errorf("step execution %d: %w", id, batch.ErrNotFound)
	}
	l := r.leases[id]
	l.Expired = l.Owner != "" && !time.Now().Before(l.Until)
	return l, nil
}
