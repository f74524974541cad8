package batch_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/memory"
)

func TestStopRequestAtChunkBoundary(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		ctx := context.Background()
		engine := mustLauncher(t, launcher.Config{Repository: repo})
		reader := newStreamReader(10)
		stop := true
		w := &recordingWriter[int]{fail: func(ctx context.Context, call int, _ []int) error {
			if stop && call == 2 {
				// What an operator does, from another process, while
				// chunk 2 is being written.
				return requestStop(ctx, repo, runningID(ctx, repo))
			}
			return nil
		}}
		rec := &listenerRecorder{}
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{Reader: reader, Writer: w, ChunkSize: 3, Listeners: []batch.Listener{rec}})
		require.NoError(t, err)
		job, err := batch.NewJob("stoppable", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)

		exec, err := engine.Run(ctx, job, nil)
		require.NoError(t, err, "a stopped execution is not an error")
		require.Equal(t, batch.StatusStopped, exec.Status)
		require.Equal(t, batch.ExitCodeStopped, exec.ExitStatus.Code)
		require.Equal(t, [][]int{{1, 2, 3}, {4, 5, 6}}, w.chunks, "chunk 2 commits, then the step stops")

		stored, err := repo.JobExecution(ctx, exec.ID)
		require.NoError(t, err)
		require.Equal(t, batch.StatusStopped, stored.Status)
		require.False(t, stored.EndTime.IsZero())
		se := onlyStep(t, repo, exec.ID)
		require.Equal(t, batch.StatusStopped, se.Status)
		require.Equal(t, batch.ExitStopped.WithDescription("stopped on request"), se.ExitStatus)
		require.Equal(t, int64(2), se.CommitCount)
		require.Equal(t, int64(6), se.WriteCount)
		require.Zero(t, se.RollbackCount)
		require.Equal(t, 1, reader.closed)
		require.Contains(t, rec.events, "after-step load STOPPED read=6")

		// The restart completes the rest, with nothing doubled.
		stop = false
		exec2, err := launchRun(t, engine, job, nil)
		require.NoError(t, err)
		require.Equal(t, exec.InstanceID, exec2.InstanceID)
		require.Equal(t, batch.StatusCompleted, exec2.Status)
		require.Equal(t, seq(1, 10), w.all())
		require.Equal(t, []int{0, 6}, reader.openedAt)
		require.Equal(t, int64(4), onlyStep(t, repo, exec2.ID).WriteCount)
	})
}

func TestStopRequestBeforeRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo := memory.New()
	engine := mustLauncher(t, launcher.Config{Repository: repo})
	calls := 0
	step, err := batch.NewTaskletStep("t", batch.TaskletConfig{Tasklet: countingTasklet(&calls)})
	require.NoError(t, err)
	job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)

	// An operator's stop lands after the launch, before the run's first
	// save.
	early := &stopBeforeFirstSave{JobRepository: repo}
	exec, err := mustLauncher(t, launcher.Config{Repository: early}).Run(ctx, job, nil)
	require.NoError(t, err)
	require.True(t, early.done)
	require.Equal(t, batch.StatusStopped, exec.Status)
	require.Zero(t, calls)
	require.Empty(t, stepExecutions(t, repo, exec.ID))

	exec, err = launchRun(t, engine, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, 1, calls)
}

// stopBeforeFirstSave requests a stop of an execution just before the
// engine first saves it.
type stopBeforeFirstSave struct {
	repository.JobRepository
	done bool
}

func (r *stopBeforeFirstSave) UpdateJobExecution(ctx context.Context, e *batch.JobExecution) error {
	if !r.done {
		r.done = true
		if err := requestStop(ctx, r.JobRepository, e.ID); err != nil {
			return err
		}
	}
	return r.JobRepository.UpdateJobExecution(ctx, e)
}

func TestStopRequestInTasklet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo := memory.New()
	engine := mustLauncher(t, launcher.Config{Repository: repo})
	calls := 0
	step, err := batch.NewTaskletStep("t", batch.TaskletConfig{
		Tasklet: batch.TaskletFunc(func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
			calls++
			if calls == 2 {
				if err := requestStop(ctx, repo, runningID(ctx, repo)); err != nil {
					return batch.Finished, err
				}
			}
			return batch.Continuable, nil
		}),
	})
	require.NoError(t, err)
	job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	exec, err := engine.Run(ctx, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusStopped, exec.Status)
	require.Equal(t, 2, calls)
	require.Equal(t, int64(2), onlyStep(t, repo, exec.ID).CommitCount)
}

func TestLauncherStopInProcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo := memory.New()
	engine := mustLauncher(t, launcher.Config{Repository: repo})
	reader := newStreamReader(10)
	stopped := false
	w := &recordingWriter[int]{fail: func(ctx context.Context, call int, _ []int) error {
		if call == 2 && !stopped {
			stopped = true
			return engine.Stop(ctx, runningID(ctx, repo))
		}
		return nil
	}}
	step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{Reader: reader, Writer: w, ChunkSize: 3})
	require.NoError(t, err)
	job, err := batch.NewJob("stoppable", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)

	exec, err := engine.Run(ctx, job, nil)
	require.NoError(t, err)
	require.True(t, stopped)
	require.ErrorIs(t, engine.Stop(ctx, exec.ID), batch.ErrNotRunning, "no longer running")
	require.Equal(t, batch.StatusStopped, exec.Status)
	require.Equal(t, [][]int{{1, 2, 3}, {4, 5, 6}}, w.chunks)
	stored, err := repo.JobExecution(ctx, exec.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusStopped, stored.Status)
	require.Equal(t, int64(2), onlyStep(t, repo, exec.ID).CommitCount)

	exec2, err := launchRun(t, engine, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec2.Status)
	require.Equal(t, seq(1, 10), w.all())
}

func TestCancelRunContextStops(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		engine := mustLauncher(t, launcher.Config{Repository: repo})
		reader := newStreamReader(10)
		reached := make(chan struct{})
		reader.block = func(ctx context.Context, i int) error {
			if i == 4 { // the 5th item, in chunk 2
				close(reached)
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}
		w := &recordingWriter[int]{}
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{Reader: reader, Writer: w, ChunkSize: 3})
		require.NoError(t, err)
		job, err := batch.NewJob("cancellable", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-reached
			cancel()
		}()
		exec, err := engine.Run(ctx, job, nil)
		require.NoError(t, err)
		require.Equal(t, batch.StatusStopped, exec.Status)
		require.Equal(t, batch.ExitCodeStopped, exec.ExitStatus.Code)
		stored, err := repo.JobExecution(context.Background(), exec.ID)
		require.NoError(t, err)
		require.Equal(t, batch.StatusStopped, stored.Status)
		se := onlyStep(t, repo, exec.ID)
		require.Equal(t, batch.StatusStopped, se.Status)
		require.True(t, strings.HasPrefix(se.ExitStatus.Description, "interrupted: "), se.ExitStatus.Description)
		require.Equal(t, int64(1), se.CommitCount)
		require.Equal(t, int64(1), se.RollbackCount)
		require.Equal(t, [][]int{{1, 2, 3}}, w.chunks)

		// Restartable: the interrupted chunk is read again.
		reader.block = nil
		exec2, err := launchRun(t, engine, job, nil)
		require.NoError(t, err)
		require.Equal(t, batch.StatusCompleted, exec2.Status)
		require.Equal(t, seq(1, 10), w.all())
		require.Equal(t, []int{0, 3}, reader.openedAt)
	})
}

func TestCancelRunContextStopsTasklet(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		engine := mustLauncher(t, launcher.Config{Repository: repo})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		calls := 0
		step, err := batch.NewTaskletStep("t", batch.TaskletConfig{
			Tasklet: batch.TaskletFunc(func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) {
				calls++
				if calls == 3 {
					cancel() // e.g. SIGTERM; this call ignores ctx and finishes its work
				}
				if calls == 50 { // guard against an endless loop
					return batch.Finished, nil
				}
				return batch.Continuable, nil
			}),
		})
		require.NoError(t, err)
		job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		exec, err := engine.Run(ctx, job, nil)
		require.NoError(t, err)
		require.Equal(t, batch.StatusStopped, exec.Status)
		require.Equal(t, 3, calls)
	})
}

func TestFencedAfterTakeover(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		ctx := context.Background()
		engine := mustLauncher(t, launcher.Config{Repository: repo})
		params := batch.JobParameters{"region": batch.StringParam("eu")}
		var takeover *batch.JobExecution
		w := &recordingWriter[int]{fail: func(ctx context.Context, call int, _ []int) error {
			if call == 2 {
				// Another process, an hour later by its clock, finds this
				// execution's heartbeat older than its lease and takes the
				// instance over.
				var err error
				takeover, err = repo.CreateJobExecution(ctx, repository.LaunchRequest{
					JobName: "fenced", Parameters: params, Now: time.Now().Add(time.Hour), Lease: time.Millisecond,
				})
				return err
			}
			return nil
		}}
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{Reader: newStreamReader(10), Writer: w, ChunkSize: 3})
		require.NoError(t, err)
		job, err := batch.NewJob("fenced", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)

		exec, err := engine.Run(ctx, job, params)
		require.ErrorIs(t, err, batch.ErrFenced)
		require.NotNil(t, takeover)
		require.Equal(t, exec.InstanceID, takeover.InstanceID)
		require.Equal(t, 2, w.calls, "no chunk is written after the takeover")

		// The fenced process did not overwrite what the taker-over recorded.
		stored, err := repo.JobExecution(ctx, exec.ID)
		require.NoError(t, err)
		require.Equal(t, batch.StatusFailed, stored.Status)
		require.True(t, strings.HasPrefix(stored.ExitStatus.Description, batch.CrashedDescription), stored.ExitStatus.Description)
		se := onlyStep(t, repo, exec.ID)
		require.Equal(t, batch.StatusFailed, se.Status)
		require.True(t, strings.HasPrefix(se.ExitStatus.Description, batch.CrashedDescription), se.ExitStatus.Description)
		require.Equal(t, int64(1), se.CommitCount, "the chunk in flight at the takeover did not commit")
		newer, err := repo.JobExecution(ctx, takeover.ID)
		require.NoError(t, err)
		require.Equal(t, batch.StatusStarting, newer.Status)
	})
}

// blockingTasklet signals started on its first call, then waits for release
// or for its context to end.
func blockingTasklet(started, release chan struct{}) batch.TaskletFunc {
	return func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
		close(started)
		select {
		case <-release:
			return batch.Finished, nil
		case <-ctx.Done():
			return batch.Finished, ctx.Err()
		}
	}
}

type runResult struct {
	exec *batch.JobExecution
	err  error
}

// runAsync starts job and returns its new execution and a channel that
// delivers the run's end.
func runAsync(t *testing.T, l *launcher.Launcher, job *batch.Job, params batch.JobParameters) (*batch.JobExecution, <-chan runResult) {
	t.Helper()
	exec, err := l.Start(context.Background(), job, params)
	require.NoError(t, err)
	done := make(chan runResult, 1)
	go func() {
		e, err := l.Wait(context.Background(), exec.ID)
		done <- runResult{e, err}
	}()
	return exec, done
}

func TestFencedByHeartbeat(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		ctx := context.Background()
		engine := mustLauncher(t, launcher.Config{Repository: repo, HeartbeatInterval: 10 * time.Millisecond})
		started, release := make(chan struct{}), make(chan struct{})
		defer close(release)
		step, err := batch.NewTaskletStep("slow", batch.TaskletConfig{Tasklet: blockingTasklet(started, release)})
		require.NoError(t, err)
		job, err := batch.NewJob("hb-fenced", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		exec, done := runAsync(t, engine, job, nil)
		<-started

		_, err = repo.CreateJobExecution(ctx, repository.LaunchRequest{
			JobName: "hb-fenced", Parameters: batch.JobParameters{}, Now: time.Now().Add(time.Hour), Lease: time.Millisecond,
		})
		require.NoError(t, err)
		select {
		case res := <-done:
			// The heartbeat saw the execution FAILED and interrupted the
			// running tasklet.
			require.ErrorIs(t, res.err, batch.ErrFenced)
		case <-time.After(10 * time.Second):
			t.Fatal("the fenced execution did not notice the takeover")
		}
		stored, err := repo.JobExecution(ctx, exec.ID)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(stored.ExitStatus.Description, batch.CrashedDescription))
		require.Zero(t, onlyStep(t, repo, exec.ID).CommitCount)
	})
}

func TestHeartbeatAdvances(t *testing.T) {
	for _, tt := range []struct {
		name            string
		lease, interval time.Duration
	}{
		{"interval", 0, 10 * time.Millisecond},
		{"lease/3", 30 * time.Millisecond, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			repos(t, func(t *testing.T, repo repository.JobRepository) {
				ctx := context.Background()
				e := mustLauncher(t, launcher.Config{Repository: repo, Lease: tt.lease, HeartbeatInterval: tt.interval})
				started, release := make(chan struct{}), make(chan struct{})
				step, err := batch.NewTaskletStep("slow", batch.TaskletConfig{Tasklet: blockingTasklet(started, release)})
				require.NoError(t, err)
				job, err := batch.NewJob("hb", batch.JobConfig{Steps: []batch.Step{step}})
				require.NoError(t, err)
				exec, done := runAsync(t, e, job, nil)
				<-started

				advances := 0
				last := exec.Heartbeat
				require.Eventually(t, func() bool {
					cur, err := repo.JobExecution(ctx, exec.ID)
					if err != nil || !cur.Heartbeat.After(last) {
						return false
					}
					last = cur.Heartbeat
					advances++
					return advances == 3 // three successive advances
				}, 10*time.Second, 5*time.Millisecond)

				close(release)
				res := <-done
				require.NoError(t, res.err)
				require.Equal(t, batch.StatusCompleted, res.exec.Status)
			})
		})
	}
}

// statusLog records every job execution status the engine saves.
type statusLog struct {
	repository.JobRepository
	mu  sync.Mutex
	log []batch.BatchStatus
}

func (l *statusLog) UpdateJobExecution(ctx context.Context, e *batch.JobExecution) error {
	err := l.JobRepository.UpdateJobExecution(ctx, e)
	if err == nil {
		l.mu.Lock()
		l.log = append(l.log, e.Status)
		l.mu.Unlock()
	}
	return err
}

// TestSavesKeepAStopRequest: a stop stored by another process during step
// one is not overwritten with STARTED by the engine's save after the step.
func TestSavesKeepAStopRequest(t *testing.T) {
	ctx := context.Background()
	mem := memory.New()
	repo := &statusLog{JobRepository: mem}
	one := stepFunc{"one", func(_ context.Context, sc batch.StepContext) error {
		return requestStop(ctx, mem, sc.JobExecution().ID) // an operator elsewhere
	}}
	two := stepFunc{"two", func(context.Context, batch.StepContext) error { return nil }}
	job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{one, two}})
	require.NoError(t, err)
	engine := mustLauncher(t, launcher.Config{Repository: repo})
	final, err := engine.Run(ctx, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusStopped, final.Status)
	require.Equal(t, []batch.BatchStatus{batch.StatusStarted, batch.StatusStopping, batch.StatusStopped}, repo.log)
}

type slowAfterJob struct{ d time.Duration }

func (s slowAfterJob) AfterJob(context.Context, *batch.JobExecution) error {
	time.Sleep(s.d)
	return nil
}

// TestHeartbeatDuringAfterJobListeners: a slow after-job listener does not
// let the lease lapse on a run that is alive.
func TestHeartbeatDuringAfterJobListeners(t *testing.T) {
	ctx := context.Background()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	s, err := batch.NewTaskletStep("s", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
		func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) { return batch.Finished, nil })})
	require.NoError(t, err)
	job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{s},
		Listeners: []batch.Listener{slowAfterJob{time.Second}}})
	require.NoError(t, err)
	engine := mustLauncher(t, launcher.Config{Repository: repo, Lease: 300 * time.Millisecond})
	exec, done := runAsync(t, engine, job, nil)
	time.Sleep(700 * time.Millisecond) // well past the lease, inside the listener
	_, err = engine.Start(ctx, job, nil)
	require.ErrorIs(t, err, batch.ErrJobRunning, "the run is alive: its heartbeat goes on")
	require.NoError(t, (<-done).err)
	got, err := repo.JobExecution(ctx, exec.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, got.Status)
}
