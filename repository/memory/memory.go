// Package memory is a JobRepository that keeps everything in memory: for tests
// and throw-away runs. Nothing survives the process, so nothing can be
// restarted after a crash; use repository/sqlite or repository/postgres for
// that.
package memory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

// Repository is an in-memory repository.JobRepository. The zero value is not
// usable; call New. It is safe for concurrent use.
type Repository struct {
	mu         sync.Mutex
	instances  []*batch.JobInstance
	executions []*batch.JobExecution
	steps      []*batch.StepExecution
	rejects    []repository.StoredReject
	leases     map[int64]repository.StepLease // by step execution id
	schedules  map[string]repository.Schedule
	nextID     int64
}

var _ repository.JobRepository = (*Repository)(nil)

// New returns an empty repository.
func New() *Repository { return &Repository{} }

func (r *Repository) id() int64 {
	r.nextID++
	return r.nextID
}

// CreateJobExecution implements repository.JobRepository.
func (r *Repository) CreateJobExecution(_ context.Context, req repository.LaunchRequest) (*batch.JobExecution, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := req.At()
	key := req.Parameters.Key()
	var inst *batch.JobInstance
	for _, in := range r.instances {
		if in.JobName == req.JobName && in.JobKey == key {
			inst = in
		}
	}
	if inst == nil {
		inst = &batch.JobInstance{ID: r.id(), JobName: req.JobName, JobKey: key, CreatedAt: now}
		r.instances = append(r.instances, inst)
	}
	for i := len(r.executions) - 1; i >= 0; i-- {
		e := r.executions[i]
		if e.InstanceID != inst.ID {
			continue
		}
		rule := repository.ApplyLaunchRules(req, inst.ID, repository.LastExecution{ID: e.ID, Status: e.Status,
			Heartbeat: e.Heartbeat, Lease: e.Lease}, now)
		if rule.Crashed != "" {
			r.markCrashed(e, now, rule.Crashed)
		}
		if rule.Refusal != nil {
			return nil, rule.Refusal
		}
		break
	}
	e := &batch.JobExecution{
		ID: r.id(), InstanceID: inst.ID, JobName: req.JobName, Parameters: req.Parameters,
		Status: batch.StatusStarting, ExitStatus: batch.ExitUnknown,
		CreatedAt: now, UpdatedAt: now, Heartbeat: now, Lease: req.LeaseOrDefault(), Context: batch.ExecutionContext{},
	}
	e = e.Clone()
	r.executions = append(r.executions, e)
	return e.Clone(), nil
}

func (r *Repository) markCrashed(e *batch.JobExecution, now time.Time, desc string) {
	e.Status, e.ExitStatus = batch.StatusFailed, batch.ExitFailed.WithDescription(desc)
	e.EndTime, e.UpdatedAt = now, now
	e.Version++
	for _, s := range r.steps {
		if s.JobExecutionID == e.ID && s.Status.Running() {
			s.Status, s.ExitStatus = batch.StatusFailed, batch.ExitFailed.WithDescription(desc)
			s.EndTime, s.UpdatedAt = now, now
			s.Version++
		}
	}
}

func (r *Repository) execution(id int64) *batch.JobExecution {
	for _, e := range r.executions {
		if e.ID == id {
			return e
		}
	}
	return nil
}

// JobExecution implements repository.JobRepository.
func (r *Repository) JobExecution(_ context.Context, id int64) (*batch.JobExecution, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.execution(id)
	if e == nil {
		return nil, batch.ErrNotFound
	}
	return e.Clone(), nil
}

// UpdateJobExecution implements repository.JobRepository.
func (r *Repository) UpdateJobExecution(_ context.Context, u *batch.JobExecution) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.execution(u.ID)
	if e == nil {
		return batch.ErrNotFound
	}
	if e.Version != u.Version {
		return batch.ErrStaleVersion
	}
	u.Version++
	u.UpdatedAt = time.Now().UTC()
	keep := *e
	*e = *u.Clone()
	e.InstanceID, e.JobName, e.Parameters, e.CreatedAt, e.Heartbeat, e.Lease = keep.InstanceID, keep.JobName, keep.Parameters,
		keep.CreatedAt, keep.Heartbeat, keep.Lease
	if !e.Status.Running() {
		// An execution that ended leaves no step running under it.
		for _, s := range r.steps {
			if s.JobExecutionID == e.ID && s.Status.Running() {
				s.Status = batch.StatusFailed
				s.ExitStatus = batch.ExitFailed.WithDescription("the job execution ended " + string(e.Status) + " while the step was running")
				s.EndTime, s.UpdatedAt = u.UpdatedAt, u.UpdatedAt
				s.Version++
			}
		}
	}
	return nil
}

// Heartbeat implements repository.JobRepository.
func (r *Repository) Heartbeat(_ context.Context, id int64) (batch.BatchStatus, error) {
	now := time.Now().UTC()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.execution(id)
	if e == nil {
		return "", batch.ErrNotFound
	}
	if e.Status.Running() {
		e.Heartbeat = now
	}
	return e.Status, nil
}

// JobExecutions implements repository.JobRepository.
func (r *Repository) JobExecutions(_ context.Context, q batch.ExecutionQuery) ([]*batch.JobExecution, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*batch.JobExecution
	for i := len(r.executions) - 1; i >= 0; i-- {
		e := r.executions[i]
		if !q.Matches(e) {
			continue
		}
		out = append(out, e.Clone())
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

// JobInstance implements repository.JobRepository.
func (r *Repository) JobInstance(_ context.Context, id int64) (*batch.JobInstance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, in := range r.instances {
		if in.ID == id {
			c := *in
			return &c, nil
		}
	}
	return nil, batch.ErrNotFound
}

// JobNames implements repository.JobRepository.
func (r *Repository) JobNames(context.Context) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, in := range r.instances {
		if !slices.Contains(names, in.JobName) {
			names = append(names, in.JobName)
		}
	}
	sort.Strings(names)
	return names, nil
}

// CreateStepExecution implements repository.JobRepository.
func (r *Repository) CreateStepExecution(_ context.Context, s *batch.StepExecution) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.execution(s.JobExecutionID)
	if e == nil {
		return batch.ErrNotFound
	}
	if !e.Status.Running() {
		return fmt.Errorf("job execution %d is %s: %w", e.ID, e.Status, batch.ErrFenced)
	}
	s.ID = r.id()
	s.Version = 0
	s.UpdatedAt = time.Now().UTC()
	if s.Context == nil {
		s.Context = batch.ExecutionContext{}
	}
	r.steps = append(r.steps, s.Clone())
	return nil
}

func (r *Repository) step(id int64) *batch.StepExecution {
	for _, s := range r.steps {
		if s.ID == id {
			return s
		}
	}
	return nil
}

func (r *Repository) saveStep(u *batch.StepExecution) error {
	s := r.step(u.ID)
	if s == nil {
		return batch.ErrNotFound
	}
	if s.Version != u.Version {
		return batch.ErrStaleVersion
	}
	if e := r.execution(s.JobExecutionID); e == nil || !e.Status.Running() {
		return batch.ErrFenced
	}
	u.Version++
	u.UpdatedAt = time.Now().UTC()
	*s = *u.Clone()
	return nil
}

// UpdateStepExecution implements repository.JobRepository.
func (r *Repository) UpdateStepExecution(_ context.Context, u *batch.StepExecution) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.saveStep(u)
}

// StepExecutions implements repository.JobRepository.
func (r *Repository) StepExecutions(_ context.Context, jobExecutionID int64) ([]*batch.StepExecution, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*batch.StepExecution
	for _, s := range r.steps {
		if s.JobExecutionID == jobExecutionID {
			out = append(out, s.Clone())
		}
	}
	return out, nil
}

// LastStepExecution implements repository.JobRepository.
func (r *Repository) LastStepExecution(_ context.Context, instanceID int64, stepName string) (*batch.StepExecution, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// The newest execution's newest one, as the SQL stores order them.
	var last *batch.StepExecution
	for _, s := range r.steps {
		e := r.execution(s.JobExecutionID)
		if s.StepName != stepName || e == nil || e.InstanceID != instanceID {
			continue
		}
		if last == nil || s.JobExecutionID > last.JobExecutionID ||
			s.JobExecutionID == last.JobExecutionID && s.ID > last.ID {
			last = s
		}
	}
	if last == nil {
		return nil, batch.ErrNotFound
	}
	return last.Clone(), nil
}

// StepExecutionCount implements repository.JobRepository.
func (r *Repository) StepExecutionCount(_ context.Context, instanceID int64, stepName string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.steps {
		if e := r.execution(s.JobExecutionID); s.StepName == stepName && e != nil && e.InstanceID == instanceID {
			n++
		}
	}
	return n, nil
}

// CommitChunk implements repository.JobRepository. There is no transaction to
// join (batch.JoinTx fails with batch.ErrNoChunkTx): write runs first and the
// checkpoint is saved after it, so a writer that fails leaves the checkpoint
// as it was.
func (r *Repository) CommitChunk(ctx context.Context, s *batch.StepExecution, write func(ctx context.Context) error) (batch.BatchStatus, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	// Rejects saved by write wait for the checkpoint: they are kept with it,
	// or not at all.
	pending := &pendingRejects{}
	wctx := context.WithValue(repository.WithoutChunkTx(ctx, "the memory job repository keeps no SQL transaction"), pendingKey{}, pending)
	if err := write(wctx); err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.step(s.ID)
	if st == nil {
		return "", batch.ErrNotFound
	}
	e := r.execution(st.JobExecutionID)
	if e == nil || !e.Status.Running() {
		return "", batch.ErrFenced
	}
	if err := r.saveStep(s); err != nil {
		return "", err
	}
	for _, rej := range pending.rejects {
		rej.ID, rej.JobExecutionID = r.id(), e.ID
		r.rejects = append(r.rejects, rej)
	}
	return e.Status, nil
}

// pendingRejects are the rejects of a chunk being committed.
type pendingRejects struct {
	mu      sync.Mutex
	rejects []repository.StoredReject
}

type pendingKey struct{}

var _ repository.RejectStore = (*Repository)(nil)

// SaveReject implements repository.RejectStore: the reject is kept when
// the chunk whose write function's context ctx is commits.
func (r *Repository) SaveReject(ctx context.Context, stepExecutionID int64, rej batch.Reject) error {
	p, ok := ctx.Value(pendingKey{}).(*pendingRejects)
	if !ok {
		return errors.New("repository memory: save reject: not in a chunk's commit")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rejects = append(p.rejects, repository.StoredReject{Reject: rej, StepExecutionID: stepExecutionID, CreatedAt: time.Now().UTC()})
	return nil
}

// Rejects implements repository.RejectStore.
func (r *Repository) Rejects(_ context.Context, jobExecutionID int64) ([]repository.StoredReject, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []repository.StoredReject
	for _, rej := range r.rejects {
		if rej.JobExecutionID == jobExecutionID {
			out = append(out, rej)
		}
	}
	return out, nil
}

var _ repository.Pruner = (*Repository)(nil)

// Prune implements repository.Pruner.
func (r *Repository) Prune(_ context.Context, req repository.PruneRequest) (repository.PruneResult, error) {
	if err := req.Check(); err != nil {
		return repository.PruneResult{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	last := map[int64]*batch.JobExecution{} // instance → its last execution
	seen := map[string]int{}                // job → executions met, newest first
	selected := map[int64]string{}          // execution → its job
	jobs := map[string]*repository.PrunedJob{}
	for _, e := range r.executions {
		if l := last[e.InstanceID]; l == nil || e.ID > l.ID {
			last[e.InstanceID] = e
		}
	}
	for i := len(r.executions) - 1; i >= 0; i-- {
		e := r.executions[i]
		seen[e.JobName]++
		if req.Job != "" && e.JobName != req.Job {
			continue
		}
		ended := e.UpdatedAt
		if !e.EndTime.IsZero() {
			ended = e.EndTime
		}
		if !req.Selects(ended, seen[e.JobName] <= req.KeepLast, e.Status, last[e.InstanceID].Status) {
			continue
		}
		selected[e.ID] = e.JobName
		j := jobs[e.JobName]
		if j == nil {
			j = &repository.PrunedJob{Job: e.JobName}
			jobs[e.JobName] = j
		}
		j.Add(ended)
	}
	left := map[int64]bool{} // instances that keep an execution
	var keptExecs []*batch.JobExecution
	for _, e := range r.executions {
		if selected[e.ID] != "" {
			continue
		}
		keptExecs = append(keptExecs, e)
		left[e.InstanceID] = true
	}
	var keptSteps []*batch.StepExecution
	for _, s := range r.steps {
		if job := selected[s.JobExecutionID]; job != "" {
			jobs[job].StepExecutions++
			continue
		}
		keptSteps = append(keptSteps, s)
	}
	var keptInstances []*batch.JobInstance
	for _, in := range r.instances {
		if j := jobs[in.JobName]; j != nil && !left[in.ID] {
			j.Instances++
			continue
		}
		keptInstances = append(keptInstances, in)
	}
	if !req.DryRun {
		r.executions, r.steps, r.instances = keptExecs, keptSteps, keptInstances
		r.rejects = slices.DeleteFunc(r.rejects, func(rej repository.StoredReject) bool { return selected[rej.JobExecutionID] != "" })
		for id := range r.leases {
			if r.step(id) == nil {
				delete(r.leases, id)
			}
		}
	}
	return repository.SortPruned(jobs), nil
}
