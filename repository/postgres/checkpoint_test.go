package postgres_test

import (
	"context"
	"database/sql/driver"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/postgres"
)

// TestCheckpointAlone: a chunk whose writers did not join its transaction
// sends its checkpoint alone, without BEGIN and COMMIT around it (one round
// trip); a chunk a writer joined commits the writer's statements and the
// checkpoint in one transaction. The fence holds either way (the
// conformance suite's CommitChunk and CommitChunkSharedTx).
func TestCheckpointAlone(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	migrated, err := postgres.Open(ctx, dsn, postgres.Config{})
	require.NoError(t, err)
	require.NoError(t, migrated.Migrate(ctx))
	require.NoError(t, migrated.Close())

	counter, db, _ := cutOffWorker(t, dsn, func(dsn string) (driver.Connector, error) {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, err
		}
		return stdlib.GetConnector(*cfg), nil
	})
	repo, err := postgres.New(db, postgres.Config{})
	require.NoError(t, err)

	e, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "alone", Parameters: batch.JobParameters{"t": batch.StringParam(t.Name())}})
	require.NoError(t, err)
	s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "load", Status: batch.StatusStarted, Context: batch.ExecutionContext{}}
	require.NoError(t, repo.CreateStepExecution(ctx, s))

	before := counter.begins.Load()
	for i := 1; i <= 3; i++ {
		_, err := repo.CommitChunk(ctx, s, func(context.Context) error {
			s.WriteCount += 10
			return s.Context.Put("line", 10*i)
		})
		require.NoError(t, err)
	}
	require.Equal(t, before, counter.begins.Load(), "a checkpoint alone begins no transaction")
	last, err := repo.LastStepExecution(ctx, e.InstanceID, "load")
	require.NoError(t, err)
	require.Equal(t, int64(30), last.WriteCount)
	line, _ := last.Context.Int64("line")
	require.Equal(t, int64(30), line)

	_, err = repo.CommitChunk(ctx, s, func(ctx context.Context) error {
		tx, err := batch.JoinTx(ctx, db.DB)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `SELECT 1`)
		return err
	})
	require.NoError(t, err)
	require.Equal(t, before+1, counter.begins.Load(), "a chunk a writer joined is one transaction")
}
