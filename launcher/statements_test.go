package launcher_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/qustavo/sqlhooks/v2"
	"github.com/stretchr/testify/require"
	sqlitedrv "modernc.org/sqlite"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/postgres"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

// statementCounter counts the statements a database/sql driver runs.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) Before(ctx context.Context, _ string, _ ...any) (context.Context, error) {
	c.n.Add(1)
	return ctx, nil
}

func (c *statementCounter) After(ctx context.Context, _ string, _ ...any) (context.Context, error) {
	return ctx, nil
}

var (
	pqStatements     statementCounter
	pgxStatements    statementCounter
	sqliteStatements statementCounter
)

func init() {
	sql.Register("postgres-counted", sqlhooks.Wrap(&pq.Driver{}, &pqStatements))
	sql.Register("pgx-counted", sqlhooks.Wrap(stdlib.GetDefaultDriver(), &pgxStatements))
	sql.Register("sqlite-counted", sqlhooks.Wrap(&sqlitedrv.Driver{}, &sqliteStatements))
}

// TestStatementsIndependentOfHistory counts the statements a launch and a
// chunk commit send to the job repository, with 10 and with 10,000 earlier
// executions of the job: the same number, and one statement per chunk
// commit — the checkpoint.
func TestStatementsIndependentOfHistory(t *testing.T) {
	type backend struct {
		counter *statementCounter
		open    func(t *testing.T) (repository.JobRepository, *sqlx.DB)
	}
	backends := map[string]backend{
		"sqlite": {&sqliteStatements, func(t *testing.T) (repository.JobRepository, *sqlx.DB) {
			sdb, err := sql.Open("sqlite-counted", sqlite.DSN(filepath.Join(t.TempDir(), "b.db")))
			require.NoError(t, err)
			db := sqlx.NewDb(sdb, "sqlite")
			t.Cleanup(func() { _ = db.Close() })
			db.SetMaxOpenConns(1)
			repo, err := sqlite.New(db, sqlite.Config{})
			require.NoError(t, err)
			require.NoError(t, repo.Migrate(context.Background()))
			return repo, db
		}},
		"postgres-pq":  {&pqStatements, openCountedPostgres("postgres-counted")},
		"postgres-pgx": {&pgxStatements, openCountedPostgres("pgx-counted")},
	}
	for name, b := range backends {
		t.Run(name, func(t *testing.T) {
			// Not parallel: the counter is the driver's.
			type counts struct{ launch, perChunk int64 }
			measure := func(history int) counts {
				repo, db := b.open(t)
				addHistory(t, db, history)
				l, err := launcher.New(launcher.Config{Repository: repo, HeartbeatInterval: time.Hour})
				require.NoError(t, err)
				run := func(run, chunks int) int64 {
					step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
						Reader: reader.FromSlice(make([]int, 10*chunks)), ChunkSize: 10,
						Writer: batch.WriterFunc[int](func(context.Context, []int) error { return nil }),
					})
					require.NoError(t, err)
					job, err := batch.NewJob("history", batch.JobConfig{Steps: []batch.Step{step}})
					require.NoError(t, err)
					before := b.counter.n.Load()
					_, err = l.Run(context.Background(), job, batch.JobParameters{"run": batch.IntParam(int64(run))})
					require.NoError(t, err)
					return b.counter.n.Load() - before
				}
				run(-1, 1) // prepares what is prepared once
				five, ten := run(-2, 5), run(-3, 10)
				perChunk := (ten - five) / 5
				return counts{launch: five - 5*perChunk, perChunk: perChunk}
			}
			few, many := measure(10), measure(10_000)
			t.Logf("%d statements per run besides the chunks, %d per chunk commit", few.launch, few.perChunk)
			require.Equal(t, int64(1), few.perChunk, "one statement per chunk commit: the checkpoint")
			require.Equal(t, few, many, "the same statements with 10,000 earlier executions as with 10")
		})
	}
}

// openCountedPostgres opens a PostgreSQL repository on a fresh schema
// through the counting driver named driver.
func openCountedPostgres(driver string) func(t *testing.T) (repository.JobRepository, *sqlx.DB) {
	return func(t *testing.T) (repository.JobRepository, *sqlx.DB) {
		dsn := pgtest.DSN(t)
		// Migrations run several statements at once, which only the
		// simple protocol takes: they run on a plain connection.
		plain, err := postgres.Open(context.Background(), dsn, postgres.Config{})
		require.NoError(t, err)
		require.NoError(t, plain.Migrate(context.Background()))
		require.NoError(t, plain.Close())
		sdb, err := sql.Open(driver, dsn)
		require.NoError(t, err)
		db := sqlx.NewDb(sdb, "postgres")
		t.Cleanup(func() { _ = db.Close() })
		repo, err := postgres.New(db, postgres.Config{})
		require.NoError(t, err)
		return repo, db
	}
}

// addHistory adds n completed executions of the job "history", each of an
// instance of its own, with one completed step.
func addHistory(t *testing.T, db *sqlx.DB, n int) {
	t.Helper()
	now := time.Now().UTC()
	for _, st := range []struct {
		q    string
		args []any
	}{
		{`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
			INSERT INTO batch_job_instance (job_name, job_key, create_time)
			SELECT 'history', 'old-' || i, ? FROM n`, []any{n, now}},
		{`INSERT INTO batch_job_execution (job_instance_id, version, status, exit_code, exit_description,
			create_time, start_time, end_time, last_updated, heartbeat, parameters, context)
			SELECT id, 2, 'COMPLETED', 'COMPLETED', '', ?, ?, ?, ?, ?, '{}', '{}' FROM batch_job_instance`,
			[]any{now, now, now, now, now}},
		{`INSERT INTO batch_step_execution (job_execution_id, step_name, version, status, exit_code,
			exit_description, start_time, end_time, last_updated, read_count, write_count, filter_count,
			commit_count, rollback_count, read_skip_count, process_skip_count, write_skip_count, context)
			SELECT id, 'load', 3, 'COMPLETED', 'COMPLETED', '', ?, ?, ?, 10, 10, 0, 1, 0, 0, 0, 0, '{}'
			FROM batch_job_execution`, []any{now, now, now}},
	} {
		_, err := db.Exec(db.Rebind(st.q), st.args...)
		require.NoError(t, err, st.q)
	}
	var count int
	require.NoError(t, db.Get(&count, `SELECT COUNT(*) FROM batch_job_execution`))
	require.Equal(t, n, count)
}
