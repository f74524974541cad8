package launcher

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/memory"
)

// failFinalSave loses the update that records an execution's end, as a
// database that went away at that moment would.
type failFinalSave struct{ repository.JobRepository }

func (f failFinalSave) UpdateJobExecution(ctx context.Context, e *batch.JobExecution) error {
	if !e.EndTime.IsZero() {
		return errors.New("connection reset by peer")
	}
	return f.JobRepository.UpdateJobExecution(ctx, e)
}

func TestEndNotRecordedIsNotSuccess(t *testing.T) {
	var reg Registry
	reg.MustRegister("j", func(Env) (batch.JobConfig, error) {
		s, err := batch.NewTaskletStep("s", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
			func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) { return batch.Finished, nil })})
		return batch.JobConfig{Steps: []batch.Step{s}}, err
	})
	mem := memory.New()
	l, err := New(Config{Registry: &reg, Repository: failFinalSave{mem}})
	require.NoError(t, err)
	var out, errOut bytes.Buffer
	code := runJob(context.Background(), l, &out, &errOut, "prog", "j", nil, progressDisplay{mode: progressOff})
	require.Equal(t, ExitFailed, code)
	require.Contains(t, errOut.String(), "connection reset by peer")
	stored, err := mem.JobExecutions(context.Background(), batch.ExecutionQuery{})
	require.NoError(t, err)
	require.Equal(t, batch.StatusStarted, stored[0].Status, "the end was not recorded")
}
