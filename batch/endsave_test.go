package batch_test

import (
	"context"
	"database/sql/driver"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository"
)

// flakySaves fails, once each, the creation of a step execution, the save
// of a step's end and the save of the job's end with a broken connection —
// as a database restarting at those moments does — either before the
// statement reaches the database or after it landed (the answer lost).
type flakySaves struct {
	repository.JobRepository
	lostAnswer bool

	mu                       sync.Mutex
	created, stepEnd, jobEnd bool
}

func (f *flakySaves) fail(done *bool, do func() error) error {
	f.mu.Lock()
	first := !*done
	*done = true
	f.mu.Unlock()
	if !first {
		return do()
	}
	if f.lostAnswer {
		if err := do(); err != nil {
			return err
		}
	}
	return fmt.Errorf("repository: %w", driver.ErrBadConn)
}

func (f *flakySaves) CreateStepExecution(ctx context.Context, s *batch.StepExecution) error {
	return f.fail(&f.created, func() error { return f.JobRepository.CreateStepExecution(ctx, s) })
}

func (f *flakySaves) UpdateStepExecution(ctx context.Context, s *batch.StepExecution) error {
	if s.EndTime.IsZero() {
		return f.JobRepository.UpdateStepExecution(ctx, s)
	}
	return f.fail(&f.stepEnd, func() error { return f.JobRepository.UpdateStepExecution(ctx, s) })
}

func (f *flakySaves) UpdateJobExecution(ctx context.Context, e *batch.JobExecution) error {
	if e.EndTime.IsZero() {
		return f.JobRepository.UpdateJobExecution(ctx, e)
	}
	return f.fail(&f.jobEnd, func() error { return f.JobRepository.UpdateJobExecution(ctx, e) })
}

// TestEndSavesRetried: a step's creation and the step's and job's end saves
// that meet a broken connection are retried — and recognised when they landed
// with their answer lost — so that the execution ends as it really did, with
// no step left running.
func TestEndSavesRetried(t *testing.T) {
	for _, lost := range []bool{false, true} {
		t.Run(fmt.Sprintf("lost-answer=%v", lost), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			base := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
			repo := &flakySaves{JobRepository: base, lostAnswer: lost}
			step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
				Reader: newStreamReader(10), Writer: &recordingWriter[int]{}, ChunkSize: 4,
			})
			require.NoError(t, err)
			job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
			require.NoError(t, err)
			exec, err := mustLauncher(t, launcher.Config{Repository: repo}).Run(ctx, job, nil)
			require.NoError(t, err)
			require.Equal(t, batch.StatusCompleted, exec.Status)

			stored, err := base.JobExecution(ctx, exec.ID)
			require.NoError(t, err)
			require.Equal(t, batch.StatusCompleted, stored.Status)
			steps := stepExecutions(t, base, exec.ID)
			require.Len(t, steps, 1, "one step execution, whether or not its creation's answer was lost")
			require.Equal(t, batch.StatusCompleted, steps[0].Status)
			require.Equal(t, int64(10), steps[0].WriteCount)
			require.True(t, repo.created && repo.stepEnd && repo.jobEnd)
		})
	}
}
