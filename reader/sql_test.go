package reader_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

// dbTask is the item of the SQL reader tests: a row of the tasks table.
type dbTask struct {
	ID    int64     `db:"id"`
	DueAt time.Time `db:"due_at"`
	State string    `db:"state"`
	Note  string    `db:"note"` // NULL does not scan: a bad row
}

// eachSQLDatabase runs fn against a fresh SQLite file and a fresh PostgreSQL
// schema.
func eachSQLDatabase(t *testing.T, fn func(t *testing.T, db *sqlx.DB)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, sqliteFile(t))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		db, _ := pgtest.DB(t)
		fn(t, db)
	})
}

func sqliteFile(t testing.TB) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("sqlite", sqlite.DSN(filepath.Join(t.TempDir(), "data.db")))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// taskTime0 has microseconds, the precision both databases keep.
var taskTime0 = time.Date(2024, 5, 1, 9, 0, 0, 123456000, time.UTC)

// taskDue gives the tasks few distinct due times, out of id order, so that a
// key (due_at, id) has long runs of equal first columns.
func taskDue(id int64) time.Time { return taskTime0.Add(time.Duration((id*7)%4) * time.Hour) }

// createTasks creates table with n open tasks, ids 1..n.
func createTasks(t testing.TB, db *sqlx.DB, table string, n int) []dbTask {
	t.Helper()
	timeType := "TIMESTAMPTZ"
	if db.DriverName() == "sqlite" {
		timeType = "DATETIME" // the type the driver reads back as a time.Time
	}
	_, err := db.Exec(fmt.Sprintf(`CREATE TABLE %s (id BIGINT PRIMARY KEY, due_at %s NOT NULL, state TEXT NOT NULL, note TEXT)`, table, timeType))
	require.NoError(t, err)
	var tasks []dbTask
	for id := int64(1); id <= int64(n); id++ {
		tasks = append(tasks, dbTask{ID: id, DueAt: taskDue(id), State: "open", Note: fmt.Sprintf("n%d", id)})
	}
	insertTasks(t, db, table, tasks...)
	return tasks
}

func insertTasks(t testing.TB, db *sqlx.DB, table string, tasks ...dbTask) {
	t.Helper()
	for _, tk := range tasks {
		_, err := db.Exec(db.Rebind(`INSERT INTO `+table+` (id, due_at, state, note) VALUES (?, ?, ?, ?)`), tk.ID, tk.DueAt, tk.State, tk.Note)
		require.NoError(t, err)
	}
}

// idsByKey sorts tasks by (due_at, id) and returns their ids.
func idsByKey(tasks []dbTask) []int64 {
	tasks = slices.Clone(tasks)
	sort.Slice(tasks, func(i, j int) bool {
		if !tasks[i].DueAt.Equal(tasks[j].DueAt) {
			return tasks[i].DueAt.Before(tasks[j].DueAt)
		}
		return tasks[i].ID < tasks[j].ID
	})
	var ids []int64
	for _, tk := range tasks {
		ids = append(ids, tk.ID)
	}
	return ids
}

func newKeyset(t testing.TB, cfg reader.KeysetConfig[dbTask]) *reader.Keyset[dbTask] {
	t.Helper()
	if cfg.Key == nil {
		cfg.Key = []string{"due_at", "id"}
	}
	k, err := reader.NewKeyset(cfg)
	require.NoError(t, err)
	return k
}

// readTaskIDs reads up to max items (all when max < 0) and returns their ids;
// it fails the test on an error other than io.EOF.
func readTaskIDs(t testing.TB, r batch.ItemReader[dbTask], max int) []int64 {
	t.Helper()
	var ids []int64
	for max < 0 || len(ids) < max {
		tk, err := r.Read(context.Background())
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		ids = append(ids, tk.ID)
	}
	return ids
}

// sqlCheckpoint stores s's position in a new context and returns what a
// repository gives back of it: its JSON, decoded again.
func sqlCheckpoint(t testing.TB, s batch.ItemStream) batch.ExecutionContext {
	t.Helper()
	ec := batch.ExecutionContext{}
	require.NoError(t, s.Update(context.Background(), ec))
	b, err := json.Marshal(ec)
	require.NoError(t, err)
	var back batch.ExecutionContext
	require.NoError(t, json.Unmarshal(b, &back))
	return back
}

func TestKeysetPaging(t *testing.T) {
	t.Parallel()
	eachSQLDatabase(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		for _, c := range []struct{ rows, page int }{
			{0, 5}, {1, 5}, {5, 5}, {15, 5}, {17, 5}, {20, 1}, {20, 2}, {20, 1000}, {20, 0},
		} {
			table := fmt.Sprintf("tasks_%d_%d", c.rows, c.page)
			tasks := createTasks(t, db, table, c.rows)
			k := newKeyset(t, reader.KeysetConfig[dbTask]{DB: db, From: table, PageSize: c.page})
			require.NoError(t, k.Open(ctx, batch.ExecutionContext{}))
			require.Equal(t, idsByKey(tasks), readTaskIDs(t, k, -1), "%d rows, page size %d", c.rows, c.page)
			_, err := k.Read(ctx)
			require.Equal(t, io.EOF, err, "io.EOF again")
			require.NoError(t, k.Close(ctx))
		}

		// A filter with arguments, the key's columns qualified, a select list.
		tasks := createTasks(t, db, "filtered", 30)
		_, err := db.Exec(`UPDATE filtered SET state = 'done' WHERE id % 3 = 0`)
		require.NoError(t, err)
		var open []dbTask
		for _, tk := range tasks {
			if tk.ID%3 != 0 && tk.ID > 4 {
				open = append(open, tk)
			}
		}
		k := newKeyset(t, reader.KeysetConfig[dbTask]{
			DB: db, Select: "f.id, f.due_at, f.state, f.note", From: "filtered f", Where: "f.state = ? AND f.id > ?",
			Args: []any{"open", 4}, Key: []string{"f.due_at", "f.id"}, PageSize: 4,
		})
		require.NoError(t, k.Open(ctx, batch.ExecutionContext{}))
		require.Equal(t, idsByKey(open), readTaskIDs(t, k, -1))
	})
}

// A page sees the table as it is when it is read: a row inserted ahead of
// the position is read, one inserted behind it is not.
func TestKeysetSeesEachPageAsItIs(t *testing.T) {
	t.Parallel()
	eachSQLDatabase(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		createTasks(t, db, "tasks", 6)
		k := newKeyset(t, reader.KeysetConfig[dbTask]{DB: db, From: "tasks", Key: []string{"id"}, PageSize: 3})
		require.NoError(t, k.Open(ctx, batch.ExecutionContext{}))
		require.Equal(t, []int64{1, 2, 3, 4}, readTaskIDs(t, k, 4))
		_, err := db.Exec(`DELETE FROM tasks WHERE id IN (1, 5)`)
		require.NoError(t, err)
		insertTasks(t, db, "tasks", dbTask{ID: 0, DueAt: taskTime0, State: "open"}, dbTask{ID: 10, DueAt: taskTime0, State: "open"})
		// 5 was on the page already read; 0 is behind the position.
		require.Equal(t, []int64{5, 6, 10}, readTaskIDs(t, k, -1))
	})
}

// A restart at every position, through the JSON a repository stores, with
// a time as the first key column: every row is read once, in order.
func TestKeysetRestartWithTimeKey(t *testing.T) {
	t.Parallel()
	eachSQLDatabase(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		tasks := createTasks(t, db, "tasks", 13)
		want := idsByKey(tasks)
		cfg := reader.KeysetConfig[dbTask]{Name: "due", DB: db, From: "tasks", PageSize: 4}
		for at := 0; at <= len(tasks); at++ {
			first := newKeyset(t, cfg)
			require.NoError(t, first.Open(ctx, batch.ExecutionContext{}))
			got := readTaskIDs(t, first, at)
			ec := sqlCheckpoint(t, first)
			_, err := first.Read(ctx) // read ahead of the checkpoint: not committed
			if at < len(tasks) {
				require.NoError(t, err)
			}
			require.NoError(t, first.Close(ctx))

			second := newKeyset(t, cfg)
			require.NoError(t, second.Open(ctx, ec))
			got = append(got, readTaskIDs(t, second, -1)...)
			require.Equal(t, want, got, "restart after %d items", at)
			if at == 5 {
				last := tasks[want[4]-1]
				require.JSONEq(t, fmt.Sprintf(`[%q, %d]`, last.DueAt.Format(time.RFC3339Nano), last.ID), string(ec["due.key"]))
				require.JSONEq(t, `["due_at", "id"]`, string(ec["due.columns"]))
			}
		}

		// A checkpoint taken with another key cannot resume.
		ec := batch.ExecutionContext{}
		require.NoError(t, ec.Put("due.columns", []string{"id"}))
		require.NoError(t, ec.Put("due.key", []any{3}))
		err := newKeyset(t, cfg).Open(ctx, ec)
		require.ErrorContains(t, err, "reader: keyset due: restore: the checkpoint was taken with key (id), the reader's key is (due_at, id)")
	})
}

// A row that does not scan is an error of its own Read, naming its key; the
// reader goes on after it, even when it ends a page, and keeps the restart
// position at the last item returned.
func TestKeysetBadRow(t *testing.T) {
	t.Parallel()
	eachSQLDatabase(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		createTasks(t, db, "tasks", 8)
		_, err := db.Exec(`UPDATE tasks SET note = NULL WHERE id IN (3, 4, 8)`) // 3 ends the first page, 8 the table
		require.NoError(t, err)
		k := newKeyset(t, reader.KeysetConfig[dbTask]{DB: db, From: "tasks", Key: []string{"id"}, PageSize: 3})
		require.NoError(t, k.Open(ctx, batch.ExecutionContext{}))
		var ids []int64
		var bad []string
		var ec batch.ExecutionContext
		for {
			tk, err := k.Read(ctx)
			if err == io.EOF {
				break
			}
			var re *reader.RowError
			if errors.As(err, &re) {
				bad = append(bad, re.Key)
				require.Equal(t, "keyset tasks", re.Reader)
				if re.Key == "id=3" {
					require.Regexp(t, `^reader: keyset tasks: row with key \(id=3\): sql: Scan error on column index \d+, name "note": converting NULL to string is unsupported$`, err.Error())
					ec = sqlCheckpoint(t, k)
				}
				continue
			}
			require.NoError(t, err)
			ids = append(ids, tk.ID)
		}
		require.Equal(t, []int64{1, 2, 5, 6, 7}, ids)
		require.Equal(t, []string{"id=3", "id=4", "id=8"}, bad)

		// The checkpoint taken after the bad row is at the item before it: a
		// restart meets the bad row again.
		require.JSONEq(t, `[2]`, string(ec["tasks.key"]))
		require.NoError(t, k.Close(ctx))
		require.NoError(t, k.Open(ctx, ec))
		_, err = k.Read(ctx)
		require.ErrorContains(t, err, "row with key (id=3)")
	})
}

// A failed page query is returned from Read, naming where the page starts,
// and the next Read asks for the same page again.
func TestKeysetQueryErrorIsRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqliteFile(t)
	_, err := db.Exec(`CREATE TABLE docs (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`)
	require.NoError(t, err)
	for id := 1; id <= 6; id++ {
		body := "{}"
		if id == 5 {
			body = "not json"
		}
		_, err := db.Exec(`INSERT INTO docs VALUES (?, ?)`, id, body)
		require.NoError(t, err)
	}
	type doc struct {
		ID   int64  `db:"id"`
		Body string `db:"body"`
	}
	k, err := reader.NewKeyset(reader.KeysetConfig[doc]{DB: db, Select: "id, json(body) AS body", From: "docs", Key: []string{"id"}, PageSize: 2})
	require.NoError(t, err)
	require.NoError(t, k.Open(ctx, batch.ExecutionContext{}))
	for want := int64(1); want <= 4; want++ {
		d, err := k.Read(ctx)
		require.NoError(t, err)
		require.Equal(t, want, d.ID)
	}
	for range 2 {
		_, err = k.Read(ctx)
		require.ErrorContains(t, err, "reader: keyset docs: page after key (id=4): ")
		require.ErrorContains(t, err, "malformed JSON")
	}
	_, err = db.Exec(`UPDATE docs SET body = '[]' WHERE id = 5`)
	require.NoError(t, err)
	d, err := k.Read(ctx)
	require.NoError(t, err)
	require.Equal(t, doc{ID: 5, Body: "[]"}, d)
}

func TestKeysetOpenReadClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqliteFile(t)
	createTasks(t, db, "tasks", 5)
	k := newKeyset(t, reader.KeysetConfig[dbTask]{DB: db, From: "tasks", Key: []string{"id"}, PageSize: 2})
	_, err := k.Read(ctx)
	require.ErrorContains(t, err, "reader: keyset tasks: not open")
	require.NoError(t, k.Open(ctx, batch.ExecutionContext{}))
	require.ErrorContains(t, k.Open(ctx, batch.ExecutionContext{}), "reader: keyset tasks: already open")
	require.Equal(t, []int64{1, 2, 3}, readTaskIDs(t, k, 3))

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = k.Read(cancelled)
	require.ErrorIs(t, err, context.Canceled)

	// Close forgets the position; Open starts again.
	require.NoError(t, k.Close(ctx))
	require.NoError(t, k.Close(ctx))
	require.ErrorContains(t, k.Update(ctx, batch.ExecutionContext{}), "not open")
	require.NoError(t, k.Open(ctx, batch.ExecutionContext{}))
	require.Equal(t, []int64{1, 2, 3, 4, 5}, readTaskIDs(t, k, -1))

	// A select list with a column T has no field for fails the page.
	bad := newKeyset(t, reader.KeysetConfig[dbTask]{DB: db, Select: "*, 1 AS extra", From: "tasks", Key: []string{"id"}})
	require.NoError(t, bad.Open(ctx, batch.ExecutionContext{}))
	_, err = bad.Read(ctx)
	require.ErrorContains(t, err, "reader: keyset tasks: page after the start: column extra has no field in reader_test.dbTask")
}

func TestNewKeysetValidates(t *testing.T) {
	t.Parallel()
	db := sqlx.NewDb(nil, "sqlite")
	for name, c := range map[string]struct {
		cfg reader.KeysetConfig[dbTask]
		err string
	}{
		"no DB":        {reader.KeysetConfig[dbTask]{From: "tasks", Key: []string{"id"}}, "reader: keyset tasks: DB is required"},
		"no From":      {reader.KeysetConfig[dbTask]{DB: db, Key: []string{"id"}}, "reader: keyset keyset: From is required"},
		"no Key":       {reader.KeysetConfig[dbTask]{DB: db, From: "tasks"}, "reader: keyset tasks: Key is required"},
		"bad key":      {reader.KeysetConfig[dbTask]{DB: db, From: "tasks", Key: []string{"id; DROP TABLE tasks"}}, `invalid key column "id; DROP TABLE tasks"`},
		"expression":   {reader.KeysetConfig[dbTask]{DB: db, From: "tasks", Key: []string{"lower(state)"}}, `invalid key column "lower(state)"`},
		"no field":     {reader.KeysetConfig[dbTask]{DB: db, From: "tasks", Key: []string{"created_at"}}, "key column created_at has no field in reader_test.dbTask"},
		"twice":        {reader.KeysetConfig[dbTask]{DB: db, From: "tasks t", Key: []string{"id", "t.id"}}, "reader: keyset keyset: key column id twice"},
		"negative":     {reader.KeysetConfig[dbTask]{DB: db, From: "tasks", Key: []string{"id"}, PageSize: -1}, "negative PageSize -1"},
		"named reader": {reader.KeysetConfig[dbTask]{Name: "due", From: "tasks"}, "reader: keyset due: DB is required"},
	} {
		_, err := reader.NewKeyset(c.cfg)
		require.ErrorContains(t, err, c.err, name)
	}
	_, err := reader.NewKeyset(reader.KeysetConfig[int64]{DB: db, From: "tasks", Key: []string{"id"}})
	require.ErrorContains(t, err, "the item type int64 is not a struct")
}

func newCursor(t testing.TB, cfg reader.CursorConfig[dbTask]) *reader.Cursor[dbTask] {
	t.Helper()
	if cfg.Query == "" {
		cfg.Query = `SELECT * FROM tasks ORDER BY due_at, id`
	}
	c, err := reader.NewCursor(cfg)
	require.NoError(t, err)
	return c
}

// A restart at every position skips the committed rows; with Key, it checks
// the row it resumes after, a time key included.
func TestCursorRestart(t *testing.T) {
	t.Parallel()
	eachSQLDatabase(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		tasks := createTasks(t, db, "tasks", 9)
		want := idsByKey(tasks)
		for _, key := range [][]string{nil, {"due_at", "id"}} {
			cfg := reader.CursorConfig[dbTask]{Name: "due", DB: db, Query: `SELECT * FROM tasks WHERE state = ? ORDER BY due_at, id`,
				Args: []any{"open"}, Key: key}
			for at := 0; at <= len(tasks); at++ {
				first := newCursor(t, cfg)
				require.NoError(t, first.Open(ctx, batch.ExecutionContext{}))
				got := readTaskIDs(t, first, at)
				ec := sqlCheckpoint(t, first)
				require.JSONEq(t, fmt.Sprint(at), string(ec["due.row"]))
				if key != nil && at > 0 {
					last := tasks[want[at-1]-1]
					require.JSONEq(t, fmt.Sprintf(`[%q, %d]`, last.DueAt.Format(time.RFC3339Nano), last.ID), string(ec["due.key"]))
				}
				require.NoError(t, first.Close(ctx))

				second := newCursor(t, cfg)
				require.NoError(t, second.Open(ctx, ec))
				got = append(got, readTaskIDs(t, second, -1)...)
				require.NoError(t, second.Close(ctx))
				require.Equal(t, want, got, "restart after %d items, key %v", at, key)
			}
		}
	})
}

// The unsafe restart is refused where it can be seen: fewer rows than were
// committed, or, with Key, another row at the checkpoint.
func TestCursorRestartRefusesChangedRows(t *testing.T) {
	t.Parallel()
	eachSQLDatabase(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		createTasks(t, db, "tasks", 6)
		query := `SELECT * FROM tasks WHERE state = 'open' ORDER BY id`
		withKey := newCursor(t, reader.CursorConfig[dbTask]{Name: "open", DB: db, Query: query, Key: []string{"id"}})
		require.NoError(t, withKey.Open(ctx, batch.ExecutionContext{}))
		require.Equal(t, []int64{1, 2, 3}, readTaskIDs(t, withKey, 3))
		ec := sqlCheckpoint(t, withKey)
		require.NoError(t, withKey.Close(ctx))

		// The step set the rows it read to done: three rows are left.
		_, err := db.Exec(`UPDATE tasks SET state = 'done' WHERE id <= 3`)
		require.NoError(t, err)
		err = withKey.Open(ctx, ec)
		require.ErrorIs(t, err, reader.ErrInputChanged)
		require.ErrorContains(t, err, "reader: cursor open: restart after row 3: input changed since the last commit: the row has key (id=6), the checkpoint was taken at key (id=3)")

		// Without Key only the count is checked: one row less than the
		// count is refused.
		_, err = db.Exec(`DELETE FROM tasks WHERE id = 6`)
		require.NoError(t, err)
		noKey := newCursor(t, reader.CursorConfig[dbTask]{Name: "open", DB: db, Query: query})
		err = noKey.Open(ctx, ec)
		require.ErrorIs(t, err, reader.ErrInputChanged)
		require.ErrorContains(t, err, "reader: cursor open: restart after row 3: input changed since the last commit: the query returns only 2 rows")
		// A failed Open leaves the reader closed, ready for another.
		require.NoError(t, noKey.Open(ctx, batch.ExecutionContext{}))
		require.Equal(t, []int64{4, 5}, readTaskIDs(t, noKey, -1))
	})
}

func TestCursorBadRowAndQueryError(t *testing.T) {
	t.Parallel()
	eachSQLDatabase(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		createTasks(t, db, "tasks", 5)
		_, err := db.Exec(`UPDATE tasks SET note = NULL WHERE id IN (2, 5)`)
		require.NoError(t, err)
		c := newCursor(t, reader.CursorConfig[dbTask]{DB: db, Query: `SELECT * FROM tasks ORDER BY id`, Key: []string{"id"}})
		require.NoError(t, c.Open(ctx, batch.ExecutionContext{}))
		var ids, bad []int64
		for {
			tk, err := c.Read(ctx)
			if err == io.EOF {
				break
			}
			var re *reader.RowError
			if errors.As(err, &re) {
				bad = append(bad, re.Row)
				require.Regexp(t, fmt.Sprintf(`^reader: cursor cursor: row %d: sql: Scan error on column index 3, name "note": converting NULL to string is unsupported$`, re.Row), err.Error())
				if re.Row == 2 {
					ec := sqlCheckpoint(t, c)
					require.JSONEq(t, `1`, string(ec["cursor.row"]), "the position stays at the last item")
				}
				continue
			}
			require.NoError(t, err)
			ids = append(ids, tk.ID)
		}
		require.Equal(t, []int64{1, 3, 4}, ids)
		require.Equal(t, []int64{2, 5}, bad)
		_, err = c.Read(ctx)
		require.Equal(t, io.EOF, err)
		require.NoError(t, c.Close(ctx))

		// A query that fails half way ends the reader, naming the row.
		fail := `SELECT id, due_at, state, note::json::text AS note FROM tasks WHERE note IS NOT NULL ORDER BY id`
		if db.DriverName() == "sqlite" {
			fail = `SELECT id, due_at, state, json(note) AS note FROM tasks WHERE note IS NOT NULL ORDER BY id`
		}
		_, err = db.Exec(`UPDATE tasks SET note = '{}' WHERE id = 1`)
		require.NoError(t, err)
		q := newCursor(t, reader.CursorConfig[dbTask]{DB: db, Query: fail})
		err = q.Open(ctx, batch.ExecutionContext{})
		if err == nil { // SQLite reads the first row before failing
			var tk dbTask
			tk, err = q.Read(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(1), tk.ID)
			_, err = q.Read(ctx)
			require.ErrorContains(t, err, "reader: cursor cursor: query after row 1: ")
			_, again := q.Read(ctx)
			require.Equal(t, err, again, "the error is final")
		} else {
			require.ErrorContains(t, err, "reader: cursor cursor: query: ")
		}
		require.NoError(t, q.Close(ctx))
	})
}

func TestCursorOpenReadClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := sqliteFile(t)
	createTasks(t, db, "tasks", 4)
	c := newCursor(t, reader.CursorConfig[dbTask]{DB: db, Name: "tasks"})
	_, err := c.Read(ctx)
	require.ErrorContains(t, err, "reader: cursor tasks: not open")
	require.NoError(t, c.Open(ctx, batch.ExecutionContext{}))
	require.ErrorContains(t, c.Open(ctx, batch.ExecutionContext{}), "reader: cursor tasks: already open")
	require.Equal(t, 1, db.Stats().InUse, "the query holds its connection")
	require.Len(t, readTaskIDs(t, c, 2), 2)

	// Close gives the connection back; Open starts again.
	require.NoError(t, c.Close(ctx))
	require.Zero(t, db.Stats().InUse)
	require.NoError(t, c.Open(ctx, batch.ExecutionContext{}))
	require.Len(t, readTaskIDs(t, c, -1), 4)
	require.Zero(t, db.Stats().InUse, "the connection is given back at the end of the rows")
	require.NoError(t, c.Close(ctx))

	// A done ctx fails the Read and ends the query.
	require.NoError(t, c.Open(ctx, batch.ExecutionContext{}))
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = c.Read(cancelled)
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, c.Close(ctx))
	_, err = c.Read(ctx)
	require.ErrorContains(t, err, "not open")

	// A column without a field, or a key column the query does not return,
	// fails Open.
	extra := newCursor(t, reader.CursorConfig[dbTask]{DB: db, Query: `SELECT *, 1 AS extra FROM tasks ORDER BY id`})
	require.ErrorContains(t, extra.Open(ctx, batch.ExecutionContext{}), "reader: cursor cursor: column extra has no field in reader_test.dbTask")
	nokey := newCursor(t, reader.CursorConfig[dbTask]{DB: db, Query: `SELECT id, state FROM tasks ORDER BY id`, Key: []string{"due_at", "id"}})
	require.ErrorContains(t, nokey.Open(ctx, batch.ExecutionContext{}), "reader: cursor cursor: key column due_at is not among the query's columns")
	require.Zero(t, db.Stats().InUse, "a failed Open gives the connection back")

	// A pool of one connection would leave none for the chunk transaction.
	one := sqliteFile(t)
	one.SetMaxOpenConns(1)
	lone := newCursor(t, reader.CursorConfig[dbTask]{DB: one})
	require.ErrorContains(t, lone.Open(ctx, batch.ExecutionContext{}), "the database's pool allows one connection")
}

func TestNewCursorValidates(t *testing.T) {
	t.Parallel()
	db := sqlx.NewDb(nil, "sqlite")
	_, err := reader.NewCursor(reader.CursorConfig[dbTask]{Query: "SELECT 1"})
	require.ErrorContains(t, err, "reader: cursor cursor: DB is required")
	_, err = reader.NewCursor(reader.CursorConfig[dbTask]{Name: "t", DB: db})
	require.ErrorContains(t, err, "reader: cursor t: Query is required")
	_, err = reader.NewCursor(reader.CursorConfig[dbTask]{DB: db, Query: "SELECT 1", Key: []string{"id--"}})
	require.ErrorContains(t, err, `invalid key column "id--"`)
	_, err = reader.NewCursor(reader.CursorConfig[string]{DB: db, Query: "SELECT 1"})
	require.ErrorContains(t, err, "the item type string is not a struct")
}

// overdueRun is one run of a job that reads tasks and, in the chunk
// transaction, records each in the processed table (whose primary key
// refuses an item twice) and, with markOverdue, sets it to overdue.
type overdueRun struct {
	job     *batch.Job
	written []int64 // ids of the chunks written, committed or not
}

// newOverdueRun builds the job; failCall, when > 0, fails that Write call
// after its statements, which roll back with it.
func newOverdueRun(t *testing.T, db *sqlx.DB, r batch.ItemReader[dbTask], markOverdue bool, failCall int, skip batch.ErrorMatcher) *overdueRun {
	t.Helper()
	run := &overdueRun{}
	calls := 0
	w := batch.WriterFunc[dbTask](func(ctx context.Context, items []dbTask) error {
		calls++
		tx, err := batch.JoinTxx(ctx, db)
		if err != nil {
			return err
		}
		for _, it := range items {
			run.written = append(run.written, it.ID)
			if _, err := tx.ExecContext(ctx, `INSERT INTO processed (id) VALUES (?)`, it.ID); err != nil {
				return err
			}
			if !markOverdue {
				continue
			}
			res, err := tx.ExecContext(ctx, `UPDATE tasks SET state = 'overdue' WHERE id = ? AND state = 'open'`, it.ID)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return fmt.Errorf("task %d was not open", it.ID)
			}
		}
		if calls == failCall {
			return errTaskDisk
		}
		return nil
	})
	step, err := batch.NewChunkStep("overdue", batch.ChunkConfig[dbTask, dbTask]{Reader: r, Writer: w, ChunkSize: 3, Skip: skip})
	require.NoError(t, err)
	run.job, err = batch.NewJob("overdue", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	return run
}

var errTaskDisk = errors.New("disk full")

// overdueRepo opens a SQLite job repository whose file holds the tasks too.
func overdueRepo(t *testing.T, tasks int) (*sqlite.Repository, []dbTask) {
	t.Helper()
	ctx := context.Background()
	repo, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "batch.db"), sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = repo.Close() })
	require.NoError(t, repo.Migrate(ctx))
	all := createTasks(t, repo.DB(), "tasks", tasks)
	_, err = repo.DB().Exec(`CREATE TABLE processed (id BIGINT PRIMARY KEY)`)
	require.NoError(t, err)
	return repo, all
}

func processedIDs(t *testing.T, db *sqlx.DB) []int64 {
	t.Helper()
	var ids []int64
	require.NoError(t, db.Select(&ids, `SELECT id FROM processed ORDER BY id`))
	return ids
}

func runOverdue(t *testing.T, repo *sqlite.Repository, job *batch.Job) (*batch.JobExecution, error) {
	t.Helper()
	l, err := launcher.New(launcher.Config{Repository: repo})
	require.NoError(t, err)
	return l.Run(context.Background(), job, batch.JobParameters{"day": batch.StringParam("2024-05-01")})
}

// The step sets to overdue the open tasks it reads: they leave the
// reader's filter as chunks commit. The write of the third chunk fails on
// the first run; the restart resumes after the last committed key and
// every task is processed exactly once.
func TestKeysetRestartThroughJobUpdatingSelectedRows(t *testing.T) {
	t.Parallel()
	repo, all := overdueRepo(t, 20)
	db := repo.DB()
	_, err := db.Exec(`UPDATE tasks SET state = 'done' WHERE id IN (4, 9, 13)`)
	require.NoError(t, err)
	var open []dbTask
	for _, tk := range all {
		if tk.ID != 4 && tk.ID != 9 && tk.ID != 13 {
			open = append(open, tk)
		}
	}
	order := idsByKey(open)
	keyset := newKeyset(t, reader.KeysetConfig[dbTask]{DB: db, From: "tasks", Where: "state = ?", Args: []any{"open"}, PageSize: 4})

	first := newOverdueRun(t, db, keyset, true, 3, nil)
	exec1, err := runOverdue(t, repo, first.job)
	require.ErrorIs(t, err, errTaskDisk)
	require.Equal(t, batch.StatusFailed, exec1.Status)
	require.Equal(t, order[:9], first.written)
	require.ElementsMatch(t, order[:6], processedIDs(t, db), "the failed chunk rolled back")

	// The same reader, closed by the first run, is opened again.
	second := newOverdueRun(t, db, keyset, true, 0, nil)
	exec2, err := runOverdue(t, repo, second.job)
	require.NoError(t, err)
	require.Equal(t, exec1.InstanceID, exec2.InstanceID, "a restart")
	require.Equal(t, order[6:], second.written, "resumed after the last committed key")

	require.ElementsMatch(t, order, processedIDs(t, db), "every open task once")
	var states []string
	require.NoError(t, db.Select(&states, `SELECT state FROM tasks ORDER BY id`))
	for i, s := range states {
		want := "overdue"
		if id := i + 1; id == 4 || id == 9 || id == 13 {
			want = "done"
		}
		require.Equal(t, want, s, "task %d", i+1)
	}
}

// The same job with a Cursor: the restart would skip the committed count
// over rows that moved up. It is refused, by the key check and by the count
// check.
func TestCursorRestartThroughJobUpdatingSelectedRowsIsRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		tasks int
		key   []string
		err   string
	}{
		{"key", 20, []string{"due_at", "id"}, "restart after row 6: input changed since the last commit: the row has key"},
		{"count", 8, nil, "restart after row 6: input changed since the last commit: the query returns only 2 rows"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			repo, _ := overdueRepo(t, c.tasks)
			db := repo.DB()
			cursor := newCursor(t, reader.CursorConfig[dbTask]{DB: db, Query: `SELECT * FROM tasks WHERE state = 'open' ORDER BY due_at, id`, Key: c.key})
			_, err := runOverdue(t, repo, newOverdueRun(t, db, cursor, true, 3, nil).job)
			require.ErrorIs(t, err, errTaskDisk)
			require.Len(t, processedIDs(t, db), 6)

			_, err = runOverdue(t, repo, newOverdueRun(t, db, cursor, true, 0, nil).job)
			require.ErrorIs(t, err, reader.ErrInputChanged)
			require.ErrorContains(t, err, c.err)
			require.Len(t, processedIDs(t, db), 6, "nothing was skipped silently")
		})
	}
}

// A step that does not change the rows it selects: the restart re-runs the
// query and skips the committed rows.
func TestCursorRestartThroughJob(t *testing.T) {
	t.Parallel()
	repo, all := overdueRepo(t, 20)
	db := repo.DB()
	order := idsByKey(all)
	cursor := newCursor(t, reader.CursorConfig[dbTask]{DB: db, Query: `SELECT * FROM tasks WHERE state = ? ORDER BY due_at, id`,
		Args: []any{"open"}, Key: []string{"due_at", "id"}})

	first := newOverdueRun(t, db, cursor, false, 3, nil)
	_, err := runOverdue(t, repo, first.job)
	require.ErrorIs(t, err, errTaskDisk)
	require.ElementsMatch(t, order[:6], processedIDs(t, db))
	require.Zero(t, db.Stats().InUse, "Close gave the query's connection back")

	second := newOverdueRun(t, db, cursor, false, 0, nil)
	exec2, err := runOverdue(t, repo, second.job)
	require.NoError(t, err)
	require.Equal(t, order[6:], second.written, "the committed rows were skipped")
	require.ElementsMatch(t, order, processedIDs(t, db), "every task once")

	ses, err := repo.StepExecutions(context.Background(), exec2.ID)
	require.NoError(t, err)
	require.Len(t, ses, 1)
	require.JSONEq(t, "20", string(ses[0].Context["cursor.row"]))
}

// Bad rows skipped by the step's skip policy, with a restart in between:
// each good row is processed once and each bad one skipped once.
func TestSQLReadersSkipBadRowsThroughJob(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"keyset", "cursor"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			repo, all := overdueRepo(t, 12)
			db := repo.DB()
			_, err := db.Exec(`UPDATE tasks SET note = NULL WHERE id IN (5, 10)`)
			require.NoError(t, err)
			var r batch.ItemReader[dbTask]
			if kind == "keyset" {
				r = newKeyset(t, reader.KeysetConfig[dbTask]{DB: db, From: "tasks", Key: []string{"id"}, PageSize: 5})
			} else {
				r = newCursor(t, reader.CursorConfig[dbTask]{DB: db, Query: `SELECT * FROM tasks ORDER BY id`})
			}
			skip := batch.MatchType[*reader.RowError]()

			_, err = runOverdue(t, repo, newOverdueRun(t, db, r, true, 3, skip).job)
			require.ErrorIs(t, err, errTaskDisk)
			exec2, err := runOverdue(t, repo, newOverdueRun(t, db, r, true, 0, skip).job)
			require.NoError(t, err)

			var want []int64
			for _, tk := range all {
				if tk.ID != 5 && tk.ID != 10 {
					want = append(want, tk.ID)
				}
			}
			require.Equal(t, want, processedIDs(t, db))
			ses, err := repo.StepExecutions(context.Background(), exec2.ID)
			require.NoError(t, err)
			require.Len(t, ses, 1)
			require.Equal(t, int64(2), ses[0].ReadSkipCount+earlierReadSkips(t, repo, exec2.InstanceID, exec2.ID), "each bad row skipped once")
		})
	}
}

// earlierReadSkips returns the read skips of the step executions of instance
// other than execution id.
func earlierReadSkips(t *testing.T, repo *sqlite.Repository, instance, id int64) int64 {
	t.Helper()
	ctx := context.Background()
	execs, err := repo.JobExecutions(ctx, batch.ExecutionQuery{InstanceID: instance})
	require.NoError(t, err)
	var n int64
	for _, e := range execs {
		if e.ID == id {
			continue
		}
		ses, err := repo.StepExecutions(ctx, e.ID)
		require.NoError(t, err)
		for _, s := range ses {
			n += s.ReadSkipCount
		}
	}
	return n
}

// A ctx that ends while Read waits for a row ends the query, and the
// reader with it; the connection is given back. (PostgreSQL: the SQLite
// driver does not interrupt a query between rows.)
func TestCursorReadEndsWithItsContext(t *testing.T) {
	t.Parallel()
	db, _ := pgtest.DB(t)
	type row struct {
		X   int64  `db:"x"`
		Pad string `db:"pad"`
	}
	// The server sends rows as its send buffer fills: the first rows come
	// at once, the last takes two minutes.
	c, err := reader.NewCursor(reader.CursorConfig[row]{DB: db, Name: "slow",
		Query: `SELECT x, CASE WHEN x < 40 THEN repeat('x', 1000) ELSE pg_sleep(120)::text END AS pad FROM generate_series(1, 40) AS x`})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, c.Open(ctx, batch.ExecutionContext{}))

	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	done := make(chan error, 1)
	read := 0
	go func() {
		for {
			if _, err := c.Read(short); err != nil {
				done <- err
				return
			}
			read++
		}
	}()
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Read did not return when its context ended")
	}
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, read, 40)
	require.ErrorContains(t, err, fmt.Sprintf("reader: cursor slow: after row %d: ", read))
	_, again := c.Read(ctx)
	require.Equal(t, err, again, "the query is over")
	require.NoError(t, c.Close(ctx))
	require.Zero(t, db.Stats().InUse)
}

// TestKeysetProgress: with Count, Open counts the rows left to read — all
// of them on a first run, those after the position on a restart — and
// Progress says how many of them were read.
func TestKeysetProgress(t *testing.T) {
	t.Parallel()
	eachSQLDatabase(t, func(t *testing.T, db *sqlx.DB) {
		ctx := context.Background()
		createTasks(t, db, "counted", 50)
		cfg := reader.KeysetConfig[dbTask]{DB: db, From: "counted", Where: "id > ?", Args: []any{10}, PageSize: 7, Count: true}
		k := newKeyset(t, cfg)
		require.NoError(t, k.Open(ctx, batch.ExecutionContext{}))
		require.Equal(t, batch.Progress{Total: 40, Unit: "rows"}, k.Progress())
		readTaskIDs(t, k, 15)
		require.Equal(t, batch.Progress{Done: 15, Total: 40, Unit: "rows"}, k.Progress())
		ec := batch.ExecutionContext{}
		require.NoError(t, k.Update(ctx, ec))
		require.NoError(t, k.Close(ctx))

		again := newKeyset(t, cfg)
		require.NoError(t, again.Open(ctx, ec))
		require.Equal(t, batch.Progress{Total: 25, Unit: "rows"}, again.Progress(), "the rows after the restart position")
		readTaskIDs(t, again, 5)
		require.Equal(t, batch.Progress{Done: 5, Total: 25, Unit: "rows"}, again.Progress())

		cfg.Count = false
		uncounted := newKeyset(t, cfg)
		require.NoError(t, uncounted.Open(ctx, batch.ExecutionContext{}))
		readTaskIDs(t, uncounted, 3)
		require.Equal(t, batch.Progress{Done: 3, Unit: "rows"}, uncounted.Progress())
	})
}
