package writer

import (
	"context"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
)

// UpdateConfig configures an Update writer.
type UpdateConfig[T any] struct {
	// DB is the database to write to: PostgreSQL (driver "postgres" or
	// "pgx") or SQLite (driver "sqlite" or "sqlite3"). Required. Unless
	// OwnTransaction is set, it must be the job repository's handle: every
	// chunk is written inside the chunk's transaction, and a chunk without
	// one on DB fails with batch.ErrNoChunkTx.
	DB *sqlx.DB
	// OwnTransaction makes the writer commit each chunk in a transaction of
	// its own on DB, just before the step's checkpoint: for a database that
	// is not the job repository's. Setting columns to values is idempotent,
	// so a chunk redone after a crash leaves the same rows (its counts are
	// reported again). Default false: join the chunk transaction, exactly
	// once.
	OwnTransaction bool
	// Table is the table to update, optionally schema-qualified. Required;
	// letters, digits and '_' only.
	Table string
	// Columns are the columns Values returns, in that order: the key
	// columns and the columns to set (every column that is not in Key).
	// Required; letters, digits and '_' only.
	Columns []string
	// Key are the columns, among Columns, that find the row of an item.
	// Required; at least one column must not be in Key.
	Key []string
	// Values returns the column values of one item, one per column.
	// Required.
	Values func(item T) []any
	// SkipUnchanged leaves alone a row whose columns already hold the
	// item's values (NULL equal to NULL), so that it is not rewritten, and
	// counts it as unchanged instead of updated. The columns' types need an
	// equality operator (PostgreSQL's json has none: use jsonb). Default
	// false: every row found is updated.
	SkipUnchanged bool
	// AllowMissing lets an item match no row: it is passed over and counted
	// nowhere. Default false: such an item fails the chunk with an error
	// that names it and wraps ErrNoRow.
	AllowMissing bool
	// MaxParams caps the bind parameters of one statement; a chunk that
	// needs more is written in several statements of the same transaction.
	// Default 65535 (PostgreSQL's limit; SQLite gets 32766).
	MaxParams int
}

// Update updates, for each item, the row that has the item's key: UPDATE …
// FROM (VALUES …), several rows per statement. It reports the rows updated
// and, with SkipUnchanged, those found already equal and left alone, as
// Changes.Updated and Changes.Unchanged.
//
// On PostgreSQL each chunk is one round trip: one statement updates the
// rows and returns how many it changed and how many have the chunk's keys.
// On SQLite the UPDATE says how many rows it changed, which without
// SkipUnchanged are all the rows found; with SkipUnchanged the writer first
// counts, in the same transaction, the rows that have the chunk's keys: two
// statements.
//
// A chunk holding two items with the same key is an error naming both: one
// row would take either item's values.
//
// Update is a batch.ItemStream that keeps no restart state: it prepares its
// statements once per step execution, on first use (per row count: full
// chunks and the last), and Close releases them.
//
// Guarantee: by default the rows and the step's checkpoint commit in one
// transaction (DB must be the job repository's handle): exactly once. With
// OwnTransaction a crash between the two commits redoes at most one chunk,
// which sets the same values again: idempotent.
type Update[T any] struct {
	keyed[T]
	skip         bool
	allowMissing bool
}

var _ batch.ItemStream = (*Update[int])(nil)

// NewUpdate returns an Update writer. Invalid names, a Key column that is
// not among Columns, no column to set, a database that is neither
// PostgreSQL nor SQLite and a MaxParams smaller than one row are errors.
func NewUpdate[T any](cfg UpdateConfig[T]) (*Update[T], error) {
	if cfg.DB == nil {
		return nil, fmt.Errorf("writer: update: no DB")
	}
	w := &Update[T]{skip: cfg.SkipUnchanged, allowMissing: cfg.AllowMissing}
	if err := w.init("update", cfg.DB, cfg.OwnTransaction, cfg.Table, cfg.Columns, cfg.Key, cfg.Values, cfg.MaxParams, false); err != nil {
		return nil, err
	}
	if len(w.spec.nonKeyColumns()) == 0 {
		return nil, fmt.Errorf("writer: %s: every column is in the key: nothing to set", w.spec.name)
	}
	return w, nil
}

// Write updates the rows of items and reports how many were updated and
// left unchanged.
func (w *Update[T]) Write(ctx context.Context, items []T) error {
	return w.write(ctx, items, false, func(tx *sqlx.Tx, part [][]any, start int) (batch.Changes, error) {
		changed, found, err := w.update(ctx, tx, part)
		if err != nil {
			return batch.Changes{}, w.partError(part, start, err)
		}
		if found < int64(len(part)) && !w.allowMissing {
			return batch.Changes{}, w.missing(ctx, tx, part, start, found)
		}
		return batch.Changes{Updated: changed, Unchanged: found - changed}, nil
	})
}

// update updates rows and returns how many rows it changed and how many
// have the rows' keys.
func (w *Update[T]) update(ctx context.Context, tx *sqlx.Tx, rows [][]any) (changed, found int64, err error) {
	args := make([]any, 0, len(rows)*len(w.spec.columns))
	for _, r := range rows {
		args = append(args, r...)
	}
	stmt, err := w.stmts.get(ctx, tx, stmtKey{kind: "update", rows: len(rows)}, func() string { return w.statement(len(rows)) })
	if err != nil {
		return 0, 0, fmt.Errorf("prepare: %w", err)
	}
	if w.dialect == dialectPostgres {
		err := stmt.QueryRowxContext(ctx, args...).Scan(&changed, &found)
		return changed, found, err
	}
	if w.skip {
		if found, err = countKeys(ctx, tx, &w.stmts, w.dialect, &w.spec, rows); err != nil {
			return 0, 0, err
		}
	}
	res, err := stmt.ExecContext(ctx, args...)
	if err != nil {
		return 0, 0, err
	}
	if changed, err = res.RowsAffected(); err != nil {
		return 0, 0, err
	}
	if !w.skip {
		found = changed
	}
	return changed, found, nil
}

// statement returns the update of rows rows. On PostgreSQL it returns one
// row: the rows changed, and the rows that have the keys (counted on the
// snapshot the statement began with, before its own changes).
//
// PostgreSQL types an unknown parameter of VALUES as text, which cannot be
// compared with a key of another type: a first row of NULLs taken from the
// table's own row type gives every column its type, and matches no row
// (NULL equals nothing).
func (w *Update[T]) statement(rows int) string {
	const alias, values = "cw_t", "cw_rows"
	cols := strings.Join(w.spec.columns, ", ")
	var set, on []string
	for _, c := range w.spec.nonKeyColumns() {
		set = append(set, c+" = "+values+"."+c)
	}
	for _, k := range w.spec.keyColumns() {
		on = append(on, alias+"."+k+" = "+values+"."+k)
	}
	join := strings.Join(on, " AND ")
	where := join
	if w.skip {
		where += " AND " + distinct(alias, values, w.spec.nonKeyColumns())
	}
	list := valuesList(rows, len(w.spec.columns))
	if w.dialect == dialectPostgres {
		typed := make([]string, len(w.spec.columns))
		for i, c := range w.spec.columns {
			typed[i] = "(NULL::" + w.spec.table + ")." + c
		}
		list = "(" + strings.Join(typed, ", ") + "), " + list
	}
	update := fmt.Sprintf("UPDATE %s AS %s SET %s FROM %s WHERE %s", w.spec.table, alias, strings.Join(set, ", "), values, where)
	if w.dialect == dialectPostgres {
		return w.db.Rebind(fmt.Sprintf("WITH %s (%s) AS (VALUES %s), cw_changed AS (%s RETURNING 1) "+
			"SELECT (SELECT COUNT(*) FROM cw_changed), (SELECT COUNT(*) FROM %s AS %s JOIN %s ON %s)",
			values, cols, list, update, w.spec.table, alias, values, join))
	}
	return w.db.Rebind(fmt.Sprintf("WITH %s (%s) AS (VALUES %s) %s", values, cols, list, update))
}

// missing returns the error for rows of which only found have a row: it
// looks for the first item without one, to name it.
func (w *Update[T]) missing(ctx context.Context, tx *sqlx.Tx, rows [][]any, from int, found int64) error {
	var cond []string
	for _, k := range w.spec.keyColumns() {
		cond = append(cond, k+" = ?")
	}
	q := tx.Rebind("SELECT COUNT(*) FROM " + w.spec.table + " WHERE " + strings.Join(cond, " AND "))
	for i, r := range rows {
		var n int
		if err := tx.GetContext(ctx, &n, q, w.spec.keyOf(r)...); err != nil {
			return fmt.Errorf("writer: %s: %d of %s match no row; looking for them: %w", w.spec.name, int64(len(rows))-found, w.spec.rangeRef(rows, from), err)
		}
		if n == 0 {
			return fmt.Errorf("writer: %s: %s: %w", w.spec.name, w.spec.itemRef(from+i, r), ErrNoRow)
		}
	}
	return fmt.Errorf("writer: %s: %d of %s match no row: %w", w.spec.name, int64(len(rows))-found, w.spec.rangeRef(rows, from), ErrNoRow)
}

// DeleteConfig configures a Delete writer.
type DeleteConfig[T any] struct {
	// DB is the database to delete from: PostgreSQL (driver "postgres" or
	// "pgx") or SQLite (driver "sqlite" or "sqlite3"). Required. Unless
	// OwnTransaction is set, it must be the job repository's handle: every
	// chunk is written inside the chunk's transaction, and a chunk without
	// one on DB fails with batch.ErrNoChunkTx.
	DB *sqlx.DB
	// OwnTransaction makes the writer commit each chunk in a transaction of
	// its own on DB, just before the step's checkpoint: for a database that
	// is not the job repository's. A chunk redone after a crash finds its
	// rows gone and deletes nothing more. Default false: join the chunk
	// transaction, exactly once.
	OwnTransaction bool
	// Table is the table to delete from, optionally schema-qualified.
	// Required; letters, digits and '_' only.
	Table string
	// Key are the columns that find the row of an item, in the order
	// Values returns them. Required; letters, digits and '_' only.
	Key []string
	// Values returns the key values of one item, one per Key column.
	// Required.
	Values func(item T) []any
	// MaxParams caps the bind parameters of one statement; a chunk that
	// needs more is deleted in several statements of the same transaction.
	// Default 65535 (PostgreSQL's limit; SQLite gets 32766).
	MaxParams int
}

// Delete deletes, for each item, the rows that have the item's key: DELETE
// … WHERE key IN (…), one statement for a chunk of ordinary size, a round
// trip on both databases. It reports the rows deleted as Changes.Deleted;
// an item whose key matches no row deletes nothing and is not an error (a
// redone chunk finds its rows gone), and two items may have the same key.
//
// Delete is a batch.ItemStream that keeps no restart state: it prepares its
// statements once per step execution, on first use (per row count: full
// chunks and the last), and Close releases them.
//
// Guarantee: by default the deletes and the step's checkpoint commit in one
// transaction (DB must be the job repository's handle): exactly once. With
// OwnTransaction a crash between the two commits redoes at most one chunk,
// which finds nothing more to delete: idempotent.
type Delete[T any] struct {
	keyed[T]
}

var _ batch.ItemStream = (*Delete[int])(nil)

// NewDelete returns a Delete writer. Invalid names, a database that is
// neither PostgreSQL nor SQLite and a MaxParams smaller than one key are
// errors.
func NewDelete[T any](cfg DeleteConfig[T]) (*Delete[T], error) {
	if cfg.DB == nil {
		return nil, fmt.Errorf("writer: delete: no DB")
	}
	w := &Delete[T]{}
	if err := w.init("delete from", cfg.DB, cfg.OwnTransaction, cfg.Table, cfg.Key, cfg.Key, cfg.Values, cfg.MaxParams, true); err != nil {
		return nil, err
	}
	return w, nil
}

// Write deletes the rows of items and reports how many were deleted.
func (w *Delete[T]) Write(ctx context.Context, items []T) error {
	return w.write(ctx, items, true, func(tx *sqlx.Tx, part [][]any, start int) (batch.Changes, error) {
		n, err := w.delete(ctx, tx, part)
		if err != nil {
			return batch.Changes{}, w.partError(part, start, err)
		}
		return batch.Changes{Deleted: n}, nil
	})
}

func (w *Delete[T]) delete(ctx context.Context, tx *sqlx.Tx, rows [][]any) (int64, error) {
	args := make([]any, 0, len(rows)*len(w.spec.key))
	for _, r := range rows {
		args = append(args, r...)
	}
	stmt, err := w.stmts.get(ctx, tx, stmtKey{kind: "delete", rows: len(rows)}, func() string {
		return w.db.Rebind("DELETE FROM " + w.spec.table + " WHERE " + keyIn(w.dialect, w.spec.keyColumns(), len(rows)))
	})
	if err != nil {
		return 0, fmt.Errorf("prepare: %w", err)
	}
	res, err := stmt.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
