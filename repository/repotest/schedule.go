package repotest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

// scheduleStore returns a new repository as a ScheduleStore, or skips.
func scheduleStore(t *testing.T, h Harness) (repository.JobRepository, repository.ScheduleStore) {
	repo := h.New(t)
	ss, ok := repo.(repository.ScheduleStore)
	if !ok {
		t.Skipf("%T is not a ScheduleStore", repo)
	}
	return repo, ss
}

// testSchedules: a schedule synced keeps its state unless it fires at other
// times; pausing; a fire moves the due time once and records its
// execution; a launch that fails still moves the due time and leaves no
// execution where the repository has transactions.
func testSchedules(t *testing.T, h Harness) {
	repo, ss := scheduleStore(t, h)
	ctx := context.Background()
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // a due time far ahead
	s := repository.Schedule{Name: "nightly", JobName: "export", Spec: "0 2 * * *", TimeZone: "Europe/Berlin",
		Parameters: params("a"), Misfire: "skip", Overlap: "skip"}
	var seen time.Time
	require.NoError(t, ss.SyncSchedule(ctx, s, func(now time.Time) time.Time { seen = now; return at }))
	now, err := ss.ScheduleNow(ctx)
	require.NoError(t, err)
	require.WithinDuration(t, now, seen, 10*time.Second, "first is given the repository's clock")
	list, err := ss.Schedules(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	got := list[0]
	require.Equal(t, s.Name, got.Name)
	require.Equal(t, s.Parameters, got.Parameters)
	require.True(t, got.NextFire.Equal(at), "%s", got.NextFire)
	require.True(t, got.LastFire.IsZero())
	require.False(t, got.Paused)

	// Paused, then synced with other parameters: the flag and due time
	// stay. Synced with another spec: a new due time.
	require.NoError(t, ss.SetSchedulePaused(ctx, "nightly", true))
	require.ErrorIs(t, ss.SetSchedulePaused(ctx, "weekly", true), batch.ErrNotFound)
	s.Parameters = params("b")
	require.NoError(t, ss.SyncSchedule(ctx, s, func(time.Time) time.Time { return at.Add(time.Hour) }))
	list, _ = ss.Schedules(ctx)
	require.True(t, list[0].Paused)
	require.True(t, list[0].NextFire.Equal(at))
	require.Equal(t, params("b"), list[0].Parameters)
	s.Spec = "0 3 * * *"
	require.NoError(t, ss.SyncSchedule(ctx, s, func(time.Time) time.Time { return at.Add(time.Hour) }))
	list, _ = ss.Schedules(ctx)
	require.True(t, list[0].NextFire.Equal(at.Add(time.Hour)))
	require.True(t, list[0].Paused)
	require.NoError(t, ss.SetSchedulePaused(ctx, "nightly", false))
	due := at.Add(time.Hour)

	// A fire at a stale due time does nothing.
	fired, err := ss.FireSchedule(ctx, "nightly", at, at.Add(2*time.Hour), func(context.Context) (int64, error) {
		t.Fatal("launched at a stale due time")
		return 0, nil
	})
	require.NoError(t, err)
	require.False(t, fired)

	// The fire at the due time moves it and records the execution its
	// launch created.
	var execID int64
	fired, err = ss.FireSchedule(ctx, "nightly", due, due.Add(24*time.Hour), func(ctx context.Context) (int64, error) {
		e, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "export",
			Parameters: batch.JobParameters{"fire": batch.TimeParam(due)}})
		if err != nil {
			return 0, err
		}
		execID = e.ID
		return e.ID, nil
	})
	require.NoError(t, err)
	require.True(t, fired)
	list, _ = ss.Schedules(ctx)
	require.True(t, list[0].NextFire.Equal(due.Add(24*time.Hour)))
	require.True(t, list[0].LastFire.Equal(due))
	require.Equal(t, execID, list[0].LastExecutionID)
	e, err := repo.JobExecution(ctx, execID)
	require.NoError(t, err)
	require.Equal(t, "export", e.JobName)

	// A launch that fails: the due time moves on, the error comes back,
	// and what the launch wrote is undone where there are transactions.
	due = due.Add(24 * time.Hour)
	boom := errors.New("refused")
	var failedID int64
	fired, err = ss.FireSchedule(ctx, "nightly", due, due.Add(24*time.Hour), func(ctx context.Context) (int64, error) {
		e, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "export",
			Parameters: batch.JobParameters{"fire": batch.TimeParam(due)}})
		if err == nil {
			failedID = e.ID
		}
		return 0, boom
	})
	require.ErrorIs(t, err, boom)
	require.True(t, fired)
	list, _ = ss.Schedules(ctx)
	require.True(t, list[0].NextFire.Equal(due.Add(24*time.Hour)))
	require.Equal(t, execID, list[0].LastExecutionID, "the last fire that launched")
	if h.DB != nil && h.DB(repo) != nil {
		_, err := repo.JobExecution(ctx, failedID)
		require.ErrorIs(t, err, batch.ErrNotFound, "the failed launch's execution is rolled back with it")
	}
}

// testConcurrentFires: replicas firing one due time at the same moment,
// exactly one launches.
func testConcurrentFires(t *testing.T, h Harness) {
	repo, ss := scheduleStore(t, h)
	ctx := context.Background()
	due := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, ss.SyncSchedule(ctx, repository.Schedule{Name: "often", JobName: "tick", Spec: "* * * * *",
		Misfire: "skip", Overlap: "allow"}, func(time.Time) time.Time { return due }))
	var (
		wg       sync.WaitGroup
		launched atomic.Int64
		fired    atomic.Int64
		errs     = make(chan error, 12)
	)
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := ss.FireSchedule(ctx, "often", due, due.Add(time.Minute), func(ctx context.Context) (int64, error) {
				launched.Add(1)
				e, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "tick",
					Parameters: batch.JobParameters{"fire": batch.TimeParam(due)}})
				if err != nil {
					return 0, err
				}
				return e.ID, nil
			})
			if err != nil && !batch.Transient.Matches(err) {
				errs <- err
			}
			if ok {
				fired.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int64(1), fired.Load())
	require.Equal(t, int64(1), launched.Load())
}
