package writer_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/writer"
)

// streamWriter is a writer that is also a stream; it records the calls it
// gets in a log shared by several.
type streamWriter struct {
	name    string
	log     *[]string
	openErr error
	writer.Slice[row]
}

func (s *streamWriter) Open(context.Context, batch.ExecutionContext) error {
	*s.log = append(*s.log, "open "+s.name)
	return s.openErr
}

func (s *streamWriter) Update(_ context.Context, ec batch.ExecutionContext) error {
	*s.log = append(*s.log, "update "+s.name)
	return ec.Put("test."+s.name, len(s.Items()))
}

func (s *streamWriter) Close(context.Context) error {
	*s.log = append(*s.log, "close "+s.name)
	return nil
}

// TestCompositeOneTransaction writes each chunk to two tables; the second
// refuses a row (a CHECK constraint), which rolls back the first table's
// rows of the chunk too.
func TestCompositeOneTransaction(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			repo := open(t)
			db := repo.DB()
			mustExec(t, db, `CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL)`)
			mustExec(t, db, `CREATE TABLE audit (id BIGINT NOT NULL CHECK (id <> 55))`)
			audit, err := writer.NewNamed(writer.NamedConfig[row]{DB: db, Query: `INSERT INTO audit (id) VALUES (:id)`, Affected: writer.AffectedInserted})
			require.NoError(t, err)
			items := newWriter(t, db, 0, "")
			both, err := writer.NewComposite[row](items, audit)
			require.NoError(t, err)
			_, err = runOnce(t, repo, both, rows(100, 1), 10)
			require.ErrorContains(t, err, `writer: composite: writer 2 of 2 (*writer.Named[writer_test.row]): writer: named "INSERT INTO audit (id) VALUES (:id)": item 5 of the chunk: `)
			for _, table := range []string{"items", "audit"} {
				var n, max int
				require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM `+table))
				require.NoError(t, db.Get(&max, `SELECT MAX(id) FROM `+table))
				require.Equal(t, 50, n, table)
				require.Equal(t, 50, max, table)
			}
		})
	}
}

func TestCompositeForwardsStreams(t *testing.T) {
	var log []string
	a, b := &streamWriter{name: "a", log: &log}, &streamWriter{name: "b", log: &log}
	var plain writer.Slice[row]
	c, err := writer.NewComposite[row](a, &plain, b, a) // a twice: written twice, opened once
	require.NoError(t, err)
	repo := backends(t)["sqlite"](t)
	_, err = runOnce(t, repo, c, rows(5, 1), 2)
	require.NoError(t, err)
	require.Len(t, a.Items(), 10)
	require.Len(t, b.Items(), 5)
	require.Len(t, plain.Items(), 5)
	require.Equal(t, []string{
		"open a", "open b",
		"update a", "update b", // the step records the streams' starting state
		"update a", "update b", "update a", "update b", "update a", "update b",
		"close b", "close a",
	}, log)

	// A stream that fails to open: the ones opened before are closed, and
	// the error names it.
	log = nil
	b.openErr = errors.New("no disk")
	err = c.Open(context.Background(), batch.ExecutionContext{})
	require.ErrorContains(t, err, "writer: composite: open writer 3 of 4 (*writer_test.streamWriter): no disk")
	require.Equal(t, []string{"open a", "open b", "close a"}, log)

	// A failing writer is named, and the ones after it are not called.
	fail := batch.WriterFunc[row](func(context.Context, []row) error { return errors.New("refused") })
	var after writer.Slice[row]
	c, err = writer.NewComposite[row](&plain, fail, &after)
	require.NoError(t, err)
	err = c.Write(context.Background(), rows(1, 1))
	require.EqualError(t, err, "writer: composite: writer 2 of 3 (batch.WriterFunc[writer_test.row]): refused")
	require.Empty(t, after.Items())

	_, err = writer.NewComposite[row]()
	require.ErrorContains(t, err, "no writers")
	_, err = writer.NewComposite[row](&plain, nil)
	require.ErrorContains(t, err, "writer 2 of 2 is nil")
}

// TestCompositeChangesAddUp: the changes every writer reports are added up.
func TestCompositeChangesAddUp(t *testing.T) {
	repo := backends(t)["sqlite"](t)
	db := repo.DB()
	mustExec(t, db, `CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL)`)
	mustExec(t, db, `CREATE TABLE counts (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)`)
	up, err := writer.NewUpsert(writer.UpsertConfig[row]{DB: db, Table: "counts", Columns: []string{"id", "n"}, Key: []string{"id"},
		Values: func(r row) []any { return []any{r.ID % 3, 1} }, SkipUnchanged: true})
	require.NoError(t, err)
	c, err := writer.NewComposite[row](newWriter(t, db, 0, ""), up)
	require.NoError(t, err)
	changes, err := runOnce(t, repo, c, rows(9, 1), 3)
	require.NoError(t, err)
	require.Equal(t, batch.Changes{Inserted: 9 + 3, Unchanged: 6}, changes)
}
