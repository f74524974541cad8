package batch

import "time"

// DefaultLease is the lease of an execution when none is configured: how old
// its heartbeat may grow before the execution is presumed crashed.
const DefaultLease = 30 * time.Second

// CrashedDescription starts the exit description of an execution that was
// marked FAILED because its heartbeat lapsed.
const CrashedDescription = "presumed crashed: no heartbeat"

// ExecutionQuery selects job executions. The list is newest first; to page
// through a long history, ask for the next page with BeforeID set to the
// last ID of the page before (keyset paging: each page costs the same
// however deep it is).
type ExecutionQuery struct {
	JobName    string      // "" for all jobs
	InstanceID int64       // 0 for all instances
	Running    bool        // only STARTING, STARTED and STOPPING executions
	Status     BatchStatus // "" for any status
	// Since and Until bound the executions' creation times: from Since, and
	// before Until. The zero time leaves the bound open.
	Since, Until time.Time
	BeforeID     int64 // only executions with a smaller ID; 0 for all
	Limit        int   // 0 for no limit
}

// Matches reports whether e is selected by q's filters (not by its Limit).
func (q ExecutionQuery) Matches(e *JobExecution) bool {
	switch {
	case q.JobName != "" && e.JobName != q.JobName,
		q.InstanceID != 0 && e.InstanceID != q.InstanceID,
		q.Running && !e.Status.Running(),
		q.Status != "" && e.Status != q.Status,
		!q.Since.IsZero() && e.CreatedAt.Before(q.Since),
		!q.Until.IsZero() && !e.CreatedAt.Before(q.Until),
		q.BeforeID != 0 && e.ID >= q.BeforeID:
		return false
	}
	return true
}
