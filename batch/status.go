package batch

// BatchStatus is the state of a job execution or a step execution.
type BatchStatus string

// The statuses a job or step execution moves through.
const (
	// StatusStarting: the execution exists but has not begun its first step.
	StatusStarting BatchStatus = "STARTING"
	// StatusStarted: the execution is running.
	StatusStarted BatchStatus = "STARTED"
	// StatusStopping: an operator asked the execution to stop; it will stop
	// at its next chunk boundary.
	StatusStopping BatchStatus = "STOPPING"
	// StatusStopped: the execution stopped on request. It can be restarted.
	StatusStopped BatchStatus = "STOPPED"
	// StatusFailed: the execution ended with an error, or its process died.
	// It can be restarted.
	StatusFailed BatchStatus = "FAILED"
	// StatusCompleted: the execution finished its work. Its instance cannot be
	// started again.
	StatusCompleted BatchStatus = "COMPLETED"
	// StatusAbandoned: an operator gave the execution up. It is never
	// restarted.
	StatusAbandoned BatchStatus = "ABANDONED"
)

// Running reports whether s is one of the statuses of an execution that has
// not ended: STARTING, STARTED or STOPPING.
func (s BatchStatus) Running() bool {
	return s == StatusStarting || s == StatusStarted || s == StatusStopping
}

// Valid reports whether s is one of the defined statuses.
func (s BatchStatus) Valid() bool {
	switch s {
	case StatusStarting, StatusStarted, StatusStopping, StatusStopped,
		StatusFailed, StatusCompleted, StatusAbandoned:
		return true
	}
	return false
}

// ExitStatus is how an execution ended, as a code a flow or a scheduler can act
// on and a description a person can read (for a failure: the error).
type ExitStatus struct {
	Code        string
	Description string
}

// Exit codes used by the engine. User code may define others (a step listener
// can set any code); flows in a later version branch on them.
const (
	ExitCodeUnknown   = "UNKNOWN"
	ExitCodeExecuting = "EXECUTING"
	ExitCodeCompleted = "COMPLETED"
	ExitCodeNoop      = "NOOP"
	ExitCodeFailed    = "FAILED"
	ExitCodeStopped   = "STOPPED"
)

// Predefined exit statuses.
var (
	ExitUnknown   = ExitStatus{Code: ExitCodeUnknown}
	ExitExecuting = ExitStatus{Code: ExitCodeExecuting}
	ExitCompleted = ExitStatus{Code: ExitCodeCompleted}
	ExitNoop      = ExitStatus{Code: ExitCodeNoop}
	ExitFailed    = ExitStatus{Code: ExitCodeFailed}
	ExitStopped   = ExitStatus{Code: ExitCodeStopped}
)

// WithDescription returns e with its description set to d.
func (e ExitStatus) WithDescription(d string) ExitStatus {
	e.Description = d
	return e
}

func (e ExitStatus) String() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}
