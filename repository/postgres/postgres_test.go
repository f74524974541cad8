package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/postgres"
	"github.com/chunkwise/chunkwise/repository/repotest"
)

func open(t *testing.T) *postgres.Repository { return openWith(t, "") }

func openWith(t *testing.T, driver string) *postgres.Repository {
	repo, err := postgres.Open(context.Background(), pgtest.DSN(t), postgres.Config{Driver: driver})
	require.NoError(t, err)
	t.Cleanup(func() { _ = repo.Close() })
	require.NoError(t, repo.Migrate(context.Background()))
	return repo
}

// TestConformance runs the repository's conformance suite on both drivers
// Open connects with.
func TestConformance(t *testing.T) {
	for _, driver := range []string{postgres.DriverPgx, postgres.DriverPQ} {
		t.Run(driver, func(t *testing.T) {
			repotest.Run(t, repotest.Harness{
				New: func(t *testing.T) repository.JobRepository { return openWith(t, driver) },
				DB:  func(r repository.JobRepository) *sqlx.DB { return r.(*postgres.Repository).DB() },
			})
		})
	}
}

func TestOpenRefusesUnknownDriver(t *testing.T) {
	_, err := postgres.Open(context.Background(), "postgres://nowhere/db", postgres.Config{Driver: "mysql"})
	require.ErrorContains(t, err, `unknown driver "mysql"`)
}

func TestMigrateConcurrentlyAndIdempotent(t *testing.T) {
	dsn := pgtest.DSN(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			repo, err := postgres.Open(context.Background(), dsn, postgres.Config{TablePrefix: "jobs_"})
			if err != nil {
				errs <- err
				return
			}
			defer repo.Close()
			errs <- repo.Migrate(context.Background())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	db := sqlx.MustOpen("postgres", dsn)
	defer db.Close()
	var n int
	require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM jobs_schema_migration`))
	require.Equal(t, 7, n, "one row per migration")
}

// TestLaunchWaitsForFinalSave: a launch that finds an execution STARTED with
// a lapsed heartbeat while that execution's final save (COMPLETED) is in
// flight must see the save and refuse, not run the completed instance again.
func TestLaunchWaitsForFinalSave(t *testing.T) {
	ctx := context.Background()
	repo := open(t)
	db := repo.DB()
	e1, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "j"})
	require.NoError(t, err)
	e1.Status = batch.StatusStarted
	require.NoError(t, repo.UpdateJobExecution(ctx, e1))
	_, err = db.Exec(`UPDATE batch_job_execution SET heartbeat = now() - interval '1 hour' WHERE id = $1`, e1.ID)
	require.NoError(t, err)

	// The running process's final save, not committed yet.
	tx, err := db.Beginx()
	require.NoError(t, err)
	_, err = tx.Exec(`UPDATE batch_job_execution SET status = 'COMPLETED', exit_code = 'COMPLETED', version = version + 1 WHERE id = $1`, e1.ID)
	require.NoError(t, err)

	launched := make(chan error, 1)
	go func() {
		_, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "j", Lease: time.Second})
		launched <- err
	}()
	time.Sleep(200 * time.Millisecond) // the launch now waits for the row
	require.NoError(t, tx.Commit())
	require.ErrorIs(t, <-launched, batch.ErrJobComplete)
	var n int
	require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM batch_job_execution`))
	require.Equal(t, 1, n)
}

// TestLaunchOnADroppedConnection: a connection the server dropped while it
// sat idle in the pool (pg_terminate_backend, a server restart) does not
// fail the next launch: nothing had been sent on it, so the repository
// begins again on another connection. On both drivers.
func TestLaunchOnADroppedConnection(t *testing.T) {
	for _, driver := range []string{postgres.DriverPgx, postgres.DriverPQ} {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			repo := openWith(t, driver)
			db := repo.DB()
			db.SetMaxOpenConns(1) // one connection, reused
			var pid int
			require.NoError(t, db.Get(&pid, `SELECT pg_backend_pid()`))
			admin := sqlx.MustOpen("postgres", pgtest.ServerDSN(t))
			defer admin.Close()
			_, err := admin.Exec(`SELECT pg_terminate_backend($1)`, pid)
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				var n int
				return admin.Get(&n, `SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1`, pid) == nil && n == 0
			}, 5*time.Second, 10*time.Millisecond)

			e, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "after-drop"})
			require.NoError(t, err)
			require.NotZero(t, e.ID)
		})
	}
}
