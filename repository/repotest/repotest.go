// Package repotest is the conformance suite for repository.JobRepository
// implementations. Every repository of this module passes it; a custom
// implementation should too:
//
//	func TestConformance(t *testing.T) {
//		repotest.Run(t, repotest.Harness{New: func(t *testing.T) repository.JobRepository { ... }})
//	}
package repotest

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

// Harness tells the suite how to get a repository.
type Harness struct {
	// New returns a new, empty, migrated repository for one test. Required.
	New func(t *testing.T) repository.JobRepository
	// DB returns the SQL database of a repository returned by New, for the
	// tests of the shared chunk transaction; nil for a repository without
	// one.
	DB func(repo repository.JobRepository) *sqlx.DB
	// Sequential runs the subtests one after the other (for stores that
	// cannot take parallel tests).
	Sequential bool
}

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"LaunchNewInstance", testLaunchNewInstance},
		{"ParametersRoundTrip", testParametersRoundTrip},
		{"NonIdentifyingParametersSameInstance", testNonIdentifying},
		{"CompletedInstanceRefused", testCompletedRefused},
		{"RunningInstanceRefused", testRunningRefused},
		{"AbandonedInstanceRefused", testAbandonedRefused},
		{"FailedAndStoppedRestart", testRestart},
		{"LapsedHeartbeatMarkedCrashed", testCrashed},
		{"ExecutionJudgedByItsOwnLease", testOwnLease},
		{"ConcurrentLaunchesOneWins", testConcurrentLaunches},
		{"OptimisticLocking", testOptimisticLocking},
		{"Heartbeat", testHeartbeat},
		{"StepExecutions", testStepExecutions},
		{"CommitChunk", testCommitChunk},
		{"CommitChunkSharedTransaction", testCommitChunkSharedTx},
		{"JoinFailsClosed", testJoinFailsClosed},
		{"LargeExecutionContext", testLargeContext},
		{"Queries", testQueries},
		{"TimeRange", testTimeRange},
		{"NotFound", testNotFound},
		{"EndedExecutionCannotStartOrUpdateSteps", testEndedExecutionFenced},
		{"PreventRestart", testPreventRestart},
		{"Prune", testPrune},
		{"Rejects", testRejects},
		{"StepLease", testStepLease},
		{"ConcurrentClaimsOneWins", testConcurrentClaims},
		{"Schedules", testSchedules},
		{"ConcurrentFiresOneLaunches", testConcurrentFires},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !h.Sequential {
				t.Parallel()
			}
			tc.fn(t, h)
		})
	}
}

func launch(t *testing.T, repo repository.JobRepository, job string, p batch.JobParameters) *batch.JobExecution {
	t.Helper()
	e, err := repo.CreateJobExecution(context.Background(), repository.LaunchRequest{JobName: job, Parameters: p})
	require.NoError(t, err)
	return e
}

func finish(t *testing.T, repo repository.JobRepository, e *batch.JobExecution, s batch.BatchStatus) {
	t.Helper()
	e.Status = s
	e.EndTime = time.Now().UTC()
	require.NoError(t, repo.UpdateJobExecution(context.Background(), e))
}

func params(input string) batch.JobParameters {
	return batch.JobParameters{"input": batch.StringParam(input)}
}

func testLaunchNewInstance(t *testing.T, h Harness) {
	repo := h.New(t)
	ctx := context.Background()
	e := launch(t, repo, "import", params("a.csv"))
	require.NotZero(t, e.ID)
	require.NotZero(t, e.InstanceID)
	require.Equal(t, "import", e.JobName)
	require.Equal(t, batch.StatusStarting, e.Status)
	require.False(t, e.CreatedAt.IsZero())
	require.False(t, e.Heartbeat.IsZero())
	require.True(t, e.StartTime.IsZero())
	inst, err := repo.JobInstance(ctx, e.InstanceID)
	require.NoError(t, err)
	require.Equal(t, "import", inst.JobName)
	require.Equal(t, params("a.csv").Key(), inst.JobKey)

	other := launch(t, repo, "import", params("b.csv"))
	require.NotEqual(t, e.InstanceID, other.InstanceID, "other identifying parameters make another instance")
	otherJob := launch(t, repo, "export", params("a.csv"))
	require.NotEqual(t, e.InstanceID, otherJob.InstanceID, "another job name makes another instance")
}

func testParametersRoundTrip(t *testing.T, h Harness) {
	repo := h.New(t)
	day := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	p := batch.JobParameters{
		"s": batch.StringParam("x y=z"),
		"q": batch.StringParam(`'); DROP TABLE batch_job_execution; -- "\`),
		"i": batch.IntParam(-42),
		"f": batch.FloatParam(0.1),
		"b": batch.BoolParam(true),
		"t": batch.TimeParam(time.Date(2024, 5, 1, 2, 3, 4, 5000, time.UTC)),
		"d": batch.DateParam(day),
		"n": batch.IntParam(7).NonIdentifying(),
	}
	e := launch(t, repo, "job", p)
	got, err := repo.JobExecution(context.Background(), e.ID)
	require.NoError(t, err)
	require.Equal(t, p, got.Parameters)
}

func testNonIdentifying(t *testing.T, h Harness) {
	repo := h.New(t)
	p := params("a.csv")
	p["chunk"] = batch.IntParam(10).NonIdentifying()
	e := launch(t, repo, "import", p)
	finish(t, repo, e, batch.StatusFailed)
	p["chunk"] = batch.IntParam(50).NonIdentifying()
	e2 := launch(t, repo, "import", p)
	require.Equal(t, e.InstanceID, e2.InstanceID)
	require.Equal(t, int64(50), e2.Parameters["chunk"].Value)
}

func requireLaunchError(t *testing.T, err, want error, instanceID int64) {
	t.Helper()
	require.ErrorIs(t, err, want)
	var le *batch.LaunchError
	require.ErrorAs(t, err, &le)
	require.Equal(t, instanceID, le.InstanceID)
}

func testCompletedRefused(t *testing.T, h Harness) {
	repo := h.New(t)
	e := launch(t, repo, "import", params("a.csv"))
	finish(t, repo, e, batch.StatusCompleted)
	_, err := repo.CreateJobExecution(context.Background(), repository.LaunchRequest{JobName: "import", Parameters: params("a.csv")})
	requireLaunchError(t, err, batch.ErrJobComplete, e.InstanceID)
	require.Contains(t, err.Error(), "already completed")
}

func testRunningRefused(t *testing.T, h Harness) {
	repo := h.New(t)
	e := launch(t, repo, "import", params("a.csv"))
	_, err := repo.CreateJobExecution(context.Background(), repository.LaunchRequest{JobName: "import", Parameters: params("a.csv"), Lease: time.Hour})
	requireLaunchError(t, err, batch.ErrJobRunning, e.InstanceID)
	e.Status = batch.StatusStarted
	require.NoError(t, repo.UpdateJobExecution(context.Background(), e))
	_, err = repo.CreateJobExecution(context.Background(), repository.LaunchRequest{JobName: "import", Parameters: params("a.csv"), Lease: time.Hour})
	requireLaunchError(t, err, batch.ErrJobRunning, e.InstanceID)
}

func testAbandonedRefused(t *testing.T, h Harness) {
	repo := h.New(t)
	e := launch(t, repo, "import", params("a.csv"))
	finish(t, repo, e, batch.StatusAbandoned)
	_, err := repo.CreateJobExecution(context.Background(), repository.LaunchRequest{JobName: "import", Parameters: params("a.csv")})
	requireLaunchError(t, err, batch.ErrJobAbandoned, e.InstanceID)
}

func testRestart(t *testing.T, h Harness) {
	repo := h.New(t)
	e := launch(t, repo, "import", params("a.csv"))
	finish(t, repo, e, batch.StatusFailed)
	e2 := launch(t, repo, "import", params("a.csv"))
	require.Equal(t, e.InstanceID, e2.InstanceID)
	require.Greater(t, e2.ID, e.ID)
	finish(t, repo, e2, batch.StatusStopped)
	e3 := launch(t, repo, "import", params("a.csv"))
	require.Equal(t, e.InstanceID, e3.InstanceID)
	list, err := repo.JobExecutions(context.Background(), batch.ExecutionQuery{InstanceID: e.InstanceID})
	require.NoError(t, err)
	require.Len(t, list, 3)
	require.Equal(t, []int64{e3.ID, e2.ID, e.ID}, []int64{list[0].ID, list[1].ID, list[2].ID})
}

func testCrashed(t *testing.T, h Harness) {
	repo := h.New(t)
	ctx := context.Background()
	e := launch(t, repo, "import", params("a.csv"))
	e.Status = batch.StatusStarted
	require.NoError(t, repo.UpdateJobExecution(ctx, e))
	s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "load", Status: batch.StatusStarted, StartTime: time.Now().UTC()}
	require.NoError(t, repo.CreateStepExecution(ctx, s))

	// Within the execution's own lease (the default, 30s): refused, and
	// the refusal says how old the heartbeat is and when it lapses.
	_, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "import", Parameters: params("a.csv"),
		Lease: time.Millisecond, Now: time.Now().Add(20 * time.Second)})
	require.ErrorIs(t, err, batch.ErrJobRunning)
	var le *batch.LaunchError
	require.ErrorAs(t, err, &le)
	require.Equal(t, batch.DefaultLease, le.Lease)
	require.InDelta(t, 20*time.Second, le.HeartbeatAge, float64(5*time.Second))
	require.ErrorContains(t, err, "presumed crashed after")

	// Past the lease: the old execution is marked FAILED and a new one made.
	e2, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "import", Parameters: params("a.csv"),
		Lease: time.Minute, Now: time.Now().Add(2 * time.Minute)})
	require.NoError(t, err)
	require.Equal(t, e.InstanceID, e2.InstanceID)
	old, err := repo.JobExecution(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusFailed, old.Status)
	require.True(t, strings.HasPrefix(old.ExitStatus.Description, batch.CrashedDescription), old.ExitStatus.Description)
	steps, err := repo.StepExecutions(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusFailed, steps[0].Status)

	// The old process is fenced off: its stale updates fail.
	require.ErrorIs(t, repo.UpdateJobExecution(ctx, e), batch.ErrStaleVersion)
	require.ErrorIs(t, repo.UpdateStepExecution(ctx, s), batch.ErrStaleVersion)
	s.Version = steps[0].Version
	_, err = repo.CommitChunk(ctx, s, func(context.Context) error { return nil })
	require.ErrorIs(t, err, batch.ErrFenced)
}

// testOwnLease: a running execution keeps the lease it was launched with; a
// later launch with a shorter one cannot declare it crashed early.
func testOwnLease(t *testing.T, h Harness) {
	repo := h.New(t)
	ctx := context.Background()
	e, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "import", Parameters: params("a.csv"),
		Lease: 10 * time.Minute})
	require.NoError(t, err)
	require.Equal(t, 10*time.Minute, e.Lease)
	got, err := repo.JobExecution(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, 10*time.Minute, got.Lease)

	_, err = repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "import", Parameters: params("a.csv"),
		Lease: time.Second, Now: time.Now().Add(5 * time.Minute)})
	require.ErrorIs(t, err, batch.ErrJobRunning)
	got, err = repo.JobExecution(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusStarting, got.Status)

	e2, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "import", Parameters: params("a.csv"),
		Lease: time.Second, Now: time.Now().Add(11 * time.Minute)})
	require.NoError(t, err)
	require.Equal(t, time.Second, e2.Lease)
	got, err = repo.JobExecution(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusFailed, got.Status)
	require.Contains(t, got.ExitStatus.Description, "lease 10m0s")
}

func testConcurrentLaunches(t *testing.T, h Harness) {
	repo := h.New(t)
	const n = 20
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		ok      []*batch.JobExecution
		running int
		other   []error
	)
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			e, err := repo.CreateJobExecution(context.Background(), repository.LaunchRequest{JobName: "race", Parameters: params("x")})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok = append(ok, e)
			case errors.Is(err, batch.ErrJobRunning):
				running++
			default:
				other = append(other, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	require.Empty(t, other)
	require.Len(t, ok, 1, "exactly one launch wins")
	require.Equal(t, n-1, running)
	list, err := repo.JobExecutions(context.Background(), batch.ExecutionQuery{JobName: "race"})
	require.NoError(t, err)
	require.Len(t, list, 1)
}

func testOptimisticLocking(t *testing.T, h Harness) {
	repo := h.New(t)
	ctx := context.Background()
	e := launch(t, repo, "job", nil)
	a, err := repo.JobExecution(ctx, e.ID)
	require.NoError(t, err)
	b, err := repo.JobExecution(ctx, e.ID)
	require.NoError(t, err)
	a.Status = batch.StatusStarted
	require.NoError(t, repo.UpdateJobExecution(ctx, a))
	require.Equal(t, e.Version+1, a.Version)
	b.Status = batch.StatusStopping
	require.ErrorIs(t, repo.UpdateJobExecution(ctx, b), batch.ErrStaleVersion)
	got, err := repo.JobExecution(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusStarted, got.Status)
	require.Equal(t, a.Version, got.Version)

	s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "s", Status: batch.StatusStarted}
	require.NoError(t, repo.CreateStepExecution(ctx, s))
	s2 := s.Clone()
	s.ReadCount = 5
	require.NoError(t, repo.UpdateStepExecution(ctx, s))
	s2.ReadCount = 6
	require.ErrorIs(t, repo.UpdateStepExecution(ctx, s2), batch.ErrStaleVersion)
}

func testHeartbeat(t *testing.T, h Harness) {
	repo := h.New(t)
	ctx := context.Background()
	e := launch(t, repo, "job", nil)
	time.Sleep(20 * time.Millisecond)
	status, err := repo.Heartbeat(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusStarting, status)
	got, err := repo.JobExecution(ctx, e.ID)
	require.NoError(t, err)
	require.True(t, got.Heartbeat.After(e.Heartbeat), "the heartbeat moved: %v -> %v", e.Heartbeat, got.Heartbeat)
	require.WithinDuration(t, time.Now(), got.Heartbeat, 5*time.Second, "the repository's clock")
	require.Equal(t, e.Version, got.Version, "a heartbeat does not change the version")

	finish(t, repo, got, batch.StatusFailed)
	time.Sleep(20 * time.Millisecond)
	status, err = repo.Heartbeat(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusFailed, status)
	again, err := repo.JobExecution(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, got.Heartbeat, again.Heartbeat, "no heartbeat on an ended execution")
}

func testStepExecutions(t *testing.T, h Harness) {
	repo := h.New(t)
	ctx := context.Background()
	e := launch(t, repo, "job", params("a"))
	_, err := repo.LastStepExecution(ctx, e.InstanceID, "load")
	require.ErrorIs(t, err, batch.ErrNotFound)

	s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "load", Status: batch.StatusStarted,
		StartTime: time.Now().UTC(), Context: batch.ExecutionContext{}}
	require.NoError(t, repo.CreateStepExecution(ctx, s))
	require.NotZero(t, s.ID)
	s.ReadCount, s.WriteCount, s.FilterCount, s.CommitCount, s.RollbackCount = 10, 8, 2, 1, 3
	s.ReadSkipCount, s.ProcessSkipCount, s.WriteSkipCount = 4, 5, 6
	s.Changes = batch.Changes{Inserted: 7, Updated: 8, Unchanged: 9, Deleted: 10}
	require.NoError(t, s.Context.Put("offset", 1234))
	s.Status, s.ExitStatus = batch.StatusFailed, batch.ExitFailed.WithDescription("boom")
	s.EndTime = time.Now().UTC()
	require.NoError(t, repo.UpdateStepExecution(ctx, s))
	s2 := &batch.StepExecution{JobExecutionID: e.ID, StepName: "other", Status: batch.StatusStarted}
	require.NoError(t, repo.CreateStepExecution(ctx, s2))

	list, err := repo.StepExecutions(ctx, e.ID)
	require.NoError(t, err)
	require.Len(t, list, 2)
	got := list[0]
	require.Equal(t, "load", got.StepName)
	require.Equal(t, []int64{10, 8, 2, 1, 3, 4, 5, 6},
		[]int64{got.ReadCount, got.WriteCount, got.FilterCount, got.CommitCount, got.RollbackCount,
			got.ReadSkipCount, got.ProcessSkipCount, got.WriteSkipCount})
	require.Equal(t, batch.Changes{Inserted: 7, Updated: 8, Unchanged: 9, Deleted: 10}, got.Changes)
	require.Equal(t, batch.ExitFailed.WithDescription("boom"), got.ExitStatus)
	off, ok := got.Context.Int64("offset")
	require.True(t, ok)
	require.Equal(t, int64(1234), off)
	require.Equal(t, "other", list[1].StepName)

	finish(t, repo, e, batch.StatusFailed)
	e2 := launch(t, repo, "job", params("a"))
	s3 := &batch.StepExecution{JobExecutionID: e2.ID, StepName: "load", Status: batch.StatusStarted}
	require.NoError(t, repo.CreateStepExecution(ctx, s3))
	last, err := repo.LastStepExecution(ctx, e.InstanceID, "load")
	require.NoError(t, err)
	require.Equal(t, s3.ID, last.ID)
	n, err := repo.StepExecutionCount(ctx, e.InstanceID, "load")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	n, err = repo.StepExecutionCount(ctx, e.InstanceID, "other")
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

func testCommitChunk(t *testing.T, h Harness) {
	repo := h.New(t)
	ctx := context.Background()
	e := launch(t, repo, "job", nil)
	e.Status = batch.StatusStarted
	require.NoError(t, repo.UpdateJobExecution(ctx, e))
	s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "load", Status: batch.StatusStarted, Context: batch.ExecutionContext{}}
	require.NoError(t, repo.CreateStepExecution(ctx, s))

	w := s.Clone()
	status, err := repo.CommitChunk(ctx, w, func(context.Context) error {
		w.ReadCount, w.WriteCount, w.CommitCount = 10, 10, 1
		return w.Context.Put("line", 11)
	})
	require.NoError(t, err)
	require.Equal(t, batch.StatusStarted, status)
	require.Equal(t, s.Version+1, w.Version)
	last, err := repo.LastStepExecution(ctx, e.InstanceID, "load")
	require.NoError(t, err)
	require.Equal(t, int64(10), last.WriteCount)
	line, _ := last.Context.Int64("line")
	require.Equal(t, int64(11), line)

	// A failing write saves nothing.
	boom := errors.New("boom")
	w2 := w.Clone()
	_, err = repo.CommitChunk(ctx, w2, func(context.Context) error {
		w2.ReadCount = 20
		return boom
	})
	require.ErrorIs(t, err, boom)
	last, err = repo.LastStepExecution(ctx, e.InstanceID, "load")
	require.NoError(t, err)
	require.Equal(t, int64(10), last.ReadCount)
	require.Equal(t, w.Version, last.Version)

	// A stale copy is refused.
	stale := s.Clone()
	_, err = repo.CommitChunk(ctx, stale, func(context.Context) error { return nil })
	require.ErrorIs(t, err, batch.ErrStaleVersion)

	// A stop request is reported at the chunk boundary.
	cur, err := repo.JobExecution(ctx, e.ID)
	require.NoError(t, err)
	cur.Status = batch.StatusStopping
	require.NoError(t, repo.UpdateJobExecution(ctx, cur))
	status, err = repo.CommitChunk(ctx, w, func(context.Context) error { return nil })
	require.NoError(t, err)
	require.Equal(t, batch.StatusStopping, status)

	// An ended execution is fenced off.
	cur.Status = batch.StatusFailed
	require.NoError(t, repo.UpdateJobExecution(ctx, cur))
	_, err = repo.CommitChunk(ctx, w, func(context.Context) error { return nil })
	require.ErrorIs(t, err, batch.ErrFenced)
}

// testJoinFailsClosed: outside a SQL repository's chunk, joining fails with
// ErrNoChunkTx and says why.
func testJoinFailsClosed(t *testing.T, h Harness) {
	ctx := context.Background()
	db := sqlx.NewDb(sql.OpenDB(unusedConnector{}), "unused")
	defer db.Close()
	_, err := batch.JoinTxx(ctx, db)
	require.ErrorIs(t, err, batch.ErrNoChunkTx)
	require.ErrorContains(t, err, "not a chunk's")
	if h.DB != nil {
		return
	}
	repo := h.New(t)
	e := launch(t, repo, "job", nil)
	s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "load", Status: batch.StatusStarted}
	require.NoError(t, repo.CreateStepExecution(ctx, s))
	_, err = repo.CommitChunk(ctx, s, func(ctx context.Context) error {
		_, err := batch.JoinTxx(ctx, db)
		return err
	})
	require.ErrorIs(t, err, batch.ErrNoChunkTx)
}

// unusedConnector makes a *sql.DB that is never connected.
type unusedConnector struct{}

func (unusedConnector) Connect(context.Context) (driver.Conn, error) {
	return nil, errors.New("repotest: not a real database")
}
func (unusedConnector) Driver() driver.Driver { return nil }

func testCommitChunkSharedTx(t *testing.T, h Harness) {
	if h.DB == nil {
		t.Skip("repository has no SQL database")
	}
	repo := h.New(t)
	db := h.DB(repo)
	ctx := context.Background()
	_, err := db.Exec(`CREATE TABLE shared_tx_rows (id INTEGER PRIMARY KEY)`)
	require.NoError(t, err)
	count := func() int {
		var n int
		require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM shared_tx_rows`))
		return n
	}
	e := launch(t, repo, "job", nil)
	s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "load", Status: batch.StatusStarted}
	require.NoError(t, repo.CreateStepExecution(ctx, s))
	insert := func(id int) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			if !batch.InChunkTx(ctx, db.DB) {
				return errors.New("InChunkTx: no chunk transaction on the repository's database")
			}
			tx, err := batch.JoinTxx(ctx, db)
			if err != nil {
				return err
			}
			// The same transaction through database/sql, and through another
			// sqlx handle on the same pool.
			plain, err := batch.JoinTx(ctx, db.DB)
			if err != nil {
				return err
			}
			if plain != tx.Tx {
				return errors.New("JoinTx and JoinTxx returned different transactions")
			}
			again, err := batch.JoinTxx(ctx, sqlx.NewDb(db.DB, db.DriverName()))
			if err != nil {
				return err
			}
			if again.Tx != tx.Tx {
				return errors.New("a second sqlx handle on the same pool got another transaction")
			}
			_, err = tx.ExecContext(ctx, db.Rebind(`INSERT INTO shared_tx_rows (id) VALUES (?)`), id)
			return err
		}
	}
	_, err = repo.CommitChunk(ctx, s, insert(1))
	require.NoError(t, err)
	require.Equal(t, 1, count())

	// The checkpoint fails (stale version): the writer's row rolls back too.
	stale := s.Clone()
	stale.Version--
	_, err = repo.CommitChunk(ctx, stale, insert(2))
	require.ErrorIs(t, err, batch.ErrStaleVersion)
	require.Equal(t, 1, count())

	// The execution was taken over: the writer's row rolls back too.
	finish(t, repo, e, batch.StatusFailed)
	_, err = repo.CommitChunk(ctx, s, insert(3))
	require.ErrorIs(t, err, batch.ErrFenced)
	require.Equal(t, 1, count())

	// Another pool cannot join: the writer gets ErrNoChunkTx, never a nil
	// transaction.
	other, err := sqlx.Open(db.DriverName(), "unused")
	require.NoError(t, err)
	defer other.Close()
	_, err = repo.CommitChunk(ctx, s, func(ctx context.Context) error {
		require.False(t, batch.InChunkTx(ctx, other.DB))
		tx, err := batch.JoinTxx(ctx, other)
		require.ErrorIs(t, err, batch.ErrNoChunkTx)
		require.ErrorContains(t, err, "not the job repository's")
		require.Nil(t, tx)
		_, err = batch.JoinTx(ctx, nil)
		require.ErrorIs(t, err, batch.ErrNoChunkTx)
		return nil
	})
	require.ErrorIs(t, err, batch.ErrFenced)
}

func testLargeContext(t *testing.T, h Harness) {
	repo := h.New(t)
	ctx := context.Background()
	e := launch(t, repo, "job", nil)
	s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "load", Status: batch.StatusStarted, Context: batch.ExecutionContext{}}
	require.NoError(t, repo.CreateStepExecution(ctx, s))
	big := strings.Repeat("x", 1<<20)
	require.NoError(t, s.Context.Put("big", big))
	require.NoError(t, repo.UpdateStepExecution(ctx, s))
	e.Context = batch.ExecutionContext{}
	require.NoError(t, e.Context.Put("big", big))
	require.NoError(t, repo.UpdateJobExecution(ctx, e))

	last, err := repo.LastStepExecution(ctx, e.InstanceID, "load")
	require.NoError(t, err)
	got, _ := last.Context.String("big")
	require.Equal(t, big, got)
	je, err := repo.JobExecution(ctx, e.ID)
	require.NoError(t, err)
	got, _ = je.Context.String("big")
	require.Equal(t, big, got)
}

func testQueries(t *testing.T, h Harness) {
	repo := h.New(t)
	ctx := context.Background()
	a := launch(t, repo, "alpha", params("1"))
	finish(t, repo, a, batch.StatusCompleted)
	b := launch(t, repo, "beta", params("1"))
	c := launch(t, repo, "alpha", params("2"))
	finish(t, repo, c, batch.StatusFailed)

	names, err := repo.JobNames(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"alpha", "beta"}, names)

	all, err := repo.JobExecutions(ctx, batch.ExecutionQuery{})
	require.NoError(t, err)
	require.Equal(t, []int64{c.ID, b.ID, a.ID}, ids(all))
	alpha, err := repo.JobExecutions(ctx, batch.ExecutionQuery{JobName: "alpha"})
	require.NoError(t, err)
	require.Equal(t, []int64{c.ID, a.ID}, ids(alpha))
	limited, err := repo.JobExecutions(ctx, batch.ExecutionQuery{Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []int64{c.ID}, ids(limited))
	running, err := repo.JobExecutions(ctx, batch.ExecutionQuery{Running: true})
	require.NoError(t, err)
	require.Equal(t, []int64{b.ID}, ids(running))
	failed, err := repo.JobExecutions(ctx, batch.ExecutionQuery{Status: batch.StatusFailed})
	require.NoError(t, err)
	require.Equal(t, []int64{c.ID}, ids(failed))
	page, err := repo.JobExecutions(ctx, batch.ExecutionQuery{BeforeID: c.ID, Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []int64{b.ID}, ids(page))
	page, err = repo.JobExecutions(ctx, batch.ExecutionQuery{JobName: "alpha", BeforeID: b.ID})
	require.NoError(t, err)
	require.Equal(t, []int64{a.ID}, ids(page))
}

// testTimeRange: Since and Until bound the creation times, to the
// nanosecond the store keeps, whatever the fractions of a second.
func testTimeRange(t *testing.T, h Harness) {
	repo := h.New(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 500_000_000, time.UTC)
	var es []*batch.JobExecution
	for i, at := range []time.Time{t0, t0.Add(500 * time.Millisecond), t0.Add(750 * time.Millisecond), t0.Add(26 * time.Hour)} {
		e, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "timed", Parameters: params(fmt.Sprint(i)), Now: at})
		require.NoError(t, err)
		es = append(es, e)
	}
	query := func(since, until time.Time) []int64 {
		t.Helper()
		list, err := repo.JobExecutions(ctx, batch.ExecutionQuery{Since: since, Until: until})
		require.NoError(t, err)
		return ids(list)
	}
	require.Equal(t, []int64{es[3].ID, es[2].ID, es[1].ID}, query(t0.Add(500*time.Millisecond), time.Time{}))
	require.Equal(t, []int64{es[2].ID, es[1].ID}, query(t0.Add(time.Millisecond), t0.Add(time.Second)))
	require.Equal(t, []int64{es[1].ID, es[0].ID}, query(time.Time{}, t0.Add(750*time.Millisecond)))
	require.Equal(t, []int64{es[3].ID}, query(t0.Add(24*time.Hour), t0.Add(48*time.Hour)))
	// In another zone, the same instants.
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	require.Equal(t, []int64{es[2].ID, es[1].ID}, query(t0.Add(time.Millisecond).In(berlin), t0.Add(time.Second).In(berlin)))
}

func ids(es []*batch.JobExecution) []int64 {
	out := []int64{}
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func testNotFound(t *testing.T, h Harness) {
	repo := h.New(t)
	ctx := context.Background()
	_, err := repo.JobExecution(ctx, 999999)
	require.ErrorIs(t, err, batch.ErrNotFound)
	_, err = repo.JobInstance(ctx, 999999)
	require.ErrorIs(t, err, batch.ErrNotFound)
	err = repo.UpdateJobExecution(ctx, &batch.JobExecution{ID: 999999})
	require.ErrorIs(t, err, batch.ErrNotFound)
	list, err := repo.StepExecutions(ctx, 999999)
	require.NoError(t, err)
	require.Empty(t, list)
}

func testEndedExecutionFenced(t *testing.T, h Harness) {
	repo := h.New(t)
	ctx := context.Background()
	e := launch(t, repo, "job", nil)
	s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "a", Status: batch.StatusStarted}
	require.NoError(t, repo.CreateStepExecution(ctx, s))
	finish(t, repo, e, batch.StatusFailed) // as a take-over marks it

	err := repo.CreateStepExecution(ctx, &batch.StepExecution{JobExecutionID: e.ID, StepName: "b", Status: batch.StatusStarted})
	require.ErrorIs(t, err, batch.ErrFenced)
	s.Status = batch.StatusCompleted
	err = repo.UpdateStepExecution(ctx, s)
	require.True(t, errors.Is(err, batch.ErrFenced) || errors.Is(err, batch.ErrStaleVersion), "%v", err)
	list, err := repo.StepExecutions(ctx, e.ID)
	require.NoError(t, err)
	require.Len(t, list, 1)
	// The ended execution left no step running under it.
	require.Equal(t, batch.StatusFailed, list[0].Status)
	require.Equal(t, "the job execution ended FAILED while the step was running", list[0].ExitStatus.Description)
	s.Version = list[0].Version
	require.ErrorIs(t, repo.UpdateStepExecution(ctx, s), batch.ErrFenced)
}

func testPreventRestart(t *testing.T, h Harness) {
	repo := h.New(t)
	ctx := context.Background()
	e := launch(t, repo, "once", params("a"))
	finish(t, repo, e, batch.StatusFailed)
	_, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "once", Parameters: params("a"), PreventRestart: true})
	requireLaunchError(t, err, batch.ErrJobNotRestartable, e.InstanceID)
	_, err = repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "once", Parameters: params("b"), PreventRestart: true})
	require.NoError(t, err, "a new instance starts")

	// A crashed execution is still recorded as crashed when the restart is
	// refused.
	c := launch(t, repo, "once", params("c"))
	_, err = repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "once", Parameters: params("c"), PreventRestart: true,
		Lease: time.Second, Now: time.Now().Add(time.Hour)})
	requireLaunchError(t, err, batch.ErrJobNotRestartable, c.InstanceID)
	got, err := repo.JobExecution(ctx, c.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusFailed, got.Status)
}

// testPrune: what a prune deletes and keeps, and that a dry run deletes
// nothing.
func testPrune(t *testing.T, h Harness) {
	repo := h.New(t)
	pr, ok := repo.(repository.Pruner)
	if !ok {
		t.Skip("repository cannot prune")
	}
	ctx := context.Background()
	now := time.Now().UTC()
	// run makes an execution of job for day with one step execution, ended
	// with status ago before now (a running one is left running).
	run := func(job, day string, status batch.BatchStatus, ago time.Duration) *batch.JobExecution {
		t.Helper()
		e := launch(t, repo, job, batch.JobParameters{"day": batch.StringParam(day)})
		s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "load", Status: batch.StatusStarted}
		require.NoError(t, repo.CreateStepExecution(ctx, s))
		if status.Running() {
			e.Status = status
		} else {
			e.Status, e.EndTime = status, now.Add(-ago)
		}
		require.NoError(t, repo.UpdateJobExecution(ctx, e))
		return e
	}
	day := 24 * time.Hour
	completed := run("nightly", "1", batch.StatusCompleted, 10*day)
	run("nightly", "2", batch.StatusFailed, 9*day)
	run("nightly", "2", batch.StatusCompleted, 8*day) // a restart that completed
	restartable := run("nightly", "3", batch.StatusFailed, 7*day)
	run("nightly", "4", batch.StatusAbandoned, 6*day)
	run("nightly", "5", batch.StatusFailed, 5*day)
	running := run("nightly", "5", batch.StatusStarted, 0) // a restart running now
	recent := run("nightly", "6", batch.StatusCompleted, time.Hour)
	other := run("other", "1", batch.StatusCompleted, 10*day)

	_, err := pr.Prune(ctx, repository.PruneRequest{})
	require.ErrorIs(t, err, repository.ErrNoPruneCriteria)

	ids := func(job string) []int64 {
		t.Helper()
		es, err := repo.JobExecutions(ctx, batch.ExecutionQuery{JobName: job})
		require.NoError(t, err)
		var out []int64
		for _, e := range es {
			out = append(out, e.ID)
		}
		slices.Sort(out)
		return out
	}
	before := ids("nightly")
	require.Len(t, before, 8)

	// Older than two days: the completed instances, the one completed
	// after a failure, the abandoned one. Not the restartable one, not the
	// running one nor its instance's earlier run, not the recent one.
	req := repository.PruneRequest{OlderThan: 2 * day, Job: "nightly", DryRun: true, BatchSize: 2}
	dry, err := pr.Prune(ctx, req)
	require.NoError(t, err)
	require.Len(t, dry.Jobs, 1)
	want := repository.PrunedJob{Job: "nightly", Executions: 4, StepExecutions: 4, Instances: 3}
	got := dry.Jobs[0]
	require.WithinDuration(t, now.Add(-10*day), got.Oldest, time.Second)
	require.WithinDuration(t, now.Add(-6*day), got.Newest, time.Second)
	got.Oldest, got.Newest = time.Time{}, time.Time{}
	require.Equal(t, want, got)
	require.Equal(t, before, ids("nightly"), "a dry run deletes nothing")

	req.DryRun = false
	res, err := pr.Prune(ctx, req)
	require.NoError(t, err)
	require.Equal(t, dry, res, "the prune deletes what the dry run said")
	left := ids("nightly")
	require.Len(t, left, 4)
	require.Contains(t, left, restartable.ID)
	require.Contains(t, left, running.ID)
	require.Contains(t, left, recent.ID)
	steps, err := repo.StepExecutions(ctx, completed.ID)
	require.NoError(t, err)
	require.Empty(t, steps)
	_, err = repo.JobExecution(ctx, completed.ID)
	require.ErrorIs(t, err, batch.ErrNotFound)
	_, err = repo.JobInstance(ctx, completed.InstanceID)
	require.ErrorIs(t, err, batch.ErrNotFound)
	require.Equal(t, []int64{other.ID}, ids("other"), "another job is left alone")
	// The pruned instance is forgotten: it launches afresh.
	again := launch(t, repo, "nightly", batch.JobParameters{"day": batch.StringParam("1")})
	require.NotEqual(t, completed.InstanceID, again.InstanceID)
	finish(t, repo, again, batch.StatusCompleted)

	// Restartable too: the failed instance goes; the running one stays.
	res, err = pr.Prune(ctx, repository.PruneRequest{OlderThan: 2 * day, Restartable: true})
	require.NoError(t, err)
	require.Len(t, res.Jobs, 2)
	require.Equal(t, []string{"nightly", "other"}, []string{res.Jobs[0].Job, res.Jobs[1].Job})
	require.Equal(t, int64(2), res.Total().Executions)
	require.Equal(t, int64(2), res.Total().Instances)
	_, err = repo.JobExecution(ctx, restartable.ID)
	require.ErrorIs(t, err, batch.ErrNotFound)
	require.Contains(t, ids("nightly"), running.ID)

	// KeepLast: each job's newest executions stay, whatever their age.
	for i, ago := range []time.Duration{4 * day, 3 * day, 36 * time.Hour, day} {
		run("weekly", strconv.Itoa(i), batch.StatusCompleted, ago)
	}
	res, err = pr.Prune(ctx, repository.PruneRequest{KeepLast: 3, Job: "weekly"})
	require.NoError(t, err)
	require.Equal(t, int64(1), res.Total().Executions)
	require.Len(t, ids("weekly"), 3)
	// Both: older than two days and beyond the newest one.
	res, err = pr.Prune(ctx, repository.PruneRequest{KeepLast: 1, OlderThan: 2 * day, Job: "weekly"})
	require.NoError(t, err)
	require.Equal(t, int64(1), res.Total().Executions, "the 3-day-old one; the others are too recent")
	require.Len(t, ids("weekly"), 2)
}

// testRejects: rejects saved in a chunk's commit are kept with it, or not
// at all, and go with their execution when it is pruned.
func testRejects(t *testing.T, h Harness) {
	repo := h.New(t)
	rs, ok := repo.(repository.RejectStore)
	if !ok {
		t.Skip("repository keeps no rejects")
	}
	ctx := context.Background()
	e := launch(t, repo, "job", nil)
	s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "load", Status: batch.StatusStarted, Context: batch.ExecutionContext{}}
	require.NoError(t, repo.CreateStepExecution(ctx, s))
	reject := func(item int64) batch.Reject {
		return batch.Reject{Step: "load", Phase: "process", Item: item, Error: "bad " + strconv.FormatInt(item, 10),
			Input: json.RawMessage(`{"id":` + strconv.FormatInt(item, 10) + `}`)}
	}
	_, err := repo.CommitChunk(ctx, s, func(ctx context.Context) error {
		if err := rs.SaveReject(ctx, s.ID, reject(3)); err != nil {
			return err
		}
		w := reject(7)
		w.Phase, w.Output = "write", json.RawMessage(`"seven"`)
		return rs.SaveReject(ctx, s.ID, w)
	})
	require.NoError(t, err)

	// A chunk that fails, and one refused as stale: their rejects go too.
	boom := errors.New("boom")
	_, err = repo.CommitChunk(ctx, s, func(ctx context.Context) error {
		require.NoError(t, rs.SaveReject(ctx, s.ID, reject(11)))
		return boom
	})
	require.ErrorIs(t, err, boom)
	stale := s.Clone()
	stale.Version--
	_, err = repo.CommitChunk(ctx, stale, func(ctx context.Context) error { return rs.SaveReject(ctx, s.ID, reject(12)) })
	require.ErrorIs(t, err, batch.ErrStaleVersion)

	got, err := rs.Rejects(ctx, e.ID)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, reject(3), got[0].Reject)
	require.Equal(t, int64(7), got[1].Item)
	require.Equal(t, "write", got[1].Phase)
	require.JSONEq(t, `"seven"`, string(got[1].Output))
	require.Equal(t, e.ID, got[0].JobExecutionID)
	require.Equal(t, s.ID, got[0].StepExecutionID)
	require.Less(t, got[0].ID, got[1].ID)
	none, err := rs.Rejects(ctx, e.ID+1000)
	require.NoError(t, err)
	require.Empty(t, none)

	// Pruned with their execution.
	if pr, ok := repo.(repository.Pruner); ok {
		e.Status, e.EndTime = batch.StatusCompleted, time.Now().Add(-48*time.Hour)
		require.NoError(t, repo.UpdateJobExecution(ctx, e))
		_, err := pr.Prune(ctx, repository.PruneRequest{OlderThan: 24 * time.Hour})
		require.NoError(t, err)
		got, err := rs.Rejects(ctx, e.ID)
		require.NoError(t, err)
		require.Empty(t, got)
	}
}
