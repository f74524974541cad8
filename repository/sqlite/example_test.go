package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chunkwise/chunkwise/batch"
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
	exec, err := repo.CreateJobExecution(ctx, batch.LaunchRequest{
		JobName:    "nightly",
		Parameters: batch.JobParameters{"day": batch.StringParam("2026-11-24")},
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(exec.JobName, exec.ID, exec.Status)

	// The same instance cannot be launched again while this one runs.
	_, err = repo.CreateJobExecution(ctx, batch.LaunchRequest{
		JobName:    "nightly",
		Parameters: batch.JobParameters{"day": batch.StringParam("2026-11-24")},
	})
	fmt.Println(err)
	// Output:
	// nightly 1 STARTING
	// batch: job instance is already running: job "nightly" instance 1 (execution 1)
}
