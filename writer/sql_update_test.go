package writer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/writer"
)

// price is an item for Update: a product's price and currency.
type price struct {
	ID       int64
	Amount   float64
	Currency *string
}

func createPrices(t *testing.T, db *sqlx.DB, n int) {
	mustExec(t, db, `CREATE TABLE prices (id BIGINT PRIMARY KEY, amount NUMERIC(10,2) NOT NULL, currency VARCHAR(3))`)
	for id := 1; id <= n; id++ {
		mustExec(t, db, `INSERT INTO prices VALUES (?, ?, NULL)`, id, float64(id))
	}
}

func newUpdate(t *testing.T, db *sqlx.DB, cfg writer.UpdateConfig[price]) *writer.Update[price] {
	cfg.DB, cfg.Table, cfg.Columns, cfg.Key = db, "prices", []string{"id", "amount", "currency"}, []string{"id"}
	cfg.Values = func(p price) []any { return []any{p.ID, p.Amount, p.Currency} }
	w, err := writer.NewUpdate(cfg)
	require.NoError(t, err)
	return w
}

func amounts(t *testing.T, db *sqlx.DB) map[int64]float64 {
	var rs []struct {
		ID     int64
		Amount float64
	}
	require.NoError(t, db.Select(&rs, `SELECT id, CAST(amount AS REAL) AS amount FROM prices`))
	out := map[int64]float64{}
	for _, r := range rs {
		out[r.ID] = r.Amount
	}
	return out
}

// TestUpdateCountsThroughRestart updates 100 rows, 30 of them to the values
// they have, failing half way and restarting.
func TestUpdateCountsThroughRestart(t *testing.T) {
	for name, open := range backends(t) {
		for _, skip := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/skip=%v", name, skip), func(t *testing.T) {
				t.Parallel()
				repo := open(t)
				db := repo.DB()
				createPrices(t, db, 100)
				items := make([]price, 100)
				for i := range items {
					id := int64(i + 1)
					items[i] = price{ID: id, Amount: float64(id)}
					if id%10 >= 3 {
						items[i].Amount = float64(id) * 2
					}
				}
				w := newUpdate(t, db, writer.UpdateConfig[price]{SkipUnchanged: skip})
				changes := runFailRestart(t, repo, batch.ItemWriter[price](w), items, 10, func(p price) bool { return p.ID == 55 })
				want := batch.Changes{Updated: 70, Unchanged: 30}
				if !skip {
					want = batch.Changes{Updated: 100}
				}
				require.Equal(t, want, changes)
				got := amounts(t, db)
				for _, it := range items {
					require.Equal(t, it.Amount, got[it.ID], "id %d", it.ID)
				}
			})
		}
	}
}

func TestUpdate(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			repo := open(t)
			db := repo.DB()
			createPrices(t, db, 10)
			commit := chunkCommit(t, repo)
			eur := "EUR"

			// NULLs compare equal; split statements add their counts up.
			split := newUpdate(t, db, writer.UpdateConfig[price]{SkipUnchanged: true, MaxParams: 9}) // 3 rows per statement
			items := []price{{ID: 1, Amount: 1}, {ID: 2, Amount: 2, Currency: &eur}, {ID: 3, Amount: 30}, {ID: 4, Amount: 4},
				{ID: 5, Amount: 5}, {ID: 6, Amount: 6}, {ID: 7, Amount: 70}}
			changes, err := runOnce(t, repo, split, items, 100)
			require.NoError(t, err)
			require.Equal(t, batch.Changes{Updated: 3, Unchanged: 4}, changes)
			var cur string
			require.NoError(t, db.Get(&cur, `SELECT currency FROM prices WHERE id = 2`))
			require.Equal(t, "EUR", cur)

			// An item that matches no row fails the chunk, named with its key.
			for _, w := range []*writer.Update[price]{split, newUpdate(t, db, writer.UpdateConfig[price]{})} {
				err = commit(func(ctx context.Context) error {
					return w.Write(ctx, []price{{ID: 1, Amount: 100}, {ID: 2, Amount: 100}, {ID: 99, Amount: 1}, {ID: 4, Amount: 100}})
				})
				require.ErrorIs(t, err, writer.ErrNoRow)
				require.ErrorContains(t, err, "writer: update prices: item 3 of the chunk (id=99): writer: no row has the item's key")
				require.Equal(t, float64(1), amounts(t, db)[1], "the chunk rolled back")
			}

			// AllowMissing passes it over.
			lax := newUpdate(t, db, writer.UpdateConfig[price]{SkipUnchanged: true, AllowMissing: true})
			changes, err = runOnce(t, repo, lax, []price{{ID: 1, Amount: 1}, {ID: 99, Amount: 1}, {ID: 2, Amount: 200, Currency: &eur}}, 100)
			require.NoError(t, err)
			require.Equal(t, batch.Changes{Updated: 1, Unchanged: 1}, changes)

			// Two items with one key.
			err = commit(func(ctx context.Context) error {
				return lax.Write(ctx, []price{{ID: 1, Amount: 5}, {ID: 1, Amount: 6}})
			})
			require.ErrorContains(t, err, "writer: update prices: item 2 of the chunk (id=1) has the key of item 1")

			// A value the column refuses names the item.
			long := "EURO"
			err = commit(func(ctx context.Context) error { return lax.Write(ctx, []price{{ID: 1, Amount: 5, Currency: &long}}) })
			if name == "postgres" { // SQLite does not enforce VARCHAR lengths
				require.ErrorContains(t, err, "writer: update prices: item 1 of the chunk (id=1): ")
			}
		})
	}
}

func TestNewUpdateValidates(t *testing.T) {
	db := sqlx.NewDb(nil, "sqlite")
	vals := func(price) []any { return nil }
	cases := map[string]writer.UpdateConfig[price]{
		"no DB":            {Table: "t", Columns: []string{"a", "b"}, Key: []string{"a"}, Values: vals},
		"invalid table":    {DB: db, Table: "1t", Columns: []string{"a", "b"}, Key: []string{"a"}, Values: vals},
		"nothing to set":   {DB: db, Table: "t", Columns: []string{"a"}, Key: []string{"a"}, Values: vals},
		"no key":           {DB: db, Table: "t", Columns: []string{"a", "b"}, Values: vals},
		"qualified col":    {DB: db, Table: "t", Columns: []string{"a", "t.b"}, Key: []string{"a"}, Values: vals},
		"no values":        {DB: db, Table: "t", Columns: []string{"a", "b"}, Key: []string{"a"}},
		"other database":   {DB: sqlx.NewDb(nil, "sqlserver"), Table: "t", Columns: []string{"a", "b"}, Key: []string{"a"}, Values: vals},
		"key listed twice": {DB: db, Table: "t", Columns: []string{"a", "b"}, Key: []string{"a", "a"}, Values: vals},
	}
	for name, cfg := range cases {
		_, err := writer.NewUpdate(cfg)
		require.ErrorContains(t, err, "writer: update", name)
	}
}

func TestDeleteThroughRestart(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			repo := open(t)
			db := repo.DB()
			createAccounts(t, db)
			for _, a := range accounts(100, "x") {
				mustExec(t, db, `INSERT INTO accounts VALUES (?, ?, ?, NULL)`, a.Region, a.ID, a.Name)
			}
			w, err := writer.NewDelete(writer.DeleteConfig[account]{DB: db, Table: "accounts", Key: []string{"region", "id"},
				Values: func(a account) []any { return []any{a.Region, a.ID} }})
			require.NoError(t, err)
			// Ids 1-80, then 75-80 again (their rows gone by then), and 20 keys of no row.
			items := accounts(80, "")
			items = append(items, items[74:]...)
			for _, a := range accounts(20, "") {
				a.Region = "asia"
				items = append(items, a)
			}
			changes := runFailRestart(t, repo, batch.ItemWriter[account](w), items, 10, func(a account) bool { return a.ID == 45 })
			require.Equal(t, batch.Changes{Deleted: 80}, changes)
			left := accountNames(t, db)
			require.Len(t, left, 20)
			for id := 81; id <= 100; id++ {
				require.Contains(t, left, fmt.Sprintf("%s/%d", []string{"us", "eu"}[id%2], id))
			}

			// One column key, split statements.
			one, err := writer.NewDelete(writer.DeleteConfig[int64]{DB: db, Table: "accounts", Key: []string{"id"},
				Values: func(id int64) []any { return []any{id} }, MaxParams: 7})
			require.NoError(t, err)
			changes, err = runOnce(t, repo, one, []int64{81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 1000}, 100)
			require.NoError(t, err)
			require.Equal(t, batch.Changes{Deleted: 10}, changes)
			require.Len(t, accountNames(t, db), 10)
		})
	}
}

func TestNewDeleteValidates(t *testing.T) {
	db := sqlx.NewDb(nil, "postgres")
	vals := func(int) []any { return nil }
	cases := map[string]writer.DeleteConfig[int]{
		"no DB":         {Table: "t", Key: []string{"a"}, Values: vals},
		"invalid table": {DB: db, Table: "t.u.v", Key: []string{"a"}, Values: vals},
		"no key":        {DB: db, Table: "t", Values: vals},
		"invalid key":   {DB: db, Table: "t", Key: []string{"a-b"}, Values: vals},
		"no values":     {DB: db, Table: "t", Key: []string{"a"}},
		"tiny max":      {DB: db, Table: "t", Key: []string{"a", "b"}, Values: vals, MaxParams: 1},
	}
	for name, cfg := range cases {
		_, err := writer.NewDelete(cfg)
		require.ErrorContains(t, err, "writer: delete", name)
	}
}
