package writer

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
)

// ErrNoRow is wrapped by the error of an Update whose item matches no row by
// its key (unless AllowMissing is set). Match it with errors.Is, for
// instance in a step's Skip policy, to skip such items.
var ErrNoRow = errors.New("writer: no row has the item's key")

// dialect is the SQL spoken by the database of a key-based writer.
type dialect int

const (
	dialectPostgres dialect = iota + 1
	dialectSQLite
)

// dialectOf tells the dialect from the name the database was opened with.
func dialectOf(db *sqlx.DB) (dialect, error) {
	switch db.DriverName() {
	case "postgres", "pgx":
		return dialectPostgres, nil
	case "sqlite", "sqlite3":
		return dialectSQLite, nil
	}
	return 0, fmt.Errorf("driver %q is neither PostgreSQL (postgres, pgx) nor SQLite (sqlite, sqlite3)", db.DriverName())
}

// withTx runs fn in the transaction a chunk is written in: the chunk's own
// (joined with batch.JoinTxx, failing closed), or with own a transaction of
// its own that it commits. The changes fn returns are reported for the
// chunk once they are in the transaction that will commit them.
func withTx(ctx context.Context, db *sqlx.DB, own bool, name string, fn func(tx *sqlx.Tx) (batch.Changes, error)) error {
	if !own {
		tx, err := batch.JoinTxx(ctx, db)
		if err != nil {
			return fmt.Errorf("writer: %s: %w", name, err)
		}
		c, err := fn(tx)
		if err != nil {
			return err
		}
		batch.ReportChanges(ctx, c)
		return nil
	}
	if err := refuseOwnInDryRun(ctx, name); err != nil {
		return err
	}
	tx, err := db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("writer: %s: begin: %w", name, err)
	}
	c, err := fn(tx)
	if err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("writer: %s: commit: %w", name, err)
	}
	batch.ReportChanges(ctx, c)
	return nil
}

// refuseOwnInDryRun refuses a dry run to a writer with a transaction of its
// own, which would commit.
func refuseOwnInDryRun(ctx context.Context, name string) error {
	if batch.IsDryRun(ctx) {
		return fmt.Errorf("writer: %s: %w: OwnTransaction commits outside the chunk's transaction", name, batch.ErrDryRun)
	}
	return nil
}

// withRaw is withTx for a writer that works on the driver's connection the
// transaction runs on (see batch.JoinRaw).
func withRaw(ctx context.Context, db *sqlx.DB, own bool, name string, fn func(driverConn any) (batch.Changes, error)) error {
	var c batch.Changes
	raw := func(driverConn any) error {
		var err error
		c, err = fn(driverConn)
		return err
	}
	if !own {
		if err := batch.JoinRaw(ctx, db.DB, raw); err != nil {
			if errors.Is(err, batch.ErrNoChunkTx) {
				return fmt.Errorf("writer: %s: %w", name, err)
			}
			return err
		}
		batch.ReportChanges(ctx, c)
		return nil
	}
	if err := refuseOwnInDryRun(ctx, name); err != nil {
		return err
	}
	conn, err := db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("writer: %s: connect: %w", name, err)
	}
	defer conn.Close()
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("writer: %s: begin: %w", name, err)
	}
	if err := conn.Raw(raw); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("writer: %s: commit: %w", name, err)
	}
	batch.ReportChanges(ctx, c)
	return nil
}

// stmtKey names one statement of a writer: what it does, and for how many
// rows when its text depends on that.
type stmtKey struct {
	kind string
	rows int
}

// maxStmts bounds the statements a writer keeps prepared: in practice it
// needs one for full chunks and one for the last, per kind of statement;
// the rest (chunks written item by item after a skippable error, say) are
// evicted least recently used first.
const maxStmts = 6

// outsidePrepareTimeout bounds the preparation of a statement on a
// connection other than the chunk transaction's (see stmts.get).
const outsidePrepareTimeout = 2 * time.Second

type cachedStmt struct {
	key  stmtKey
	stmt *sqlx.Stmt
}

// stmts prepares a writer's statements on its database once, and hands
// them to each chunk's transaction with Tx.StmtxContext: database/sql then
// reuses, on every connection, the statement it prepared there. A writer
// that is a step's stream prepares once per step execution and releases its
// statements when the step closes it.
type stmts struct {
	db   *sqlx.DB
	mu   sync.Mutex
	list []cachedStmt // least recently used first
}

// get returns the statement key stands for, bound to tx, preparing it with
// the text query returns if it is not prepared yet.
//
// A statement is prepared on the database, not on tx, so that it outlives
// the chunk; that takes another connection of the pool, outside tx. The
// statement is prepared on tx instead, for this chunk only:
//   - when the pool has no connection to give (SetMaxOpenConns reached,
//     every connection in use: a single-connection SQLite pool inside a
//     chunk), since waiting for one could wait for ever;
//   - when preparing on another connection fails, since the table may be
//     one only tx sees (created in tx, or temporary): tx then reports the
//     error if there is one;
//   - when preparing on another connection takes longer than
//     outsidePrepareTimeout: it may wait for a lock that tx holds
//     (PostgreSQL parses an INSERT under a lock that LOCK TABLE or ALTER
//     TABLE in tx excludes).
func (s *stmts) get(ctx context.Context, tx *sqlx.Tx, key stmtKey, query func() string) (*sqlx.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range s.list {
		if c.key == key {
			s.list = append(append(s.list[:i:i], s.list[i+1:]...), c)
			return tx.StmtxContext(ctx, c.stmt), nil
		}
	}
	q := query()
	stmt, ok := prepareOutside(ctx, s.db, func(ctx context.Context) (*sqlx.Stmt, error) { return s.db.PreparexContext(ctx, q) })
	if !ok {
		return tx.PreparexContext(ctx, q)
	}
	if len(s.list) == maxStmts {
		_ = s.list[0].stmt.Close()
		s.list = s.list[1:]
	}
	s.list = append(s.list, cachedStmt{key: key, stmt: stmt})
	return tx.StmtxContext(ctx, stmt), nil
}

// prepareOutside prepares a statement on db, outside the chunk's
// transaction, with prepare; it reports false when the statement should be
// prepared on the transaction instead (see stmts.get).
func prepareOutside[S any](ctx context.Context, db *sqlx.DB, prepare func(ctx context.Context) (S, error)) (S, bool) {
	var zero S
	if st := db.Stats(); st.MaxOpenConnections > 0 && st.InUse >= st.MaxOpenConnections {
		return zero, false
	}
	ctx, cancel := context.WithTimeout(ctx, outsidePrepareTimeout)
	defer cancel()
	stmt, err := prepare(ctx)
	if err != nil {
		return zero, false
	}
	return stmt, true
}

// close closes every prepared statement; the next get prepares again.
func (s *stmts) close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, c := range s.list {
		errs = append(errs, c.stmt.Close())
	}
	s.list = nil
	return errors.Join(errs...)
}

// validIdent reports whether name is a plain, unquoted identifier (a column,
// or with qualified a possibly schema-qualified table).
func validIdent(name string, qualified bool) bool {
	return identPattern.MatchString(name) && (qualified || !strings.Contains(name, "."))
}

// maxParamsFor returns the default bind-parameter limit of db's driver.
func maxParamsFor(db *sqlx.DB, set int) int {
	if set != 0 {
		return set
	}
	if db.DriverName() == "sqlite" || db.DriverName() == "sqlite3" {
		return 32766
	}
	return 65535
}

// rowSpec is what the key-based writers (Upsert, Update, Delete) share: the
// table, its columns, which of them make the key, and how an item maps to
// them. It names items in errors by their position and key.
type rowSpec[T any] struct {
	name    string // "upsert items": how errors name the writer
	table   string
	columns []string
	key     []int // positions of the key columns in columns
	values  func(T) []any
}

// newRowSpec validates a key-based writer's table, columns and key.
func newRowSpec[T any](verb, table string, columns, key []string, values func(T) []any) (rowSpec[T], error) {
	name := verb + " " + table
	if !validIdent(table, true) {
		return rowSpec[T]{}, fmt.Errorf("writer: %s: invalid table name %q", verb, table)
	}
	if len(columns) == 0 {
		return rowSpec[T]{}, fmt.Errorf("writer: %s: no columns", name)
	}
	if len(key) == 0 {
		return rowSpec[T]{}, fmt.Errorf("writer: %s: no key columns", name)
	}
	if values == nil {
		return rowSpec[T]{}, fmt.Errorf("writer: %s: no Values function", name)
	}
	pos := map[string]int{}
	for i, c := range columns {
		if !validIdent(c, false) {
			return rowSpec[T]{}, fmt.Errorf("writer: %s: invalid column name %q", name, c)
		}
		if _, dup := pos[c]; dup {
			return rowSpec[T]{}, fmt.Errorf("writer: %s: column %s listed twice", name, c)
		}
		pos[c] = i
	}
	r := rowSpec[T]{name: name, table: table, columns: append([]string(nil), columns...), values: values}
	seen := map[string]bool{}
	for _, k := range key {
		i, ok := pos[k]
		if !ok {
			return rowSpec[T]{}, fmt.Errorf("writer: %s: key column %q is not one of the columns", name, k)
		}
		if seen[k] {
			return rowSpec[T]{}, fmt.Errorf("writer: %s: key column %s listed twice", name, k)
		}
		seen[k] = true
		r.key = append(r.key, i)
	}
	return r, nil
}

// keyColumns returns the names of the key columns.
func (r *rowSpec[T]) keyColumns() []string {
	out := make([]string, len(r.key))
	for i, k := range r.key {
		out[i] = r.columns[k]
	}
	return out
}

// nonKeyColumns returns the columns that are not part of the key.
func (r *rowSpec[T]) nonKeyColumns() []string {
	var out []string
	for i, c := range r.columns {
		if !r.isKey(i) {
			out = append(out, c)
		}
	}
	return out
}

func (r *rowSpec[T]) isKey(col int) bool { return slices.Contains(r.key, col) }

// rows returns the column values of every item. A wrong number of values is
// an error naming the item; so are two items with the same key, unless
// duplicates are allowed: one statement cannot both insert and update a row,
// and counts would be wrong.
func (r *rowSpec[T]) rows(items []T, allowDuplicates bool) ([][]any, error) {
	out := make([][]any, len(items))
	var seen map[string]int
	if !allowDuplicates {
		seen = make(map[string]int, len(items))
	}
	for i, it := range items {
		vals := r.values(it)
		if len(vals) != len(r.columns) {
			return nil, fmt.Errorf("writer: %s: item %d of the chunk: %d values for %d columns", r.name, i+1, len(vals), len(r.columns))
		}
		out[i] = vals
		if seen != nil {
			k := keyString(r.keyOf(vals))
			if first, dup := seen[k]; dup {
				return nil, fmt.Errorf("writer: %s: %s has the key of item %d: a chunk may hold one item per key", r.name, r.itemRef(i, vals), first+1)
			}
			seen[k] = i
		}
	}
	return out, nil
}

// keyOf returns the key values among an item's column values.
func (r *rowSpec[T]) keyOf(vals []any) []any {
	out := make([]any, len(r.key))
	for i, k := range r.key {
		out[i] = vals[k]
	}
	return out
}

// itemRef names item i (0-based) of a chunk by its number and key: "item 3
// of the chunk (id=17)".
func (r *rowSpec[T]) itemRef(i int, vals []any) string {
	var b strings.Builder
	fmt.Fprintf(&b, "item %d of the chunk (", i+1)
	for j, k := range r.key {
		if j > 0 {
			b.WriteString(", ")
		}
		b.WriteString(r.columns[k])
		b.WriteString("=")
		b.WriteString(fmtKey(vals[k]))
	}
	b.WriteString(")")
	return b.String()
}

// rangeRef names the items [from, to) of a chunk written by one statement:
// the item with its key when it is one, else the range.
func (r *rowSpec[T]) rangeRef(rows [][]any, from int) string {
	if len(rows) == 1 {
		return r.itemRef(from, rows[0])
	}
	return itemRange(from, len(rows))
}

// keyString encodes key values so that equal keys encode alike.
func keyString(vals []any) string {
	var b strings.Builder
	for _, v := range vals {
		if dv, ok := v.(driver.Valuer); ok {
			if x, err := dv.Value(); err == nil {
				v = x
			}
		}
		switch x := v.(type) {
		case time.Time:
			fmt.Fprintf(&b, "time:%d|", x.UnixNano())
		case []byte:
			fmt.Fprintf(&b, "bytes:%q|", x)
		default:
			fmt.Fprintf(&b, "%T:%v|", v, v)
		}
	}
	return b.String()
}

// placeholders returns "(?, ?, ?)" for n values.
func placeholders(n int) string {
	return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
}

// valuesList returns "(?, ?), (?, ?)": rows tuples of n placeholders.
func valuesList(rows, n int) string {
	row := placeholders(n)
	var b strings.Builder
	for i := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// keyIn returns the condition that a row's key is one of rows keys given as
// parameters: "id IN (?, ?)" for a one-column key; for a composite key a
// row-value IN, over a list of rows on PostgreSQL (whose parameter types
// it infers from the columns) and over VALUES on SQLite (which takes no
// list of rows).
func keyIn(d dialect, key []string, rows int) string {
	if len(key) == 1 {
		return key[0] + " IN " + placeholders(rows)
	}
	lhs := "(" + strings.Join(key, ", ") + ") IN ("
	if d == dialectSQLite {
		return lhs + "VALUES " + valuesList(rows, len(key)) + ")"
	}
	return lhs + valuesList(rows, len(key)) + ")"
}

// qualified returns the columns prefixed with alias: "t.a, t.b".
func qualified(alias string, cols []string) string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = alias + "." + c
	}
	return strings.Join(out, ", ")
}

// distinct returns the condition that the columns of two aliases differ,
// NULLs comparing equal: "(t.a, t.b) IS DISTINCT FROM (v.a, v.b)". Both
// PostgreSQL and SQLite (3.39 and later) accept it.
func distinct(left, right string, cols []string) string {
	return "(" + qualified(left, cols) + ") IS DISTINCT FROM (" + qualified(right, cols) + ")"
}

// abbreviate shortens a statement for error messages: its first words, on
// one line.
func abbreviate(query string) string {
	q := strings.Join(strings.Fields(query), " ")
	if r := []rune(q); len(r) > 40 {
		q = string(r[:40]) + "…"
	}
	return q
}

// prepared makes the SQL writers that prepare their statements on first use
// (their text depends on the number of rows) ItemStreams: they keep no
// restart state, and the step's Close releases their statements.
type prepared struct {
	name  string // how errors name the writer: "sql people", "upsert people"
	stmts stmts
}

// Open does nothing: the statements are prepared on first use.
func (p *prepared) Open(context.Context, batch.ExecutionContext) error { return nil }

// Update does nothing: the writer keeps no restart state.
func (p *prepared) Update(context.Context, batch.ExecutionContext) error { return nil }

// Close closes the prepared statements. The writer can be used again: it
// then prepares them anew.
func (p *prepared) Close(context.Context) error {
	if err := p.stmts.close(); err != nil {
		return fmt.Errorf("writer: %s: close: %w", p.name, err)
	}
	return nil
}

// keyed is what the writers of rows by key (Upsert, Update, Delete) share:
// the rows they write and where, how many rows go in one statement, and
// their prepared statements.
type keyed[T any] struct {
	spec    rowSpec[T]
	db      *sqlx.DB
	dialect dialect
	own     bool
	perStmt int
	prepared
}

// init checks a keyed writer's table, columns and key, its database's
// dialect, and that MaxParams holds one row — or, with keysOnly, the key of
// one row, which is all a delete binds.
func (k *keyed[T]) init(verb string, db *sqlx.DB, own bool, table string, columns, key []string, values func(T) []any, maxParams int, keysOnly bool) error {
	spec, err := newRowSpec(verb, table, columns, key, values)
	if err != nil {
		return err
	}
	d, err := dialectOf(db)
	if err != nil {
		return fmt.Errorf("writer: %s: %w", spec.name, err)
	}
	perRow, what := len(spec.columns), "row"
	if keysOnly {
		perRow, what = len(spec.key), "key"
	}
	maxParams = maxParamsFor(db, maxParams)
	if maxParams < perRow {
		return fmt.Errorf("writer: %s: MaxParams %d is less than one %s of %d columns", spec.name, maxParams, what, perRow)
	}
	k.spec, k.db, k.dialect, k.own, k.perStmt = spec, db, d, own, maxParams/perRow
	k.prepared = prepared{name: spec.name, stmts: stmts{db: db}}
	return nil
}

// write writes items in statements of at most perStmt rows, in the chunk's
// transaction (or one of its own), calling part for each with the index of
// its first row; the changes part reports are added up and reported.
// allowDuplicates is as for rowSpec.rows.
func (k *keyed[T]) write(ctx context.Context, items []T, allowDuplicates bool,
	part func(tx *sqlx.Tx, rows [][]any, start int) (batch.Changes, error)) error {
	if len(items) == 0 {
		return nil
	}
	rows, err := k.spec.rows(items, allowDuplicates)
	if err != nil {
		return err
	}
	return withTx(ctx, k.db, k.own, k.spec.name, func(tx *sqlx.Tx) (batch.Changes, error) {
		var total batch.Changes
		for start := 0; start < len(rows); start += k.perStmt {
			c, err := part(tx, rows[start:min(start+k.perStmt, len(rows))], start)
			if err != nil {
				return batch.Changes{}, err
			}
			total.Add(c)
		}
		return total, nil
	})
}

// partError names the rows of a statement that failed.
func (k *keyed[T]) partError(rows [][]any, start int, err error) error {
	return fmt.Errorf("writer: %s: %s: %w", k.spec.name, k.spec.rangeRef(rows, start), err)
}
