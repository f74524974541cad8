package writer_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository/sqlite"
	"github.com/chunkwise/chunkwise/writer"
)

// account has a two-column key and a nullable column.
type account struct {
	Region string
	ID     int64
	Name   string
	Note   *string
}

func accountValues(a account) []any { return []any{a.Region, a.ID, a.Name, a.Note} }

func createAccounts(t *testing.T, db *sqlx.DB) {
	mustExec(t, db, `CREATE TABLE accounts (region TEXT NOT NULL, id BIGINT NOT NULL, name TEXT NOT NULL, note TEXT,
		PRIMARY KEY (region, id))`)
}

// accounts returns items 1..n: odd ids in region "eu", even in "us".
func accounts(n int, name string) []account {
	out := make([]account, n)
	for i := range out {
		id := int64(i + 1)
		out[i] = account{Region: []string{"us", "eu"}[id%2], ID: id, Name: name}
	}
	return out
}

func accountNames(t *testing.T, db *sqlx.DB) map[string]string {
	var rs []struct {
		Region string
		ID     int64
		Name   string
	}
	require.NoError(t, db.Select(&rs, `SELECT region, id, name FROM accounts`))
	out := map[string]string{}
	for _, r := range rs {
		out[fmt.Sprintf("%s/%d", r.Region, r.ID)] = r.Name
	}
	return out
}

func newUpsert(t *testing.T, db *sqlx.DB, skip bool) *writer.Upsert[account] {
	w, err := writer.NewUpsert(writer.UpsertConfig[account]{
		DB: db, Table: "accounts", Columns: []string{"region", "id", "name", "note"}, Key: []string{"region", "id"},
		Values: accountValues, SkipUnchanged: skip,
	})
	require.NoError(t, err)
	return w
}

// TestUpsertCountsThroughRestart upserts 100 items over 40 pre-seeded rows
// (20 equal to their item, note NULL on both sides; 20 different), failing
// half way and restarting, and reads the counts from the step executions.
func TestUpsertCountsThroughRestart(t *testing.T) {
	for name, open := range backends(t) {
		for _, skip := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/skip=%v", name, skip), func(t *testing.T) {
				t.Parallel()
				repo := open(t)
				db := repo.DB()
				createAccounts(t, db)
				for _, a := range accounts(40, "new") {
					if a.ID > 20 {
						a.Name = "old"
					}
					mustExec(t, db, `INSERT INTO accounts VALUES (?, ?, ?, NULL)`, a.Region, a.ID, a.Name)
				}
				changes := runFailRestart(t, repo, batch.ItemWriter[account](newUpsert(t, db, skip)), accounts(100, "new"), 10,
					func(a account) bool { return a.ID == 55 })
				want := batch.Changes{Inserted: 60, Updated: 20, Unchanged: 20}
				if !skip {
					want = batch.Changes{Inserted: 60, Updated: 40}
				}
				require.Equal(t, want, changes)
				got := accountNames(t, db)
				require.Len(t, got, 100)
				for k, v := range got {
					require.Equal(t, "new", v, k)
				}
			})
		}
	}
}

func TestUpsert(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			repo := open(t)
			db := repo.DB()
			createAccounts(t, db)
			commit := chunkCommit(t, repo)

			// Several statements per chunk, their counts added up.
			split, err := writer.NewUpsert(writer.UpsertConfig[account]{
				DB: db, Table: "accounts", Columns: []string{"region", "id", "name", "note"}, Key: []string{"region", "id"},
				Values: accountValues, SkipUnchanged: true, MaxParams: 12, // 3 rows per statement
			})
			require.NoError(t, err)
			changes, err := runOnce(t, repo, split, accounts(10, "a"), 100)
			require.NoError(t, err)
			require.Equal(t, batch.Changes{Inserted: 10}, changes)
			note := "n"
			items := accounts(12, "a")
			items[0].Note = &note // changed: NULL to "n"
			items[1].Name = "b"   // changed
			changes, err = runOnce(t, repo, split, items, 100)
			require.NoError(t, err)
			require.Equal(t, batch.Changes{Inserted: 2, Updated: 2, Unchanged: 8}, changes)
			var n int
			require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM accounts WHERE note = 'n' OR name = 'b'`))
			require.Equal(t, 2, n)

			// Two items with one key in a chunk: an error naming both, nothing written.
			dup := []account{{Region: "eu", ID: 100, Name: "x"}, {Region: "us", ID: 101}, {Region: "eu", ID: 100, Name: "y"}}
			err = commit(func(ctx context.Context) error { return split.Write(ctx, dup) })
			require.ErrorContains(t, err, `writer: upsert accounts: item 3 of the chunk (region="eu", id=100) has the key of item 1`)
			require.Len(t, accountNames(t, db), 12)

			// A failing statement names the table and, for a single row, the item and its key.
			one, err := writer.NewUpsert(writer.UpsertConfig[account]{
				DB: db, Table: "accounts", Columns: []string{"region", "id", "name"}, Key: []string{"region", "id"},
				Values: func(a account) []any { return []any{a.Region, a.ID, nil} }, // name is NOT NULL
			})
			require.NoError(t, err)
			err = commit(func(ctx context.Context) error { return one.Write(ctx, []account{{Region: "us", ID: 7}}) })
			require.ErrorContains(t, err, `writer: upsert accounts: item 1 of the chunk (region="us", id=7): `)
			err = commit(func(ctx context.Context) error { return one.Write(ctx, accounts(2, "")) })
			require.ErrorContains(t, err, `writer: upsert accounts: items 1-2 of the chunk: `)
			require.Len(t, accountNames(t, db), 12)

			// Only the Update columns are set.
			nameOnly, err := writer.NewUpsert(writer.UpsertConfig[account]{
				DB: db, Table: "accounts", Columns: []string{"region", "id", "name", "note"}, Key: []string{"region", "id"},
				Update: []string{"name"}, Values: accountValues,
			})
			require.NoError(t, err)
			other := "other"
			changes, err = runOnce(t, repo, nameOnly, []account{{Region: "eu", ID: 1, Name: "c", Note: &other}}, 100)
			require.NoError(t, err)
			require.Equal(t, batch.Changes{Updated: 1}, changes)
			var got struct {
				Name string
				Note *string
			}
			require.NoError(t, db.Get(&got, `SELECT name, note FROM accounts WHERE region = 'eu' AND id = 1`))
			require.Equal(t, "c", got.Name)
			require.Equal(t, "n", *got.Note)
		})
	}
}

// TestUpsertKeyOnly: when every column is in the key, existing rows are
// left alone (DO NOTHING) and count as unchanged.
func TestUpsertKeyOnly(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			repo := open(t)
			db := repo.DB()
			mustExec(t, db, `CREATE TABLE tags (region TEXT NOT NULL, id BIGINT NOT NULL, PRIMARY KEY (region, id))`)
			w, err := writer.NewUpsert(writer.UpsertConfig[account]{
				DB: db, Table: "tags", Columns: []string{"region", "id"}, Key: []string{"region", "id"},
				Values: func(a account) []any { return []any{a.Region, a.ID} },
			})
			require.NoError(t, err)
			changes, err := runOnce(t, repo, w, accounts(5, ""), 100)
			require.NoError(t, err)
			require.Equal(t, batch.Changes{Inserted: 5}, changes)
			changes, err = runOnce(t, repo, w, accounts(8, ""), 3)
			require.NoError(t, err)
			require.Equal(t, batch.Changes{Inserted: 3, Unchanged: 5}, changes)
		})
	}
}

// TestUpsertOwnTransaction: on another database the upsert commits on its
// own, and a chunk written again changes nothing more.
func TestUpsertOwnTransaction(t *testing.T) {
	repo := backends(t)["sqlite"](t)
	target, err := sqlx.Open("sqlite", sqlite.DSN(filepath.Join(t.TempDir(), "target.db")))
	require.NoError(t, err)
	defer target.Close()
	createAccounts(t, target)
	joined := newUpsert(t, target, true)
	_, err = runOnce(t, repo, joined, accounts(3, "a"), 10)
	require.ErrorIs(t, err, batch.ErrNoChunkTx)

	own, err := writer.NewUpsert(writer.UpsertConfig[account]{
		DB: target, Table: "accounts", Columns: []string{"region", "id", "name", "note"}, Key: []string{"region", "id"},
		Values: accountValues, SkipUnchanged: true, OwnTransaction: true,
	})
	require.NoError(t, err)
	changes, err := runOnce(t, repo, own, accounts(3, "a"), 10)
	require.NoError(t, err)
	require.Equal(t, batch.Changes{Inserted: 3}, changes)
	changes, err = runOnce(t, repo, own, accounts(3, "a"), 10)
	require.NoError(t, err)
	require.Equal(t, batch.Changes{Unchanged: 3}, changes, "a redone chunk changes nothing")
}

func TestNewUpsertValidates(t *testing.T) {
	db := sqlx.NewDb(nil, "postgres")
	vals := func(account) []any { return nil }
	cols := []string{"a", "b"}
	cases := map[string]writer.UpsertConfig[account]{
		"no DB":            {Table: "t", Columns: cols, Key: []string{"a"}, Values: vals},
		"invalid table":    {DB: db, Table: "t; DROP TABLE x", Columns: cols, Key: []string{"a"}, Values: vals},
		"invalid column":   {DB: db, Table: "t", Columns: []string{"a b"}, Key: []string{"a b"}, Values: vals},
		"no columns":       {DB: db, Table: "t", Key: []string{"a"}, Values: vals},
		"no key":           {DB: db, Table: "t", Columns: cols, Values: vals},
		"key not a column": {DB: db, Table: "t", Columns: cols, Key: []string{"c"}, Values: vals},
		"duplicate column": {DB: db, Table: "t", Columns: []string{"a", "a"}, Key: []string{"a"}, Values: vals},
		"no values":        {DB: db, Table: "t", Columns: cols, Key: []string{"a"}},
		"update unknown":   {DB: db, Table: "t", Columns: cols, Key: []string{"a"}, Update: []string{"c"}, Values: vals},
		"update a key":     {DB: db, Table: "t", Columns: cols, Key: []string{"a"}, Update: []string{"a"}, Values: vals},
		"tiny max":         {DB: db, Table: "t", Columns: cols, Key: []string{"a"}, Values: vals, MaxParams: 1},
		"other database":   {DB: sqlx.NewDb(nil, "mysql"), Table: "t", Columns: cols, Key: []string{"a"}, Values: vals},
	}
	for name, cfg := range cases {
		_, err := writer.NewUpsert(cfg)
		require.Error(t, err, name)
		require.ErrorContains(t, err, "writer: upsert", name)
	}
	_, err := writer.NewUpsert(writer.UpsertConfig[account]{DB: db, Table: "s.t", Columns: cols, Key: []string{"a"}, Values: vals})
	require.NoError(t, err)
}
