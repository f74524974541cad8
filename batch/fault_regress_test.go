package batch_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
)

// A scan fails half way through a chunk of 10; the restart uses a chunk
// size of 3 (a configuration change between runs).
func TestChunkSizeChangedAfterPartialCommit(t *testing.T) {
	repo, w := checkTable(t)
	errDisk := errors.New("disk on fire")
	engine := mustLauncher(t, launcher.Config{Repository: repo})
	fail := true
	calls := map[int]int{}
	newJob := func(size int) *batch.Job {
		step, err := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
			Reader: newStreamReader(20),
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
				calls[i]++
				if fail && i == 9 && calls[i] == 2 {
					return 0, errDisk // second processing of 9: in the scan
				}
				return i, nil
			}),
			Writer: w, ChunkSize: size, Skip: checkFailed,
		})
		require.NoError(t, err)
		job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		return job
	}
	_, err := launchRun(t, engine, newJob(10), nil)
	require.ErrorIs(t, err, errDisk)
	require.Equal(t, []int{1, 2, 3, 4, 5, 6, 8}, tableRows(t, repo.DB()), "scan committed 1..8 (7 skipped)")
	fail = false
	exec, err := launchRun(t, engine, newJob(3), nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, without(1, 20, func(i int) bool { return i%7 == 0 }), tableRows(t, repo.DB()), "each row once")
}

// NoRollback: the items before the failing one are to be committed; one of
// them breaks a CHECK constraint that Skip matches.
func TestNoRollbackPartialCommitWithSkippableWriteError(t *testing.T) {
	repo, w := checkTable(t)
	errNotify := errors.New("notification service down")
	skips := &skipRecorder[int, int]{}
	step, err := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
		Reader: newStreamReader(10),
		Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
			if i == 9 {
				return 0, errNotify
			}
			return i, nil
		}),
		Writer: w, ChunkSize: 10, Skip: checkFailed, NoRollback: batch.MatchErrors(errNotify),
		Listeners: []batch.Listener{skips},
	})
	require.NoError(t, err)
	_, err = runJob(t, repo, step)
	require.ErrorIs(t, err, errNotify, "the step fails at item 9 with the processor's error")
	require.Equal(t, []int{1, 2, 3, 4, 5, 6, 8}, tableRows(t, repo.DB()), "items 1-8 committed, 7 skipped")
	require.Equal(t, []string{"write:7"}, skips.phases())
}

// lostAckAndRead: commit 2 lands but its answer is lost (transient error),
// and the read that committedAnyway does right after fails once too (the
// connection is still down).
type lostAckAndRead struct {
	*lostAck
	readFails atomicCounter
}

type atomicCounter struct{ n int }

func (r *lostAckAndRead) StepExecutions(ctx context.Context, id int64) ([]*batch.StepExecution, error) {
	if r.lostAck.n.Load() == r.lostAck.lost.Load() && r.readFails.n == 0 {
		r.readFails.n++
		return nil, fmt.Errorf("select: %w", errConnDown)
	}
	return r.lostAck.StepExecutions(ctx, id)
}

var errConnDown = errors.New("connection refused")

func TestLostAnswerAndFailedVerificationRead(t *testing.T) {
	base, w := checkTable(t)
	repo := &lostAckAndRead{lostAck: &lostAck{Repository: base}}
	repo.lost.Store(2)
	step, err := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
		Reader: newStreamReader(12), Writer: w, ChunkSize: 3, Backoff: fast, Skip: checkFailed,
	})
	require.NoError(t, err)
	job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	engine := mustLauncher(t, launcher.Config{Repository: repo})
	exec, err := engine.Run(context.Background(), job, nil)
	require.NoError(t, err, "a commit that landed, retried after a transient error, does not fail the job")
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, without(1, 12, func(i int) bool { return i%7 == 0 }), tableRows(t, base.DB()))
	require.Equal(t, 1, repo.readFails.n, "the first check read failed")
}
