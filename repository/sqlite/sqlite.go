// Package sqlite is the embedded job repository: a single SQLite file,
// no server, no cgo (it uses modernc.org/sqlite). It is the default of the
// command-line runner, so that a batch program runs with no setup.
//
//	repo, err := sqlite.Open(ctx, "batch.db", sqlite.Config{})
//	err = repo.Migrate(ctx)
//
// The same file can hold the job's own tables: a writer built on repo.DB()
// joins each chunk's transaction (see batch.JoinTx).
package sqlite

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/chunkwise/chunkwise/internal/sqlrepo"
	"github.com/chunkwise/chunkwise/repository"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Config configures the repository.
type Config struct {
	// TablePrefix starts the name of every table: letters, digits and '_'.
	// Default "batch_".
	TablePrefix string
}

// capabilities are the interfaces of the SQL implementation beyond
// repository.JobRepository, promoted to Repository.
type capabilities = sqlrepo.Capabilities

// Repository is the SQLite job repository: a repository.JobRepository,
// and a repository.Pruner (Prune deletes old executions a batch per
// transaction; see repository.PruneRequest for what it keeps),
// repository.RejectStore, repository.StepLeaser and
// repository.ScheduleStore.
type Repository struct {
	// JobRepository is the SQL implementation the methods come from.
	repository.JobRepository
	capabilities // the same implementation's other interfaces
	db           *sqlx.DB
	beat         *sqlx.DB                 // the heartbeats' pool, when Open made one
	monitor      repository.JobRepository // the repository on beat
	prefix       string
	owned        bool
}

// DB returns the database the repository runs on. Writers and tasklets on
// this handle (or on its *sql.DB) join each chunk's transaction with
// batch.JoinTx, so that their statements and the step's checkpoint commit
// together.
func (r *Repository) DB() *sqlx.DB { return r.db }

var dialect = sqlrepo.Dialect{
	Name: "sqlite",
	// Transactions begin IMMEDIATE (see DSN): the first statement already
	// holds the database's write lock, so no row locks are needed.
	IsUniqueViolation: func(err error) bool {
		var e *sqlitedrv.Error
		return errors.As(err, &e) && (e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY)
	},
	TableExists: `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`,
}

// DSN returns the modernc.org/sqlite data source name the repository uses for
// the file at path: write-ahead logging, a busy timeout, foreign keys on, and
// transactions that take the write lock when they begin.
func DSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(60000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// New returns a repository on db, which must have been opened with the
// "sqlite" driver of modernc.org/sqlite and the settings of DSN. Call Migrate
// once before use.
func New(db *sqlx.DB, cfg Config) (*Repository, error) {
	if cfg.TablePrefix == "" {
		cfg.TablePrefix = "batch_"
	}
	r, err := sqlrepo.New(db, dialect, cfg.TablePrefix)
	if err != nil {
		return nil, fmt.Errorf("repository sqlite: %w", err)
	}
	return &Repository{JobRepository: r, capabilities: r, db: db, prefix: cfg.TablePrefix}, nil
}

// MaxIdleConns is how many idle connections the pool Open makes keeps
// (for 5 minutes at most), so that steps and partitions running at once do
// not open the file again for each chunk. A pool handed to New keeps what
// its owner set.
const MaxIdleConns = 32

// Open opens (creating if needed) the database file at path and returns a
// repository that Close closes. Its heartbeats, and reads through Monitor,
// use a connection of their own with a small page cache: the pool's
// connections are left to chunks.
func Open(ctx context.Context, path string, cfg Config) (*Repository, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("repository sqlite: invalid file name %q", path)
	}
	db, err := sqlx.Open("sqlite", DSN(path))
	if err != nil {
		return nil, fmt.Errorf("repository sqlite: %w", err)
	}
	// database/sql keeps 2 idle connections by default: with more steps or
	// partitions at once, each chunk would open the file again.
	db.SetMaxIdleConns(MaxIdleConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("repository sqlite: open %s: %w", path, err)
	}
	r, err := New(db, cfg)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	r.owned = true
	// Heartbeats get a connection of their own, with a small page cache.
	// On the main pool, a heartbeat that comes while a chunk holds its
	// connection opens a second one; database/sql then hands the next
	// chunk that one (the last returned), and over a long run both fill a
	// page cache of 2 MiB with the job's tables.
	if r.beat, err = sqlx.Open("sqlite", DSN(path)+"&_pragma=cache_size(-64)"); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("repository sqlite: %w", err)
	}
	r.beat.SetMaxOpenConns(1)
	r.beat.SetConnMaxIdleTime(5 * time.Minute)
	r.JobRepository.(*sqlrepo.Repository).SetHeartbeatDB(r.beat)
	if r.monitor, err = sqlrepo.New(r.beat, dialect, r.prefix); err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("repository sqlite: %w", err)
	}
	return r, nil
}

// Monitor returns the repository as read through the heartbeats'
// connection, for a display that polls the executions while jobs run (the
// command line's progress): its reads never take a connection of the main
// pool, which the next chunk would reuse and fill a page cache of its own
// on. Only a repository that Open made has one; another returns itself.
func (r *Repository) Monitor() repository.JobRepository {
	if r.monitor == nil {
		return r
	}
	return r.monitor
}

// Migrate creates or upgrades the repository's tables. It is idempotent.
func (r *Repository) Migrate(ctx context.Context) error {
	ms, err := sqlrepo.LoadMigrations(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("repository sqlite: %w", err)
	}
	_, err = sqlrepo.Migrate(ctx, r.DB(), dialect, r.prefix, "", ms)
	return err
}

// Pending returns the names of the migrations Migrate would apply, changing
// nothing.
func (r *Repository) Pending(ctx context.Context) ([]string, error) {
	ms, err := sqlrepo.LoadMigrations(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("repository sqlite: %w", err)
	}
	pending, err := sqlrepo.Pending(ctx, r.DB(), dialect, r.prefix, ms)
	return sqlrepo.Names(pending), err
}

// Close closes the database if Open opened it.
func (r *Repository) Close() error {
	if !r.owned {
		return nil
	}
	err := r.DB().Close()
	if r.beat != nil {
		err = errors.Join(err, r.beat.Close())
	}
	return err
}

var (
	_ repository.Pruner        = (*Repository)(nil)
	_ repository.RejectStore   = (*Repository)(nil)
	_ repository.StepLeaser    = (*Repository)(nil)
	_ repository.ScheduleStore = (*Repository)(nil)
)
