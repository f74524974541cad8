package batch_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
)

// TestReportChanges: the changes a writer reports are stored with the chunk
// that commits them; a chunk that rolls back counts nothing, even when its
// writer reported before it failed; the summary shows them.
func TestReportChanges(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	failOnce := true
	var outside bool
	step, err := batch.NewChunkStep("sync", batch.ChunkConfig[int, int]{
		Reader:    sliceReader(seq(1, 10)...),
		ChunkSize: 4,
		Writer: batch.WriterFunc[int](func(ctx context.Context, items []int) error {
			var c batch.Changes
			for _, it := range items {
				if it%2 == 0 {
					c.Updated++
				} else {
					c.Unchanged++
				}
			}
			c.Inserted = 1
			batch.ReportChanges(ctx, c)
			if items[0] == 5 && failOnce {
				failOnce = false
				return errTransient
			}
			return nil
		}),
		Retry:   batch.MatchErrors(errTransient),
		Backoff: batch.Backoff{Initial: 1},
	})
	require.NoError(t, err)
	outside = batch.ReportChanges(context.Background(), batch.Changes{Deleted: 1})
	require.False(t, outside, "outside a chunk's write, nothing to report to")
	job, err := batch.NewJob("sync", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	l := mustLauncher(t, launcher.Config{Repository: repo})
	exec, err := launchRun(t, l, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	se := onlyStep(t, repo, exec.ID)
	require.Equal(t, batch.Changes{Inserted: 3, Updated: 5, Unchanged: 5}, se.Changes)
	require.Equal(t, int64(1), se.RollbackCount)
	sum, err := l.Summary(context.Background(), exec.ID)
	require.NoError(t, err)
	require.Contains(t, sum, "step sync changed: 3 inserted, 5 updated, 5 unchanged\n")
}

var errTransient = errors.New("transient")
