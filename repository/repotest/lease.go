package repotest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

// testStepLease: a step handed out is claimed by one owner at a time; a
// claim fences off the one before (its commits and updates are stale, its
// renewals refused), a claim given back is claimable at once and not
// counted, an ended step or job cannot be claimed, and a step
// that runs where it started is never claimed.
func testStepLease(t *testing.T, h Harness) {
	repo, sl, e, part := partitionToClaim(t, h)
	ctx := context.Background()
	l, err := sl.StepLease(ctx, part.ID)
	require.NoError(t, err)
	require.Equal(t, repository.StepLease{}, l)

	a, err := sl.ClaimStep(ctx, part.ID, "worker-a", time.Minute)
	require.NoError(t, err)
	require.Equal(t, batch.StatusStarted, a.Status)
	require.Equal(t, part.Version+1, a.Version)
	require.False(t, a.StartTime.IsZero())
	l, err = sl.StepLease(ctx, part.ID)
	require.NoError(t, err)
	require.Equal(t, "worker-a", l.Owner)
	require.Equal(t, 1, l.Claims)
	require.WithinDuration(t, time.Now().Add(time.Minute), l.Until, 10*time.Second)
	require.False(t, l.Expired)

	_, err = sl.ClaimStep(ctx, part.ID, "worker-b", time.Minute)
	require.ErrorIs(t, err, repository.ErrStepClaimed, "a's lease is alive")
	require.NoError(t, sl.RenewStepLease(ctx, part.ID, "worker-a", time.Minute))
	require.ErrorIs(t, sl.RenewStepLease(ctx, part.ID, "worker-b", time.Minute), repository.ErrLeaseLost)

	// The owner commits under its claim.
	a.ReadCount = 10
	_, err = repo.CommitChunk(ctx, a, func(context.Context) error { return nil })
	require.NoError(t, err)

	// Its lease expires (it was paused): b takes the step over, and a can
	// neither commit, nor update, nor renew.
	require.NoError(t, sl.RenewStepLease(ctx, part.ID, "worker-a", time.Millisecond))
	time.Sleep(20 * time.Millisecond)
	l, err = sl.StepLease(ctx, part.ID)
	require.NoError(t, err)
	require.True(t, l.Expired)
	b, err := sl.ClaimStep(ctx, part.ID, "worker-b", time.Minute)
	require.NoError(t, err)
	require.Equal(t, int64(10), b.ReadCount, "b resumes at a's checkpoint")
	l, err = sl.StepLease(ctx, part.ID)
	require.NoError(t, err)
	require.Equal(t, "worker-b", l.Owner)
	require.Equal(t, 2, l.Claims)
	a.ReadCount = 20
	_, err = repo.CommitChunk(ctx, a, func(context.Context) error { return nil })
	require.ErrorIs(t, err, batch.ErrStaleVersion)
	require.ErrorIs(t, repo.UpdateStepExecution(ctx, a), batch.ErrStaleVersion)
	require.ErrorIs(t, sl.RenewStepLease(ctx, part.ID, "worker-a", time.Minute), repository.ErrLeaseLost)

	// b gives its claim back (its worker shuts down): c claims the step at
	// once, from b's checkpoint, and b's claim is not counted; b commits
	// nothing more.
	b.ReadCount = 30
	_, err = repo.CommitChunk(ctx, b, func(context.Context) error { return nil })
	require.NoError(t, err)
	require.ErrorIs(t, sl.ReleaseStep(ctx, part.ID, "worker-a"), repository.ErrLeaseLost)
	require.NoError(t, sl.ReleaseStep(ctx, part.ID, "worker-b"))
	l, err = sl.StepLease(ctx, part.ID)
	require.NoError(t, err)
	require.Equal(t, repository.StepLease{Claims: 1}, repository.StepLease{Owner: l.Owner, Claims: l.Claims, Expired: l.Expired})
	require.ErrorIs(t, sl.ReleaseStep(ctx, part.ID, "worker-b"), repository.ErrLeaseLost)
	require.ErrorIs(t, sl.RenewStepLease(ctx, part.ID, "worker-b", time.Minute), repository.ErrLeaseLost)
	b.ReadCount = 40
	_, err = repo.CommitChunk(ctx, b, func(context.Context) error { return nil })
	require.ErrorIs(t, err, batch.ErrStaleVersion)
	c, err := sl.ClaimStep(ctx, part.ID, "worker-c", time.Minute)
	require.NoError(t, err)
	require.Equal(t, int64(30), c.ReadCount, "c resumes at b's checkpoint")
	l, err = sl.StepLease(ctx, part.ID)
	require.NoError(t, err)
	require.Equal(t, "worker-c", l.Owner)
	require.Equal(t, 2, l.Claims)

	// c completes the step: nobody claims it again, renews or releases it.
	c.Status, c.ExitStatus, c.EndTime = batch.StatusCompleted, batch.ExitCompleted, time.Now().UTC()
	require.NoError(t, repo.UpdateStepExecution(ctx, c))
	_, err = sl.ClaimStep(ctx, part.ID, "worker-d", time.Minute)
	require.ErrorIs(t, err, repository.ErrNotClaimable)
	require.ErrorIs(t, sl.RenewStepLease(ctx, part.ID, "worker-c", time.Minute), repository.ErrLeaseLost)
	require.ErrorIs(t, sl.ReleaseStep(ctx, part.ID, "worker-c"), repository.ErrLeaseLost)

	// A step started where it runs (no claim) is not handed out.
	local := &batch.StepExecution{JobExecutionID: e.ID, StepName: "local", Status: batch.StatusStarted, Context: batch.ExecutionContext{}}
	require.NoError(t, repo.CreateStepExecution(ctx, local))
	_, err = sl.ClaimStep(ctx, local.ID, "worker-c", time.Minute)
	require.ErrorIs(t, err, repository.ErrNotClaimable)

	// Once the job execution ended, its waiting partitions are not claimed.
	waiting := &batch.StepExecution{JobExecutionID: e.ID, StepName: "load:p1", Status: batch.StatusStarting, Context: batch.ExecutionContext{}}
	require.NoError(t, repo.CreateStepExecution(ctx, waiting))
	finish(t, repo, e, batch.StatusFailed)
	_, err = sl.ClaimStep(ctx, waiting.ID, "worker-c", time.Minute)
	require.ErrorIs(t, err, repository.ErrNotClaimable)

	_, err = sl.ClaimStep(ctx, 1<<40, "worker-c", time.Minute)
	require.ErrorIs(t, err, batch.ErrNotFound)
	_, err = sl.StepLease(ctx, 1<<40)
	require.ErrorIs(t, err, batch.ErrNotFound)
}

// testConcurrentClaims: workers claiming one partition at the same moment,
// exactly one gets it.
func testConcurrentClaims(t *testing.T, h Harness) {
	_, sl, _, part := partitionToClaim(t, h)
	ctx := context.Background()
	const workers = 12
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		won   []string
		other []error
	)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("worker-%d", i)
			_, err := sl.ClaimStep(ctx, part.ID, owner, time.Minute)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, owner)
			case !isClaimed(err):
				other = append(other, err)
			}
		}()
	}
	wg.Wait()
	require.Empty(t, other)
	require.Len(t, won, 1)
	l, err := sl.StepLease(ctx, part.ID)
	require.NoError(t, err)
	require.Equal(t, won[0], l.Owner)
	require.Equal(t, 1, l.Claims)
}

// partitionToClaim returns a new repository, with a running job execution
// and a partition of it waiting to be claimed.
func partitionToClaim(t *testing.T, h Harness) (repository.JobRepository, repository.StepLeaser, *batch.JobExecution, *batch.StepExecution) {
	repo := h.New(t)
	sl, ok := repo.(repository.StepLeaser)
	if !ok {
		t.Skipf("%T is not a StepLeaser", repo)
	}
	e := launch(t, repo, "job", params("a"))
	part := &batch.StepExecution{JobExecutionID: e.ID, StepName: "load:p0", Status: batch.StatusStarting, Context: batch.ExecutionContext{}}
	require.NoError(t, repo.CreateStepExecution(context.Background(), part))
	return repo, sl, e, part
}

func isClaimed(err error) bool { return errors.Is(err, repository.ErrStepClaimed) }
