package writer

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
)

// Affected says what the rows a statement affects are, for the step's
// Changes.
type Affected int

const (
	// AffectedNotCounted reports nothing.
	AffectedNotCounted Affected = iota
	// AffectedInserted reports the rows affected as inserted.
	AffectedInserted
	// AffectedUpdated reports the rows affected as updated.
	AffectedUpdated
	// AffectedDeleted reports the rows affected as deleted.
	AffectedDeleted
)

// NamedConfig configures a Named writer.
type NamedConfig[T any] struct {
	// DB is the database to write to. Required. Unless OwnTransaction is
	// set, it must be the job repository's handle: every chunk is written
	// inside the chunk's transaction, and a chunk without one on DB fails
	// with batch.ErrNoChunkTx.
	DB *sqlx.DB
	// OwnTransaction makes the writer commit each chunk in a transaction of
	// its own on DB, just before the step's checkpoint: for a database that
	// is not the job repository's. A crash between the two commits runs the
	// chunk's statements again on restart: make them idempotent if that
	// matters. Default false: join the chunk transaction, exactly once.
	OwnTransaction bool
	// Query is the statement run once per item, with :name parameters
	// bound, by sqlx, from the item's fields of that `db` tag (or, for a
	// map item, keys). It is SQL written by the program, never data.
	// Required.
	Query string
	// Affected says what the rows each execution affects count as in the
	// step's Changes: AffectedInserted, AffectedUpdated or AffectedDeleted.
	// Default AffectedNotCounted.
	Affected Affected
}

// Named runs one statement with named parameters per item, for writes that
// the other writers do not cover (an UPDATE … SET n = n + :delta, an INSERT
// … SELECT). The statement is prepared once per step execution, when the
// step opens the writer (or on first use), and executed once per item in
// the chunk's transaction; Close releases it. It reports the rows the
// executions affect as Config.Affected says.
//
// A Named writer keeps no restart state.
//
// Guarantee: by default the statements and the step's checkpoint commit in
// one transaction (DB must be the job repository's handle): exactly once.
// With OwnTransaction a crash between the two commits runs the last chunk's
// statements again: at most one chunk redone.
type Named[T any] struct {
	db       *sqlx.DB
	query    string
	name     string
	own      bool
	affected Affected

	mu   sync.Mutex
	stmt *sqlx.NamedStmt
}

var _ batch.ItemStream = (*Named[int])(nil)

// NewNamed returns a Named writer. A missing DB or Query is an error, and so
// is, when T is a struct, a parameter that no field of T binds.
func NewNamed[T any](cfg NamedConfig[T]) (*Named[T], error) {
	if cfg.DB == nil {
		return nil, fmt.Errorf("writer: named: no DB")
	}
	if cfg.Query == "" {
		return nil, fmt.Errorf("writer: named: no Query")
	}
	if cfg.Affected < AffectedNotCounted || cfg.Affected > AffectedDeleted {
		return nil, fmt.Errorf("writer: named: invalid Affected %d", cfg.Affected)
	}
	name := fmt.Sprintf("named %q", abbreviate(cfg.Query))
	var zero T
	if t := reflect.TypeFor[T](); t.Kind() == reflect.Struct || t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		arg := any(zero)
		if t.Kind() == reflect.Pointer {
			arg = reflect.New(t.Elem()).Interface()
		}
		if _, _, err := cfg.DB.BindNamed(cfg.Query, arg); err != nil {
			return nil, fmt.Errorf("writer: %s: a parameter has no field in %v: %w", name, t, err)
		}
	}
	return &Named[T]{db: cfg.DB, query: cfg.Query, name: name, own: cfg.OwnTransaction, affected: cfg.Affected}, nil
}

// Open prepares the statement.
func (w *Named[T]) Open(ctx context.Context, _ batch.ExecutionContext) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stmt != nil {
		return nil
	}
	stmt, err := w.db.PrepareNamedContext(ctx, w.query)
	if err != nil {
		return fmt.Errorf("writer: %s: prepare: %w", w.name, err)
	}
	w.stmt = stmt
	return nil
}

// Update does nothing: the writer keeps no restart state.
func (w *Named[T]) Update(context.Context, batch.ExecutionContext) error { return nil }

// Close closes the prepared statement. The writer can be used again: it
// then prepares it anew.
func (w *Named[T]) Close(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stmt == nil {
		return nil
	}
	err := w.stmt.Close()
	w.stmt = nil
	if err != nil {
		return fmt.Errorf("writer: %s: close: %w", w.name, err)
	}
	return nil
}

// Write runs the statement for each item, in order.
func (w *Named[T]) Write(ctx context.Context, items []T) error {
	if len(items) == 0 {
		return nil
	}
	return withTx(ctx, w.db, w.own, w.name, func(tx *sqlx.Tx) (batch.Changes, error) {
		stmt, err := w.prepared(ctx, tx)
		if err != nil {
			return batch.Changes{}, err
		}
		var affected int64
		for i, it := range items {
			res, err := stmt.ExecContext(ctx, it)
			if err != nil {
				return batch.Changes{}, fmt.Errorf("writer: %s: item %d of the chunk: %w", w.name, i+1, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return batch.Changes{}, fmt.Errorf("writer: %s: item %d of the chunk: %w", w.name, i+1, err)
			}
			affected += n
		}
		switch w.affected {
		case AffectedInserted:
			return batch.Changes{Inserted: affected}, nil
		case AffectedUpdated:
			return batch.Changes{Updated: affected}, nil
		case AffectedDeleted:
			return batch.Changes{Deleted: affected}, nil
		}
		return batch.Changes{}, nil
	})
}

// prepared returns the statement bound to tx, preparing it as the SQL
// writers do (see stmts.get) when Open has not.
func (w *Named[T]) prepared(ctx context.Context, tx *sqlx.Tx) (*sqlx.NamedStmt, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stmt == nil {
		stmt, ok := prepareOutside(ctx, w.db, func(ctx context.Context) (*sqlx.NamedStmt, error) {
			return w.db.PrepareNamedContext(ctx, w.query)
		})
		if !ok {
			stmt, err := tx.PrepareNamedContext(ctx, w.query)
			if err != nil {
				return nil, fmt.Errorf("writer: %s: prepare: %w", w.name, err)
			}
			return stmt, nil
		}
		w.stmt = stmt
	}
	return tx.NamedStmtContext(ctx, w.stmt), nil
}
