package processor

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
)

// identPattern accepts a plain SQL identifier, optionally qualified by a
// schema.
var identPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$`)

// DefaultHashTable is the table a [ChangeDetector] keeps its hashes in when
// none is configured.
const DefaultHashTable = "batch_item_hash"

// ChangeDetectorConfig configures a [ChangeDetector]. DB, Scope and Key are
// required.
type ChangeDetectorConfig[T any] struct {
	// DB is the database of the hash table; it must be the job
	// repository's handle, since the hashes are written in the chunk's
	// transaction (a chunk without one fails with batch.ErrNoChunkTx).
	DB *sqlx.DB
	// Table keeps the hashes, created if missing, with the columns scope,
	// item_key, hash and seen_by. Default [DefaultHashTable].
	Table string
	// Scope names the data set, so that several jobs share one table:
	// "crm.customers". Required.
	Scope string
	// Key returns the item's identity in the source: its id. Required.
	Key func(item T) string
	// Hash returns the content to compare. Default: the SHA-256 of the
	// item's JSON encoding (so fields without a JSON encoding are not
	// compared).
	Hash func(item T) ([]byte, error)
}

// ChangeDetector drops the items whose content has not changed since they
// were last written, so that a sync job does not rewrite unchanged rows. It
// is a processor (T to T, filtering unchanged items: they count as
// filtered), and its [ChangeDetector.Writer] wraps the step's writer to
// record the hashes of what it wrote.
//
// The hashes live in a table written in the chunk's transaction, with the
// rows they describe: a crash never leaves a hash ahead of the data, so an
// item is never taken as unchanged when its write did not commit. Each item
// that reaches the detector, changed or not, is marked as seen by the job
// instance ("seen_by"), which is what [DeleteMissing] sweeps by.
//
// Give the detector as the step's processor (or as the last stage of a
// [Chain]) and wrap the writer:
//
//	det, _ := processor.NewChangeDetector(cfg)
//	batch.ChunkConfig[Row, Row]{Processor: det, Writer: det.Writer(upsert), ...}
type ChangeDetector[T any] struct {
	cfg    ChangeDetectorConfig[T]
	create string
	get    string
	put    string
	mark   string

	// seen are the items processed since the last commit that landed, in
	// batches: a batch is what was processed between two Updates. Every
	// Update marks the items of all of them as seen by the job instance,
	// reports the unchanged ones, and names its last batch in the
	// checkpoint: the batches a checkpoint that landed names are dropped by
	// the next Update. A commit attempt that rolls back — a retry, a
	// failed item of a chunk written item by item — leaves them for the
	// next one, which marks and counts them again.
	seen    []seenBatch
	nonce   string // tells this Open's batches from another's
	batches int
	updated bool              // an Update came after the last item processed
	hashes  map[string]string // of the changed items, by key
}

type seenBatch struct {
	id        int
	keys      []string
	unchanged int64
}

var (
	_ batch.ItemProcessor[int, int] = (*ChangeDetector[int])(nil)
	_ batch.ItemStream              = (*ChangeDetector[int])(nil)
)

// NewChangeDetector returns a change detector, or an error if cfg is
// invalid.
func NewChangeDetector[T any](cfg ChangeDetectorConfig[T]) (*ChangeDetector[T], error) {
	if cfg.Table == "" {
		cfg.Table = DefaultHashTable
	}
	switch {
	case cfg.DB == nil:
		return nil, errors.New("processor: change detector: no DB")
	case cfg.Scope == "":
		return nil, errors.New("processor: change detector: no Scope")
	case cfg.Key == nil:
		return nil, errors.New("processor: change detector: no Key")
	case !identPattern.MatchString(cfg.Table):
		return nil, fmt.Errorf("processor: change detector: invalid table name %q", cfg.Table)
	}
	if cfg.Hash == nil {
		cfg.Hash = func(item T) ([]byte, error) { return json.Marshal(item) }
	}
	t := cfg.Table
	return &ChangeDetector[T]{
		cfg: cfg,
		create: `CREATE TABLE IF NOT EXISTS ` + t + ` (scope TEXT NOT NULL, item_key TEXT NOT NULL,
			hash TEXT NOT NULL, seen_by BIGINT, PRIMARY KEY (scope, item_key))`,
		get: cfg.DB.Rebind(`SELECT hash FROM ` + t + ` WHERE scope = ? AND item_key = ?`),
		put: cfg.DB.Rebind(`INSERT INTO ` + t + ` (scope, item_key, hash, seen_by) VALUES (?, ?, ?, ?)
			ON CONFLICT (scope, item_key) DO UPDATE SET hash = EXCLUDED.hash, seen_by = EXCLUDED.seen_by`),
		mark: cfg.DB.Rebind(`UPDATE ` + t + ` SET seen_by = ? WHERE scope = ? AND item_key = ?`),
	}, nil
}

func (d *ChangeDetector[T]) errorf(format string, args ...any) error {
	return fmt.Errorf("processor: change detector %s: "+format, append([]any{d.cfg.Scope}, args...)...)
}

func (d *ChangeDetector[T]) hash(item T) (string, error) {
	b, err := d.cfg.Hash(item)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Open creates the hash table if it does not exist.
func (d *ChangeDetector[T]) Open(ctx context.Context, _ batch.ExecutionContext) error {
	if _, err := d.cfg.DB.ExecContext(ctx, d.create); err != nil {
		return d.errorf("%w", err)
	}
	d.seen, d.updated, d.hashes = nil, false, map[string]string{}
	d.nonce, d.batches = strconv.FormatInt(time.Now().UnixNano(), 36), 0
	return nil
}

func (d *ChangeDetector[T]) batchKey() string { return "change-detector." + d.cfg.Scope + ".batch" }

// Process passes item on if its hash differs from the stored one (or none
// is stored), and filters it out (batch.ErrFilter) if it is the same.
func (d *ChangeDetector[T]) Process(ctx context.Context, item T) (T, error) {
	if d.updated || len(d.seen) == 0 {
		d.updated = false
		clear(d.hashes)
		d.batches++
		d.seen = append(d.seen, seenBatch{id: d.batches})
	}
	cur := &d.seen[len(d.seen)-1]
	key := d.cfg.Key(item)
	h, err := d.hash(item)
	if err != nil {
		return item, d.errorf("key %s: hash: %w", key, err)
	}
	var stored string
	err = d.cfg.DB.GetContext(ctx, &stored, d.get, d.cfg.Scope, key)
	switch {
	case err == nil && stored == h:
		cur.keys = append(cur.keys, key)
		cur.unchanged++
		return item, batch.ErrFilter
	case err == nil || errors.Is(err, sql.ErrNoRows):
		if d.hashes == nil {
			d.hashes = map[string]string{}
		}
		d.hashes[key] = h
		// Seen, even if a later stage or the write skips it: its row, if
		// it has one, is still in the source.
		cur.keys = append(cur.keys, key)
		return item, nil
	default:
		return item, d.errorf("key %s: %w", key, err)
	}
}

// Update marks the items processed since the last commit that landed as
// seen by the job instance, in the chunk's transaction, and reports the
// unchanged ones (batch.ReportChanges).
func (d *ChangeDetector[T]) Update(ctx context.Context, ec batch.ExecutionContext) error {
	var landed string
	if _, err := ec.Get(d.batchKey(), &landed); err != nil {
		return d.errorf("%w", err)
	}
	if id, ok := strings.CutPrefix(landed, d.nonce+"-"); ok {
		n, _ := strconv.Atoi(id)
		k := 0
		for k < len(d.seen) && d.seen[k].id <= n {
			k++
		}
		d.seen = append(d.seen[:0], d.seen[k:]...)
	}
	d.updated = true
	if len(d.seen) == 0 {
		return nil
	}
	tx, inst, err := d.join(ctx)
	if err != nil {
		return err
	}
	var unchanged int64
	for _, b := range d.seen {
		for _, key := range b.keys {
			if _, err := tx.ExecContext(ctx, d.mark, inst, d.cfg.Scope, key); err != nil {
				return d.errorf("key %s: mark seen: %w", key, err)
			}
		}
		unchanged += b.unchanged
	}
	if unchanged > 0 {
		batch.ReportChanges(ctx, batch.Changes{Unchanged: unchanged})
	}
	if err := ec.Put(d.batchKey(), d.nonce+"-"+strconv.Itoa(d.seen[len(d.seen)-1].id)); err != nil {
		return d.errorf("%w", err)
	}
	return nil
}

// Close does nothing.
func (d *ChangeDetector[T]) Close(context.Context) error { return nil }

func (d *ChangeDetector[T]) join(ctx context.Context) (*sqlx.Tx, int64, error) {
	je, ok := batch.JobExecutionFrom(ctx)
	if !ok {
		return nil, 0, d.errorf("the context is not a step's")
	}
	tx, err := batch.JoinTxx(ctx, d.cfg.DB)
	if err != nil {
		return nil, 0, d.errorf("%w", err)
	}
	return tx, je.InstanceID, nil
}

// Writer returns w wrapped so that, in the same transaction as the items it
// writes, the items' hashes are stored and the items marked as seen. The
// wrapper opens, updates and closes w with the step if w is an ItemStream.
func (d *ChangeDetector[T]) Writer(w batch.ItemWriter[T]) batch.ItemWriter[T] {
	return &hashWriter[T]{d: d, w: w}
}

type hashWriter[T any] struct {
	d *ChangeDetector[T]
	w batch.ItemWriter[T]
}

func (h *hashWriter[T]) Write(ctx context.Context, items []T) error {
	if err := h.w.Write(ctx, items); err != nil {
		return err
	}
	d := h.d
	tx, inst, err := d.join(ctx)
	if err != nil {
		return err
	}
	for _, it := range items {
		key := d.cfg.Key(it)
		hash, ok := d.hashes[key]
		if !ok {
			if hash, err = d.hash(it); err != nil {
				return d.errorf("key %s: hash: %w", key, err)
			}
		}
		if _, err := tx.ExecContext(ctx, d.put, d.cfg.Scope, key, hash, inst); err != nil {
			return d.errorf("key %s: store hash: %w", key, err)
		}
	}
	return nil
}

func (h *hashWriter[T]) Open(ctx context.Context, ec batch.ExecutionContext) error {
	if s, ok := h.w.(batch.ItemStream); ok {
		return s.Open(ctx, ec)
	}
	return nil
}

func (h *hashWriter[T]) Update(ctx context.Context, ec batch.ExecutionContext) error {
	if s, ok := h.w.(batch.ItemStream); ok {
		return s.Update(ctx, ec)
	}
	return nil
}

func (h *hashWriter[T]) Close(ctx context.Context) error {
	if s, ok := h.w.(batch.ItemStream); ok {
		return s.Close(ctx)
	}
	return nil
}
