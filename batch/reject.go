package batch

import (
	"context"
	"encoding/json"
)

// Reject is a skipped item as the job repository keeps it: where it was
// skipped, why, and the item as JSON.
type Reject struct {
	Step  string
	Phase string // "read", "process" or "write"
	// Item is the item's number within the step (see Skip.Item).
	Item  int64
	Error string
	// Input and Output are the item as read and as processed (write skips),
	// as JSON; nil when there is none, or when it does not encode (then
	// Error says so).
	Input, Output json.RawMessage
}

// RejectRecorder is a StepContext that keeps the rejects of its step: a
// chunk step hands it every skipped item inside the transaction of the
// chunk that counts the skip, after its skip listeners. The launcher's
// step contexts are RejectRecorders when the job repository keeps rejects
// (repository.RejectStore).
type RejectRecorder interface {
	RecordReject(ctx context.Context, r Reject) error
}

// newReject describes a skip for the repository.
func newReject[T, U any](s *Skip[T, U]) Reject {
	r := Reject{Step: s.Step, Phase: s.Phase, Item: s.Item}
	if s.Err != nil {
		r.Error = s.Err.Error()
	}
	enc := func(what string, v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			r.Error += " (" + what + " not kept: " + err.Error() + ")"
			return nil
		}
		return b
	}
	if s.Phase != "read" {
		r.Input = enc("input", s.Input)
	}
	if s.Phase == "write" {
		r.Output = enc("output", s.Output)
	}
	return r
}
