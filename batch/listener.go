package batch

import (
	"context"
	"errors"
	"reflect"
)

// Listener is a value that implements one or more of the listener interfaces
// of this package. Jobs and steps take a list of them and call each hook the
// value implements, in list order: a job calls BeforeJobListener and
// AfterJobListener; a tasklet step BeforeStepListener and AfterStepListener; a
// chunk step those and BeforeChunkListener, AfterChunkListener and
// ChunkErrorListener. A listener that implements none of the interfaces its
// owner calls is rejected when the job or step is built.
type Listener any

// BeforeJobListener is called after a job execution has started, before its
// first step. An error fails the execution.
type BeforeJobListener interface {
	BeforeJob(ctx context.Context, e *JobExecution) error
}

// AfterJobListener is called when a job execution has finished, before its
// final status is saved. It may change e.ExitStatus. An error fails the
// execution.
type AfterJobListener interface {
	AfterJob(ctx context.Context, e *JobExecution) error
}

// BeforeStepListener is called before a step runs. An error fails the step.
type BeforeStepListener interface {
	BeforeStep(ctx context.Context, s *StepExecution) error
}

// AfterStepListener is called when a step has finished, before its final
// status is saved. It may change s.ExitStatus. An error fails the step.
type AfterStepListener interface {
	AfterStep(ctx context.Context, s *StepExecution) error
}

// ChunkEvent describes a chunk to chunk listeners.
type ChunkEvent struct {
	Step  *StepExecution
	Chunk int64 // 1-based number of the chunk within this step execution
	Items int   // items read into the chunk
	Err   error // for ChunkErrorListener: why the chunk rolled back
}

// BeforeChunkListener is called before a chunk's transaction begins.
type BeforeChunkListener interface {
	BeforeChunk(ctx context.Context, c *ChunkEvent)
}

// AfterChunkListener is called after a chunk committed.
type AfterChunkListener interface {
	AfterChunk(ctx context.Context, c *ChunkEvent)
}

// ChunkErrorListener is called after a chunk failed and rolled back.
type ChunkErrorListener interface {
	AfterChunkError(ctx context.Context, c *ChunkEvent)
}

// hasMethod reports whether v has an exported method of that name.
func hasMethod(v any, name string) bool {
	return v != nil && reflect.ValueOf(v).MethodByName(name).IsValid()
}

// Which listeners an owner calls.
const (
	jobListeners   = "job"
	stepListeners  = "step"
	chunkListeners = "chunk"
)

// validateListeners rejects a listener that implements none of the
// interfaces the owner calls: a listener that would never be called.
func validateListeners(owner, kind string, ls []Listener, more ...func(Listener) bool) error {
	for i, l := range ls {
		ok := false
		for _, m := range more {
			ok = ok || m(l)
		}
		switch l.(type) {
		case BeforeJobListener, AfterJobListener:
			ok = kind == jobListeners
		}
		switch l.(type) {
		case BeforeStepListener, AfterStepListener:
			ok = ok || kind == stepListeners || kind == chunkListeners
		}
		switch l.(type) {
		case BeforeChunkListener, AfterChunkListener, ChunkErrorListener, RetryListener:
			ok = ok || kind == chunkListeners
		}
		if !ok {
			return configError("%s: listener %d (%T) implements none of the %s listener interfaces", owner, i, l, kind)
		}
	}
	return nil
}

// PromoteKeys returns a step listener that copies the named keys of the
// step's execution context to the job's when the step completes, as Spring
// Batch's ExecutionContextPromotionListener does: a later step of the job
// reads them with [JobContext]. Keys the step did not store are passed over;
// a step that did not complete promotes nothing.
func PromoteKeys(keys ...string) Listener {
	return promotion{keys: keys}
}

type promotion struct{ keys []string }

// AfterStep copies the keys.
func (p promotion) AfterStep(ctx context.Context, s *StepExecution) error {
	if s.Status != StatusCompleted {
		return nil
	}
	jc := JobContext(ctx)
	if jc == nil {
		return errors.New("batch: promote keys: the context has no job execution")
	}
	for _, k := range p.keys {
		if v, ok := s.Context[k]; ok {
			jc[k] = append([]byte(nil), v...)
		}
	}
	return nil
}
