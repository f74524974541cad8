package writer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"github.com/chunkwise/chunkwise/batch"
)

// CopyConfig configures a Copy writer.
type CopyConfig[T any] struct {
	// DB is the PostgreSQL database to write to, through pgx/v5's stdlib
	// (the PostgreSQL repository's default) or lib/pq. Required. Unless
	// OwnTransaction is set, it must be the job repository's handle: every
	// chunk is written inside the chunk's transaction, and a chunk without
	// one on DB fails with batch.ErrNoChunkTx.
	DB *sqlx.DB
	// OwnTransaction makes the writer commit each chunk in a transaction of
	// its own on DB, just before the step's checkpoint: for a database that
	// is not the job repository's. A crash between the two commits copies
	// the chunk again on restart. Default false: join the chunk
	// transaction, exactly once.
	OwnTransaction bool
	// Table is the table to copy into, optionally schema-qualified.
	// Required; letters, digits and '_' only (names are not quoted: they
	// fold to lower case, as in the other writers' statements).
	Table string
	// Columns are the columns to fill, in the order Values returns them.
	// Required; letters, digits and '_' only.
	Columns []string
	// Values returns the column values of one item, one per column; nil is
	// NULL. Required.
	Values func(item T) []any
}

// Copy loads each chunk into a PostgreSQL table with COPY … FROM STDIN, in
// the chunk's transaction: the fastest way in. On pgx it is pgx's CopyFrom,
// which sends the values in binary (Values must then return Go types that
// pgx encodes for the column's type: an int64 or a float64 for NUMERIC, a
// time.Time for a timestamp, and so on); on lib/pq it is lib/pq's bulk
// load, in text. It reports the rows copied as Changes.Inserted.
//
// A COPY is a mode of the transaction, not a statement that can be kept
// prepared: each chunk starts its own. A row the server refuses fails the
// chunk with the server's words, which name it by its line in the chunk's
// COPY: its item number. Copy keeps no restart state and is not a stream.
//
// Guarantee: by default the rows and the step's checkpoint commit in one
// transaction (DB must be the job repository's handle): exactly once. With
// OwnTransaction a crash between the two commits copies the last chunk
// again on restart: at most one chunk redone, duplicates unless a unique
// index refuses them (which then fails the chunk).
type Copy[T any] struct {
	db      *sqlx.DB
	table   string
	ncols   int
	values  func(T) []any
	query   string
	own     bool
	name    string
	pgx     bool           // the driver is pgx's: CopyFrom
	ident   pgx.Identifier // the table, for CopyFrom
	columns []string       // the columns, for CopyFrom
}

// NewCopy returns a Copy writer. A DB that is not PostgreSQL through pgx or
// lib/pq, invalid names and missing fields are errors.
func NewCopy[T any](cfg CopyConfig[T]) (*Copy[T], error) {
	switch {
	case cfg.DB == nil || cfg.DB.DB == nil:
		return nil, fmt.Errorf("writer: copy: no DB")
	case !validIdent(cfg.Table, true):
		return nil, fmt.Errorf("writer: copy: invalid table name %q", cfg.Table)
	case len(cfg.Columns) == 0:
		return nil, fmt.Errorf("writer: copy into %s: no columns", cfg.Table)
	case cfg.Values == nil:
		return nil, fmt.Errorf("writer: copy into %s: no Values function", cfg.Table)
	}
	var viaPgx bool
	switch cfg.DB.Driver().(type) {
	case *stdlib.Driver:
		viaPgx = true
	case *pq.Driver:
	default:
		return nil, fmt.Errorf("writer: copy into %s: COPY needs PostgreSQL through pgx or lib/pq, and the database's driver is %T (%q); use writer.SQL for other databases",
			cfg.Table, cfg.DB.Driver(), cfg.DB.DriverName())
	}
	columns := make([]string, len(cfg.Columns))
	for i, c := range cfg.Columns {
		if !validIdent(c, false) {
			return nil, fmt.Errorf("writer: copy into %s: invalid column name %q", cfg.Table, c)
		}
		// CopyFrom quotes names; unquoted names fold to lower case.
		columns[i] = strings.ToLower(c)
	}
	return &Copy[T]{
		db: cfg.DB, table: cfg.Table, ncols: len(cfg.Columns), values: cfg.Values, own: cfg.OwnTransaction,
		query: "COPY " + cfg.Table + " (" + strings.Join(cfg.Columns, ", ") + ") FROM STDIN",
		name:  "copy into " + cfg.Table,
		pgx:   viaPgx, ident: pgx.Identifier(strings.Split(strings.ToLower(cfg.Table), ".")), columns: columns,
	}, nil
}

// Write copies items into the table.
func (w *Copy[T]) Write(ctx context.Context, items []T) error {
	if len(items) == 0 {
		return nil
	}
	if w.pgx {
		return withRaw(ctx, w.db, w.own, w.name, func(driverConn any) (batch.Changes, error) {
			return w.copyFrom(ctx, driverConn, items)
		})
	}
	return withTx(ctx, w.db, w.own, w.name, func(tx *sqlx.Tx) (batch.Changes, error) {
		stmt, err := tx.PrepareContext(ctx, w.query)
		if err != nil {
			return batch.Changes{}, w.err("", err)
		}
		defer stmt.Close()
		for i, it := range items {
			vals := w.values(it)
			if len(vals) != w.ncols {
				return batch.Changes{}, fmt.Errorf("writer: %s: item %d of the chunk: %d values for %d columns", w.name, i+1, len(vals), w.ncols)
			}
			if _, err := stmt.ExecContext(ctx, vals...); err != nil {
				return batch.Changes{}, w.err(fmt.Sprintf("at item %d of the chunk", i+1), err)
			}
		}
		res, err := stmt.ExecContext(ctx)
		if err != nil {
			return batch.Changes{}, w.err(fmt.Sprintf("%d items", len(items)), err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return batch.Changes{}, w.err("", err)
		}
		if err := stmt.Close(); err != nil {
			return batch.Changes{}, w.err("", err)
		}
		return batch.Changes{Inserted: n}, nil
	})
}

// copyFrom copies items with pgx's CopyFrom on the driver connection of the
// transaction.
func (w *Copy[T]) copyFrom(ctx context.Context, driverConn any, items []T) (batch.Changes, error) {
	sc, ok := driverConn.(*stdlib.Conn)
	if !ok {
		return batch.Changes{}, fmt.Errorf("writer: %s: the connection is a %T, not pgx's", w.name, driverConn)
	}
	var short error
	n, err := sc.Conn().CopyFrom(ctx, w.ident, w.columns, pgx.CopyFromSlice(len(items), func(i int) ([]any, error) {
		vals := w.values(items[i])
		if len(vals) != w.ncols {
			short = fmt.Errorf("writer: %s: item %d of the chunk: %d values for %d columns", w.name, i+1, len(vals), w.ncols)
			return nil, short
		}
		return vals, nil
	}))
	switch {
	case short != nil:
		return batch.Changes{}, short
	case err != nil:
		return batch.Changes{}, w.err(fmt.Sprintf("%d items", len(items)), err)
	}
	return batch.Changes{Inserted: n}, nil
}

// err names the table, where in the chunk the error surfaced (COPY
// buffers: an error may concern an earlier item), and the server's
// position of the row it refused.
func (w *Copy[T]) err(where string, err error) error {
	msg := "writer: " + w.name
	if where != "" {
		msg += " (" + where + ")"
	}
	var pe *pq.Error
	if errors.As(err, &pe) && pe.Where != "" {
		return fmt.Errorf("%s: %w (%s)", msg, err, pe.Where)
	}
	var pge *pgconn.PgError
	if errors.As(err, &pge) && pge.Where != "" {
		return fmt.Errorf("%s: %w (%s)", msg, err, pge.Where)
	}
	return fmt.Errorf("%s: %w", msg, err)
}
