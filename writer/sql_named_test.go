package writer_test

import (
	"context"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/writer"
)

type hit struct {
	ID    int64 `db:"id"`
	Delta int64 `db:"delta"`
}

// TestNamedExactlyOnce adds to counters — a write that a redone chunk would
// show twice — failing half way and restarting.
func TestNamedExactlyOnce(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			repo := open(t)
			db := repo.DB()
			mustExec(t, db, `CREATE TABLE counters (id BIGINT PRIMARY KEY, hits BIGINT NOT NULL)`)
			for id := 1; id <= 50; id++ {
				mustExec(t, db, `INSERT INTO counters VALUES (?, 0)`, id)
			}
			w, err := writer.NewNamed(writer.NamedConfig[hit]{DB: db, Query: `UPDATE counters SET hits = hits + :delta WHERE id = :id`,
				Affected: writer.AffectedUpdated})
			require.NoError(t, err)
			items := make([]hit, 60) // ids 51-60 have no row: 0 rows affected
			for i := range items {
				items[i] = hit{ID: int64(i + 1), Delta: 1}
			}
			changes := runFailRestart(t, repo, batch.ItemWriter[hit](w), items, 7, func(h hit) bool { return h.ID == 30 })
			require.Equal(t, batch.Changes{Updated: 50}, changes)
			var hits []int64
			require.NoError(t, db.Select(&hits, `SELECT hits FROM counters ORDER BY id`))
			for i, h := range hits {
				require.Equal(t, int64(1), h, "id %d", i+1)
			}
		})
	}
}

func TestNamed(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			repo := open(t)
			db := repo.DB()
			mustExec(t, db, `CREATE TABLE log (id BIGINT NOT NULL CHECK (id < 100), delta BIGINT)`)
			commit := chunkCommit(t, repo)

			for _, c := range []struct {
				affected writer.Affected
				want     batch.Changes
			}{
				{writer.AffectedInserted, batch.Changes{Inserted: 2}},
				{writer.AffectedNotCounted, batch.Changes{}},
			} {
				w, err := writer.NewNamed(writer.NamedConfig[hit]{DB: db, Query: `INSERT INTO log (id, delta) VALUES (:id, :delta)`, Affected: c.affected})
				require.NoError(t, err)
				changes, err := runOnce(t, repo, w, []hit{{1, 1}, {2, 2}}, 10)
				require.NoError(t, err)
				require.Equal(t, c.want, changes)
			}
			del, err := writer.NewNamed(writer.NamedConfig[hit]{DB: db, Query: `DELETE FROM log WHERE id = :id`, Affected: writer.AffectedDeleted})
			require.NoError(t, err)
			changes, err := runOnce(t, repo, del, []hit{{ID: 1}, {ID: 3}}, 10)
			require.NoError(t, err)
			require.Equal(t, batch.Changes{Deleted: 2}, changes)

			// A failing item is named, the chunk rolls back.
			ins, err := writer.NewNamed(writer.NamedConfig[hit]{DB: db, Query: `INSERT INTO log (id, delta)
				VALUES (:id, :delta)`})
			require.NoError(t, err)
			err = commit(func(ctx context.Context) error { return ins.Write(ctx, []hit{{5, 0}, {500, 0}}) })
			require.ErrorContains(t, err, `writer: named "INSERT INTO log (id, delta) VALUES (:id,…": item 2 of the chunk: `)
			var n int
			require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM log`))
			require.Equal(t, 2, n)

			// Open prepares: a statement the database refuses fails the step's open.
			bad, err := writer.NewNamed(writer.NamedConfig[hit]{DB: db, Query: `INSERT INTO nowhere (id) VALUES (:id)`})
			require.NoError(t, err)
			require.ErrorContains(t, bad.Open(ctx, batch.ExecutionContext{}), `writer: named "INSERT INTO nowhere (id) VALUES (:id)": prepare: `)
			_, err = runOnce(t, repo, bad, []hit{{ID: 1}}, 10)
			var se *batch.StepError
			require.ErrorAs(t, err, &se)
			require.Equal(t, "open", se.Phase)

			// Outside a chunk it fails closed.
			require.ErrorIs(t, ins.Write(ctx, []hit{{7, 0}}), batch.ErrNoChunkTx)
			require.NoError(t, ins.Close(ctx))
		})
	}
}

func TestNewNamedValidates(t *testing.T) {
	db := sqlx.NewDb(nil, "sqlite")
	_, err := writer.NewNamed(writer.NamedConfig[hit]{Query: "DELETE FROM t"})
	require.ErrorContains(t, err, "writer: named: no DB")
	_, err = writer.NewNamed(writer.NamedConfig[hit]{DB: db})
	require.ErrorContains(t, err, "writer: named: no Query")
	_, err = writer.NewNamed(writer.NamedConfig[hit]{DB: db, Query: "DELETE FROM t WHERE id = :id AND x = :missing"})
	require.ErrorContains(t, err, `writer: named "DELETE FROM t WHERE id = :id AND x = :mi…": a parameter has no field in writer_test.hit: `)
	require.ErrorContains(t, err, "missing")
	_, err = writer.NewNamed(writer.NamedConfig[*hit]{DB: db, Query: "DELETE FROM t WHERE id = :id AND x = :missing"})
	require.ErrorContains(t, err, "missing")
	_, err = writer.NewNamed(writer.NamedConfig[hit]{DB: db, Query: "DELETE FROM t", Affected: 7})
	require.ErrorContains(t, err, "invalid Affected")
	_, err = writer.NewNamed(writer.NamedConfig[map[string]any]{DB: db, Query: "DELETE FROM t WHERE id = :id"})
	require.NoError(t, err, "a map's keys are known only per item")
}
