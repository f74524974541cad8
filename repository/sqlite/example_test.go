package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

func ExampleOpen() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	repo, err := sqlite.Open(ctx, filepath.Join(dir, "batch.db"), sqlite.Config{})
	if err != nil {
		panic(err)
	}
	defer repo.Close()
	if err := repo.Migrate(ctx); err != nil { // idempotent: run it at every start
		panic(err)
	}

	// A tasklet that creates a table in the repository's own file, in the
	// step's transaction: the table exists exactly when the step completed.
	create, err := batch.NewTaskletStep("create", batch.TaskletConfig{
		Tasklet: batch.TaskletFunc(func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
			tx, err := batch.JoinTxx(ctx, repo.DB())
			if err != nil {
				return batch.Finished, err
			}
			_, err = tx.ExecContext(ctx, `CREATE TABLE totals (day TEXT, total INTEGER)`)
			return batch.Finished, err
		}),
	})
	if err != nil {
		panic(err)
	}
	job, err := batch.NewJob("nightly", batch.JobConfig{Steps: []batch.Step{create}})
	if err != nil {
		panic(err)
	}
	l, err := launcher.New(launcher.Config{Repository: repo})
	if err != nil {
		panic(err)
	}
	params := batch.JobParameters{"day": batch.StringParam("2026-11-24")}
	exec, err := l.Run(ctx, job, params)
	fmt.Println(exec.JobName, exec.ID, exec.Status, err)

	// The instance completed: the same parameters are refused.
	_, err = l.Run(ctx, job, params)
	fmt.Println(err)
	// Output:
	// nightly 1 COMPLETED <nil>
	// batch: job instance already completed: job "nightly" instance 1 (execution 1)
}
