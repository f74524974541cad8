package batch_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository/memory"
)

// panicAt panics in the listener hook it names.
type panicAt struct{ where *string }

func (p panicAt) BeforeStep(context.Context, *batch.StepExecution) error {
	if *p.where == "before-step" {
		panic("boom in before-step")
	}
	return nil
}

func (p panicAt) AfterJob(context.Context, *batch.JobExecution) error {
	if *p.where == "after-job" {
		panic("boom in after-job")
	}
	return nil
}

// TestPanicsFailTheStep: a panic in any component fails the step and the job
// with the panic value and its stack in the exit description; the run
// returns, and the instance restarts.
func TestPanicsFailTheStep(t *testing.T) {
	for _, where := range []string{"read", "process", "write", "before-step", "after-job", "tasklet"} {
		t.Run(where, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			repo := memory.New()
			boom := func(at string) {
				if at == where {
					panic(errors.New("boom in " + at))
				}
			}
			var step batch.Step
			var err error
			if where == "tasklet" {
				step, err = batch.NewTaskletStep("s", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
					func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) {
						boom("tasklet")
						return batch.Finished, nil
					})})
			} else {
				n := 0
				step, err = batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
					Reader: batch.ReaderFunc[int](func(context.Context) (int, error) {
						boom("read")
						if n++; n > 3 {
							return 0, io.EOF
						}
						return n, nil
					}),
					Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
						boom("process")
						return i, nil
					}),
					Writer: batch.WriterFunc[int](func(context.Context, []int) error {
						boom("write")
						return nil
					}),
					Listeners: []batch.Listener{panicAt{&where}},
				})
			}
			require.NoError(t, err)
			job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}, Listeners: []batch.Listener{panicAt{&where}}})
			require.NoError(t, err)
			l := mustLauncher(t, launcher.Config{Repository: repo})

			exec, err := l.Run(ctx, job, nil)
			var pe *launcher.PanicError
			require.ErrorAs(t, err, &pe)
			require.Contains(t, pe.Error(), "boom in "+where)
			require.Contains(t, string(pe.Stack), "panic_test.go", "the stack shows where")
			require.Equal(t, batch.StatusFailed, exec.Status)
			stored, err := repo.JobExecution(ctx, exec.ID)
			require.NoError(t, err)
			require.Equal(t, batch.StatusFailed, stored.Status)
			require.Contains(t, stored.ExitStatus.Description, "panic: boom in "+where)
			require.Contains(t, stored.ExitStatus.Description, "panic_test.go")
			if where != "after-job" {
				require.Equal(t, batch.StatusFailed, onlyStep(t, repo, exec.ID).Status)
			}

			where = "" // fixed: the restart completes
			exec, err = l.Run(ctx, job, nil)
			require.NoError(t, err)
			require.Equal(t, batch.StatusCompleted, exec.Status)
		})
	}
}
