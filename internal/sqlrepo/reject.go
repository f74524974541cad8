package sqlrepo

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/chunktx"
	"github.com/chunkwise/chunkwise/repository"
)

var _ repository.RejectStore = (*Repository)(nil)

// SaveReject implements repository.RejectStore: an INSERT in the chunk's
// transaction, which it begins if no writer has.
func (r *Repository) SaveReject(ctx context.Context, stepExecutionID int64, rej batch.Reject) error {
	ct, reason := chunktx.From(ctx)
	if ct == nil {
		return fmt.Errorf("repository %s: save reject: no chunk transaction (%s)", r.d.Name, reason)
	}
	tx, err := ct.Tx()
	if err != nil {
		return r.wrap("save reject", err)
	}
	text := func(b json.RawMessage) any {
		if b == nil {
			return nil
		}
		return string(b)
	}
	_, err = tx.ExecContext(ctx, r.sql(`INSERT INTO {{p}}step_reject (job_execution_id, step_execution_id, step_name, phase,
		item, error, input, output, create_time)
		SELECT job_execution_id, id, ?, ?, ?, ?, ?, ?, ? FROM {{p}}step_execution WHERE id = ?`),
		rej.Step, rej.Phase, rej.Item, rej.Error, text(rej.Input), text(rej.Output), time.Now().UTC(), stepExecutionID)
	return r.wrap("save reject", err)
}

// Rejects implements repository.RejectStore.
func (r *Repository) Rejects(ctx context.Context, jobExecutionID int64) ([]repository.StoredReject, error) {
	var rows []struct {
		ID              int64          `db:"id"`
		JobExecutionID  int64          `db:"job_execution_id"`
		StepExecutionID int64          `db:"step_execution_id"`
		Step            string         `db:"step_name"`
		Phase           string         `db:"phase"`
		Item            int64          `db:"item"`
		Error           string         `db:"error"`
		Input           sql.NullString `db:"input"`
		Output          sql.NullString `db:"output"`
		CreateTime      time.Time      `db:"create_time"`
	}
	if err := r.db.SelectContext(ctx, &rows, r.sql(`SELECT id, job_execution_id, step_execution_id, step_name, phase,
		item, error, input, output, create_time FROM {{p}}step_reject WHERE job_execution_id = ? ORDER BY id`), jobExecutionID); err != nil {
		return nil, r.wrap("list rejects", err)
	}
	out := make([]repository.StoredReject, 0, len(rows))
	raw := func(s sql.NullString) json.RawMessage {
		if !s.Valid {
			return nil
		}
		return json.RawMessage(s.String)
	}
	for _, row := range rows {
		out = append(out, repository.StoredReject{
			Reject: batch.Reject{Step: row.Step, Phase: row.Phase, Item: row.Item, Error: row.Error,
				Input: raw(row.Input), Output: raw(row.Output)},
			ID: row.ID, JobExecutionID: row.JobExecutionID, StepExecutionID: row.StepExecutionID, CreatedAt: row.CreateTime.UTC(),
		})
	}
	return out, nil
}
