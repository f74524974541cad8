package writer_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/sqlite"
	"github.com/chunkwise/chunkwise/writer"
)

var errBoom = errors.New("boom")

// runFailRestart runs a one-step job over items, in chunks of size, writing
// with w followed by a writer that, on the first run only, fails the chunk
// holding the item failAt matches, after w wrote it: the chunk rolls back
// and the job fails. The second run restarts the job and must complete. It
// returns the step's Changes summed over both runs.
func runFailRestart[T any](t *testing.T, repo sqlRepo, w batch.ItemWriter[T], items []T, size int, failAt func(T) bool) batch.Changes {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	failing := true
	fail := batch.WriterFunc[T](func(_ context.Context, chunk []T) error {
		mu.Lock()
		defer mu.Unlock()
		for _, it := range chunk {
			if failing && failAt(it) {
				return errBoom
			}
		}
		return nil
	})
	both, err := writer.NewComposite(w, fail)
	require.NoError(t, err)
	step, err := batch.NewChunkStep("load", batch.ChunkConfig[T, T]{Reader: reader.FromSlice(items), Writer: both, ChunkSize: size})
	require.NoError(t, err)
	job, err := batch.NewJob("load", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	l, err := launcher.New(launcher.Config{Repository: repo})
	require.NoError(t, err)

	first, err := l.Run(ctx, job, nil)
	require.ErrorIs(t, err, errBoom)
	require.Equal(t, batch.StatusFailed, first.Status)
	mu.Lock()
	failing = false
	mu.Unlock()
	second, err := l.Run(ctx, job, nil)
	require.NoError(t, err)
	require.Equal(t, first.InstanceID, second.InstanceID, "a restart of the same instance")
	require.Equal(t, batch.StatusCompleted, second.Status)
	var total batch.Changes
	for _, e := range []*batch.JobExecution{first, second} {
		ses, err := repo.StepExecutions(ctx, e.ID)
		require.NoError(t, err)
		require.Len(t, ses, 1)
		total.Add(ses[0].Changes)
	}
	return total
}

// runOnce runs a one-step job over items, in chunks of size, writing with
// w: a new job instance each time. It returns the step's Changes and the
// run's error.
func runOnce[T any](t *testing.T, repo sqlRepo, w batch.ItemWriter[T], items []T, size int) (batch.Changes, error) {
	t.Helper()
	ctx := context.Background()
	step, err := batch.NewChunkStep("load", batch.ChunkConfig[T, T]{Reader: reader.FromSlice(items), Writer: w, ChunkSize: size})
	require.NoError(t, err)
	job, err := batch.NewJob("once", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	l, err := launcher.New(launcher.Config{Repository: repo})
	require.NoError(t, err)
	runs.Add(1)
	e, err := l.Run(ctx, job, batch.JobParameters{"run": batch.IntParam(runs.Load())})
	if e == nil {
		return batch.Changes{}, err
	}
	ses, serr := repo.StepExecutions(ctx, e.ID)
	require.NoError(t, serr)
	require.Len(t, ses, 1)
	return ses[0].Changes, err
}

var runs atomic.Int64

// chunkCommit runs fn as the writing part of a chunk commit of a fresh step
// execution: fn's statements join the chunk's transaction.
func chunkCommit(t *testing.T, repo sqlRepo) func(fn func(ctx context.Context) error) error {
	s := newStepExecution(t, repo)
	return func(fn func(ctx context.Context) error) error {
		_, err := repo.CommitChunk(context.Background(), s, fn)
		return err
	}
}

// newStepExecution returns a started step execution of a new job execution.
func newStepExecution(t *testing.T, repo sqlRepo) *batch.StepExecution {
	ctx := context.Background()
	runs.Add(1)
	e, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "w",
		Parameters: batch.JobParameters{"run": batch.IntParam(runs.Load())}})
	require.NoError(t, err)
	s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "s", Status: batch.StatusStarted, StartTime: time.Now()}
	require.NoError(t, repo.CreateStepExecution(ctx, s))
	return s
}

func mustExec(t *testing.T, db *sqlx.DB, query string, args ...any) {
	t.Helper()
	_, err := db.Exec(db.Rebind(query), args...)
	require.NoError(t, err)
}

func TestSQLWriterRestartExactlyOnce(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			repo := open(t)
			db := repo.DB()
			mustExec(t, db, `CREATE TABLE items (id BIGINT NOT NULL, name TEXT NOT NULL)`) // no key: a duplicate would show
			w := newWriter(t, db, 0, "")
			changes := runFailRestart(t, repo, batch.ItemWriter[row](w), rows(95, 1), 10, func(r row) bool { return r.ID == 55 })
			var n, distinct int
			require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM items`))
			require.NoError(t, db.Get(&distinct, `SELECT COUNT(DISTINCT id) FROM items`))
			require.Equal(t, 95, n)
			require.Equal(t, 95, distinct, "every item written exactly once")
			require.Equal(t, batch.Changes{Inserted: 95}, changes, "the rolled-back chunk counts nothing")
		})
	}
}

// TestSQLStatementsPreparedOncePerStep watches, from inside each chunk's
// transaction, the statements prepared on the transaction's PostgreSQL
// session: a statement prepared once per step execution keeps its
// prepare_time from chunk to chunk on a session, and there are at most two
// INSERTs (full chunks, last chunk). A writer that prepared per chunk would
// show a new prepare_time each time. After the step, Close has deallocated
// them.
//
// SQLite shows no list of prepared statements, but the writer runs the same
// database/sql calls on it (prepare on the *sql.DB, Tx.StmtxContext per
// chunk), which the driver serves with one sqlite3_prepare per connection.
func TestSQLStatementsPreparedOncePerStep(t *testing.T) {
	ctx := context.Background()
	repo := backends(t)["postgres"](t)
	db := repo.DB()
	mustExec(t, db, `CREATE TABLE items (id BIGINT NOT NULL, name TEXT NOT NULL)`)
	w := newWriter(t, db, 0, "")

	type seen struct {
		pid        int
		statements map[string]time.Time
	}
	var chunks []seen
	probe := batch.WriterFunc[row](func(ctx context.Context, _ []row) error {
		tx, err := batch.JoinTxx(ctx, db)
		if err != nil {
			return err
		}
		s := seen{statements: map[string]time.Time{}}
		if err := tx.GetContext(ctx, &s.pid, `SELECT pg_backend_pid()`); err != nil {
			return err
		}
		rs, err := tx.QueryxContext(ctx, `SELECT statement, prepare_time FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO items %'`)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var q string
			var at time.Time
			if err := rs.Scan(&q, &at); err != nil {
				return err
			}
			s.statements[q] = at
		}
		chunks = append(chunks, s)
		return rs.Err()
	})
	both, err := writer.NewComposite[row](w, probe)
	require.NoError(t, err)
	step, err := batch.NewChunkStep("load", batch.ChunkConfig[row, row]{Reader: reader.FromSlice(rows(95, 1)), Writer: both, ChunkSize: 10})
	require.NoError(t, err)
	job, err := batch.NewJob("load", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	l, err := launcher.New(launcher.Config{Repository: repo})
	require.NoError(t, err)
	_, err = l.Run(ctx, job, nil)
	require.NoError(t, err)
	require.Len(t, chunks, 10)

	first := map[int]map[string]time.Time{} // per session, when each statement was first seen prepared
	reused := false
	for i, c := range chunks {
		require.NotEmpty(t, c.statements, "chunk %d: the INSERT is a prepared statement of the session", i+1)
		require.LessOrEqual(t, len(c.statements), 2, "chunk %d: one statement for full chunks, one for the last", i+1)
		if first[c.pid] == nil {
			first[c.pid] = map[string]time.Time{}
		}
		for q, at := range c.statements {
			if was, ok := first[c.pid][q]; ok {
				require.Equal(t, was, at, "chunk %d: the statement was prepared again on session %d", i+1, c.pid)
				reused = true
			} else {
				first[c.pid][q] = at
			}
		}
	}
	require.True(t, reused, "no session ran two chunks: the test proved nothing")

	// Close deallocated the statements on the sessions that had them.
	var conns []*sqlx.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	checked := 0
	for range db.Stats().OpenConnections {
		c, err := db.Connx(ctx)
		require.NoError(t, err)
		conns = append(conns, c)
		var pid, n int
		require.NoError(t, c.GetContext(ctx, &pid, `SELECT pg_backend_pid()`))
		if first[pid] == nil {
			continue
		}
		require.NoError(t, c.GetContext(ctx, &n, `SELECT COUNT(*) FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO items %'`))
		require.Zero(t, n, "session %d keeps the writer's statements after the step closed it", pid)
		checked++
	}
	require.NotZero(t, checked, "no session of the chunks left in the pool: the test proved nothing")
}

// TestSQLWritersOnSingleConnectionPool: a writer that prepares on first use
// inside the chunk, on a pool of one connection (held by the chunk's
// transaction), prepares on the transaction instead of waiting for ever.
func TestSQLWritersOnSingleConnectionPool(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := filepath.Join(t.TempDir(), "one.db")
	db, err := sqlx.Open("sqlite", sqlite.DSN(path))
	require.NoError(t, err)
	defer db.Close()
	db.SetMaxOpenConns(1)
	repo, err := sqlite.New(db, sqlite.Config{})
	require.NoError(t, err)
	require.NoError(t, repo.Migrate(ctx))
	mustExec(t, db, `CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL)`)
	ins := newWriter(t, db, 0, "")
	up, err := writer.NewUpsert(writer.UpsertConfig[row]{DB: db, Table: "items", Columns: []string{"id", "name"}, Key: []string{"id"},
		Values: func(r row) []any { return []any{r.ID, r.Name} }})
	require.NoError(t, err)
	named, err := writer.NewNamed(writer.NamedConfig[row]{DB: db, Query: `UPDATE items SET name = name || '!' WHERE id = :id`})
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		e, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "w"})
		if err != nil {
			done <- err
			return
		}
		s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "s", Status: batch.StatusStarted, StartTime: time.Now()}
		if err := repo.CreateStepExecution(ctx, s); err != nil {
			done <- err
			return
		}
		_, err = repo.CommitChunk(ctx, s, func(ctx context.Context) error {
			if err := ins.Write(ctx, rows(3, 1)); err != nil {
				return err
			}
			if err := up.Write(ctx, []row{{ID: 3, Name: "x"}, {ID: 4, Name: "y"}}); err != nil {
				return err
			}
			return named.Write(ctx, rows(2, 1))
		})
		done <- err
	}()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("the writers wait for a second connection")
	}
	var names []string
	require.NoError(t, db.Select(&names, `SELECT name FROM items ORDER BY id`))
	require.Equal(t, []string{"n!", "n!", "x", "y"}, names)
}

// TestSQLWriterAfterLockInChunk: on PostgreSQL, a chunk transaction that
// locks the table before the writer's first use of a statement would make
// preparing it on another connection wait for that lock: the writer gives
// up after a bound and prepares it in the transaction.
func TestSQLWriterAfterLockInChunk(t *testing.T) {
	repo := backends(t)["postgres"](t)
	db := repo.DB()
	mustExec(t, db, `CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL)`)
	lock := batch.WriterFunc[row](func(ctx context.Context, _ []row) error {
		tx, err := batch.JoinTxx(ctx, db)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `LOCK TABLE items IN ACCESS EXCLUSIVE MODE`)
		return err
	})
	ins := newWriter(t, db, 0, "")
	up, err := writer.NewUpsert(writer.UpsertConfig[row]{DB: db, Table: "items", Columns: []string{"id", "name"}, Key: []string{"id"},
		Values: func(r row) []any { return []any{r.ID, "again"} }})
	require.NoError(t, err)
	both, err := writer.NewComposite[row](lock, ins, up)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = repo.CommitChunk(ctx, newStepExecution(t, repo), func(ctx context.Context) error { return both.Write(ctx, rows(3, 1)) })
	require.NoError(t, err, "the writer waits for its own transaction's lock")
	var names []string
	require.NoError(t, db.Select(&names, `SELECT name FROM items ORDER BY id`))
	require.Equal(t, []string{"again", "again", "again"}, names)
}
