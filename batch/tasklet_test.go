package batch_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository/memory"
)

// countingTasklet counts its calls in *calls and finishes at once.
func countingTasklet(calls *int) batch.TaskletFunc {
	return func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) {
		*calls++
		return batch.Finished, nil
	}
}

func TestTaskletContinuableRepeatsAndCommits(t *testing.T) {
	t.Parallel()
	repo := memory.New()
	calls := 0
	var versions []int64
	step, err := batch.NewTaskletStep("purge", batch.TaskletConfig{
		Tasklet: batch.TaskletFunc(func(_ context.Context, se *batch.StepExecution) (batch.RepeatStatus, error) {
			calls++
			versions = append(versions, se.CommitCount)
			se.WriteCount += 10 // e.g. rows deleted in this batch
			if err := se.Context.Put("purge.batches", calls); err != nil {
				return batch.Finished, err
			}
			if calls < 4 {
				return batch.Continuable, nil
			}
			return batch.Finished, nil
		}),
	})
	require.NoError(t, err)
	job, err := batch.NewJob("purge", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)

	exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, 4, calls)
	require.Equal(t, []int64{0, 1, 2, 3}, versions, "each call sees the previous calls committed")

	se := onlyStep(t, repo, exec.ID)
	require.Equal(t, batch.StatusCompleted, se.Status)
	require.Equal(t, int64(4), se.CommitCount)
	require.Equal(t, int64(40), se.WriteCount)
	n, ok := se.Context.Int64("purge.batches")
	require.True(t, ok)
	require.Equal(t, int64(4), n)
}

func TestTaskletErrorRollsBack(t *testing.T) {
	t.Parallel()
	repo := memory.New()
	boom := errors.New("table locked")
	calls := 0
	step, err := batch.NewTaskletStep("purge", batch.TaskletConfig{
		Tasklet: batch.TaskletFunc(func(_ context.Context, se *batch.StepExecution) (batch.RepeatStatus, error) {
			calls++
			require.NoError(t, se.Context.Put("purge.calls", calls))
			if calls == 2 {
				se.WriteCount = 999 // must not be committed
				return batch.Finished, boom
			}
			return batch.Continuable, nil
		}),
	})
	require.NoError(t, err)
	job, err := batch.NewJob("purge", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)

	exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	require.ErrorIs(t, err, boom)
	var stepErr *batch.StepError
	require.ErrorAs(t, err, &stepErr)
	require.Equal(t, batch.StepError{Step: "purge", Phase: "tasklet", Err: boom}, *stepErr)
	require.Equal(t, batch.StatusFailed, exec.Status)
	require.Equal(t, "step purge: tasklet: table locked", exec.ExitStatus.Description)

	se := onlyStep(t, repo, exec.ID)
	require.Equal(t, batch.StatusFailed, se.Status)
	require.Equal(t, int64(1), se.CommitCount)
	require.Equal(t, int64(1), se.RollbackCount)
	require.Zero(t, se.WriteCount)
	n, _ := se.Context.Int64("purge.calls")
	require.Equal(t, int64(1), n, "the failed call's context is rolled back")
}

func TestNewTaskletStepValidation(t *testing.T) {
	t.Parallel()
	_, err := batch.NewTaskletStep("", batch.TaskletConfig{Tasklet: countingTasklet(new(int))})
	require.ErrorIs(t, err, batch.ErrInvalidConfig)
	_, err = batch.NewTaskletStep("t", batch.TaskletConfig{})
	require.ErrorIs(t, err, batch.ErrInvalidConfig)
	require.ErrorContains(t, err, "no tasklet")
}

func TestNewJobValidation(t *testing.T) {
	t.Parallel()
	mk := func(name string) batch.Step {
		s, err := batch.NewTaskletStep(name, batch.TaskletConfig{Tasklet: countingTasklet(new(int))})
		require.NoError(t, err)
		return s
	}
	tests := []struct {
		name, job, message string
		steps              []batch.Step
	}{
		{"empty name", "", "empty name", []batch.Step{mk("a")}},
		{"no steps", "j", "no steps", nil},
		{"nil step", "j", "step 1 is nil", []batch.Step{mk("a"), nil}},
		{"duplicate step names", "j", `two steps named "a"`, []batch.Step{mk("a"), mk("b"), mk("a")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job, err := batch.NewJob(tt.job, batch.JobConfig{Steps: tt.steps})
			require.ErrorIs(t, err, batch.ErrInvalidConfig)
			require.ErrorContains(t, err, tt.message)
			require.Nil(t, job)
		})
	}

	steps := []batch.Step{mk("a"), mk("b")}
	job, err := batch.NewJob("j", batch.JobConfig{Steps: steps})
	require.NoError(t, err)
	require.Equal(t, "j", job.Name())
	got := job.Steps()
	require.Equal(t, steps, got)
	got[0] = nil
	require.NotNil(t, job.Steps()[0], "Steps returns a copy")
	steps[1] = nil
	require.NotNil(t, job.Steps()[1], "NewJob copies the steps")
}

func TestLauncherWithoutRepository(t *testing.T) {
	t.Parallel()
	_, err := launcher.New(launcher.Config{})
	require.ErrorContains(t, err, "Repository is required")
}

// TestTaskletJoinOnMemoryRepositoryFailsClosed: the getting-started tasklet
// pattern, run on the memory repository, fails the step with ErrNoChunkTx
// instead of a nil transaction.
func TestTaskletJoinOnMemoryRepositoryFailsClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openSQLite(t, filepath.Join(t.TempDir(), "other.db")).DB()
	step, err := batch.NewTaskletStep("create", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
		func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
			require.False(t, batch.InChunkTx(ctx, db.DB))
			raw := batch.JoinRaw(ctx, db.DB, func(any) error { panic("no connection to hand") })
			require.ErrorIs(t, raw, batch.ErrNoChunkTx)
			tx, err := batch.JoinTxx(ctx, db)
			if err != nil {
				return batch.Finished, err
			}
			_, err = tx.ExecContext(ctx, `CREATE TABLE t (x INTEGER)`)
			return batch.Finished, err
		})})
	require.NoError(t, err)
	job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	exec, err := mustLauncher(t, launcher.Config{Repository: memory.New()}).Run(ctx, job, nil)
	require.ErrorIs(t, err, batch.ErrNoChunkTx)
	require.ErrorContains(t, err, "the memory job repository keeps no SQL transaction")
	require.Equal(t, batch.StatusFailed, exec.Status)
}
