package writer_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/postgres"
	"github.com/chunkwise/chunkwise/repository/sqlite"
	"github.com/chunkwise/chunkwise/writer"
)

type row struct {
	ID   int64
	Name string
}

type sqlRepo interface {
	repository.JobRepository
	DB() *sqlx.DB
}

func backends(t *testing.T) map[string]func(t *testing.T) sqlRepo {
	return map[string]func(t *testing.T) sqlRepo{
		"sqlite": func(t *testing.T) sqlRepo {
			r, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "b.db"), sqlite.Config{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = r.Close() })
			require.NoError(t, r.Migrate(context.Background()))
			return r
		},
		"postgres":    openPostgres(postgres.DriverPgx),
		"postgres-pq": openPostgres(postgres.DriverPQ),
	}
}

// openPostgres opens a PostgreSQL repository on a fresh schema, connected
// with driver.
func openPostgres(driver string) func(t *testing.T) sqlRepo {
	return func(t *testing.T) sqlRepo {
		r, err := postgres.Open(context.Background(), pgtest.DSN(t), postgres.Config{Driver: driver})
		require.NoError(t, err)
		t.Cleanup(func() { _ = r.Close() })
		require.NoError(t, r.Migrate(context.Background()))
		return r
	}
}

func newWriter(t *testing.T, db *sqlx.DB, maxParams int, suffix string) *writer.SQL[row] {
	w, err := writer.NewSQL(writer.SQLConfig[row]{
		DB: db, Table: "items", Columns: []string{"id", "name"},
		Values:    func(r row) []any { return []any{r.ID, r.Name} },
		MaxParams: maxParams, Suffix: suffix,
	})
	require.NoError(t, err)
	return w
}

func rows(n int, from int64) []row {
	out := make([]row, n)
	for i := range out {
		out[i] = row{ID: from + int64(i), Name: "n"}
	}
	return out
}

func count(t *testing.T, db *sqlx.DB) int {
	var n int
	require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM items`))
	return n
}

func TestSQLWriter(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			repo := open(t)
			db := repo.DB()
			_, err := db.Exec(`CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL)`)
			require.NoError(t, err)
			e, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "w"})
			require.NoError(t, err)
			s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "s", Status: batch.StatusStarted, StartTime: time.Now()}
			require.NoError(t, repo.CreateStepExecution(ctx, s))

			// Joined: a chunk whose checkpoint fails leaves no row behind.
			w := newWriter(t, db, 0, "")
			_, err = repo.CommitChunk(ctx, s, func(ctx context.Context) error { return w.Write(ctx, rows(10, 1)) })
			require.NoError(t, err)
			require.Equal(t, 10, count(t, db))
			stale := s.Clone()
			stale.Version = 99
			_, err = repo.CommitChunk(ctx, stale, func(ctx context.Context) error { return w.Write(ctx, rows(10, 11)) })
			require.ErrorIs(t, err, batch.ErrStaleVersion)
			require.Equal(t, 10, count(t, db), "rows roll back with the checkpoint")

			// Large chunks are split into several statements of the same transaction.
			split := newWriter(t, db, 6, "") // 3 rows per statement
			_, err = repo.CommitChunk(ctx, s, func(ctx context.Context) error { return split.Write(ctx, rows(10, 11)) })
			require.NoError(t, err)
			require.Equal(t, 20, count(t, db))

			// A failing statement rolls the whole chunk back and names the table.
			_, err = repo.CommitChunk(ctx, s, func(ctx context.Context) error { return split.Write(ctx, rows(10, 15)) })
			require.ErrorContains(t, err, "writer: sql insert into items")
			require.Equal(t, 20, count(t, db))

			// An upsert suffix makes the write idempotent.
			up := newWriter(t, db, 0, "ON CONFLICT (id) DO UPDATE SET name = excluded.name")
			_, err = repo.CommitChunk(ctx, s, func(ctx context.Context) error {
				return up.Write(ctx, []row{{ID: 1, Name: "changed"}, {ID: 21, Name: "new"}})
			})
			require.NoError(t, err)
			require.Equal(t, 21, count(t, db))
			var got string
			require.NoError(t, db.Get(&got, `SELECT name FROM items WHERE id = 1`))
			require.Equal(t, "changed", got)

			// Outside a chunk transaction it fails closed and writes nothing.
			err = w.Write(ctx, rows(2, 100))
			require.ErrorIs(t, err, batch.ErrNoChunkTx)
			require.Equal(t, 21, count(t, db))

			// A second pool on the same database cannot join either: the
			// rows would commit apart from the checkpoint.
			var second *sqlx.DB
			if name == "sqlite" {
				var file string
				require.NoError(t, db.Get(&file, `SELECT file FROM pragma_database_list WHERE name = 'main'`))
				second = sqlx.MustOpen("sqlite", sqlite.DSN(file))
			} else {
				second = sqlx.MustOpen("postgres", pgtest.DSN(t))
			}
			defer second.Close()
			other := newWriter(t, second, 0, "")
			_, err = repo.CommitChunk(ctx, s, func(ctx context.Context) error { return other.Write(ctx, rows(2, 200)) })
			require.ErrorIs(t, err, batch.ErrNoChunkTx)
			require.ErrorContains(t, err, "cannot span two connection pools")
			require.Equal(t, 21, count(t, db))
		})
	}
}

func TestSQLWriterOtherDatabaseCommitsFirst(t *testing.T) {
	ctx := context.Background()
	repo := backends(t)["sqlite"](t)
	target, err := sqlx.Open("sqlite", sqlite.DSN(filepath.Join(t.TempDir(), "target.db")))
	require.NoError(t, err)
	defer target.Close()
	_, err = target.Exec(`CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL)`)
	require.NoError(t, err)
	e, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "w"})
	require.NoError(t, err)
	s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "s", Status: batch.StatusStarted}
	require.NoError(t, repo.CreateStepExecution(ctx, s))
	// Joining is the default: on another database it fails, writing nothing.
	_, err = repo.CommitChunk(ctx, s, func(ctx context.Context) error { return newWriter(t, target, 0, "").Write(ctx, rows(5, 1)) })
	require.ErrorIs(t, err, batch.ErrNoChunkTx)
	require.Zero(t, count(t, target))

	// OwnTransaction: the rows commit on their own, before the checkpoint.
	w, err := writer.NewSQL(writer.SQLConfig[row]{
		DB: target, Table: "items", Columns: []string{"id", "name"},
		Values: func(r row) []any { return []any{r.ID, r.Name} }, OwnTransaction: true,
	})
	require.NoError(t, err)
	stale := s.Clone()
	stale.Version = 99
	_, err = repo.CommitChunk(ctx, stale, func(ctx context.Context) error { return w.Write(ctx, rows(5, 1)) })
	require.ErrorIs(t, err, batch.ErrStaleVersion)
	require.Equal(t, 5, count(t, target), "another database commits before the checkpoint: at most one chunk is redone")
}

func TestNewSQLValidates(t *testing.T) {
	db := sqlx.NewDb(nil, "postgres")
	vals := func(row) []any { return nil }
	cases := map[string]writer.SQLConfig[row]{
		"no DB":          {Table: "t", Columns: []string{"a"}, Values: vals},
		"invalid table":  {DB: db, Table: "t; DROP TABLE x", Columns: []string{"a"}, Values: vals},
		"invalid column": {DB: db, Table: "t", Columns: []string{"a b"}, Values: vals},
		"no columns":     {DB: db, Table: "t", Values: vals},
		"no values":      {DB: db, Table: "t", Columns: []string{"a"}},
		"tiny max":       {DB: db, Table: "t", Columns: []string{"a", "b"}, Values: vals, MaxParams: 1},
	}
	for name, cfg := range cases {
		_, err := writer.NewSQL(cfg)
		require.Error(t, err, name)
	}
	_, err := writer.NewSQL(writer.SQLConfig[row]{DB: db, Table: "public.t", Columns: []string{"a"}, Values: vals})
	require.NoError(t, err)
}

func TestSQLWriterWrongValueCount(t *testing.T) {
	repo := backends(t)["sqlite"](t)
	_, err := repo.DB().Exec(`CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL)`)
	require.NoError(t, err)
	w, err := writer.NewSQL(writer.SQLConfig[row]{DB: repo.DB(), Table: "items", Columns: []string{"id", "name"},
		Values: func(r row) []any { return []any{r.ID} }, OwnTransaction: true})
	require.NoError(t, err)
	err = w.Write(context.Background(), rows(2, 1))
	require.ErrorContains(t, err, "item 1 of the chunk: 1 values for 2 columns")
}

func TestSliceWriter(t *testing.T) {
	var s writer.Slice[int]
	require.NoError(t, s.Write(context.Background(), []int{1, 2}))
	require.NoError(t, s.Write(context.Background(), []int{3}))
	require.Equal(t, []int{1, 2, 3}, s.Items())
	require.Equal(t, 2, s.Chunks())
}
