package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/repotest"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

func open(t *testing.T) *sqlite.Repository {
	repo, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "batch.db"), sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = repo.Close() })
	require.NoError(t, repo.Migrate(context.Background()))
	return repo
}

func TestConformance(t *testing.T) {
	repotest.Run(t, repotest.Harness{
		New: func(t *testing.T) repository.JobRepository { return open(t) },
		DB:  func(r repository.JobRepository) *sqlx.DB { return r.(*sqlite.Repository).DB() },
	})
}

func TestMigrateIsIdempotent(t *testing.T) {
	repo := open(t)
	require.NoError(t, repo.Migrate(context.Background()))
	var n int
	require.NoError(t, repo.DB().Get(&n, `SELECT COUNT(*) FROM batch_schema_migration`))
	require.Equal(t, 4, n, "one row per migration")
}

func TestTablePrefixValidated(t *testing.T) {
	_, err := sqlite.New(sqlx.NewDb(nil, "sqlite"), sqlite.Config{TablePrefix: "x; DROP TABLE y"})
	require.ErrorContains(t, err, "invalid table prefix")
}
