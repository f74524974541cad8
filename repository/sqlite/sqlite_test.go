package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
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
	require.Equal(t, 7, n, "one row per migration")
}

func TestTablePrefixValidated(t *testing.T) {
	_, err := sqlite.New(sqlx.NewDb(nil, "sqlite"), sqlite.Config{TablePrefix: "x; DROP TABLE y"})
	require.ErrorContains(t, err, "invalid table prefix")
}

// TestHeartbeatsOnTheirOwnConnection: while a chunk holds the main pool's
// connection, a heartbeat and a progress display's reads do not open a
// second one there, which later chunks would use and fill a page cache on.
func TestHeartbeatsOnTheirOwnConnection(t *testing.T) {
	ctx := context.Background()
	repo := open(t)
	e, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "import",
		Parameters: batch.JobParameters{"day": batch.StringParam("1")}, Lease: time.Minute})
	require.NoError(t, err)
	held, err := repo.DB().Conn(ctx) // the chunk's
	require.NoError(t, err)
	defer held.Close()
	require.Equal(t, 1, repo.DB().Stats().OpenConnections)

	status, err := repo.Heartbeat(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusStarting, status)
	got, err := repo.Monitor().JobExecution(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, e.ID, got.ID)
	_, err = repo.Monitor().StepExecutions(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, 1, repo.DB().Stats().OpenConnections, "the main pool opened another connection")

	// A repository on a pool of one's own has no other pool: it is its
	// own monitor.
	own, err := sqlite.New(repo.DB(), sqlite.Config{})
	require.NoError(t, err)
	require.Same(t, own, own.Monitor())
}
