package batch_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository/memory"
)

// listenerRecorder implements every listener interface and records the calls.
type listenerRecorder struct {
	name string // prefix of every event, to tell several listeners apart

	// stepExit, when set, replaces the step's exit status in AfterStep.
	stepExit *batch.ExitStatus
	// jobExit, when set, replaces the job's exit status in AfterJob.
	jobExit *batch.ExitStatus

	mu     sync.Mutex
	events []string
}

func (l *listenerRecorder) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, l.name+fmt.Sprintf(format, args...))
}

func (l *listenerRecorder) BeforeJob(_ context.Context, e *batch.JobExecution) error {
	l.add("before-job %s", e.Status)
	return nil
}

func (l *listenerRecorder) AfterJob(_ context.Context, e *batch.JobExecution) error {
	l.add("after-job %s", e.Status)
	if l.jobExit != nil {
		e.ExitStatus = *l.jobExit
	}
	return nil
}

func (l *listenerRecorder) BeforeStep(_ context.Context, s *batch.StepExecution) error {
	l.add("before-step %s %s", s.StepName, s.Status)
	return nil
}

func (l *listenerRecorder) AfterStep(_ context.Context, s *batch.StepExecution) error {
	l.add("after-step %s %s read=%d", s.StepName, s.Status, s.ReadCount)
	if l.stepExit != nil {
		s.ExitStatus = *l.stepExit
	}
	return nil
}

func (l *listenerRecorder) BeforeChunk(_ context.Context, c *batch.ChunkEvent) {
	l.add("before-chunk %d items=%d commits=%d", c.Chunk, c.Items, c.Step.CommitCount)
}

func (l *listenerRecorder) AfterChunk(_ context.Context, c *batch.ChunkEvent) {
	l.add("after-chunk %d items=%d commits=%d", c.Chunk, c.Items, c.Step.CommitCount)
}

func (l *listenerRecorder) AfterChunkError(_ context.Context, c *batch.ChunkEvent) {
	l.add("chunk-error %d items=%d: %v", c.Chunk, c.Items, c.Err)
}

// onlyAfterJob implements one listener interface only.
type onlyAfterJob struct{ called *bool }

func (o onlyAfterJob) AfterJob(context.Context, *batch.JobExecution) error {
	*o.called = true
	return nil
}

func TestListenersCalledInOrder(t *testing.T) {
	t.Parallel()
	repo := memory.New()
	rec := &listenerRecorder{}
	second := &listenerRecorder{name: "2:"}
	var afterJob bool
	step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
		Reader:    sliceReader(seq(1, 5)...),
		Writer:    &recordingWriter[int]{},
		ChunkSize: 2,
		Listeners: []batch.Listener{rec, second},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("listen", batch.JobConfig{
		Steps:     []batch.Step{step},
		Listeners: []batch.Listener{rec, onlyAfterJob{&afterJob}},
	})
	require.NoError(t, err)

	exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.True(t, afterJob)
	require.Equal(t, []string{
		"before-job STARTED",
		"before-step load STARTED",
		"before-chunk 1 items=2 commits=0",
		"after-chunk 1 items=2 commits=1",
		"before-chunk 2 items=2 commits=1",
		"after-chunk 2 items=2 commits=2",
		"before-chunk 3 items=1 commits=2",
		"after-chunk 3 items=1 commits=3",
		"after-step load COMPLETED read=5",
		"after-job COMPLETED",
	}, rec.events)
	// The second step listener is called after the first, for each hook.
	require.Equal(t, []string{
		"2:before-step load STARTED",
		"2:before-chunk 1 items=2 commits=0",
		"2:after-chunk 1 items=2 commits=1",
		"2:before-chunk 2 items=2 commits=1",
		"2:after-chunk 2 items=2 commits=2",
		"2:before-chunk 3 items=1 commits=2",
		"2:after-chunk 3 items=1 commits=3",
		"2:after-step load COMPLETED read=5",
	}, second.events)
}

func TestListenerChunkErrorOnWriteFailure(t *testing.T) {
	t.Parallel()
	repo := memory.New()
	rec := &listenerRecorder{}
	boom := errors.New("constraint violated")
	w := &recordingWriter[int]{fail: func(_ context.Context, call int, _ []int) error {
		if call == 2 {
			return boom
		}
		return nil
	}}
	step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
		Reader: sliceReader(seq(1, 5)...), Writer: w, ChunkSize: 2, Listeners: []batch.Listener{rec},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("listen", batch.JobConfig{Steps: []batch.Step{step}, Listeners: []batch.Listener{rec}})
	require.NoError(t, err)

	_, err = launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	require.ErrorIs(t, err, boom)
	require.Equal(t, []string{
		"before-job STARTED",
		"before-step load STARTED",
		"before-chunk 1 items=2 commits=0",
		"after-chunk 1 items=2 commits=1",
		"before-chunk 2 items=2 commits=1",
		"chunk-error 2 items=2: step load: chunk 2: item 3: write: chunk of items 3-4: constraint violated",
		"after-step load FAILED read=2",
		"after-job FAILED",
	}, rec.events)
}

func TestListenerExitStatusPersisted(t *testing.T) {
	t.Parallel()
	repo := memory.New()
	stepExit := batch.ExitStatus{Code: "COMPLETED_WITH_WARNINGS", Description: "3 rows had no email"}
	jobExit := batch.ExitStatus{Code: "PARTIAL", Description: "see step load"}
	stepL := &listenerRecorder{stepExit: &stepExit}
	jobL := &listenerRecorder{jobExit: &jobExit}
	step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
		Reader: sliceReader(1, 2, 3), Writer: &recordingWriter[int]{}, Listeners: []batch.Listener{stepL},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("exit", batch.JobConfig{Steps: []batch.Step{step}, Listeners: []batch.Listener{jobL}})
	require.NoError(t, err)

	exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, jobExit, exec.ExitStatus)

	se := onlyStep(t, repo, exec.ID)
	require.Equal(t, batch.StatusCompleted, se.Status)
	require.Equal(t, stepExit, se.ExitStatus)
	stored, err := repo.JobExecution(context.Background(), exec.ID)
	require.NoError(t, err)
	require.Equal(t, jobExit, stored.ExitStatus)
}

type failingListener struct{ beforeJob, afterStep error }

func (f failingListener) BeforeJob(context.Context, *batch.JobExecution) error { return f.beforeJob }
func (f failingListener) AfterStep(context.Context, *batch.StepExecution) error {
	return f.afterStep
}

func TestListenerErrorsFail(t *testing.T) {
	t.Parallel()
	boom := errors.New("listener says no")

	t.Run("before job", func(t *testing.T) {
		repo := memory.New()
		calls := 0
		step, err := batch.NewTaskletStep("t", batch.TaskletConfig{Tasklet: countingTasklet(&calls)})
		require.NoError(t, err)
		job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}, Listeners: []batch.Listener{failingListener{beforeJob: boom}}})
		require.NoError(t, err)
		exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
		require.ErrorIs(t, err, boom)
		require.Equal(t, batch.StatusFailed, exec.Status)
		require.Contains(t, exec.ExitStatus.Description, "before-job listener")
		require.Zero(t, calls)
		require.Empty(t, stepExecutions(t, repo, exec.ID))
	})

	t.Run("after step", func(t *testing.T) {
		repo := memory.New()
		calls := 0
		step, err := batch.NewTaskletStep("t", batch.TaskletConfig{
			Tasklet: countingTasklet(&calls), Listeners: []batch.Listener{failingListener{afterStep: boom}},
		})
		require.NoError(t, err)
		job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
		require.ErrorIs(t, err, boom)
		var se *batch.StepError
		require.ErrorAs(t, err, &se)
		require.Equal(t, "after-step listener", se.Phase)
		require.Equal(t, batch.StatusFailed, exec.Status)
		require.Equal(t, batch.StatusFailed, onlyStep(t, repo, exec.ID).Status)
	})
}

func TestListenerImplementingNothingRejected(t *testing.T) {
	t.Parallel()
	calls := 0
	step, err := batch.NewTaskletStep("t", batch.TaskletConfig{Tasklet: countingTasklet(&calls)})
	require.NoError(t, err)

	for _, l := range []batch.Listener{nil, 42, struct{}{}, func() {}} {
		_, err = batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}, Listeners: []batch.Listener{l}})
		require.ErrorIs(t, err, batch.ErrInvalidConfig, "%T", l)
		require.ErrorContains(t, err, "implements none of the")

		_, err = batch.NewChunkStep("c", batch.ChunkConfig[int, int]{
			Reader: sliceReader(1), Writer: &recordingWriter[int]{}, Listeners: []batch.Listener{&listenerRecorder{}, l},
		})
		require.ErrorIs(t, err, batch.ErrInvalidConfig, "%T", l)
		require.ErrorContains(t, err, "listener 1")

		_, err = batch.NewTaskletStep("t", batch.TaskletConfig{Tasklet: countingTasklet(&calls), Listeners: []batch.Listener{l}})
		require.ErrorIs(t, err, batch.ErrInvalidConfig, "%T", l)
	}
}

// chunkOnly implements a chunk hook only.
type chunkOnly struct{}

func (chunkOnly) AfterChunk(context.Context, *batch.ChunkEvent) {}

func TestListenerOfTheWrongLevelRejected(t *testing.T) {
	t.Parallel()
	calls := 0
	step, err := batch.NewTaskletStep("t", batch.TaskletConfig{Tasklet: countingTasklet(&calls)})
	require.NoError(t, err)
	_, err = batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}, Listeners: []batch.Listener{chunkOnly{}}})
	require.ErrorContains(t, err, "implements none of the job listener interfaces", "a job never calls chunk hooks")
	_, err = batch.NewTaskletStep("t", batch.TaskletConfig{Tasklet: countingTasklet(&calls), Listeners: []batch.Listener{chunkOnly{}}})
	require.ErrorContains(t, err, "implements none of the step listener interfaces", "a tasklet step has no chunks")
	_, err = batch.NewChunkStep("c", batch.ChunkConfig[int, int]{
		Reader: sliceReader(1), Writer: &recordingWriter[int]{}, Listeners: []batch.Listener{chunkOnly{}},
	})
	require.NoError(t, err)
}
