package writer_test

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/writer"
)

func newCopy(t *testing.T, db *sqlx.DB) *writer.Copy[row] {
	w, err := writer.NewCopy(writer.CopyConfig[row]{DB: db, Table: "items", Columns: []string{"id", "name"},
		Values: func(r row) []any { return []any{r.ID, r.Name} }})
	require.NoError(t, err)
	return w
}

func TestCopyExactlyOnce(t *testing.T) {
	repo := backends(t)["postgres"](t)
	db := repo.DB()
	mustExec(t, db, `CREATE TABLE items (id BIGINT NOT NULL, name TEXT)`) // no key: a duplicate would show
	changes := runFailRestart(t, repo, batch.ItemWriter[row](newCopy(t, db)), rows(95, 1), 10, func(r row) bool { return r.ID == 55 })
	require.Equal(t, batch.Changes{Inserted: 95}, changes)
	var n, distinct int
	require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM items`))
	require.NoError(t, db.Get(&distinct, `SELECT COUNT(DISTINCT id) FROM items`))
	require.Equal(t, 95, n)
	require.Equal(t, 95, distinct, "every item copied exactly once")
}

func TestCopy(t *testing.T) {
	ctx := context.Background()
	repo := backends(t)["postgres"](t)
	db := repo.DB()
	mustExec(t, db, `CREATE TABLE items (id BIGINT NOT NULL CHECK (id < 100), name TEXT)`)
	commit := chunkCommit(t, repo)
	w := newCopy(t, db)

	// A row the server refuses is named by its line, its item number.
	err := commit(func(ctx context.Context) error { return w.Write(ctx, []row{{1, "a"}, {2, "b"}, {300, "c"}, {4, "d"}}) })
	require.ErrorContains(t, err, "writer: copy into items")
	require.ErrorContains(t, err, "line 3")
	var n int
	require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM items`))
	require.Zero(t, n)

	// NULLs and a schema-qualified table.
	var schema string
	require.NoError(t, db.Get(&schema, `SELECT current_schema()`))
	q, err := writer.NewCopy(writer.CopyConfig[row]{DB: db, Table: schema + ".items", Columns: []string{"id", "name"},
		Values: func(r row) []any { return []any{r.ID, nil} }})
	require.NoError(t, err)
	require.NoError(t, commit(func(ctx context.Context) error { return q.Write(ctx, rows(3, 1)) }))
	require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM items WHERE name IS NULL`))
	require.Equal(t, 3, n)

	// Outside a chunk transaction it fails closed.
	require.ErrorIs(t, w.Write(ctx, rows(1, 1)), batch.ErrNoChunkTx)

	// A wrong number of values names the item.
	short, err := writer.NewCopy(writer.CopyConfig[row]{DB: db, Table: "items", Columns: []string{"id", "name"},
		Values: func(r row) []any { return []any{r.ID} }})
	require.NoError(t, err)
	err = commit(func(ctx context.Context) error { return short.Write(ctx, rows(2, 1)) })
	require.ErrorContains(t, err, "writer: copy into items: item 1 of the chunk: 1 values for 2 columns")
}

func TestNewCopyNeedsPostgres(t *testing.T) {
	repo := backends(t)["sqlite"](t)
	_, err := writer.NewCopy(writer.CopyConfig[row]{DB: repo.DB(), Table: "items", Columns: []string{"id"},
		Values: func(r row) []any { return []any{r.ID} }})
	require.ErrorContains(t, err, "writer: copy into items: COPY needs PostgreSQL through lib/pq")
	require.ErrorContains(t, err, `"sqlite"`)
	_, err = writer.NewCopy(writer.CopyConfig[row]{Table: "items", Columns: []string{"id"}})
	require.ErrorContains(t, err, "no DB")
}
