package batch

import "time"

// DefaultLease is the lease of an execution when none is configured: how old
// its heartbeat may grow before the execution is presumed crashed.
const DefaultLease = 30 * time.Second

// CrashedDescription starts the exit description of an execution that was
// marked FAILED because its heartbeat lapsed.
const CrashedDescription = "presumed crashed: no heartbeat"

// ExecutionQuery selects job executions.
type ExecutionQuery struct {
	JobName    string // "" for all jobs
	InstanceID int64  // 0 for all instances
	Running    bool   // only STARTING, STARTED and STOPPING executions
	Limit      int    // 0 for no limit
}
