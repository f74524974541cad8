package batch

import "context"

// Listener is a value that implements one or more of the listener interfaces
// of this package: BeforeJobListener, AfterJobListener, BeforeStepListener,
// AfterStepListener, BeforeChunkListener, AfterChunkListener and
// ChunkErrorListener. Jobs and steps take a list of them and call each hook the
// value implements, in list order. A value that implements none of them is
// rejected when the job or step is built.
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

func validateListeners(owner string, ls []Listener) error {
	for i, l := range ls {
		switch l.(type) {
		case BeforeJobListener, AfterJobListener, BeforeStepListener, AfterStepListener,
			BeforeChunkListener, AfterChunkListener, ChunkErrorListener:
		default:
			return configError("%s: listener %d (%T) implements no listener interface", owner, i, l)
		}
	}
	return nil
}
