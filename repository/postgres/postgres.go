// Package postgres is the PostgreSQL job repository, for production.
//
// Open connects with pgx/v5 (through its database/sql adapter) unless
// Config.Driver says lib/pq; or build the repository on a *sqlx.DB of any
// database/sql PostgreSQL driver, named "postgres" for sqlx (lib/pq is
// registered by this package as "postgres"):
//
//	repo, err := postgres.Open(ctx, dsn, postgres.Config{})
//
//	db := sqlx.NewDb(stdlib.OpenDB(*pgxConfig), "postgres")
//	repo, err := postgres.New(db, postgres.Config{})
//	err = repo.Migrate(ctx)
//
// A writer built on repo.DB() joins each chunk's transaction (see
// batch.JoinTx), so that its rows and the step's checkpoint commit together:
// a crash leaves both or neither. A second pool opened on the same database
// cannot join: a transaction belongs to one pool.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq" // also the "postgres" database/sql driver

	"github.com/chunkwise/chunkwise/internal/sqlrepo"
	"github.com/chunkwise/chunkwise/repository"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Config configures the repository.
type Config struct {
	// TablePrefix starts the name of every table: letters, digits and '_'.
	// Default "batch_". To put the tables in a schema, set the connection's
	// search_path.
	TablePrefix string
	// LockTimeout bounds how long a statement of the repository waits for
	// a row lock — a launch, stop or abandon waiting behind a process cut
	// off from the database in the middle of a commit — before it fails
	// saying what it waited for. Default 20s.
	LockTimeout time.Duration
	// IdleInTransactionTimeout is how long the database keeps a session
	// that went silent in the middle of a repository transaction (its
	// process dead or cut off) before it drops it and releases its locks,
	// so that a takeover does not wait for the operating system to notice
	// (hours, or never behind a proxy). It applies only to the checkpoint
	// part of a chunk's transaction, which runs no user code. Default 15s.
	IdleInTransactionTimeout time.Duration
	// TCPUserTimeout is, for the connections Open makes, how long sent data
	// may stay unacknowledged before the connection fails (Linux's
	// TCP_USER_TIMEOUT; elsewhere only keepalives apply): a network that
	// swallows packets fails a commit or a heartbeat after it, so that a
	// process cut off from its repository notices. Default 30s.
	TCPUserTimeout time.Duration
	// Driver is the database/sql driver Open connects with: DriverPgx, the
	// default (pgx/v5: statements prepared once per connection and reused,
	// parameters sent in binary, Go numbers encoded for NUMERIC columns
	// without math/big, and the Copy writer's rows through CopyFrom), or
	// DriverPQ (lib/pq). New takes a handle of any driver.
	Driver string
}

// The drivers Open connects with.
const (
	DriverPgx = "pgx"
	DriverPQ  = "pq"
)

// capabilities are the interfaces of the SQL implementation beyond
// repository.JobRepository, promoted to Repository.
type capabilities = sqlrepo.Capabilities

// Repository is the PostgreSQL job repository: a repository.JobRepository,
// and a repository.Pruner (Prune deletes old executions a batch per
// transaction; see repository.PruneRequest for what it keeps),
// repository.RejectStore, repository.StepLeaser and
// repository.ScheduleStore.
type Repository struct {
	// JobRepository is the SQL implementation the methods come from.
	repository.JobRepository
	capabilities // the same implementation's other interfaces
	db           *sqlx.DB
	prefix       string
	owned        bool
}

// DB returns the database the repository runs on. Writers and tasklets on
// this handle (or on its *sql.DB) join each chunk's transaction with
// batch.JoinTx, so that their statements and the step's checkpoint commit
// together.
func (r *Repository) DB() *sqlx.DB { return r.db }

// Dialect is PostgreSQL's.
var dialect = sqlrepo.Dialect{
	Name:      "postgres",
	ForUpdate: " FOR UPDATE",
	ForShare:  " FOR SHARE",
	TxOptions: &sql.TxOptions{Isolation: sql.LevelReadCommitted},
	// One statement is one transaction, its row locks held until it ends.
	CheckpointAlone: true,
	IsUniqueViolation: func(err error) bool {
		var s interface{ SQLState() string }
		return errors.As(err, &s) && s.SQLState() == "23505"
	},
	TableExists: `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?`,
	Now:         `SELECT clock_timestamp()`,
	IsLockTimeout: func(err error) bool {
		var s interface{ SQLState() string }
		return errors.As(err, &s) && s.SQLState() == "55P03"
	},
}

// New returns a repository on db. Call Migrate once before use.
func New(db *sqlx.DB, cfg Config) (*Repository, error) {
	if cfg.TablePrefix == "" {
		cfg.TablePrefix = "batch_"
	}
	if cfg.LockTimeout == 0 {
		cfg.LockTimeout = 20 * time.Second
	}
	if cfg.IdleInTransactionTimeout == 0 {
		cfg.IdleInTransactionTimeout = 15 * time.Second
	}
	if cfg.LockTimeout < time.Millisecond || cfg.IdleInTransactionTimeout < time.Millisecond {
		return nil, fmt.Errorf("repository postgres: LockTimeout and IdleInTransactionTimeout must be at least 1ms")
	}
	d := dialect
	d.TxSettings = fmt.Sprintf("set_config('lock_timeout', '%dms', true), set_config('idle_in_transaction_session_timeout', '%dms', true)",
		cfg.LockTimeout.Milliseconds(), cfg.IdleInTransactionTimeout.Milliseconds())
	d.LockTimeout = cfg.LockTimeout
	r, err := sqlrepo.New(db, d, cfg.TablePrefix)
	if err != nil {
		return nil, fmt.Errorf("repository postgres: %w", err)
	}
	return &Repository{JobRepository: r, capabilities: r, db: db, prefix: cfg.TablePrefix}, nil
}

// MaxIdleConns is how many idle connections the pool Open makes keeps
// (for 5 minutes at most): enough for the partitions and branches of a job
// at once, each of which holds a connection per chunk. database/sql's
// default, 2, made every chunk of a third partition at once connect anew
// (16 partitions committed 886 chunks a second instead of 1,956). A pool
// handed to New keeps what its owner set: set it there with
// SetMaxIdleConns.
const MaxIdleConns = 32

// DefaultConnectTimeout bounds connecting to the server, handshake included,
// when the connection string sets no connect_timeout.
const DefaultConnectTimeout = 10 * time.Second

// Open connects to the database at dsn (a postgres:// URL or key=value
// string) with the driver cfg names (pgx by default), checks the
// connection, and returns a repository that Close closes. Unless dsn (or
// PGCONNECT_TIMEOUT) sets connect_timeout, every connection of the pool
// gives up after DefaultConnectTimeout: a server that accepts and never
// answers does not hang the program.
func Open(ctx context.Context, dsn string, cfg Config) (*Repository, error) {
	if cfg.TCPUserTimeout <= 0 {
		cfg.TCPUserTimeout = 30 * time.Second
	}
	var sqldb *sql.DB
	switch cfg.Driver {
	case "", DriverPgx:
		pc, err := pgx.ParseConfig(withConnectTimeout(dsn))
		if err != nil {
			return nil, fmt.Errorf("repository postgres: %w", err)
		}
		pc.DialFunc = newDialer(cfg.TCPUserTimeout).DialContext
		sqldb = stdlib.OpenDB(*pc, stdlib.OptionAfterConnect(func(_ context.Context, c *pgx.Conn) error {
			registerTypes(c.TypeMap())
			return nil
		}))
	case DriverPQ:
		connector, err := pq.NewConnector(withConnectTimeout(dsn))
		if err != nil {
			return nil, fmt.Errorf("repository postgres: %w", err)
		}
		connector.Dialer(newDialer(cfg.TCPUserTimeout))
		sqldb = sql.OpenDB(connector)
	default:
		return nil, fmt.Errorf("repository postgres: unknown driver %q: want %q or %q", cfg.Driver, DriverPgx, DriverPQ)
	}
	// database/sql keeps 2 idle connections by default: with more steps or
	// partitions at once, each chunk would open a connection and close it.
	sqldb.SetMaxIdleConns(MaxIdleConns)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	db := sqlx.NewDb(sqldb, "postgres")
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("repository postgres: connect: %w", err)
	}
	r, err := New(db, cfg)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	r.owned = true
	return r, nil
}

// Migrate creates or upgrades the repository's tables. It is idempotent and
// safe to run from several processes at once (an advisory lock serializes
// them).
func (r *Repository) Migrate(ctx context.Context) error {
	ms, err := sqlrepo.LoadMigrations(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("repository postgres: %w", err)
	}
	h := fnv.New32a()
	h.Write([]byte("chunkwise:" + r.prefix))
	lock := fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", int32(h.Sum32()))
	_, err = sqlrepo.Migrate(ctx, r.DB(), dialect, r.prefix, lock, ms)
	return err
}

// Pending returns the names of the migrations Migrate would apply, changing
// nothing: a deployment whose runtime role may not change the schema checks
// it at start.
func (r *Repository) Pending(ctx context.Context) ([]string, error) {
	ms, err := sqlrepo.LoadMigrations(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("repository postgres: %w", err)
	}
	pending, err := sqlrepo.Pending(ctx, r.DB(), dialect, r.prefix, ms)
	return sqlrepo.Names(pending), err
}

// Close closes the database if Open opened it.
func (r *Repository) Close() error {
	if r.owned {
		return r.DB().Close()
	}
	return nil
}

var connectTimeoutSet = regexp.MustCompile(`(^|[\s?&])connect_timeout\s*=`)

// withConnectTimeout adds connect_timeout=DefaultConnectTimeout to dsn when
// it sets none.
func withConnectTimeout(dsn string) string {
	if connectTimeoutSet.MatchString(dsn) || os.Getenv("PGCONNECT_TIMEOUT") != "" {
		return dsn
	}
	secs := strconv.Itoa(int(DefaultConnectTimeout / time.Second))
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		// The password may hold '?': the query starts after the host.
		sep := "?"
		if strings.Contains(dsn[strings.LastIndex(dsn, "@")+1:], "?") {
			sep = "&"
		}
		return dsn + sep + "connect_timeout=" + secs
	}
	return dsn + " connect_timeout=" + secs
}

var (
	_ repository.Pruner        = (*Repository)(nil)
	_ repository.RejectStore   = (*Repository)(nil)
	_ repository.StepLeaser    = (*Repository)(nil)
	_ repository.ScheduleStore = (*Repository)(nil)
)
