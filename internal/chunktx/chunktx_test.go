package chunktx_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/internal/chunktx"
	"github.com/chunkwise/chunkwise/internal/pgtest"
)

// TestRawRefusesAnEndedTransaction: Raw never hands out the connection of a
// chunk transaction that ended behind database/sql's back — a callback that
// rolled it back against the rules, or the chunk's context ending — for
// what ran on it would then commit on its own, apart from the checkpoint.
func TestRawRefusesAnEndedTransaction(t *testing.T) {
	db := sqlx.NewDb(stdlib.OpenDB(*mustConfig(t, pgtest.DSN(t))), "postgres")
	t.Cleanup(func() { _ = db.Close() })
	_, err := db.Exec(`CREATE TABLE raw_rows (id INT)`)
	require.NoError(t, err)
	insert := func(ran *bool) func(dc any) error {
		return func(dc any) error {
			*ran = true
			_, err := dc.(*stdlib.Conn).Conn().Exec(context.Background(), `INSERT INTO raw_rows VALUES (1)`)
			return err
		}
	}
	rows := func() (n int) {
		require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM raw_rows`))
		_, err := db.Exec(`TRUNCATE raw_rows`)
		require.NoError(t, err)
		return n
	}

	t.Run("rolled back by a callback", func(t *testing.T) {
		tx := chunktx.New(context.Background(), db, nil)
		defer tx.Rollback()
		require.NoError(t, tx.Raw(func(dc any) error {
			_, err := dc.(*stdlib.Conn).Conn().Exec(context.Background(), `ROLLBACK`)
			return err
		}))
		ran := false
		require.ErrorIs(t, tx.Raw(insert(&ran)), sql.ErrTxDone)
		require.False(t, ran)
		require.Zero(t, rows())
	})

	t.Run("context done", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		tx := chunktx.New(ctx, db, nil)
		defer tx.Rollback()
		require.NoError(t, tx.Raw(func(any) error { return nil }), "the transaction begins")
		cancel()
		sqlTx, err := tx.Tx()
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			_, err := sqlTx.ExecContext(context.Background(), `SELECT 1`)
			return errors.Is(err, sql.ErrTxDone)
		}, 5*time.Second, 5*time.Millisecond, "database/sql rolls back on cancel")
		ran := false
		err = tx.Raw(insert(&ran))
		// Refused: the transaction is over, or database/sql closed the
		// connection when the rollback failed with the context.
		require.True(t, errors.Is(err, sql.ErrTxDone) || errors.Is(err, sql.ErrConnDone), "%v", err)
		require.False(t, ran)
		require.Zero(t, rows())
	})
}

func mustConfig(t *testing.T, dsn string) *pgx.ConnConfig {
	t.Helper()
	c, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	return c
}
