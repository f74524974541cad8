package writer

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
)

// identPattern accepts a plain SQL identifier, optionally qualified by a
// schema: names from configuration are checked against it before they are
// put into a statement.
var identPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$`)

// SQLConfig configures a SQL writer.
type SQLConfig[T any] struct {
	// DB is the database to write to. Required. Unless OwnTransaction is
	// set, it must be the job repository's handle (repo.DB(), or
	// launcher.Env.DB): every chunk is written inside the chunk's
	// transaction, and a chunk without one on DB fails with
	// batch.ErrNoChunkTx.
	DB *sqlx.DB
	// OwnTransaction makes the writer commit each chunk in a transaction of
	// its own on DB, just before the step's checkpoint: for a database that
	// is not the job repository's. A crash between the two commits writes
	// the chunk again on restart (make the insert idempotent with Suffix).
	// Default false: join the chunk transaction, exactly once.
	OwnTransaction bool
	// Table is the table to insert into, optionally schema-qualified.
	// Required; letters, digits and '_' only.
	Table string
	// Columns are the columns to fill, in the order Values returns them.
	// Required; letters, digits and '_' only.
	Columns []string
	// Values returns the column values of one item, one per column.
	// Required.
	Values func(item T) []any
	// Suffix is appended to the INSERT statement, for an upsert: for example
	// "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name". It is SQL
	// written by the program, never data. Default none.
	Suffix string
	// MaxParams caps the bind parameters of one statement; a chunk that
	// needs more is inserted in several statements of the same transaction.
	// Default 65535 (PostgreSQL's limit; SQLite allows 32766 and gets that
	// when the driver is "sqlite").
	MaxParams int
}

// SQL inserts each chunk of items into a table with multi-row INSERT
// statements — one round trip for a chunk of ordinary size.
//
// SQL is a batch.ItemStream that keeps no restart state: it prepares each
// statement once per step execution, on first use (one for full chunks, one
// for the last, whose row count differs), and Close releases them. Outside
// a step it prepares them on first use too; call Close when done.
//
// It reports the rows it inserts as Changes.Inserted, unless Suffix is set:
// the rows an upsert suffix affects are inserts and updates that it cannot
// tell apart (Upsert can).
//
// Guarantee: by default the rows and the step's checkpoint commit in one
// transaction (DB must then be the job repository's handle), so after a
// crash at any moment a restart writes every item exactly once. With
// OwnTransaction the rows commit in their own transaction just before the
// checkpoint: a crash between the two redoes at most one chunk, so make the
// insert idempotent with Suffix (an upsert) if duplicates matter.
type SQL[T any] struct {
	db        *sqlx.DB
	table     string
	columns   []string
	values    func(T) []any
	suffix    string
	perInsert int
	own       bool
	prepared
}

var _ batch.ItemStream = (*SQL[int])(nil)

// NewSQL returns a SQL writer. Invalid table or column names, missing fields
// and a MaxParams smaller than one row are errors.
func NewSQL[T any](cfg SQLConfig[T]) (*SQL[T], error) {
	switch {
	case cfg.DB == nil:
		return nil, fmt.Errorf("writer: sql: no DB")
	case !validIdent(cfg.Table, true):
		return nil, fmt.Errorf("writer: sql: invalid table name %q", cfg.Table)
	case len(cfg.Columns) == 0:
		return nil, fmt.Errorf("writer: sql %s: no columns", cfg.Table)
	case cfg.Values == nil:
		return nil, fmt.Errorf("writer: sql %s: no Values function", cfg.Table)
	}
	for _, c := range cfg.Columns {
		if !validIdent(c, false) {
			return nil, fmt.Errorf("writer: sql %s: invalid column name %q", cfg.Table, c)
		}
	}
	maxParams := maxParamsFor(cfg.DB, cfg.MaxParams)
	if maxParams < len(cfg.Columns) {
		return nil, fmt.Errorf("writer: sql %s: MaxParams %d is less than one row of %d columns", cfg.Table, maxParams, len(cfg.Columns))
	}
	return &SQL[T]{
		db: cfg.DB, table: cfg.Table, columns: append([]string(nil), cfg.Columns...),
		values: cfg.Values, suffix: cfg.Suffix, perInsert: maxParams / len(cfg.Columns), own: cfg.OwnTransaction,
		prepared: prepared{name: "sql " + cfg.Table, stmts: stmts{db: cfg.DB}},
	}, nil
}

// Write inserts items: in the chunk's transaction, or with OwnTransaction in
// a transaction of its own that it commits.
func (w *SQL[T]) Write(ctx context.Context, items []T) error {
	if len(items) == 0 {
		return nil
	}
	args := make([]any, 0, len(items)*len(w.columns))
	for i, it := range items {
		vals := w.values(it)
		if len(vals) != len(w.columns) {
			return fmt.Errorf("writer: sql %s: item %d of the chunk: %d values for %d columns", w.table, i+1, len(vals), len(w.columns))
		}
		args = append(args, vals...)
	}
	return withTx(ctx, w.db, w.own, "sql "+w.table, func(tx *sqlx.Tx) (batch.Changes, error) {
		var inserted int64
		for start := 0; start < len(items); start += w.perInsert {
			end := min(start+w.perInsert, len(items))
			n, err := w.insert(ctx, tx, start, end-start, args[start*len(w.columns):end*len(w.columns)])
			if err != nil {
				return batch.Changes{}, err
			}
			inserted += n
		}
		if w.suffix != "" {
			return batch.Changes{}, nil
		}
		return batch.Changes{Inserted: inserted}, nil
	})
}

// insert inserts rows rows, the chunk's items from index from, and returns
// how many rows the statement affected.
func (w *SQL[T]) insert(ctx context.Context, tx *sqlx.Tx, from, rows int, args []any) (int64, error) {
	stmt, err := w.stmts.get(ctx, tx, stmtKey{kind: "insert", rows: rows}, func() string { return w.statement(rows) })
	if err != nil {
		return 0, fmt.Errorf("writer: sql insert into %s (%s): prepare: %w", w.table, itemRange(from, rows), err)
	}
	res, err := stmt.ExecContext(ctx, args...)
	if err != nil {
		return 0, fmt.Errorf("writer: sql insert into %s (%s): %w", w.table, itemRange(from, rows), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("writer: sql insert into %s (%s): %w", w.table, itemRange(from, rows), err)
	}
	return n, nil
}

// itemRange names rows items of a chunk from index from: "item 3 of the
// chunk", "items 3-5 of the chunk".
func itemRange(from, rows int) string {
	if rows == 1 {
		return fmt.Sprintf("item %d of the chunk", from+1)
	}
	return fmt.Sprintf("items %d-%d of the chunk", from+1, from+rows)
}

// statement returns the INSERT statement for rows rows.
func (w *SQL[T]) statement(rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(w.table)
	b.WriteString(" (")
	b.WriteString(strings.Join(w.columns, ", "))
	b.WriteString(") VALUES ")
	b.WriteString(valuesList(rows, len(w.columns)))
	if w.suffix != "" {
		b.WriteString(" ")
		b.WriteString(w.suffix)
	}
	return w.db.Rebind(b.String())
}
