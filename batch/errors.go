package batch

import (
	"errors"
	"fmt"
	"time"
)

// Errors a caller can branch on with errors.Is.
var (
	// ErrNotFound: no job execution, instance or step execution with that id.
	ErrNotFound = errors.New("batch: not found")
	// ErrJobComplete: the job instance addressed by a launch already
	// completed; launch it with other identifying parameters.
	ErrJobComplete = errors.New("batch: job instance already completed")
	// ErrJobRunning: the job instance addressed by a launch has an execution
	// that is still running (its heartbeat is within the lease).
	ErrJobRunning = errors.New("batch: job instance is already running")
	// ErrJobAbandoned: the job instance's last execution was abandoned and
	// must not be restarted.
	ErrJobAbandoned = errors.New("batch: job instance was abandoned")
	// ErrJobNotRestartable: the job instance addressed by a launch failed or
	// stopped, and its job prevents restarts.
	ErrJobNotRestartable = errors.New("batch: job instance is not restartable")
	// ErrStaleVersion: an update was made from a copy of an execution that
	// someone else has updated since (optimistic locking).
	ErrStaleVersion = errors.New("batch: stale version")
	// ErrFenced: the execution no longer owns its instance — it was declared
	// dead after its heartbeat lapsed, or abandoned — so it may not commit.
	ErrFenced = errors.New("batch: execution fenced off")
	// ErrNotRunning: a stop was asked of an execution that is not running.
	ErrNotRunning = errors.New("batch: execution is not running")
	// ErrStopped is returned by a step that stopped on request at a chunk
	// boundary; the step and the job end STOPPED and can be restarted.
	ErrStopped = errors.New("batch: stopped on request")
	// ErrInvalidConfig: a job, step or component was configured wrongly.
	ErrInvalidConfig = errors.New("batch: invalid configuration")
)

// LaunchError explains why a launch was refused. It wraps one of
// ErrJobComplete, ErrJobRunning, ErrJobAbandoned or ErrJobNotRestartable.
type LaunchError struct {
	JobName     string
	InstanceID  int64
	ExecutionID int64 // the execution that blocks the launch
	Err         error
	// For ErrJobRunning: the running execution's last heartbeat, its age
	// at the launch, and the execution's lease. Once the heartbeat is older
	// than the lease, the execution is presumed crashed and a launch
	// restarts the instance.
	Heartbeat    time.Time
	HeartbeatAge time.Duration
	Lease        time.Duration
}

func (e *LaunchError) Error() string {
	s := fmt.Sprintf("%v: job %q instance %d (execution %d)", e.Err, e.JobName, e.InstanceID, e.ExecutionID)
	if errors.Is(e.Err, ErrJobRunning) && !e.Heartbeat.IsZero() && e.Lease > 0 {
		s += fmt.Sprintf("; last heartbeat %s ago, lease %s: if it stops, it is presumed crashed after %s",
			e.HeartbeatAge.Round(time.Millisecond), e.Lease, e.Heartbeat.Add(e.Lease).UTC().Format(time.RFC3339))
	}
	return s
}

func (e *LaunchError) Unwrap() error { return e.Err }

// StepError is the error a failed step ends with: it names the step and,
// for a chunk step, the chunk and item where it failed.
type StepError struct {
	Step  string
	Chunk int64 // 1-based chunk number within the step execution; 0 if none
	Item  int64 // 1-based item number counted over all executions of the step (in a replay, the item's number where it was skipped); 0 if none
	Phase string
	Err   error
}

func (e *StepError) Error() string {
	s := "step " + e.Step
	if e.Chunk > 0 {
		s += fmt.Sprintf(": chunk %d", e.Chunk)
	}
	if e.Item > 0 {
		s += fmt.Sprintf(": item %d", e.Item)
	}
	if e.Phase != "" {
		s += ": " + e.Phase
	}
	return s + ": " + e.Err.Error()
}

func (e *StepError) Unwrap() error { return e.Err }
