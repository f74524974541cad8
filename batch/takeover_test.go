package batch_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/writer"
)

// pausingRepo stands for process A being paused (a long GC, SIGSTOP, a
// network partition) just before it starts step "two".
type pausingRepo struct {
	repository.JobRepository
	arrived, release chan struct{}
}

func (p *pausingRepo) LastStepExecution(ctx context.Context, inst int64, name string) (*batch.StepExecution, error) {
	if name == "two" {
		close(p.arrived)
		<-p.release
	}
	return p.JobRepository.LastStepExecution(ctx, inst, name)
}

// TestPausedProcessCannotStartAStepAfterTakeover: process A pauses between
// its steps, B takes the instance over after the lease and commits part of
// step two, A wakes up. A must be fenced before it creates a step execution
// a later restart would resume from; the restart after B fails then writes
// every item exactly once.
func TestPausedProcessCannotStartAStepAfterTakeover(t *testing.T) {
	ctx := context.Background()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	db := repo.DB()
	_, err := db.Exec(`CREATE TABLE t (v INTEGER NOT NULL)`)
	require.NoError(t, err)
	mkJob := func(proc batch.ProcessorFunc[int, int]) *batch.Job {
		one, err := batch.NewTaskletStep("one", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
			func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) { return batch.Finished, nil })})
		require.NoError(t, err)
		w, err := writer.NewSQL(writer.SQLConfig[int]{DB: db, Table: "t", Columns: []string{"v"},
			Values: func(v int) []any { return []any{v} }})
		require.NoError(t, err)
		cfg := batch.ChunkConfig[int, int]{Reader: reader.FromSlice(seq(1, 20)), Writer: w, ChunkSize: 2}
		if proc != nil {
			cfg.Processor = proc
		}
		two, err := batch.NewChunkStep("two", cfg)
		require.NoError(t, err)
		job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{one, two}})
		require.NoError(t, err)
		return job
	}

	pa := &pausingRepo{JobRepository: repo, arrived: make(chan struct{}), release: make(chan struct{})}
	// A's lease is short and it sends no heartbeat: paused, it lapses.
	engA := mustLauncher(t, launcher.Config{Repository: pa, Lease: 50 * time.Millisecond, HeartbeatInterval: time.Hour})
	jobA := mkJob(nil)
	execA, err := engA.Start(ctx, jobA, nil)
	require.NoError(t, err)
	doneA := make(chan error, 1)
	go func() { _, err := engA.Wait(ctx, execA.ID); doneA <- err }()
	<-pa.arrived

	time.Sleep(100 * time.Millisecond)
	bAt5, bGo := make(chan struct{}), make(chan struct{})
	jobB := mkJob(func(_ context.Context, v int) (int, error) {
		if v == 5 {
			close(bAt5)
			<-bGo
		}
		if v == 9 {
			return 0, errors.New("boom at 9")
		}
		return v, nil
	})
	engB := mustLauncher(t, launcher.Config{Repository: repo, Lease: 50 * time.Millisecond})
	execB, err := engB.Start(ctx, jobB, nil)
	require.NoError(t, err, "B takes over")
	doneB := make(chan error, 1)
	go func() { _, err := engB.Wait(ctx, execB.ID); doneB <- err }()
	<-bAt5 // B committed items 1-4

	close(pa.release)
	require.ErrorIs(t, <-doneA, batch.ErrFenced)
	require.Len(t, stepExecutions(t, repo, execA.ID), 1, "A started no step after the takeover")
	close(bGo)
	require.Error(t, <-doneB)

	final, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), mkJob(nil), nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, final.Status)
	requireRows(t, db, 20)
}

func requireRows(t *testing.T, db *sqlx.DB, n int) {
	t.Helper()
	var got struct {
		Rows     int `db:"rows"`
		Distinct int `db:"distinct_v"`
	}
	require.NoError(t, db.Get(&got, `SELECT COUNT(*) AS rows, COUNT(DISTINCT v) AS distinct_v FROM t`))
	require.Equal(t, n, got.Rows)
	require.Equal(t, n, got.Distinct)
}
