package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/repository/postgres"
	"github.com/chunkwise/chunkwise/repository/repotest"
)

func open(t *testing.T) *postgres.Repository {
	repo, err := postgres.Open(context.Background(), pgtest.DSN(t), postgres.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = repo.Close() })
	require.NoError(t, repo.Migrate(context.Background()))
	return repo
}

func TestConformance(t *testing.T) {
	repotest.Run(t, repotest.Harness{
		New: func(t *testing.T) batch.JobRepository { return open(t) },
		DB:  func(r batch.JobRepository) *sqlx.DB { return r.(*postgres.Repository).DB() },
	})
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
	require.Equal(t, 1, n)
}
