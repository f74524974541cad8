package sqlrepo

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

var _ repository.ScheduleStore = (*Repository)(nil)

// outerTx is the transaction FireSchedule runs its launch in: the
// repository's own methods called with a context carrying it (its
// CreateJobExecution) join it instead of beginning one.
type outerTx struct {
	r  *Repository
	tx *sqlx.Tx
}

type outerTxKey struct{}

// reader returns what a read goes through: FireSchedule's transaction
// when ctx carries it (what its launch wrote is not committed yet), else
// the pool.
func (r *Repository) reader(ctx context.Context) sqlx.QueryerContext {
	if outer, ok := ctx.Value(outerTxKey{}).(*outerTx); ok && outer.r == r {
		return outer.tx
	}
	return r.db
}

type scheduleRow struct {
	Name       string        `db:"name"`
	JobName    string        `db:"job_name"`
	Spec       string        `db:"spec"`
	Seconds    bool          `db:"seconds"`
	TimeZone   string        `db:"time_zone"`
	Parameters string        `db:"parameters"`
	Misfire    string        `db:"misfire"`
	Overlap    string        `db:"overlap"`
	Paused     bool          `db:"paused"`
	NextFire   time.Time     `db:"next_fire_at"`
	LastFire   sql.NullTime  `db:"last_fire_at"`
	LastExec   sql.NullInt64 `db:"last_execution_id"`
	UpdatedAt  time.Time     `db:"updated_at"`
}

const scheduleCols = `name, job_name, spec, seconds, time_zone, parameters, misfire, overlap, paused,
	next_fire_at, last_fire_at, last_execution_id, updated_at`

func (row scheduleRow) schedule() (repository.Schedule, error) {
	s := repository.Schedule{Name: row.Name, JobName: row.JobName, Spec: row.Spec, Seconds: row.Seconds,
		TimeZone: row.TimeZone, Misfire: row.Misfire, Overlap: row.Overlap, Paused: row.Paused,
		NextFire: row.NextFire.UTC(), LastFire: row.LastFire.Time.UTC(), LastExecutionID: row.LastExec.Int64,
		UpdatedAt: row.UpdatedAt.UTC()}
	if err := json.Unmarshal([]byte(row.Parameters), &s.Parameters); err != nil {
		return s, fmt.Errorf("schedule %s: parameters: %w", row.Name, err)
	}
	return s, nil
}

// SyncSchedule implements repository.ScheduleStore.
func (r *Repository) SyncSchedule(ctx context.Context, s repository.Schedule, first func(now time.Time) time.Time) error {
	params, err := json.Marshal(s.Parameters)
	if err != nil {
		return r.wrap("sync schedule", err)
	}
	err = r.inTx(ctx, func(tx *sqlx.Tx) error {
		now, err := r.now(ctx, tx)
		if err != nil {
			return err
		}
		// Replicas starting at once sync the same schedule: the first
		// inserts it, the others find it.
		res, err := tx.ExecContext(ctx, r.sql(`INSERT INTO {{p}}schedule (`+scheduleCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?) ON CONFLICT (name) DO NOTHING`),
			s.Name, s.JobName, s.Spec, s.Seconds, s.TimeZone, string(params), s.Misfire, s.Overlap, s.Paused,
			first(now).UTC(), now)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var row scheduleRow
		if err := tx.GetContext(ctx, &row, r.sql(`SELECT `+scheduleCols+` FROM {{p}}schedule WHERE name = ?`+r.lock()), s.Name); err != nil {
			return err
		}
		stored, err := row.schedule()
		if err != nil {
			return err
		}
		next := stored.NextFire
		if !stored.SameTimes(s) {
			next = first(now).UTC()
		}
		_, err = tx.ExecContext(ctx, r.sql(`UPDATE {{p}}schedule SET job_name = ?, spec = ?, seconds = ?, time_zone = ?,
			parameters = ?, misfire = ?, overlap = ?, next_fire_at = ?, updated_at = ? WHERE name = ?`),
			s.JobName, s.Spec, s.Seconds, s.TimeZone, string(params), s.Misfire, s.Overlap, next, now, s.Name)
		return err
	})
	return r.wrap("sync schedule "+s.Name, err)
}

// lock is the clause that locks the rows a SELECT reads, where the dialect
// locks rows.
func (r *Repository) lock() string { return " " + r.d.ForUpdate }

// Schedules implements repository.ScheduleStore.
func (r *Repository) Schedules(ctx context.Context) ([]repository.Schedule, error) {
	var rows []scheduleRow
	if err := r.db.SelectContext(ctx, &rows, r.sql(`SELECT `+scheduleCols+` FROM {{p}}schedule ORDER BY name`)); err != nil {
		return nil, r.wrap("list schedules", err)
	}
	out := make([]repository.Schedule, 0, len(rows))
	for _, row := range rows {
		s, err := row.schedule()
		if err != nil {
			return nil, r.wrap("list schedules", err)
		}
		out = append(out, s)
	}
	return out, nil
}

// SetSchedulePaused implements repository.ScheduleStore.
func (r *Repository) SetSchedulePaused(ctx context.Context, name string, paused bool) error {
	err := r.inTx(ctx, func(tx *sqlx.Tx) error {
		now, err := r.now(ctx, tx)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, r.sql(`UPDATE {{p}}schedule SET paused = ?, updated_at = ? WHERE name = ?`), paused, now, name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		return fmt.Errorf("schedule %q: %w", name, batch.ErrNotFound)
	})
	return r.wrap("pause schedule", err)
}

// FireSchedule implements repository.ScheduleStore: the compare-and-set and
// the launch in one transaction, the launch behind a savepoint.
func (r *Repository) FireSchedule(ctx context.Context, name string, due, next time.Time,
	launch func(ctx context.Context) (int64, error)) (bool, error) {
	due, next = due.UTC(), next.UTC()
	fired := false
	var launchErr error
	err := r.inTx(ctx, func(tx *sqlx.Tx) error {
		now, err := r.now(ctx, tx)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, r.sql(`UPDATE {{p}}schedule SET next_fire_at = ?, updated_at = ?
			WHERE name = ? AND next_fire_at = ?`), next, now, name, due)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return err // another replica moved it first
		}
		fired = true
		if _, err := tx.ExecContext(ctx, `SAVEPOINT chunkwise_fire`); err != nil {
			return err
		}
		id, err := launch(context.WithValue(ctx, outerTxKey{}, &outerTx{r: r, tx: tx}))
		if err != nil {
			launchErr = err
			_, err = tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT chunkwise_fire`)
			return err
		}
		if id == 0 {
			return nil // skipped: nothing launched
		}
		_, err = tx.ExecContext(ctx, r.sql(`UPDATE {{p}}schedule SET last_fire_at = ?, last_execution_id = ? WHERE name = ?`), due, id, name)
		return err
	})
	if err != nil {
		return false, r.wrap("fire schedule "+name, err)
	}
	return fired, launchErr
}

// ScheduleNow implements repository.ScheduleStore.
func (r *Repository) ScheduleNow(ctx context.Context) (time.Time, error) {
	now, err := r.now(ctx, r.db)
	return now, r.wrap("clock", err)
}
