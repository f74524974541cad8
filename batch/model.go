package batch

import "time"

// JobInstance is one logical run of a job: the job's name and the identifying
// parameters. It may take several executions to complete (a failed or stopped
// execution is restarted as a new execution of the same instance).
type JobInstance struct {
	ID        int64
	JobName   string
	JobKey    string // JobParameters.Key of the identifying parameters
	CreatedAt time.Time
}

// JobExecution is one attempt to run a job instance.
type JobExecution struct {
	ID         int64
	InstanceID int64
	JobName    string
	Parameters JobParameters
	Status     BatchStatus
	ExitStatus ExitStatus
	CreatedAt  time.Time
	StartTime  time.Time // zero until the execution starts
	EndTime    time.Time // zero until the execution ends
	UpdatedAt  time.Time
	// Heartbeat is the last time the process running the execution said it
	// was alive. A running execution whose heartbeat is older than the lease
	// is presumed dead.
	Heartbeat time.Time
	// Lease is how old the heartbeat may grow before the execution is
	// presumed crashed. It is the execution's own, set when it was
	// launched: no later launch with another lease changes how it is
	// judged.
	Lease time.Duration
	// Context is the job-level execution context.
	Context ExecutionContext
	// Version counts the updates of the execution; an update made from a
	// stale copy fails with ErrStaleVersion.
	Version int64
}

// Clone returns a deep copy of e.
func (e *JobExecution) Clone() *JobExecution {
	c := *e
	c.Context = e.Context.Clone()
	c.Parameters = make(JobParameters, len(e.Parameters))
	for k, v := range e.Parameters {
		c.Parameters[k] = v
	}
	return &c
}

// StepExecution is one attempt to run one step within a job execution, with
// its counts and the execution context that a restart resumes from.
type StepExecution struct {
	ID             int64
	JobExecutionID int64
	StepName       string
	Status         BatchStatus
	ExitStatus     ExitStatus
	StartTime      time.Time
	EndTime        time.Time
	UpdatedAt      time.Time

	ReadCount        int64
	WriteCount       int64
	FilterCount      int64
	CommitCount      int64
	RollbackCount    int64
	ReadSkipCount    int64
	ProcessSkipCount int64
	WriteSkipCount   int64
	// Changes counts what the writes did, as far as the writers reported it
	// (see ReportChanges).
	Changes Changes

	Context ExecutionContext
	Version int64
}

// SkipCount is the number of items skipped in all phases.
func (s *StepExecution) SkipCount() int64 {
	return s.ReadSkipCount + s.ProcessSkipCount + s.WriteSkipCount
}

// ResumedAt reports the number of the first item a restarted chunk step read
// in this execution (items counted over all executions of the step), and
// whether the step resumed at all.
func (s *StepExecution) ResumedAt() (int64, bool) {
	n, ok := s.Context.Int64(resumedKey)
	return n, ok && n > 0
}

// Clone returns a deep copy of s.
func (s *StepExecution) Clone() *StepExecution {
	c := *s
	c.Context = s.Context.Clone()
	return &c
}
