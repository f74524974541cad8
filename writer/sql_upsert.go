package writer

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
)

// UpsertConfig configures an Upsert writer.
type UpsertConfig[T any] struct {
	// DB is the database to write to: PostgreSQL (driver "postgres" or
	// "pgx") or SQLite (driver "sqlite" or "sqlite3"). Required. Unless
	// OwnTransaction is set, it must be the job repository's handle
	// (repo.DB(), or launcher.Env.DB): every chunk is written inside the
	// chunk's transaction, and a chunk without one on DB fails with
	// batch.ErrNoChunkTx.
	DB *sqlx.DB
	// OwnTransaction makes the writer commit each chunk in a transaction of
	// its own on DB, just before the step's checkpoint: for a database that
	// is not the job repository's. An upsert written twice leaves the same
	// rows, so a chunk redone after a crash changes nothing more (its
	// counts are reported again). Default false: join the chunk
	// transaction, exactly once.
	OwnTransaction bool
	// Table is the table to write to, optionally schema-qualified.
	// Required; letters, digits and '_' only.
	Table string
	// Columns are the columns to fill, in the order Values returns them.
	// Required; letters, digits and '_' only.
	Columns []string
	// Key are the columns, among Columns, of the unique index or primary
	// key that identifies a row: the ON CONFLICT target. Required.
	Key []string
	// Update are the columns, among Columns, that an existing row takes
	// from the item. Default: every column that is not in Key. When there
	// are none (every column is in Key), existing rows are left alone (ON
	// CONFLICT DO NOTHING) and count as unchanged.
	Update []string
	// Values returns the column values of one item, one per column.
	// Required.
	Values func(item T) []any
	// SkipUnchanged leaves alone an existing row whose Update columns
	// already hold the item's values (NULL equal to NULL), so that it is not
	// rewritten — no new row version, no trigger, no WAL — and counts as
	// unchanged instead of updated. The columns' types need an equality
	// operator (PostgreSQL's json has none: use jsonb). Default false:
	// every existing row is updated.
	SkipUnchanged bool
	// MaxParams caps the bind parameters of one statement; a chunk that
	// needs more is written in several statements of the same transaction.
	// Default 65535 (PostgreSQL's limit; SQLite gets 32766).
	MaxParams int
}

// Upsert inserts each item as a row of a table, or updates the row that has
// the item's key: INSERT … ON CONFLICT (Key) DO UPDATE SET …, several rows
// per statement. With SkipUnchanged, rows already equal to their item are
// not rewritten.
//
// It reports what it did as Changes: rows inserted, updated, and left
// unchanged (already equal with SkipUnchanged, or existing when there is
// nothing to update). On PostgreSQL one statement per chunk tells them
// apart: of the rows it wrote, those with xmax = 0 are new (the new version
// of an updated row carries the lock that ON CONFLICT took on the old
// one). On SQLite the writer first
// counts, in the same transaction, the rows that already have the chunk's
// keys (with the repository's transactions, which take the write lock when
// they begin, no one can add one in between; in any transaction SQLite
// refuses the write rather than let another writer slip in): those not
// found are the inserts, the rest of the rows the statement changed are
// updates, the other existing rows unchanged.
//
// A chunk holding two items with the same key is an error naming both: one
// statement cannot write a row twice.
//
// Upsert is a batch.ItemStream that keeps no restart state: it prepares its
// statements once per step execution, on first use (per row count: full
// chunks and the last), and Close releases them.
//
// Guarantee: by default the rows and the step's checkpoint commit in one
// transaction (DB must be the job repository's handle): exactly once. With
// OwnTransaction a crash between the two commits redoes at most one chunk,
// which an upsert absorbs: idempotent.
type Upsert[T any] struct {
	keyed[T]
	update []string
	skip   bool
}

var _ batch.ItemStream = (*Upsert[int])(nil)

// NewUpsert returns an Upsert writer. Invalid names, a Key or Update column
// that is not among Columns, a database that is neither PostgreSQL nor
// SQLite and a MaxParams smaller than one row are errors.
func NewUpsert[T any](cfg UpsertConfig[T]) (*Upsert[T], error) {
	if cfg.DB == nil {
		return nil, fmt.Errorf("writer: upsert: no DB")
	}
	w := &Upsert[T]{skip: cfg.SkipUnchanged}
	if err := w.init("upsert", cfg.DB, cfg.OwnTransaction, cfg.Table, cfg.Columns, cfg.Key, cfg.Values, cfg.MaxParams, false); err != nil {
		return nil, err
	}
	spec := w.spec
	update := cfg.Update
	if update == nil {
		update = spec.nonKeyColumns()
	}
	for _, c := range update {
		i := slices.Index(spec.columns, c)
		switch {
		case i < 0:
			return nil, fmt.Errorf("writer: %s: update column %q is not one of the columns", spec.name, c)
		case spec.isKey(i):
			return nil, fmt.Errorf("writer: %s: update column %s is a key column", spec.name, c)
		}
	}
	w.update = append([]string(nil), update...)
	return w, nil
}

// Write upserts items and reports how many rows were inserted, updated and
// left unchanged.
func (w *Upsert[T]) Write(ctx context.Context, items []T) error {
	return w.write(ctx, items, false, func(tx *sqlx.Tx, part [][]any, start int) (batch.Changes, error) {
		c, err := w.upsert(ctx, tx, part)
		if err != nil {
			return batch.Changes{}, w.partError(part, start, err)
		}
		return c, nil
	})
}

func (w *Upsert[T]) upsert(ctx context.Context, tx *sqlx.Tx, rows [][]any) (batch.Changes, error) {
	n := int64(len(rows))
	args := make([]any, 0, len(rows)*len(w.spec.columns))
	for _, r := range rows {
		args = append(args, r...)
	}
	stmt, err := w.stmts.get(ctx, tx, stmtKey{kind: "upsert", rows: len(rows)}, func() string { return w.statement(len(rows)) })
	if err != nil {
		return batch.Changes{}, fmt.Errorf("prepare: %w", err)
	}
	if w.dialect == dialectPostgres {
		var inserted, written int64
		if err := stmt.QueryRowxContext(ctx, args...).Scan(&inserted, &written); err != nil {
			return batch.Changes{}, err
		}
		return batch.Changes{Inserted: inserted, Updated: written - inserted, Unchanged: n - written}, nil
	}
	existing, err := countKeys(ctx, tx, &w.stmts, w.dialect, &w.spec, rows)
	if err != nil {
		return batch.Changes{}, err
	}
	res, err := stmt.ExecContext(ctx, args...)
	if err != nil {
		return batch.Changes{}, err
	}
	written, err := res.RowsAffected()
	if err != nil {
		return batch.Changes{}, err
	}
	inserted := n - existing
	c := batch.Changes{Inserted: inserted, Updated: written - inserted, Unchanged: existing - (written - inserted)}
	if c.Updated < 0 || c.Unchanged < 0 {
		return batch.Changes{}, fmt.Errorf("%d rows written for %d items of which %d existed: the counts do not add up (a trigger changing rows of the table?)", written, n, existing)
	}
	return c, nil
}

// statement returns the upsert of rows rows. On PostgreSQL it returns one
// row: the rows inserted, and the rows written (inserted or updated).
func (w *Upsert[T]) statement(rows int) string {
	const alias = "cw_t"
	var b strings.Builder
	if w.dialect == dialectPostgres {
		b.WriteString("WITH cw_written AS (")
	}
	fmt.Fprintf(&b, "INSERT INTO %s AS %s (%s) VALUES %s ON CONFLICT (%s) ",
		w.spec.table, alias, strings.Join(w.spec.columns, ", "), valuesList(rows, len(w.spec.columns)),
		strings.Join(w.spec.keyColumns(), ", "))
	if len(w.update) == 0 {
		b.WriteString("DO NOTHING")
	} else {
		b.WriteString("DO UPDATE SET ")
		for i, c := range w.update {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s = excluded.%s", c, c)
		}
		if w.skip {
			b.WriteString(" WHERE ")
			b.WriteString(distinct(alias, "excluded", w.update))
		}
	}
	if w.dialect == dialectPostgres {
		fmt.Fprintf(&b, " RETURNING (%s.xmax = 0) AS inserted) SELECT COUNT(*) FILTER (WHERE inserted), COUNT(*) FROM cw_written", alias)
	}
	return w.db.Rebind(b.String())
}

// countKeys counts the rows of the table that have one of the keys of rows,
// with a statement prepared once per row count.
func countKeys[T any](ctx context.Context, tx *sqlx.Tx, st *stmts, d dialect, spec *rowSpec[T], rows [][]any) (int64, error) {
	args := make([]any, 0, len(rows)*len(spec.key))
	for _, r := range rows {
		args = append(args, spec.keyOf(r)...)
	}
	stmt, err := st.get(ctx, tx, stmtKey{kind: "count", rows: len(rows)}, func() string {
		return tx.Rebind("SELECT COUNT(*) FROM " + spec.table + " WHERE " + keyIn(d, spec.keyColumns(), len(rows)))
	})
	if err != nil {
		return 0, fmt.Errorf("prepare count: %w", err)
	}
	var n int64
	if err := stmt.QueryRowxContext(ctx, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count existing keys: %w", err)
	}
	return n, nil
}
