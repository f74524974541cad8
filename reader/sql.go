package reader

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/jmoiron/sqlx/reflectx"

	"github.com/chunkwise/chunkwise/batch"
)

// DefaultPageSize is the default of [KeysetConfig.PageSize].
const DefaultPageSize = 1000

// sqlName accepts a column name, optionally qualified by a table or alias
// ("id", "t.due_at"), and a table name, optionally qualified by a schema:
// names from configuration are checked against it before they are put into
// a statement.
var sqlName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$`)

// keyAlias names the key columns a [Keyset] selects ahead of the caller's
// select list: chunkwise_key_0, chunkwise_key_1, ...
const keyAlias = "chunkwise_key_"

// RowError is the error of a Read whose row did not scan into the item type:
// a NULL in a column whose field cannot hold one, a value of the wrong type.
// It concerns that row only: the next Read goes on with the row after it,
// so a skip policy can skip it. The reader's restart position stays at the
// last item read without error, so a restarted step meets the row again.
type RowError struct {
	Reader string // the reader's kind and name: "keyset tasks", "cursor tasks"
	Row    int64  // [Cursor]: the row's 1-based number in the query's result; [Keyset]: 0
	Key    string // the row's key ("due_at=2024-05-01T09:00:00Z, id=17"); "" when the reader knows none
	Err    error
}

// Error returns "reader: keyset NAME: row with key (KEY): " or
// "reader: cursor NAME: row N: " followed by Err's message.
func (e *RowError) Error() string {
	var pos string
	switch {
	case e.Row > 0 && e.Key != "":
		pos = fmt.Sprintf("row %d (key %s)", e.Row, e.Key)
	case e.Row > 0:
		pos = fmt.Sprintf("row %d", e.Row)
	default:
		pos = fmt.Sprintf("row with key (%s)", e.Key)
	}
	return fmt.Sprintf("reader: %s: %s: %v", e.Reader, pos, e.Err)
}

// Unwrap returns Err.
func (e *RowError) Unwrap() error { return e.Err }

// KeysetConfig configures a [Keyset] reader. DB, From and Key are required;
// every other field has a usable zero value.
type KeysetConfig[T any] struct {
	// Name prefixes the reader's keys in the execution context
	// ("tasks.key") and names the reader in errors. Two restartable readers
	// of one step need different names. Default: From when it is a table
	// name, else "keyset".
	Name string

	// DB is the database to read. Each page is read with a query of its
	// own on DB's pool; no connection or transaction is held between
	// pages, so DB may be the job repository's handle. Rows are mapped to
	// T by DB's Mapper: the `db` struct tag, else the lower-cased field
	// name, as sqlx does. Required.
	DB *sqlx.DB

	// Select is the select list, SQL written by the program, never data:
	// "id, due_at, state" or "t.*, u.name AS owner". Every column it yields
	// needs a field in T. Default "*".
	Select string

	// From is what follows FROM: a table, or tables joined ("tasks t JOIN
	// users u ON u.id = t.owner_id"). SQL written by the program. Required.
	From string

	// Where filters the rows: a condition, SQL written by the program, with
	// ? placeholders for Args (rebound for DB's driver). The reader adds
	// its key condition to it with AND. Default "": every row.
	Where string

	// Args are the values of Where's placeholders, in order. Default none.
	Args []any

	// Key names the columns of the sort key, most significant first:
	// {"due_at", "id"}. Together they must be unique and never NULL, and
	// each needs a field of T with that name (the column's name without
	// its qualifier). Rows are read in ascending order of the key; there
	// is no descending order. Names are letters, digits and '_', optionally
	// qualified ("t.id"). Required.
	Key []string

	// PageSize is the number of rows each query reads. Default
	// [DefaultPageSize] (1000).
	PageSize int

	// Count makes Open count the rows left to read (SELECT COUNT(*) with
	// the pages' condition, after the restart position), so that the
	// step's progress has a total and an ETA (see [Keyset.Progress]). It
	// costs one query per Open, which may scan what the pages would.
	// Default false.
	Count bool
}

// Keyset reads the rows of a table page by page, in ascending order of a
// unique sort key, and maps each row to a T. Create one with [NewKeyset];
// call Open before the first Read and Close at the end, as a step does for
// an [batch.ItemStream].
//
// Each page is one query,
//
//	SELECT key columns, Select FROM From
//	WHERE (Where) AND (k1, k2) > (last key) ORDER BY k1, k2 LIMIT PageSize
//
// (a row-value comparison: PostgreSQL, SQLite 3.15 and later), run on the
// pool when the previous page is used up. No connection or transaction is
// held between pages, so a long step neither keeps a snapshot open nor
// needs a connection of its own. An index on the key columns, in order,
// makes every page a range scan.
//
// Update stores, under keys prefixed by the reader's name, the key of the
// last item Read returned (not of the last row fetched) and the key's
// column names. Open with such a context resumes right after that key. Key
// values are stored as JSON and read back into new values of T's key field
// types, so that an int64 stays an int64 and a time.Time a time.Time.
//
// Keyset is the reader for a step that changes the rows it selects — "read
// the open tasks that are due, set them to overdue": rows drop out of
// Where as the step commits, yet the restart position is a key, not a
// count, so a restarted step resumes right after the last committed row
// and reads each remaining row once. The step must not change a row's key
// columns, though: a row moved ahead of the position would be read again.
// Each page sees the table as it is when the page is read: a row inserted
// (or moved) behind the position during the run is not read, one inserted
// ahead of it is.
//
// On SQLite a key column is compared as the value stored, so a time key
// must be stored as the driver writes time.Time values and in one time zone
// (UTC), or text comparison will not follow time order.
//
// Errors name the reader and its position. A row that does not scan into T
// is a [*RowError] naming the row's key: that Read fails, and the next one
// goes on with the next row (the page's key columns are read apart from
// T's fields, so a bad row cannot stall paging). A failed page query is
// returned from Read and ends nothing: the next Read runs the same page
// query again, so a step's read retries carry it over a lost connection.
// A row whose key columns cannot be read (a NULL key) fails its page the
// same way, every time: the key must be fixed.
//
// A Keyset is not safe for concurrent use.
type Keyset[T any] struct {
	cfg    KeysetConfig[T]
	name   string // "keyset " + cfg.Name, for errors
	keys   []keyField
	mapper *reflectx.Mapper
	first  string // the query of the first page
	after  string // the query of a page after a key
	// countFirst and countAfter count the rows from the start and after a
	// key (KeysetConfig.Count).
	countFirst, countAfter string

	// Set by Open, cleared by Close.
	open   bool
	total  int64   // the rows left at Open, with Count
	read   int64   // the items returned since Open
	fields [][]int // T's field of each selected column after the keys; from the first page
	page   []keysetRow[T]
	next   int   // index in page of the next row to return
	from   []any // key of the last row fetched: the next page starts after it; nil before the first row
	last   []any // key of the last item returned: the restart position; nil before the first
	eof    bool  // the last page fetched was short: no row is left after page
}

type keysetRow[T any] struct {
	item T
	key  []any
	err  error // a *RowError
}

var (
	_ batch.ItemReader[struct{}] = (*Keyset[struct{}])(nil)
	_ batch.ItemStream           = (*Keyset[struct{}])(nil)
)

// keyField is T's field for a key column.
type keyField struct {
	column string // as configured, maybe qualified: "t.id"
	name   string // the field's column name: "id"
	index  []int  // the field's traversal, for reflectx
	typ    reflect.Type
}

// NewKeyset returns a reader configured by cfg, or an error if cfg is
// invalid: a missing DB, From or Key, a key column that is not a name or
// has no field in T, T not a struct, a negative PageSize. It runs no query.
func NewKeyset[T any](cfg KeysetConfig[T]) (*Keyset[T], error) {
	if cfg.Name == "" {
		cfg.Name = "keyset"
		if sqlName.MatchString(strings.TrimSpace(cfg.From)) {
			cfg.Name = strings.TrimSpace(cfg.From)
		}
	}
	name := "keyset " + cfg.Name
	switch {
	case cfg.DB == nil:
		return nil, fmt.Errorf("reader: %s: DB is required", name)
	case strings.TrimSpace(cfg.From) == "":
		return nil, fmt.Errorf("reader: %s: From is required", name)
	case cfg.PageSize < 0:
		return nil, fmt.Errorf("reader: %s: negative PageSize %d", name, cfg.PageSize)
	case len(cfg.Key) == 0:
		return nil, fmt.Errorf("reader: %s: Key is required", name)
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = DefaultPageSize
	}
	if strings.TrimSpace(cfg.Select) == "" {
		cfg.Select = "*"
	}
	cfg.Key = slices.Clone(cfg.Key)
	cfg.Args = slices.Clone(cfg.Args)
	mapper := mapperOf(cfg.DB)
	keys, err := keyFieldsOf[T](mapper, cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("reader: %s: %w", name, err)
	}
	k := &Keyset[T]{cfg: cfg, name: name, keys: keys, mapper: mapper}
	k.first, k.after, k.countFirst, k.countAfter = k.queries()
	return k, nil
}

// queries builds the statements of the first page and of the pages after a
// key, and those that count the rows from the start and after a key,
// rebound for the DB's driver.
func (k *Keyset[T]) queries() (first, after, countFirst, countAfter string) {
	cols := make([]string, len(k.keys))
	selected := make([]string, len(k.keys))
	marks := make([]string, len(k.keys))
	for i, f := range k.keys {
		cols[i] = f.column
		selected[i] = f.column + " AS " + keyAlias + strconv.Itoa(i)
		marks[i] = "?"
	}
	head := "SELECT " + strings.Join(selected, ", ") + ", " + k.cfg.Select + " FROM " + k.cfg.From
	tail := " ORDER BY " + strings.Join(cols, ", ") + " LIMIT " + strconv.Itoa(k.cfg.PageSize)
	var cond string
	if len(cols) == 1 {
		cond = cols[0] + " > ?"
	} else {
		cond = "(" + strings.Join(cols, ", ") + ") > (" + strings.Join(marks, ", ") + ")"
	}
	count := "SELECT COUNT(*) FROM " + k.cfg.From
	db := k.cfg.DB
	if k.cfg.Where == "" {
		return db.Rebind(head + tail), db.Rebind(head + " WHERE " + cond + tail),
			db.Rebind(count), db.Rebind(count + " WHERE " + cond)
	}
	where := " WHERE (" + k.cfg.Where + ")"
	return db.Rebind(head + where + tail), db.Rebind(head + where + " AND " + cond + tail),
		db.Rebind(count + where), db.Rebind(count + where + " AND " + cond)
}

func (k *Keyset[T]) ecKey(suffix string) string { return k.cfg.Name + "." + suffix }

// Open prepares the first Read; it runs no query. When ec holds a key
// stored by Update (a restart), reading resumes right after it; otherwise
// it starts at the first row. A context stored with other key columns is
// an error. A reader that is open must be closed before it is opened again.
func (k *Keyset[T]) Open(ctx context.Context, ec batch.ExecutionContext) error {
	if k.open {
		return fmt.Errorf("reader: %s: already open", k.name)
	}
	last, err := k.restore(ec)
	if err != nil {
		return fmt.Errorf("reader: %s: restore: %w", k.name, err)
	}
	var total int64
	if k.cfg.Count {
		query, args := k.countFirst, k.cfg.Args
		if last != nil {
			query, args = k.countAfter, append(slices.Clip(k.cfg.Args), last...)
		}
		if err := k.cfg.DB.GetContext(ctx, &total, query, args...); err != nil {
			return fmt.Errorf("reader: %s: count the rows after %s: %w", k.name, k.position(last), err)
		}
	}
	*k = Keyset[T]{cfg: k.cfg, name: k.name, keys: k.keys, mapper: k.mapper, first: k.first, after: k.after,
		countFirst: k.countFirst, countAfter: k.countAfter, open: true, from: last, last: last, total: total}
	return nil
}

// Progress implements batch.ProgressReader: the rows read since Open, of
// the rows Open counted with KeysetConfig.Count (else of an unknown total).
func (k *Keyset[T]) Progress() batch.Progress {
	return batch.Progress{Done: k.read, Total: k.total, Unit: "rows"}
}

// restore returns the key stored by Update; nil when ec holds none or the
// checkpoint was taken before the first item.
func (k *Keyset[T]) restore(ec batch.ExecutionContext) ([]any, error) {
	var columns []string
	ok, err := ec.Get(k.ecKey("columns"), &columns)
	if err != nil {
		return nil, err
	}
	if ok && !slices.Equal(columns, k.cfg.Key) {
		return nil, fmt.Errorf("the checkpoint was taken with key (%s), the reader's key is (%s): a changed key cannot resume",
			strings.Join(columns, ", "), strings.Join(k.cfg.Key, ", "))
	}
	raw, ok := ec[k.ecKey("key")]
	if !ok {
		return nil, nil
	}
	return decodeKey(k.keys, raw)
}

// Read returns the next row as a T, and io.EOF after the last one. A row
// that does not scan into T is a [*RowError] and the next Read goes on
// after it. A failed page query is returned as is (wrapped, naming the key
// the page starts after) and the next Read runs it again. Read returns
// ctx's error if ctx is done.
func (k *Keyset[T]) Read(ctx context.Context) (T, error) {
	var zero T
	if !k.open {
		return zero, fmt.Errorf("reader: %s: not open", k.name)
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if k.next == len(k.page) {
		if k.eof {
			return zero, io.EOF
		}
		if err := k.fetch(ctx); err != nil {
			return zero, err
		}
		if len(k.page) == 0 {
			return zero, io.EOF
		}
	}
	r := &k.page[k.next]
	k.next++
	if r.err != nil {
		return zero, r.err
	}
	k.last = r.key
	k.read++
	return r.item, nil
}

// fetch reads the page after k.from. On error the reader is left as it
// was, so that the page can be asked for again.
func (k *Keyset[T]) fetch(ctx context.Context) (err error) {
	query, args := k.first, k.cfg.Args
	if k.from != nil {
		query = k.after
		args = append(slices.Clip(k.cfg.Args), k.from...)
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("reader: %s: page after %s: %w", k.name, k.position(k.from), err)
		}
	}()
	rows, err := k.cfg.DB.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if k.fields == nil {
		if k.fields, err = k.mapColumns(rows); err != nil {
			return err
		}
	}
	clear(k.page)
	page := k.page[:0]
	dest := make([]any, len(k.keys)+len(k.fields))
	for rows.Next() {
		key, err := k.scanKey(rows, dest)
		if err != nil {
			return fmt.Errorf("row %d of the page: %w", len(page)+1, err)
		}
		r := keysetRow[T]{key: key}
		if err := scanFields(rows, dest, len(k.keys), k.fields, &r.item); err != nil {
			r.err = &RowError{Reader: k.name, Key: formatKey(k.keys, key), Err: err}
		}
		page = append(page, r)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if err := rows.Close(); err != nil {
		return err
	}
	k.page, k.next = page, 0
	k.eof = len(page) < k.cfg.PageSize
	if len(page) > 0 {
		k.from = page[len(page)-1].key
	}
	return nil
}

// mapColumns finds T's field for every column after the key columns.
func (k *Keyset[T]) mapColumns(rows *sql.Rows) ([][]int, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	if len(cols) < len(k.keys) {
		return nil, fmt.Errorf("%d columns, fewer than the key's %d", len(cols), len(k.keys))
	}
	return fieldsOf[T](k.mapper, cols[len(k.keys):])
}

// scanKey reads the key columns of the current row into new values of the
// key fields' types.
func (k *Keyset[T]) scanKey(rows *sql.Rows, dest []any) ([]any, error) {
	ptrs := make([]reflect.Value, len(k.keys))
	for i := range dest {
		dest[i] = discard{}
	}
	for i, f := range k.keys {
		ptrs[i] = reflect.New(f.typ)
		dest[i] = ptrs[i].Interface()
	}
	if err := rows.Scan(dest...); err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	key := make([]any, len(k.keys))
	for i, p := range ptrs {
		v := p.Elem()
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return nil, fmt.Errorf("key column %s is NULL", k.keys[i].column)
		}
		key[i] = v.Interface()
	}
	return key, nil
}

// position describes a key for errors: "key (due_at=..., id=7)", or "the
// start" for nil.
func (k *Keyset[T]) position(key []any) string {
	if key == nil {
		return "the start"
	}
	return "key (" + formatKey(k.keys, key) + ")"
}

// Update stores the restart position in ec: the key of the last item Read
// returned (JSON null before the first) and the key's column names.
func (k *Keyset[T]) Update(_ context.Context, ec batch.ExecutionContext) error {
	if !k.open {
		return fmt.Errorf("reader: %s: not open", k.name)
	}
	if ec == nil {
		return fmt.Errorf("reader: %s: Update with a nil execution context", k.name)
	}
	if err := errors.Join(ec.Put(k.ecKey("key"), k.last), ec.Put(k.ecKey("columns"), k.cfg.Key)); err != nil {
		return fmt.Errorf("reader: %s: %w", k.name, err)
	}
	return nil
}

// Close drops the page read ahead; the reader can be opened again. It holds
// no connection between Reads, so there is nothing else to release.
// Closing a reader that is not open does nothing.
func (k *Keyset[T]) Close(context.Context) error {
	*k = Keyset[T]{cfg: k.cfg, name: k.name, keys: k.keys, mapper: k.mapper, first: k.first, after: k.after}
	return nil
}

// CursorConfig configures a [Cursor] reader. DB and Query are required;
// every other field has a usable zero value.
type CursorConfig[T any] struct {
	// Name prefixes the reader's keys in the execution context
	// ("tasks.row") and names the reader in errors. Two restartable readers
	// of one step need different names. Default "cursor".
	Name string

	// DB is the database to read. The query holds one of DB's connections
	// from Open until the last row or Close, so the pool must allow
	// another for the chunk transaction and the job repository: a pool of
	// one connection is refused. On SQLite, the database must be in WAL
	// mode (as the job repository's is) for the chunk transaction to
	// commit while the query is open. Rows are mapped to T by sqlx's
	// StructScan with DB's Mapper: the `db` struct tag, else the
	// lower-cased field name. Required.
	DB *sqlx.DB

	// Query is the query, SQL written by the program, with ? placeholders
	// for Args (rebound for DB's driver). It must order the rows by a
	// unique key (see [Cursor] for when a restart is safe), and every
	// column it yields needs a field in T. Required.
	Query string

	// Args are the values of Query's placeholders, in order. Default none.
	Args []any

	// Key, when set, names the columns of the unique key Query is ordered
	// by, each a field of T. Update then stores the key of the last item
	// too, and a restart checks that the row it resumes after still has
	// that key, failing Open with [ErrInputChanged] if not: rows that the
	// step changed before the checkpoint are caught even when their count
	// did not shrink. Default none: a restart checks only that the query
	// returns at least as many rows as were committed.
	Key []string
}

// Cursor runs one query and streams its rows for the whole step, mapping
// each to a T. Create one with [NewCursor]; call Open before the first Read
// and Close at the end, as a step does for an [batch.ItemStream].
//
// Open runs the query on a connection of its own, which it keeps until the
// last row was read or Close. The rows come from one snapshot taken when
// the query starts (PostgreSQL, SQLite in WAL mode): what the step changes
// during the run is not seen by the run. The snapshot lasts as long as the
// step: on PostgreSQL, vacuum cannot remove rows deleted or updated after
// it began until the step ends.
//
// Update stores, under keys prefixed by the reader's name, the number of
// the row of the last item Read returned (with [CursorConfig.Key], that
// row's key as well). A restart runs the query again and skips that many
// rows. That is right only when the re-run query returns the same rows in
// the same order up to that point, which holds exactly when:
//
//   - the query has an ORDER BY on a unique key, so that the order is
//     deterministic (without it, a database may return the rows in another
//     order on the next run); and
//   - nothing changes which rows the query returns up to the checkpoint, or
//     their order: the step must not update the columns the query filters
//     or sorts on, nor delete the rows it read, and no one else may insert
//     or delete rows before the checkpoint's position between the runs.
//
// A step that changes the rows it selects ("set the open tasks to
// overdue") breaks the second rule: on restart the committed rows have left
// the result and skipping their count would pass over rows never read. Use
// [Keyset] for such a step: it resumes after a key, not a count.
//
// What a restart checks: a query that returns fewer rows than the
// committed count fails Open with an error wrapping [ErrInputChanged] that
// names the count; with [CursorConfig.Key] set, so does a row at the
// checkpoint that does not have the stored key. Without Key, a change that
// leaves at least as many rows is not seen: rows would be skipped or read
// twice.
//
// Errors name the reader and the row's number. A row that does not scan
// into T is a [*RowError]: that Read fails, and the next one goes on with
// the next row. A query error ends the reader: that Read and every later
// one return it. Read returns ctx's error if ctx is done; a ctx done while
// Read waits for a row ends the query, and the reader with it (on
// PostgreSQL; the SQLite driver lets the row come first).
//
// A Cursor is not safe for concurrent use.
type Cursor[T any] struct {
	cfg    CursorConfig[T]
	name   string // "cursor " + cfg.Name, for errors
	query  string // cfg.Query rebound
	keys   []keyField
	mapper *reflectx.Mapper

	// Set by Open, cleared by Close.
	open    bool
	conn    *sqlx.Conn
	rows    *sqlx.Rows
	cancel  context.CancelFunc // ends the query
	row     int64              // the number of the last row read
	last    int64              // the number of the row of the last item returned: the restart position
	lastKey []any              // that item's key, with cfg.Key
	err     error              // sticky: io.EOF or the error that ended the query
}

var (
	_ batch.ItemReader[struct{}] = (*Cursor[struct{}])(nil)
	_ batch.ItemStream           = (*Cursor[struct{}])(nil)
)

// NewCursor returns a reader configured by cfg, or an error if cfg is
// invalid: a missing DB or Query, T not a struct, a Key column that is not
// a name or has no field in T. It runs no query.
func NewCursor[T any](cfg CursorConfig[T]) (*Cursor[T], error) {
	if cfg.Name == "" {
		cfg.Name = "cursor"
	}
	name := "cursor " + cfg.Name
	switch {
	case cfg.DB == nil:
		return nil, fmt.Errorf("reader: %s: DB is required", name)
	case strings.TrimSpace(cfg.Query) == "":
		return nil, fmt.Errorf("reader: %s: Query is required", name)
	}
	cfg.Key = slices.Clone(cfg.Key)
	cfg.Args = slices.Clone(cfg.Args)
	mapper := mapperOf(cfg.DB)
	keys, err := keyFieldsOf[T](mapper, cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("reader: %s: %w", name, err)
	}
	return &Cursor[T]{cfg: cfg, name: name, query: cfg.DB.Rebind(cfg.Query), keys: keys, mapper: mapper}, nil
}

func (c *Cursor[T]) ecKey(suffix string) string { return c.cfg.Name + "." + suffix }

// Open takes a connection and runs the query. When ec holds a position
// stored by Update (a restart), it skips the rows up to it and checks them
// as [Cursor] describes; otherwise the first Read returns the first row. A
// pool limited to one connection, a query that fails, or a column without a
// field in T fails Open. A reader that is open must be closed before it is
// opened again.
func (c *Cursor[T]) Open(ctx context.Context, ec batch.ExecutionContext) (err error) {
	if c.open {
		return fmt.Errorf("reader: %s: already open", c.name)
	}
	skip, wantKey, err := c.restore(ec)
	if err != nil {
		return fmt.Errorf("reader: %s: restore: %w", c.name, err)
	}
	if c.cfg.DB.Stats().MaxOpenConnections == 1 {
		return fmt.Errorf("reader: %s: the database's pool allows one connection: the query holds one for the whole step "+
			"and the chunk transaction needs another (SetMaxOpenConns(2) or more)", c.name)
	}
	*c = Cursor[T]{cfg: c.cfg, name: c.name, query: c.query, keys: c.keys, mapper: c.mapper, open: true}
	defer func() {
		if err != nil {
			_ = c.Close(context.WithoutCancel(ctx))
		}
	}()
	// The query outlives Open's context: it is ended by Close, or by the
	// context of a Read it is waiting in.
	qctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.cancel = cancel
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	if c.conn, err = c.cfg.DB.Connx(ctx); err != nil {
		return fmt.Errorf("reader: %s: connect: %w", c.name, err)
	}
	if c.rows, err = c.conn.QueryxContext(qctx, c.query, c.cfg.Args...); err != nil {
		return c.ctxErr(ctx, fmt.Errorf("reader: %s: query: %w", c.name, err))
	}
	cols, err := c.rows.Columns()
	if err == nil {
		_, err = fieldsOf[T](c.mapper, cols)
	}
	for _, f := range c.keys {
		if err == nil && !slices.Contains(cols, f.name) {
			err = fmt.Errorf("key column %s is not among the query's columns", f.name)
		}
	}
	if err != nil {
		return fmt.Errorf("reader: %s: %w", c.name, err)
	}
	if skip > 0 {
		if err := c.skip(ctx, skip, wantKey); err != nil {
			return err
		}
	}
	return nil
}

// restore returns the row count and key stored by Update.
func (c *Cursor[T]) restore(ec batch.ExecutionContext) (int64, []any, error) {
	var n int64
	ok, err := ec.Get(c.ecKey("row"), &n)
	if err != nil || !ok {
		return 0, nil, err
	}
	if n < 0 {
		return 0, nil, fmt.Errorf("invalid row %d", n)
	}
	raw, ok := ec[c.ecKey("key")]
	if len(c.keys) == 0 || !ok {
		return n, nil, nil // a checkpoint of a reader without Key is not checked
	}
	key, err := decodeKey(c.keys, raw)
	return n, key, err
}

// skip passes over the n rows committed before a restart, checking that
// there are as many, and with want that the last one has that key.
func (c *Cursor[T]) skip(ctx context.Context, n int64, want []any) error {
	for c.row < n {
		if !c.rows.Next() {
			if err := c.rows.Err(); err != nil {
				return c.ctxErr(ctx, fmt.Errorf("reader: %s: restart after row %d: skipping row %d: %w", c.name, n, c.row+1, err))
			}
			return fmt.Errorf("reader: %s: restart after row %d: %w: the query returns only %d rows "+
				"(did the step change the rows it selects? see Keyset)", c.name, n, ErrInputChanged, c.row)
		}
		c.row++
	}
	c.last = n
	if want == nil {
		return nil
	}
	var item T
	if err := c.rows.StructScan(&item); err != nil {
		return fmt.Errorf("reader: %s: restart after row %d: %w: the row no longer scans (%v)", c.name, n, ErrInputChanged, err)
	}
	got := keyOf(c.keys, &item)
	if !equalKeys(got, want) {
		return fmt.Errorf("reader: %s: restart after row %d: %w: the row has key (%s), the checkpoint was taken at key (%s) "+
			"(did the step change the rows it selects? see Keyset)",
			c.name, n, ErrInputChanged, formatKey(c.keys, got), formatKey(c.keys, want))
	}
	c.lastKey = want
	return nil
}

// ctxErr returns ctx's error, wrapped as err is, when ctx is done: the query
// then failed because of it.
func (c *Cursor[T]) ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("reader: %s: after row %d: %w", c.name, c.row, cerr)
	}
	return err
}

// Read returns the next row as a T, and io.EOF after the last one. A row
// that does not scan into T is a [*RowError] and the next Read goes on
// after it; a query error ends the reader.
func (c *Cursor[T]) Read(ctx context.Context) (T, error) {
	var zero T
	if !c.open {
		return zero, fmt.Errorf("reader: %s: not open", c.name)
	}
	if c.err != nil {
		return zero, c.err
	}
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	stop := context.AfterFunc(ctx, c.cancel)
	next := c.rows.Next()
	if !stop() {
		// ctx ended while Read waited, and the query with it.
		c.err = fmt.Errorf("reader: %s: after row %d: %w", c.name, c.row, ctx.Err())
		_ = c.release()
		return zero, c.err
	}
	if !next {
		if err := c.rows.Err(); err != nil {
			c.err = fmt.Errorf("reader: %s: query after row %d: %w", c.name, c.row, err)
		} else {
			c.err = io.EOF
		}
		_ = c.release() // the rows are done: give the connection back early
		return zero, c.err
	}
	c.row++
	var item T
	if err := c.rows.StructScan(&item); err != nil {
		return zero, &RowError{Reader: c.name, Row: c.row, Err: err}
	}
	c.last = c.row
	if len(c.keys) > 0 {
		c.lastKey = keyOf(c.keys, &item)
	}
	return item, nil
}

// Update stores the restart position in ec: the number of the row of the
// last item Read returned and, with [CursorConfig.Key], that item's key
// (JSON null before the first).
func (c *Cursor[T]) Update(_ context.Context, ec batch.ExecutionContext) error {
	if !c.open {
		return fmt.Errorf("reader: %s: not open", c.name)
	}
	if ec == nil {
		return fmt.Errorf("reader: %s: Update with a nil execution context", c.name)
	}
	err := ec.Put(c.ecKey("row"), c.last)
	if len(c.keys) > 0 {
		err = errors.Join(err, ec.Put(c.ecKey("key"), c.lastKey))
	}
	if err != nil {
		return fmt.Errorf("reader: %s: %w", c.name, err)
	}
	return nil
}

// Close ends the query and gives its connection back; the reader can be
// opened again. Closing a reader that is not open does nothing.
func (c *Cursor[T]) Close(context.Context) error {
	err := c.release()
	*c = Cursor[T]{cfg: c.cfg, name: c.name, query: c.query, keys: c.keys, mapper: c.mapper}
	if err != nil {
		return fmt.Errorf("reader: %s: close: %w", c.name, err)
	}
	return nil
}

// release ends the query and closes the rows and the connection.
func (c *Cursor[T]) release() error {
	if c.cancel != nil {
		c.cancel()
	}
	var err error
	if c.rows != nil {
		err = c.rows.Close()
		c.rows = nil
	}
	if c.conn != nil {
		err = errors.Join(err, c.conn.Close())
		c.conn = nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, sql.ErrConnDone) {
		err = nil // what ending the query early looks like
	}
	return err
}

// discard is a scan destination that drops its value.
type discard struct{}

func (discard) Scan(any) error { return nil }

// mapperOf returns db's mapper, or sqlx's default one.
func mapperOf(db *sqlx.DB) *reflectx.Mapper {
	if db.Mapper != nil {
		return db.Mapper
	}
	return reflectx.NewMapperFunc("db", sqlx.NameMapper)
}

// keyFieldsOf finds T's field for each key column.
func keyFieldsOf[T any](m *reflectx.Mapper, columns []string) ([]keyField, error) {
	t := reflect.TypeFor[T]()
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("the item type %v is not a struct", t)
	}
	tm := m.TypeMap(t)
	keys := make([]keyField, len(columns))
	for i, col := range columns {
		if !sqlName.MatchString(col) {
			return nil, fmt.Errorf("invalid key column %q", col)
		}
		name := col[strings.LastIndexByte(col, '.')+1:]
		for _, k := range keys[:i] {
			if k.name == name {
				return nil, fmt.Errorf("key column %s twice", name)
			}
		}
		fi := tm.GetByPath(name)
		if fi == nil {
			return nil, fmt.Errorf("key column %s has no field in %v (tag a field `db:%q`)", col, t, name)
		}
		keys[i] = keyField{column: col, name: name, index: fi.Index, typ: fi.Field.Type}
	}
	return keys, nil
}

// fieldsOf finds T's field for each column, as sqlx's StructScan does; a
// column without one is an error.
func fieldsOf[T any](m *reflectx.Mapper, cols []string) ([][]int, error) {
	fields := m.TraversalsByName(reflect.TypeFor[T](), cols)
	for i, f := range fields {
		if len(f) == 0 {
			return nil, fmt.Errorf("column %s has no field in %v", cols[i], reflect.TypeFor[T]())
		}
	}
	return fields, nil
}

// scanFields scans the current row's columns from the skip'th on into
// item's fields.
func scanFields[T any](rows *sql.Rows, dest []any, skip int, fields [][]int, item *T) error {
	v := reflect.ValueOf(item).Elem()
	for i := range skip {
		dest[i] = discard{}
	}
	for i, f := range fields {
		dest[skip+i] = reflectx.FieldByIndexes(v, f).Addr().Interface()
	}
	return rows.Scan(dest...)
}

// keyOf returns the values of item's key fields.
func keyOf[T any](keys []keyField, item *T) []any {
	v := reflect.ValueOf(item).Elem()
	key := make([]any, len(keys))
	for i, f := range keys {
		key[i] = reflectx.FieldByIndexesReadOnly(v, f.index).Interface()
	}
	return key
}

// decodeKey decodes a key stored by Update into new values of the key
// fields' types; JSON null is no key.
func decodeKey(keys []keyField, raw json.RawMessage) ([]any, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, fmt.Errorf("stored key %s: %w", raw, err)
	}
	if parts == nil {
		return nil, nil
	}
	if len(parts) != len(keys) {
		return nil, fmt.Errorf("stored key %s has %d values for the %d key columns", raw, len(parts), len(keys))
	}
	key := make([]any, len(keys))
	for i, f := range keys {
		p := reflect.New(f.typ)
		if err := json.Unmarshal(parts[i], p.Interface()); err != nil {
			return nil, fmt.Errorf("stored key %s: column %s: %w", raw, f.column, err)
		}
		key[i] = p.Elem().Interface()
	}
	return key, nil
}

// equalKeys reports whether two keys are equal, comparing times as
// instants.
func equalKeys(a, b []any) bool {
	return slices.EqualFunc(a, b, func(x, y any) bool {
		if tx, ok := x.(time.Time); ok {
			ty, ok := y.(time.Time)
			return ok && tx.Equal(ty)
		}
		return reflect.DeepEqual(x, y)
	})
}

// formatKey describes a key for errors: "due_at=2024-05-01T09:00:00Z, id=7".
func formatKey(keys []keyField, key []any) string {
	parts := make([]string, len(key))
	for i, v := range key {
		var s string
		if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
			v = rv.Elem().Interface()
		}
		switch v := v.(type) {
		case time.Time:
			s = v.Format(time.RFC3339Nano)
		case string:
			s = strconv.Quote(v)
		case []byte:
			s = fmt.Sprintf("x'%x'", v)
		default:
			s = fmt.Sprint(v)
		}
		parts[i] = keys[i].name + "=" + s
	}
	return strings.Join(parts, ", ")
}
