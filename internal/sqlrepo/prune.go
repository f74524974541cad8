package sqlrepo

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

var _ repository.Pruner = (*Repository)(nil)

// pruneRow is a candidate of a prune: an execution and what decides it.
type pruneRow struct {
	ID          int64        `db:"id"`
	InstanceID  int64        `db:"job_instance_id"`
	Status      string       `db:"status"`
	EndTime     sql.NullTime `db:"end_time"`
	LastUpdated time.Time    `db:"last_updated"`
	LastStatus  string       `db:"last_status"`
}

// Prune implements repository.Pruner. It walks each job's executions in
// pages of req.Batch(), oldest first, decides each with req.Selects and
// deletes a page's selected executions in one transaction, in which it
// checks again that none of them, and no other execution of their
// instances, is running.
func (r *Repository) Prune(ctx context.Context, req repository.PruneRequest) (repository.PruneResult, error) {
	if err := req.Check(); err != nil {
		return repository.PruneResult{}, err
	}
	if req.Now.IsZero() && r.d.Now != "" {
		now, err := r.now(ctx, r.db)
		if err != nil {
			return repository.PruneResult{}, r.wrap("prune", err)
		}
		req.Now = now
	}
	jobs := []string{req.Job}
	if req.Job == "" {
		var err error
		if jobs, err = r.JobNames(ctx); err != nil {
			return repository.PruneResult{}, err
		}
	}
	out := map[string]*repository.PrunedJob{}
	for _, job := range jobs {
		j, err := r.pruneJob(ctx, req, job)
		if err != nil {
			return repository.PruneResult{}, r.wrap("prune "+job, err)
		}
		if j.Executions > 0 {
			out[job] = &j
		}
	}
	return repository.SortPruned(out), nil
}

func (r *Repository) pruneJob(ctx context.Context, req repository.PruneRequest, job string) (repository.PrunedJob, error) {
	j := repository.PrunedJob{Job: job}
	// The executions from the KeepLast-th newest on are kept; ids grow
	// with time, and executions launched meanwhile only push it further.
	keepFrom := int64(math.MaxInt64)
	if req.KeepLast > 0 {
		err := r.db.GetContext(ctx, &keepFrom, r.sql(`SELECT e.id FROM {{p}}job_execution e
			JOIN {{p}}job_instance i ON i.id = e.job_instance_id WHERE i.job_name = ?
			ORDER BY e.id DESC LIMIT 1 OFFSET ?`), job, req.KeepLast-1)
		if errors.Is(err, sql.ErrNoRows) {
			return j, nil // no more than KeepLast executions
		}
		if err != nil {
			return j, err
		}
	}
	page := r.sql(`SELECT e.id, e.job_instance_id, e.status, e.end_time, e.last_updated,
		(SELECT l.status FROM {{p}}job_execution l WHERE l.job_instance_id = e.job_instance_id
			ORDER BY l.id DESC LIMIT 1) AS last_status
		FROM {{p}}job_execution e JOIN {{p}}job_instance i ON i.id = e.job_instance_id
		WHERE i.job_name = ? AND e.id > ? AND e.id < ? ORDER BY e.id LIMIT ?`)
	pruned := map[int64]int64{} // instance → executions selected, for a dry run
	for after := int64(0); ; {
		var rows []pruneRow
		if err := r.db.SelectContext(ctx, &rows, page, job, after, keepFrom, req.Batch()); err != nil {
			return j, err
		}
		if len(rows) == 0 {
			break
		}
		after = rows[len(rows)-1].ID
		var ids, instances []int64
		ended := map[int64]time.Time{}
		for _, row := range rows {
			end := row.LastUpdated
			if row.EndTime.Valid {
				end = row.EndTime.Time
			}
			if !req.Selects(end.UTC(), false, batch.BatchStatus(row.Status), batch.BatchStatus(row.LastStatus)) {
				continue
			}
			ids = append(ids, row.ID)
			instances = append(instances, row.InstanceID)
			ended[row.ID] = end.UTC()
			pruned[row.InstanceID]++
		}
		if len(ids) == 0 {
			continue
		}
		var err error
		if req.DryRun {
			err = r.countPage(ctx, &j, ids, ended)
		} else {
			err = r.inTx(ctx, func(tx *sqlx.Tx) error { return r.deletePage(ctx, tx, &j, ids, instances, ended) })
		}
		if err != nil {
			return j, err
		}
	}
	if req.DryRun {
		return j, r.countEmptied(ctx, &j, pruned)
	}
	return j, nil
}

// in runs query, with its "(?)" expanded to ids, on q.
func (r *Repository) in(query string, ids []int64, args ...any) (string, []any, error) {
	q, a, err := sqlx.In(query, append(args, ids)...)
	return r.sql(q), a, err
}

// deletePage deletes the executions ids that are still prunable, their
// step executions, and the instances among instances left without
// executions.
func (r *Repository) deletePage(ctx context.Context, tx *sqlx.Tx, j *repository.PrunedJob, ids, instances []int64, ended map[int64]time.Time) error {
	const running = `('STARTING','STARTED','STOPPING')`
	q, args, err := r.in(`SELECT e.id FROM {{p}}job_execution e WHERE e.id IN (?) AND e.status NOT IN `+running+`
		AND NOT EXISTS (SELECT 1 FROM {{p}}job_execution x WHERE x.job_instance_id = e.job_instance_id
			AND x.status IN `+running+`) ORDER BY e.id{{forUpdate}}`, ids)
	if err != nil {
		return err
	}
	var still []int64
	if err := tx.SelectContext(ctx, &still, q, args...); err != nil || len(still) == 0 {
		return err
	}
	// del runs a DELETE with its "(?)" expanded to ids, and returns the
	// rows it deleted.
	del := func(query string, ids []int64) (int64, error) {
		q, args, err := r.in(query, ids)
		if err != nil {
			return 0, err
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return 0, err
		}
		return res.RowsAffected()
	}
	if _, err := del(`DELETE FROM {{p}}step_reject WHERE job_execution_id IN (?)`, still); err != nil {
		return err
	}
	steps, err := del(`DELETE FROM {{p}}step_execution WHERE job_execution_id IN (?)`, still)
	if err != nil {
		return err
	}
	if _, err := del(`DELETE FROM {{p}}job_execution WHERE id IN (?)`, still); err != nil {
		return err
	}
	gone, err := del(`DELETE FROM {{p}}job_instance WHERE id IN (?) AND NOT EXISTS
		(SELECT 1 FROM {{p}}job_execution x WHERE x.job_instance_id = {{p}}job_instance.id)`, instances)
	if err != nil {
		return err
	}
	for _, id := range still {
		j.Add(ended[id])
	}
	j.StepExecutions += steps
	j.Instances += gone
	return nil
}

// countPage counts, for a dry run, the executions ids and their step
// executions.
func (r *Repository) countPage(ctx context.Context, j *repository.PrunedJob, ids []int64, ended map[int64]time.Time) error {
	q, args, err := r.in(`SELECT COUNT(*) FROM {{p}}step_execution WHERE job_execution_id IN (?)`, ids)
	if err != nil {
		return err
	}
	var steps int64
	if err := r.db.GetContext(ctx, &steps, q, args...); err != nil {
		return err
	}
	for _, id := range ids {
		j.Add(ended[id])
	}
	j.StepExecutions += steps
	return nil
}

// countEmptied counts, for a dry run, the instances whose executions would
// all be deleted: pruned holds how many of each instance's would be.
func (r *Repository) countEmptied(ctx context.Context, j *repository.PrunedJob, pruned map[int64]int64) error {
	ids := make([]int64, 0, len(pruned))
	for id := range pruned {
		ids = append(ids, id)
	}
	for len(ids) > 0 {
		n := min(len(ids), 500)
		q, args, err := r.in(`SELECT job_instance_id, COUNT(*) AS n FROM {{p}}job_execution
			WHERE job_instance_id IN (?) GROUP BY job_instance_id`, ids[:n])
		if err != nil {
			return err
		}
		var rows []struct {
			ID int64 `db:"job_instance_id"`
			N  int64 `db:"n"`
		}
		if err := r.db.SelectContext(ctx, &rows, q, args...); err != nil {
			return err
		}
		for _, row := range rows {
			if row.N == pruned[row.ID] {
				j.Instances++
			}
		}
		ids = ids[n:]
	}
	return nil
}
