package sqlrepo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

var _ repository.StepLeaser = (*Repository)(nil)

// leaseRow is a step execution's status and lease, with its job
// execution's status.
type leaseRow struct {
	Status    string         `db:"status"`
	Version   int64          `db:"version"`
	Owner     sql.NullString `db:"lease_owner"`
	Until     sql.NullTime   `db:"lease_until"`
	Claims    int            `db:"claims"`
	JobStatus string         `db:"job_status"`
}

func (l leaseRow) lease() repository.StepLease {
	return repository.StepLease{Owner: l.Owner.String, Until: l.Until.Time, Claims: l.Claims}
}

// readLease reads the lease of step execution id, locking its row where
// the dialect locks rows (SQLite's transaction holds the write lock).
func (r *Repository) readLease(ctx context.Context, q sqlx.QueryerContext, id int64, lock bool) (leaseRow, error) {
	forUpdate := ""
	if lock && r.d.ForUpdate != "" {
		forUpdate = r.d.ForUpdate + " OF s"
	}
	var row leaseRow
	err := sqlx.GetContext(ctx, q, &row, r.sql(`SELECT s.status, s.version, s.lease_owner, s.lease_until, s.claims,
		e.status AS job_status FROM {{p}}step_execution s JOIN {{p}}job_execution e ON e.id = s.job_execution_id
		WHERE s.id = ?`+forUpdate), id)
	if errors.Is(err, sql.ErrNoRows) {
		return row, fmt.Errorf("step execution %d: %w", id, batch.ErrNotFound)
	}
	return row, err
}

// ClaimStep implements repository.StepLeaser.
func (r *Repository) ClaimStep(ctx context.Context, id int64, owner string, lease time.Duration) (*batch.StepExecution, error) {
	if owner == "" || lease <= 0 {
		return nil, fmt.Errorf("repository %s: claim step execution %d: want an owner and a positive lease", r.d.Name, id)
	}
	var claimed stepRow
	err := r.inTx(ctx, func(tx *sqlx.Tx) error {
		row, err := r.readLease(ctx, tx, id, true)
		if err != nil {
			return err
		}
		now, err := r.now(ctx, tx)
		if err != nil {
			return err
		}
		if err := repository.Claimable(batch.BatchStatus(row.Status), row.lease(), batch.BatchStatus(row.JobStatus), now); err != nil {
			return fmt.Errorf("step execution %d (%s, held by %q until %s): %w", id, row.Status, row.Owner.String,
				row.Until.Time.UTC().Format(time.RFC3339Nano), err)
		}
		if _, err := tx.ExecContext(ctx, r.sql(`UPDATE {{p}}step_execution SET version = version + 1, status = 'STARTED',
			lease_owner = ?, lease_until = ?, claims = claims + 1, start_time = COALESCE(start_time, ?), last_updated = ?
			WHERE id = ? AND version = ?`), owner, now.Add(lease), now, now, id, row.Version); err != nil {
			return err
		}
		return tx.GetContext(ctx, &claimed, r.sql(`SELECT `+stepCols+` FROM {{p}}step_execution s WHERE s.id = ?`), id)
	})
	if err != nil {
		return nil, r.wrap("claim step execution", err)
	}
	s, err := claimed.step()
	return s, r.wrap("claim step execution", err)
}

// RenewStepLease implements repository.StepLeaser.
func (r *Repository) RenewStepLease(ctx context.Context, id int64, owner string, lease time.Duration) error {
	err := r.inTxOn(ctx, r.beat, func(tx *sqlx.Tx) error {
		now, err := r.now(ctx, tx)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, r.sql(`UPDATE {{p}}step_execution SET lease_until = ?
			WHERE id = ? AND lease_owner = ? AND status IN ('STARTING','STARTED','STOPPING')`), now.Add(lease), id, owner)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		return fmt.Errorf("step execution %d, owner %q: %w", id, owner, repository.ErrLeaseLost)
	})
	return r.wrap("renew step lease", err)
}

// ReleaseStep implements repository.StepLeaser.
func (r *Repository) ReleaseStep(ctx context.Context, id int64, owner string) error {
	err := r.inTx(ctx, func(tx *sqlx.Tx) error {
		now, err := r.now(ctx, tx)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, r.sql(`UPDATE {{p}}step_execution SET version = version + 1, status = 'STARTING',
			lease_owner = NULL, lease_until = NULL, claims = claims - 1, last_updated = ?
			WHERE id = ? AND lease_owner = ? AND status IN ('STARTED','STOPPING')`), now, id, owner)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		return fmt.Errorf("step execution %d, owner %q: %w", id, owner, repository.ErrLeaseLost)
	})
	return r.wrap("release step", err)
}

// StepLease implements repository.StepLeaser.
func (r *Repository) StepLease(ctx context.Context, id int64) (repository.StepLease, error) {
	row, err := r.readLease(ctx, r.db, id, false)
	if err != nil {
		return repository.StepLease{}, r.wrap("step lease", err)
	}
	now, err := r.now(ctx, r.db)
	if err != nil {
		return repository.StepLease{}, r.wrap("step lease", err)
	}
	l := row.lease()
	l.Until = l.Until.UTC()
	l.Expired = l.Owner != "" && !now.Before(l.Until)
	return l, nil
}
