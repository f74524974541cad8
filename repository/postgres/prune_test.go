package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/postgres"
)

// addHistory inserts n completed executions of job, one step execution
// each, ended 100 days ago, in one statement per table.
func addHistory(t *testing.T, db *sqlx.DB, job string, n int) {
	t.Helper()
	for _, q := range []string{
		`INSERT INTO batch_job_instance (job_name, job_key, create_time)
			SELECT $1, 'old-' || g, now() - interval '100 days' FROM generate_series(1, $2) g`,
		`INSERT INTO batch_job_execution (job_instance_id, version, status, exit_code, exit_description, create_time,
			start_time, end_time, last_updated, heartbeat, parameters, context)
			SELECT i.id, 1, 'COMPLETED', 'COMPLETED', '', i.create_time, i.create_time, i.create_time, i.create_time,
				i.create_time, '{}', '{}' FROM batch_job_instance i WHERE i.job_name = $1 AND i.job_key LIKE 'old-%'
				AND $2 > 0`,
		`INSERT INTO batch_step_execution (job_execution_id, step_name, version, status, exit_code, exit_description,
			start_time, end_time, last_updated, read_count, write_count, filter_count, commit_count, rollback_count,
			read_skip_count, process_skip_count, write_skip_count, context)
			SELECT e.id, 'load', 1, 'COMPLETED', 'COMPLETED', '', e.end_time, e.end_time, e.end_time, 10, 10, 0, 1, 0,
				0, 0, 0, '{}' FROM batch_job_execution e JOIN batch_job_instance i ON i.id = e.job_instance_id
				WHERE i.job_name = $1 AND i.job_key LIKE 'old-%' AND $2 > 0`,
	} {
		_, err := db.Exec(q, job, n)
		require.NoError(t, err)
	}
	_, err := db.Exec(`ANALYZE`)
	require.NoError(t, err)
}

// TestPruneBesideARunningChunk: a prune of the same job's history goes
// through while a chunk of a running execution holds its locks (its
// checkpoint saved, its COMMIT not sent): the prune never waits for a
// running job's rows. The prune's lock timeout is 300ms: a wait would fail
// it.
func TestPruneBesideARunningChunk(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	admin, err := postgres.Open(ctx, dsn, postgres.Config{})
	require.NoError(t, err)
	defer admin.Close()
	require.NoError(t, admin.Migrate(ctx))
	addHistory(t, admin.DB(), "nightly", 5000)

	conn, workerDB, app := cutOffWorker(t, dsn, nil)
	worker, err := postgres.New(workerDB, postgres.Config{})
	require.NoError(t, err)

	e, err := worker.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "nightly",
		Parameters: batch.JobParameters{"day": batch.StringParam("today")}})
	require.NoError(t, err)
	s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "load", Status: batch.StatusStarted, Context: batch.ExecutionContext{}}
	require.NoError(t, worker.CreateStepExecution(ctx, s))
	committed := commitHeld(t, conn, worker, s, admin.DB(), app)

	pruner, err := postgres.Open(ctx, dsn, postgres.Config{LockTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	defer pruner.Close()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := pruner.Prune(pctx, repository.PruneRequest{OlderThan: 30 * 24 * time.Hour, BatchSize: 1000})
	require.NoError(t, err)
	require.Equal(t, int64(5000), res.Total().Executions)
	require.Equal(t, int64(5000), res.Total().StepExecutions)
	require.Equal(t, int64(5000), res.Total().Instances)

	close(conn.release)
	require.NoError(t, <-committed, "the running chunk commits")
	last, err := admin.LastStepExecution(ctx, e.InstanceID, "load")
	require.NoError(t, err)
	require.Equal(t, s.Version, last.Version)
}
