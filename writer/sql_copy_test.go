package writer_test

import (
	"context"
	"testing"
	"time"

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

// postgresDrivers runs test on a PostgreSQL repository of each driver.
func postgresDrivers(t *testing.T, test func(t *testing.T, repo sqlRepo)) {
	for _, name := range []string{"postgres", "postgres-pq"} {
		t.Run(name, func(t *testing.T) { test(t, backends(t)[name](t)) })
	}
}

func TestCopyExactlyOnce(t *testing.T) { postgresDrivers(t, testCopyExactlyOnce) }

func testCopyExactlyOnce(t *testing.T, repo sqlRepo) {
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

func TestCopy(t *testing.T) { postgresDrivers(t, testCopy) }

func testCopy(t *testing.T, repo sqlRepo) {
	ctx := context.Background()
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
	require.ErrorContains(t, err, "writer: copy into items: COPY needs PostgreSQL through pgx or lib/pq")
	require.ErrorContains(t, err, `"sqlite"`)
	_, err = writer.NewCopy(writer.CopyConfig[row]{Table: "items", Columns: []string{"id"}})
	require.ErrorContains(t, err, "no DB")
}

// TestCopyTypes copies the usual column types, from the Go values a Values
// function returns for them (strings included, as read from a file), with
// OwnTransaction outside any chunk, and reads them back the same on both
// drivers.
func TestCopyTypes(t *testing.T) { postgresDrivers(t, testCopyTypes) }

func testCopyTypes(t *testing.T, repo sqlRepo) {
	ctx := context.Background()
	db := repo.DB()
	mustExec(t, db, `CREATE TABLE typed (id BIGINT, Amount NUMERIC(14, 2), price NUMERIC, at TIMESTAMP, atz TIMESTAMPTZ,
		ok BOOLEAN, raw BYTEA, note TEXT, day DATE, ratio DOUBLE PRECISION)`)
	at := time.Date(2026, 11, 30, 23, 59, 58, 123456000, time.UTC)
	type item struct{ vals []any }
	w, err := writer.NewCopy(writer.CopyConfig[item]{DB: db, OwnTransaction: true, Table: "Typed",
		Columns: []string{"id", "AMOUNT", "price", "at", "atz", "ok", "raw", "note", "day", "ratio"},
		Values:  func(it item) []any { return it.vals }})
	require.NoError(t, err)
	require.NoError(t, w.Write(ctx, []item{
		{[]any{int64(1), 12.5, "3.14159", at, at, true, []byte{0, 1, 2}, "café", at, 0.25}},
		{[]any{2, int64(7), 2.5, nil, nil, nil, nil, nil, nil, nil}},
	}))
	var got []struct {
		ID     int64
		Amount string
		Price  string
		At     *time.Time
		Atz    *time.Time
		Ok     *bool
		Raw    []byte
		Note   *string
		Day    *string
		Ratio  *float64
	}
	require.NoError(t, db.Select(&got, `SELECT id, amount::text, price::text, at, atz, ok, raw, note, day::text AS day, ratio FROM typed ORDER BY id`))
	require.Len(t, got, 2)
	require.Equal(t, "12.50", got[0].Amount)
	require.Equal(t, "3.14159", got[0].Price)
	require.True(t, at.Equal(*got[0].At), "%v", got[0].At)
	require.True(t, at.Equal(*got[0].Atz), "%v", got[0].Atz)
	require.True(t, *got[0].Ok)
	require.Equal(t, []byte{0, 1, 2}, got[0].Raw)
	require.Equal(t, "café", *got[0].Note)
	require.Equal(t, "2026-11-30", *got[0].Day)
	require.Equal(t, 0.25, *got[0].Ratio)
	require.Equal(t, "7.00", got[1].Amount)
	require.Equal(t, "2.5", got[1].Price)
	require.Nil(t, got[1].At)
	require.Nil(t, got[1].Note)
}
