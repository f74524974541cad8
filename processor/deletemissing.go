package processor

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
)

// DeleteMissingConfig configures [DeleteMissing]. DB, Scope, Table and
// KeyColumn are required, and at least one of MinSeen and MinSeenRatio.
type DeleteMissingConfig struct {
	// DB is the job repository's handle: the sweep runs in the tasklet's
	// transaction.
	DB *sqlx.DB
	// HashTable and Scope are those of the [ChangeDetector] that marked the
	// items of the sync. Default HashTable: [DefaultHashTable].
	HashTable string
	Scope     string
	// Table is the table synced, and KeyColumn its column holding the key
	// the detector's Key returns (compared as text).
	Table     string
	KeyColumn string
	// MinSeen refuses the sweep when fewer items than that were seen by
	// this run: a source that returned almost nothing (an outage, an
	// empty page taken for the last) must not empty the table.
	MinSeen int64
	// MinSeenRatio refuses the sweep when the items seen by this run are
	// fewer than this fraction of the items known before it (0.5: refuse
	// when more than half would go).
	MinSeenRatio float64
}

// ErrTooFewSeen is matched by the error of a sweep that [DeleteMissing]
// refused.
var ErrTooFewSeen = errors.New("too few items seen to delete the others")

// DeleteMissing returns a tasklet for the last step of a sync job: it
// deletes from Table the rows whose keys the [ChangeDetector] knows but this
// job instance did not see — rows that vanished from the source — and
// forgets those keys. It refuses, failing the step with [ErrTooFewSeen] and
// deleting nothing, when the run saw fewer items than the floor.
//
// This is mark-and-sweep: the sync step marks every item that reaches the
// detector with the job instance (the same across restarts of the
// instance, so a sync that failed half way and was restarted still sees
// everything); the sweep deletes the unmarked. An item the sync step
// skipped before it reached the detector is not marked, and its row is
// deleted: put validation that may skip after the detector, or accept
// that. The deletions are counted in the step's Changes.Deleted.
func DeleteMissing(cfg DeleteMissingConfig) (batch.Tasklet, error) {
	if cfg.HashTable == "" {
		cfg.HashTable = DefaultHashTable
	}
	switch {
	case cfg.DB == nil:
		return nil, errors.New("processor: delete missing: no DB")
	case cfg.Scope == "":
		return nil, errors.New("processor: delete missing: no Scope")
	case !identPattern.MatchString(cfg.Table) || !identPattern.MatchString(cfg.HashTable):
		return nil, fmt.Errorf("processor: delete missing: invalid table name %q or %q", cfg.Table, cfg.HashTable)
	case !identPattern.MatchString(cfg.KeyColumn):
		return nil, fmt.Errorf("processor: delete missing: invalid key column %q", cfg.KeyColumn)
	case cfg.MinSeen <= 0 && cfg.MinSeenRatio <= 0:
		return nil, errors.New("processor: delete missing: set MinSeen or MinSeenRatio: a floor is what keeps an outage from emptying the table")
	case cfg.MinSeenRatio > 1:
		return nil, fmt.Errorf("processor: delete missing: MinSeenRatio %v is more than 1", cfg.MinSeenRatio)
	}
	db := cfg.DB
	count := db.Rebind(`SELECT COUNT(*), COALESCE(SUM(CASE WHEN seen_by = ? THEN 1 ELSE 0 END), 0) FROM ` +
		cfg.HashTable + ` WHERE scope = ?`)
	missing := `(SELECT item_key FROM ` + cfg.HashTable + ` WHERE scope = ? AND (seen_by IS NULL OR seen_by <> ?))`
	deleteRows := db.Rebind(`DELETE FROM ` + cfg.Table + ` WHERE CAST(` + cfg.KeyColumn + ` AS TEXT) IN ` + missing)
	forget := db.Rebind(`DELETE FROM ` + cfg.HashTable + ` WHERE scope = ? AND (seen_by IS NULL OR seen_by <> ?)`)
	return batch.TaskletFunc(func(ctx context.Context, se *batch.StepExecution) (batch.RepeatStatus, error) {
		je, ok := batch.JobExecutionFrom(ctx)
		if !ok {
			return batch.Finished, errors.New("processor: delete missing: the context is not a step's")
		}
		tx, err := batch.JoinTxx(ctx, db)
		if err != nil {
			return batch.Finished, fmt.Errorf("processor: delete missing %s: %w", cfg.Scope, err)
		}
		var known, seen int64
		if err := tx.QueryRowxContext(ctx, count, je.InstanceID, cfg.Scope).Scan(&known, &seen); err != nil {
			return batch.Finished, fmt.Errorf("processor: delete missing %s: count: %w", cfg.Scope, err)
		}
		if seen < cfg.MinSeen || float64(seen) < cfg.MinSeenRatio*float64(known) {
			var floor []string
			if cfg.MinSeen > 0 {
				floor = append(floor, fmt.Sprintf("at least %d", cfg.MinSeen))
			}
			if cfg.MinSeenRatio > 0 {
				floor = append(floor, fmt.Sprintf("at least %g%% of those known", 100*cfg.MinSeenRatio))
			}
			return batch.Finished, fmt.Errorf("processor: delete missing %s: %w: this run saw %d of the %d items known, and needs %s",
				cfg.Scope, ErrTooFewSeen, seen, known, strings.Join(floor, " and "))
		}
		res, err := tx.ExecContext(ctx, deleteRows, cfg.Scope, je.InstanceID)
		if err != nil {
			return batch.Finished, fmt.Errorf("processor: delete missing %s: delete from %s: %w", cfg.Scope, cfg.Table, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return batch.Finished, fmt.Errorf("processor: delete missing %s: %w", cfg.Scope, err)
		}
		if _, err := tx.ExecContext(ctx, forget, cfg.Scope, je.InstanceID); err != nil {
			return batch.Finished, fmt.Errorf("processor: delete missing %s: forget keys: %w", cfg.Scope, err)
		}
		se.Changes.Deleted += n
		return batch.Finished, nil
	}), nil
}
