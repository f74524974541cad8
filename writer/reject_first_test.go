package writer_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/sqlite"
	"github.com/chunkwise/chunkwise/writer"
)

// dieOnFirstCommit fails the first chunk commit after its write ran (the
// reject file was written and synced), as a process killed before COMMIT.
type dieOnFirstCommit struct {
	*sqlite.Repository
	n atomic.Int64
}

func (r *dieOnFirstCommit) CommitChunk(ctx context.Context, s *batch.StepExecution, write func(context.Context) error) (batch.BatchStatus, error) {
	return r.Repository.CommitChunk(ctx, s, func(ctx context.Context) error {
		if err := write(ctx); err != nil {
			return err
		}
		if r.n.Add(1) == 1 {
			return errors.New("killed before COMMIT")
		}
		return nil
	})
}

func TestRejectFileFirstCommitLost(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	base, err := sqlite.Open(ctx, filepath.Join(dir, "batch.db"), sqlite.Config{})
	require.NoError(t, err)
	defer base.Close()
	require.NoError(t, base.Migrate(ctx))
	path := filepath.Join(dir, "rejects.jsonl")
	newJob := func() *batch.Job {
		file, err := writer.NewRejectFile[int, int](writer.RejectFileConfig{Path: path})
		require.NoError(t, err)
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
			Reader: reader.FromSlice([]int{1, 2, 3, 4}),
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, n int) (int, error) {
				if n == 2 {
					return 0, fmt.Errorf("%d: %w", n, errOdd)
				}
				return n, nil
			}),
			Writer: &writer.Slice[int]{}, ChunkSize: 10, Skip: batch.MatchErrors(errOdd),
			Listeners: []batch.Listener{file},
		})
		require.NoError(t, err)
		job, err := batch.NewJob("load", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		return job
	}
	engine, err := launcher.New(launcher.Config{Repository: &dieOnFirstCommit{Repository: base}})
	require.NoError(t, err)
	job := newJob()
	_, err = engine.Run(ctx, job, nil)
	require.ErrorContains(t, err, "killed before COMMIT")

	job = newJob()
	exec, err := engine.Run(ctx, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	var got []string
	for _, r := range readRejects(t, path) {
		got = append(got, fmt.Sprintf("%s:%d", r.Phase, *r.Input))
	}
	require.Equal(t, []string{"process:2"}, got, "one skip, one line")
}
