package writer_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/writer"
)

func byParity(r row) string { return []string{"even", "odd"}[r.ID%2] }

func TestRoute(t *testing.T) {
	ctx := context.Background()
	var even, odd writer.Slice[row]
	r, err := writer.NewRoute(writer.RouteConfig[row, string]{Key: byParity,
		Writers: map[string]batch.ItemWriter[row]{"even": &even, "odd": &odd}})
	require.NoError(t, err)
	require.NoError(t, r.Write(ctx, rows(5, 1)))
	require.NoError(t, r.Write(ctx, rows(3, 6)))
	require.Equal(t, []row{{2, "n"}, {4, "n"}, {6, "n"}, {8, "n"}}, even.Items(), "items keep their order")
	require.Equal(t, []row{{1, "n"}, {3, "n"}, {5, "n"}, {7, "n"}}, odd.Items())
	require.Equal(t, 2, even.Chunks())

	// A writer that gets no item is not called.
	require.NoError(t, r.Write(ctx, []row{{ID: 10}}))
	require.Equal(t, 2, odd.Chunks())

	// Writers are called in the order of their first item.
	var order []string
	rec := func(name string) batch.WriterFunc[row] {
		return func(context.Context, []row) error { order = append(order, name); return nil }
	}
	r, err = writer.NewRoute(writer.RouteConfig[row, string]{Key: byParity,
		Writers: map[string]batch.ItemWriter[row]{"even": rec("even"), "odd": rec("odd")}})
	require.NoError(t, err)
	require.NoError(t, r.Write(ctx, []row{{ID: 2}, {ID: 1}}))
	require.NoError(t, r.Write(ctx, []row{{ID: 1}, {ID: 2}}))
	require.Equal(t, []string{"even", "odd", "odd", "even"}, order)

	// Keys sharing a writer: their items together, in order.
	var small writer.Slice[row]
	byID, err := writer.NewRoute(writer.RouteConfig[row, int64]{Key: func(r row) int64 { return r.ID },
		Writers: map[int64]batch.ItemWriter[row]{1: &small, 2: &small, 3: &small}})
	require.NoError(t, err)
	require.NoError(t, byID.Write(ctx, rows(3, 1)))
	require.Equal(t, rows(3, 1), small.Items())
	require.Equal(t, 1, small.Chunks())

	// A key without a writer is an error naming the item, before anything
	// is written.
	err = byID.Write(ctx, rows(5, 1))
	require.ErrorIs(t, err, writer.ErrNoRoute)
	require.EqualError(t, err, "writer: route: item 4 of the chunk (key 4): writer: route: no writer for the item's key")
	require.Equal(t, 1, small.Chunks())

	// Unless there is a Default.
	var rest writer.Slice[row]
	byID, err = writer.NewRoute(writer.RouteConfig[row, int64]{Key: func(r row) int64 { return r.ID },
		Writers: map[int64]batch.ItemWriter[row]{1: &small}, Default: &rest})
	require.NoError(t, err)
	require.NoError(t, byID.Write(ctx, rows(3, 1)))
	require.Equal(t, rows(2, 2), rest.Items())

	// A failing writer is named with the key of its first item.
	fail := batch.WriterFunc[row](func(context.Context, []row) error { return errors.New("refused") })
	r, err = writer.NewRoute(writer.RouteConfig[row, string]{Key: byParity,
		Writers: map[string]batch.ItemWriter[row]{"even": &even, "odd": fail}})
	require.NoError(t, err)
	err = r.Write(ctx, rows(4, 1))
	require.EqualError(t, err, `writer: route: writer for key "odd" (batch.WriterFunc[writer_test.row], given 2 of the chunk's 4 items): refused`)
	r, err = writer.NewRoute(writer.RouteConfig[row, string]{Key: byParity,
		Writers: map[string]batch.ItemWriter[row]{"even": &even}, Default: fail})
	require.NoError(t, err)
	err = r.Write(ctx, rows(4, 1))
	require.EqualError(t, err, `writer: route: default writer (batch.WriterFunc[writer_test.row], given 2 of the chunk's 4 items): refused`)

	_, err = writer.NewRoute(writer.RouteConfig[row, string]{Writers: map[string]batch.ItemWriter[row]{"a": &even}})
	require.ErrorContains(t, err, "no Key")
	_, err = writer.NewRoute(writer.RouteConfig[row, string]{Key: byParity})
	require.ErrorContains(t, err, "no Writers")
	_, err = writer.NewRoute(writer.RouteConfig[row, string]{Key: byParity, Writers: map[string]batch.ItemWriter[row]{"a": nil}})
	require.ErrorContains(t, err, `the writer for key "a" is nil`)
}

func TestRouteForwardsStreams(t *testing.T) {
	var log []string
	a, b, c := &streamWriter{name: "a", log: &log}, &streamWriter{name: "b", log: &log}, &streamWriter{name: "c", log: &log}
	r, err := writer.NewRoute(writer.RouteConfig[row, int64]{Key: func(r row) int64 { return r.ID % 3 },
		Writers: map[int64]batch.ItemWriter[row]{0: a, 1: b, 2: a}, Default: c})
	require.NoError(t, err)
	repo := backends(t)["sqlite"](t)
	_, err = runOnce(t, repo, r, rows(4, 1), 4)
	require.NoError(t, err)
	require.Equal(t, []string{"open a", "open b", "open c", "update a", "update b", "update c", "update a", "update b", "update c",
		"close c", "close b", "close a"}, log)
	require.Equal(t, []row{{1, "n"}, {4, "n"}}, b.Items())
	require.Equal(t, []row{{2, "n"}, {3, "n"}}, a.Items())
	require.Empty(t, c.Items())

	log = nil
	c.openErr = errors.New("no disk")
	require.EqualError(t, r.Open(context.Background(), batch.ExecutionContext{}), "writer: route: open default writer (*writer_test.streamWriter): no disk")
	require.Equal(t, []string{"open a", "open b", "open c", "close b", "close a"}, log)
}

// TestRouteTablesThroughRestart routes items to two tables in the chunk's
// transaction, failing half way and restarting: every row once, in its table.
func TestRouteTablesThroughRestart(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			repo := open(t)
			db := repo.DB()
			w := map[string]batch.ItemWriter[row]{}
			for _, table := range []string{"even", "odd"} {
				mustExec(t, db, `CREATE TABLE `+table+` (id BIGINT NOT NULL, name TEXT NOT NULL)`)
				sw, err := writer.NewSQL(writer.SQLConfig[row]{DB: db, Table: table, Columns: []string{"id", "name"},
					Values: func(r row) []any { return []any{r.ID, r.Name} }})
				require.NoError(t, err)
				w[table] = sw
			}
			r, err := writer.NewRoute(writer.RouteConfig[row, string]{Key: byParity, Writers: w})
			require.NoError(t, err)
			changes := runFailRestart(t, repo, batch.ItemWriter[row](r), rows(95, 1), 10, func(r row) bool { return r.ID == 55 })
			require.Equal(t, batch.Changes{Inserted: 95}, changes)
			for table, parity := range map[string]int{"even": 0, "odd": 1} {
				var ids []int64
				require.NoError(t, db.Select(&ids, `SELECT id FROM `+table+` ORDER BY id`))
				require.Len(t, ids, 47+parity)
				for i, id := range ids {
					require.Equal(t, int64(2*i+2-parity), id, table)
				}
			}
		})
	}
}
