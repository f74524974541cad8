package writer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
)

// Reject is the record of one skipped item, as RejectFile writes it (one JSON
// object a line) and RejectTable stores it.
type Reject[T, U any] struct {
	Time   time.Time `json:"time"`
	Step   string    `json:"step"`
	Phase  string    `json:"phase"` // read, process or write
	Item   int64     `json:"item"`  // see batch.Skip.Item
	Error  string    `json:"error"`
	Input  *T        `json:"input,omitempty"`
	Output *U        `json:"output,omitempty"`
}

func newReject[T, U any](s *batch.Skip[T, U]) Reject[T, U] {
	r := Reject[T, U]{Time: time.Now().UTC(), Step: s.Step, Phase: s.Phase, Item: s.Item, Error: s.Err.Error()}
	if s.Phase != "read" {
		in := s.Input
		r.Input = &in
	}
	if s.Phase == "write" {
		out := s.Output
		r.Output = &out
	}
	return r
}

// RejectFileConfig configures a RejectFile.
type RejectFileConfig struct {
	// Path is the file the rejects are appended to. Required.
	Path string
	// Name prefixes the file's keys in the step's execution context.
	// Default "reject." plus the file's base name.
	Name string
}

// RejectFile is a skip listener that writes every skipped item, with its
// error, as a line of JSON to a file. Give it to a chunk step in
// ChunkConfig.Listeners; the step opens, updates and closes it with its other
// streams.
//
// Guarantee: each skip is written exactly once, even across crashes and
// restarts. Lines are buffered until the chunk's checkpoint is written, then
// written and synced at the offset stored with the last committed
// checkpoint; a restart truncates the file to that offset first. It stores
// that offset and the number of rejects under its Name, as the file writers
// do ([CSVFile]).
type RejectFile[T, U any] struct {
	file *txFile

	mu     sync.Mutex
	commit uint64
}

var _ batch.ItemStream = (*RejectFile[int, int])(nil)

// NewRejectFile returns a reject file.
func NewRejectFile[T, U any](cfg RejectFileConfig) (*RejectFile[T, U], error) {
	if cfg.Path == "" {
		return nil, errors.New("writer: reject file: no Path")
	}
	if cfg.Name == "" {
		cfg.Name = "reject." + filepath.Base(cfg.Path)
	}
	f, err := newTxFile(fileConfig{kind: "reject file", path: cfg.Path, name: cfg.Name, append: true})
	if err != nil {
		return nil, err
	}
	return &RejectFile[T, U]{file: f}, nil
}

// Open opens the file, creating it if needed. On a restart it truncates the
// file to the offset of the last committed checkpoint, dropping lines of
// chunks that did not commit.
func (r *RejectFile[T, U]) Open(ctx context.Context, ec batch.ExecutionContext) error {
	if err := r.file.refuseDryRun(ctx); err != nil {
		return err
	}
	return r.file.open(ec)
}

// OnSkip records a skip; it is written at the next Update.
func (r *RejectFile[T, U]) OnSkip(ctx context.Context, s *batch.Skip[T, U]) error {
	line, err := json.Marshal(newReject(s))
	if err != nil {
		return r.file.errorf("%w", err)
	}
	line = append(line, '\n')
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.Commit != r.commit {
		r.commit = s.Commit // a new attempt reports its skips afresh
		r.file.stage(ctx, line, 1)
		return nil
	}
	r.file.add(ctx, line, 1)
	return nil
}

// Update writes the recorded skips at the offset of the last committed
// checkpoint (read from ec), syncs the file, and stores the new offset in ec.
func (r *RejectFile[T, U]) Update(ctx context.Context, ec batch.ExecutionContext) error {
	return r.file.update(ctx, ec)
}

// Close closes the file.
func (r *RejectFile[T, U]) Close(context.Context) error {
	return r.file.close()
}

// RejectTableConfig configures a RejectTable.
type RejectTableConfig struct {
	// DB is the database of the table. Required. Unless OwnTransaction is
	// set, it must be the job repository's handle: rejects are inserted in
	// the chunk's transaction, and a skip without one on DB fails with
	// batch.ErrNoChunkTx.
	DB *sqlx.DB
	// OwnTransaction makes each insert commit on its own, for a table
	// outside the job repository's database: a crash can repeat the
	// rejects of one chunk. Default false: exactly once, in the chunk's
	// transaction.
	OwnTransaction bool
	// Table is the table's name, optionally schema-qualified; letters,
	// digits and '_' only. It is created if missing. Default "batch_reject".
	Table string
}

// RejectTable is a skip listener that inserts every skipped item, with its
// error, into a table with the columns created_at, step, phase, item, error,
// input and output (the items as JSON text).
//
// Guarantee: by default each reject is inserted in the transaction of the
// chunk that counts the skip — exactly once. With OwnTransaction each insert
// commits on its own: a crash can repeat the rejects of one chunk.
type RejectTable[T, U any] struct {
	own    bool
	db     *sqlx.DB
	table  string
	insert string
	create string
}

var _ batch.ItemStream = (*RejectTable[int, int])(nil)

// NewRejectTable returns a reject table.
func NewRejectTable[T, U any](cfg RejectTableConfig) (*RejectTable[T, U], error) {
	if cfg.DB == nil {
		return nil, errors.New("writer: reject table: no DB")
	}
	if cfg.Table == "" {
		cfg.Table = "batch_reject"
	}
	if !identPattern.MatchString(cfg.Table) {
		return nil, fmt.Errorf("writer: reject table: invalid table name %q", cfg.Table)
	}
	return &RejectTable[T, U]{
		own:   cfg.OwnTransaction,
		db:    cfg.DB,
		table: cfg.Table,
		create: `CREATE TABLE IF NOT EXISTS ` + cfg.Table + ` (created_at TIMESTAMP NOT NULL, step TEXT NOT NULL,
			phase TEXT NOT NULL, item BIGINT NOT NULL, error TEXT NOT NULL, input TEXT, output TEXT)`,
		insert: cfg.DB.Rebind(`INSERT INTO ` + cfg.Table +
			` (created_at, step, phase, item, error, input, output) VALUES (?, ?, ?, ?, ?, ?, ?)`),
	}, nil
}

// Open creates the table if it does not exist. A dry run with
// OwnTransaction is refused (batch.ErrDryRun): its inserts would commit.
func (r *RejectTable[T, U]) Open(ctx context.Context, _ batch.ExecutionContext) error {
	if r.own {
		if err := refuseOwnInDryRun(ctx, "reject table "+r.table); err != nil {
			return err
		}
	}
	if _, err := r.db.ExecContext(ctx, r.create); err != nil {
		return fmt.Errorf("writer: reject table %s: %w", r.table, err)
	}
	return nil
}

// Update does nothing: rejects are inserted as they come.
func (r *RejectTable[T, U]) Update(context.Context, batch.ExecutionContext) error { return nil }

// Close does nothing.
func (r *RejectTable[T, U]) Close(context.Context) error { return nil }

// OnSkip inserts the reject, in the chunk's transaction unless the table
// commits on its own.
func (r *RejectTable[T, U]) OnSkip(ctx context.Context, s *batch.Skip[T, U]) error {
	rej := newReject(s)
	var in, out any
	if rej.Input != nil {
		b, err := json.Marshal(rej.Input)
		if err != nil {
			return fmt.Errorf("writer: reject table %s: input: %w", r.table, err)
		}
		in = string(b)
	}
	if rej.Output != nil {
		b, err := json.Marshal(rej.Output)
		if err != nil {
			return fmt.Errorf("writer: reject table %s: output: %w", r.table, err)
		}
		out = string(b)
	}
	args := []any{rej.Time, rej.Step, rej.Phase, rej.Item, rej.Error, in, out}
	var err error
	if r.own {
		_, err = r.db.ExecContext(ctx, r.insert, args...)
	} else {
		var tx *sqlx.Tx
		if tx, err = batch.JoinTxx(ctx, r.db); err == nil {
			_, err = tx.ExecContext(ctx, r.insert, args...)
		}
	}
	if err != nil {
		return fmt.Errorf("writer: reject table %s: %w", r.table, err)
	}
	return nil
}
