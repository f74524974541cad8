package postgres_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/postgres"
)

// cutOff is a database/sql connector whose transactions, once cut is set,
// never send their COMMIT: the client goes silent in the middle of a
// transaction, as a process behind a stalled network does, and the server
// sees a session idle in its transaction, holding its locks. It counts the
// transactions begun on its connections too.
type cutOff struct {
	driver.Connector
	cut     atomic.Bool
	release chan struct{}
	begins  atomic.Int64
}

func (c *cutOff) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &cutOffConn{Conn: conn, c: c}, nil
}

type cutOffConn struct {
	driver.Conn
	c *cutOff
}

func (cc *cutOffConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	cc.c.begins.Add(1)
	tx, err := cc.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &cutOffTx{Tx: tx, c: cc.c}, nil
}

type cutOffTx struct {
	driver.Tx
	c *cutOff
}

func (t *cutOffTx) Commit() error {
	if t.c.cut.Load() {
		<-t.c.release
	}
	return t.Tx.Commit()
}

// cutOffWorker opens a pool on dsn through a cutOff connector wrapping
// connector (nil: lib/pq's), its sessions named apart from any other of
// the server, and returns the connector, the pool and the sessions' name.
func cutOffWorker(t *testing.T, dsn string, connector func(dsn string) (driver.Connector, error)) (*cutOff, *sqlx.DB, string) {
	t.Helper()
	app := fmt.Sprintf("cutoff-worker-%d", time.Now().UnixNano())
	workerDSN := dsn + " application_name=" + app
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		q := u.Query()
		q.Set("application_name", app)
		u.RawQuery = q.Encode()
		workerDSN = u.String()
	}
	if connector == nil {
		connector = func(dsn string) (driver.Connector, error) { return pq.NewConnector(dsn) }
	}
	c, err := connector(workerDSN)
	require.NoError(t, err)
	conn := &cutOff{Connector: c, release: make(chan struct{})}
	db := sqlx.NewDb(sql.OpenDB(conn), "postgres")
	t.Cleanup(func() { _ = db.Close() })
	return conn, db, app
}

// commitHeld commits a chunk of s whose writer joins the chunk's
// transaction (a checkpoint alone is sent without one), with conn's
// commits held, and waits until the worker's session app sits idle in the
// transaction after its checkpoint: the execution's row is locked, COMMIT
// does not come until conn is released. The commit's error arrives on the
// channel.
func commitHeld(t *testing.T, conn *cutOff, repo *postgres.Repository, s *batch.StepExecution, observer *sqlx.DB, app string) <-chan error {
	t.Helper()
	conn.cut.Store(true)
	committed := make(chan error, 1)
	go func() {
		_, err := repo.CommitChunk(context.Background(), s, func(ctx context.Context) error {
			tx, err := batch.JoinTx(ctx, repo.DB().DB)
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `SELECT 1`)
			return err
		})
		committed <- err
	}()
	require.Eventually(t, func() bool {
		var n int
		_ = observer.Get(&n, `SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'idle in transaction'
			AND application_name = $1 AND query LIKE '%UPDATE %step_execution%'`, app)
		return n > 0
	}, 10*time.Second, 20*time.Millisecond)
	return committed
}

// TestTakeoverBehindCutOffWorker: a worker cut off from the database between
// its chunk's checkpoint and its COMMIT holds a lock on its execution. A
// launch meanwhile waits a bounded time and says what it waits for; the
// database drops the silent session after IdleInTransactionTimeout, and the
// takeover then goes through — in seconds, not after hours of TCP keepalive.
func TestTakeoverBehindCutOffWorker(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	migrated, err := postgres.Open(ctx, dsn, postgres.Config{})
	require.NoError(t, err)
	require.NoError(t, migrated.Migrate(ctx))
	require.NoError(t, migrated.Close())

	conn, workerDB, app := cutOffWorker(t, dsn, nil)
	worker, err := postgres.New(workerDB, postgres.Config{IdleInTransactionTimeout: 2 * time.Second})
	require.NoError(t, err)

	launcherDB := sqlx.MustOpen("postgres", dsn)
	defer launcherDB.Close()
	other, err := postgres.New(launcherDB, postgres.Config{LockTimeout: 300 * time.Millisecond})
	require.NoError(t, err)

	params := batch.JobParameters{"day": batch.StringParam("today")}
	e, err := worker.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "nightly", Parameters: params, Lease: time.Second})
	require.NoError(t, err)
	s := &batch.StepExecution{JobExecutionID: e.ID, StepName: "load", Status: batch.StatusStarted, Context: batch.ExecutionContext{}}
	require.NoError(t, worker.CreateStepExecution(ctx, s))

	commitHeld(t, conn, worker, s, launcherDB, app) // its end is not awaited: the session is dropped
	defer close(conn.release)

	// An hour later, by the launcher's clock: the lease has lapsed, but the
	// lock is still held. The launch does not hang; it says what it waits
	// for.
	later := time.Now().Add(time.Hour)
	_, err = other.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "nightly", Parameters: params, Now: later})
	require.ErrorContains(t, err, "locked by another session")
	require.ErrorContains(t, err, "waited 300ms")

	// The database drops the silent session; the takeover goes through.
	start := time.Now()
	var e2 *batch.JobExecution
	require.Eventually(t, func() bool {
		e2, err = other.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "nightly", Parameters: params, Now: later})
		return err == nil
	}, 15*time.Second, 100*time.Millisecond, "last error: %v", err)
	require.Less(t, time.Since(start), 10*time.Second)
	require.Equal(t, e.InstanceID, e2.InstanceID)
	old, err := other.JobExecution(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusFailed, old.Status)
	steps, err := other.StepExecutions(ctx, e.ID)
	require.NoError(t, err)
	require.Zero(t, steps[0].CommitCount, "the cut-off chunk did not commit")
}
