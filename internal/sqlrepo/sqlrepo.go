// Package sqlrepo is the JobRepository shared by the SQL stores. The
// differences between PostgreSQL and SQLite — row locks, transaction options,
// migrations — come in a Dialect; the queries are written once with '?'
// placeholders and rebound for the driver.
package sqlrepo

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

// Dialect is what differs between SQL databases.
type Dialect struct {
	// Name names the database in errors: "postgres", "sqlite".
	Name string
	// ForUpdate and ForShare are appended to a SELECT to lock the rows it
	// reads ("" where the transaction itself locks the database).
	ForUpdate, ForShare string
	// TxOptions are used for every read-write transaction.
	TxOptions *sql.TxOptions
	// IsUniqueViolation reports whether err is a unique-constraint
	// violation.
	IsUniqueViolation func(err error) bool
	// TableExists is a query with one '?' parameter, a table name, that
	// counts the tables of that name the connection sees.
	TableExists string
	// Now is a query for the database's current time, which heartbeats
	// are written and judged with; "" means this process's clock (a
	// database on the same machine).
	Now string
	// TxSettings, when not "", is a list of expressions that set
	// transaction-local settings (PostgreSQL's set_config(..., true)): it
	// is selected first in every transaction of the repository, and in a
	// chunk's transaction by the checkpoint statement before it takes a
	// lock, to bound how long it waits for locks and how long a session cut
	// off in the middle of it keeps them.
	TxSettings string
	// IsLockTimeout reports whether err is a lock wait that TxSettings'
	// bound ended; nil when there is none.
	IsLockTimeout func(err error) bool
	// LockTimeout is the bound TxSettings sets, for messages.
	LockTimeout time.Duration
	// CheckpointAlone says that a chunk's checkpoint may run as a statement
	// of its own, outside a transaction, when no writer joined the chunk's
	// transaction: the database runs one statement atomically, taking its
	// row locks within it (PostgreSQL). It saves the BEGIN and the COMMIT,
	// two of the three round trips. (SQLite's implicit transaction reads
	// before it takes the write lock, and can then fail where a
	// transaction begun IMMEDIATE waits.)
	CheckpointAlone bool
}

var prefixPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,40}$`)

// ValidatePrefix checks a table prefix: letters, digits and '_', starting with
// a letter or '_', so that it can be spliced into SQL safely.
func ValidatePrefix(p string) error {
	if !prefixPattern.MatchString(p) {
		return fmt.Errorf("invalid table prefix %q: want letters, digits and '_', starting with a letter or '_'", p)
	}
	return nil
}

// Repository is a repository.JobRepository on a SQL database.
type Repository struct {
	db *sqlx.DB
	// beat is the pool heartbeats use: db, or one of their own (see
	// SetHeartbeatDB).
	beat *sqlx.DB
	d    Dialect
	q    queries

	mu         sync.Mutex
	checkpoint *sqlx.Stmt // q.checkpoint, prepared once it is first needed

	sql func(string) string // fills in the table prefix and the dialect's clauses, and rebinds
}

// Capabilities are the interfaces a Repository implements beyond
// repository.JobRepository: the public SQL repositories embed them.
type Capabilities interface {
	repository.Pruner
	repository.RejectStore
	repository.StepLeaser
	repository.ScheduleStore
}

var _ Capabilities = (*Repository)(nil)

type queries struct {
	insertInstance, selectInstanceLock, selectInstance, lastExecution, markExecutionCrashed,
	markStepsCrashed, insertExecution, selectExecution, updateExecution, heartbeat,
	jobNames, insertStep, updateStep, selectSteps, lastStep, countSteps,
	fenceExecution, stepState, checkpoint string
}

// stepCols are the columns of a step execution s.
const stepCols = `s.id, s.job_execution_id, s.step_name, s.version, s.status, s.exit_code, s.exit_description,
	s.start_time, s.end_time, s.last_updated, s.read_count, s.write_count, s.filter_count, s.commit_count,
	s.rollback_count, s.read_skip_count, s.process_skip_count, s.write_skip_count,
	s.insert_count, s.update_count, s.unchanged_count, s.delete_count, s.context`

// execCols are the columns of a job execution, e joined with its instance i.
const execCols = `e.id, e.job_instance_id, i.job_name, e.version, e.status, e.exit_code, e.exit_description,
	e.create_time, e.start_time, e.end_time, e.last_updated, e.heartbeat, e.lease_ms, e.parameters, e.context`

// New returns a repository on db. Tables are named with prefix, which must
// pass ValidatePrefix. The schema must have been migrated.
func New(db *sqlx.DB, d Dialect, prefix string) (*Repository, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	r := &Repository{db: db, beat: db, d: d}
	q := func(s string) string {
		s = strings.ReplaceAll(s, "{{p}}", prefix)
		s = strings.ReplaceAll(s, "{{forUpdate}}", d.ForUpdate)
		s = strings.ReplaceAll(s, "{{forShare}}", d.ForShare)
		return db.Rebind(s)
	}
	r.sql = q
	const running = `('STARTING','STARTED','STOPPING')`
	r.q = queries{
		insertInstance: q(`INSERT INTO {{p}}job_instance (job_name, job_key, create_time) VALUES (?, ?, ?)
			ON CONFLICT (job_name, job_key) DO NOTHING`),
		selectInstanceLock: q(`SELECT id FROM {{p}}job_instance WHERE job_name = ? AND job_key = ?{{forUpdate}}`),
		selectInstance:     q(`SELECT id, job_name, job_key, create_time FROM {{p}}job_instance WHERE id = ?`),
		lastExecution: q(`SELECT id, status, heartbeat, lease_ms FROM {{p}}job_execution WHERE job_instance_id = ?
			ORDER BY id DESC LIMIT 1{{forUpdate}}`),
		markExecutionCrashed: q(`UPDATE {{p}}job_execution SET status = 'FAILED', exit_code = 'FAILED',
			exit_description = ?, end_time = ?, last_updated = ?, version = version + 1
			WHERE id = ? AND status IN ` + running),
		markStepsCrashed: q(`UPDATE {{p}}step_execution SET status = 'FAILED', exit_code = 'FAILED',
			exit_description = ?, end_time = ?, last_updated = ?, version = version + 1
			WHERE job_execution_id = ? AND status IN ` + running),
		insertExecution: q(`INSERT INTO {{p}}job_execution (job_instance_id, version, status, exit_code,
			exit_description, create_time, last_updated, heartbeat, lease_ms, parameters, context)
			VALUES (?, 0, 'STARTING', 'UNKNOWN', '', ?, ?, ?, ?, ?, '{}') RETURNING id`),
		selectExecution: q(`SELECT ` + execCols + ` FROM {{p}}job_execution e
			JOIN {{p}}job_instance i ON i.id = e.job_instance_id WHERE e.id = ?`),
		updateExecution: q(`UPDATE {{p}}job_execution SET status = ?, exit_code = ?, exit_description = ?,
			start_time = ?, end_time = ?, last_updated = ?, context = ?, version = version + 1
			WHERE id = ? AND version = ?`),
		heartbeat: q(`UPDATE {{p}}job_execution SET heartbeat = CASE WHEN status IN ` + running + ` THEN ? ELSE heartbeat END
			WHERE id = ? RETURNING status`),
		// A skip scan: one index probe per job, however many instances.
		jobNames: q(`WITH RECURSIVE names(n) AS (
			SELECT MIN(job_name) FROM {{p}}job_instance
			UNION ALL
			SELECT (SELECT MIN(job_name) FROM {{p}}job_instance WHERE job_name > n) FROM names WHERE n IS NOT NULL)
			SELECT n FROM names WHERE n IS NOT NULL ORDER BY n`),
		insertStep: q(`INSERT INTO {{p}}step_execution (job_execution_id, step_name, version, status, exit_code,
			exit_description, start_time, end_time, last_updated, read_count, write_count, filter_count,
			commit_count, rollback_count, read_skip_count, process_skip_count, write_skip_count,
			insert_count, update_count, unchanged_count, delete_count, context)
			VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		updateStep: q(`UPDATE {{p}}step_execution SET status = ?, exit_code = ?, exit_description = ?,
			start_time = ?, end_time = ?, last_updated = ?, read_count = ?, write_count = ?, filter_count = ?,
			commit_count = ?, rollback_count = ?, read_skip_count = ?, process_skip_count = ?,
			write_skip_count = ?, insert_count = ?, update_count = ?, unchanged_count = ?, delete_count = ?,
			context = ?, version = version + 1
			WHERE id = ? AND version = ? AND EXISTS (SELECT 1 FROM {{p}}job_execution e
				WHERE e.id = {{p}}step_execution.job_execution_id AND e.status IN ` + running + `)`),
		selectSteps: q(`SELECT ` + stepCols + ` FROM {{p}}step_execution s WHERE s.job_execution_id = ? ORDER BY s.id`),
		lastStep: q(`SELECT ` + stepCols + ` FROM {{p}}step_execution s
			JOIN {{p}}job_execution e ON e.id = s.job_execution_id
			WHERE e.job_instance_id = ? AND s.step_name = ? ORDER BY e.id DESC, s.id DESC LIMIT 1`),
		countSteps: q(`SELECT COUNT(*) FROM {{p}}step_execution s
			JOIN {{p}}job_execution e ON e.id = s.job_execution_id
			WHERE e.job_instance_id = ? AND s.step_name = ?`),
		fenceExecution: q(`SELECT status FROM {{p}}job_execution WHERE id = ?{{forShare}}`),
		checkpoint:     q(checkpointQuery(d)),
		stepState: q(`SELECT s.version, e.status FROM {{p}}step_execution s
			JOIN {{p}}job_execution e ON e.id = s.job_execution_id WHERE s.id = ?`),
	}
	return r, nil
}

var _ repository.JobRepository = (*Repository)(nil)

// DB returns the database the repository runs on. A writer built on the same
// *sqlx.DB joins the chunk transaction.
func (r *Repository) DB() *sqlx.DB { return r.db }

func (r *Repository) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, batch.ErrStaleVersion) || errors.Is(err, batch.ErrNotFound) || errors.Is(err, batch.ErrFenced) {
		return err
	}
	return fmt.Errorf("repository %s: %s: %w", r.d.Name, op, err)
}

// SetHeartbeatDB makes heartbeats use db, a pool of their own on the same
// database: a heartbeat then never takes a connection of the main pool,
// which the next chunk would reuse (with its page cache, on SQLite).
func (r *Repository) SetHeartbeatDB(db *sqlx.DB) { r.beat = db }

// inTx runs fn in a transaction on the main pool.
func (r *Repository) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	return r.inTxOn(ctx, r.db, fn)
}

// inTxOn is inTx on the pool db. Within FireSchedule's launch (ctx carries
// its transaction), fn runs in that transaction instead.
func (r *Repository) inTxOn(ctx context.Context, db *sqlx.DB, fn func(tx *sqlx.Tx) error) error {
	if outer, ok := ctx.Value(outerTxKey{}).(*outerTx); ok && outer.r == r && db == r.db {
		return fn(outer.tx)
	}
	tx, err := r.beginOn(ctx, db)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// beginOn begins a transaction on db and applies the dialect's settings in it. A
// connection the server dropped while it sat in the pool (a restart, an
// administrator's pg_terminate_backend) fails the first statement sent on
// it; nothing has happened yet then, so begin tries again, on another
// connection, twice at most. (lib/pq reports such a failure as a bad
// connection, which database/sql retries by itself; pgx reports the
// server's error.)
func (r *Repository) beginOn(ctx context.Context, db *sqlx.DB) (*sqlx.Tx, error) {
	for attempt := 1; ; attempt++ {
		tx, err := db.BeginTxx(ctx, r.d.TxOptions)
		if err == nil {
			if err = r.setup(ctx, tx); err != nil {
				_ = tx.Rollback()
			}
		}
		if err == nil {
			return tx, nil
		}
		if attempt == 3 || ctx.Err() != nil || !batch.Transient.Matches(err) {
			return nil, err
		}
	}
}

// setup applies the dialect's TxSettings in tx.
func (r *Repository) setup(ctx context.Context, tx *sqlx.Tx) error {
	if r.d.TxSettings == "" {
		return nil
	}
	_, err := tx.ExecContext(ctx, "SELECT "+r.d.TxSettings)
	return err
}

// now returns the repository's time: the database's clock where the dialect
// has a query for it.
func (r *Repository) now(ctx context.Context, q sqlx.QueryerContext) (time.Time, error) {
	if r.d.Now == "" {
		return time.Now().UTC(), nil
	}
	var t time.Time
	if err := sqlx.GetContext(ctx, q, &t, r.d.Now); err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// CreateJobExecution implements repository.JobRepository. The launch is
// judged at the database's time unless req.Now is set.
func (r *Repository) CreateJobExecution(ctx context.Context, req repository.LaunchRequest) (*batch.JobExecution, error) {
	var now time.Time
	params, err := json.Marshal(req.Parameters)
	if err != nil {
		return nil, r.wrap("encode parameters", err)
	}
	key := req.Parameters.Key()
	var (
		id      int64
		refusal error
	)
	err = r.inTx(ctx, func(tx *sqlx.Tx) error {
		now = req.Now.UTC()
		if req.Now.IsZero() {
			var err error
			if now, err = r.now(ctx, tx); err != nil {
				return err
			}
		}
		// The instance is created if new, then locked. A prune may delete
		// it in between (it had completed): it is then created again.
		var instanceID int64
		for attempt := 1; ; attempt++ {
			if _, err := tx.ExecContext(ctx, r.q.insertInstance, req.JobName, key, now); err != nil {
				return err
			}
			err := tx.GetContext(ctx, &instanceID, r.q.selectInstanceLock, req.JobName, key)
			if err == nil {
				break
			}
			if !errors.Is(err, sql.ErrNoRows) || attempt == 3 {
				return err
			}
		}
		var last struct {
			ID        int64     `db:"id"`
			Status    string    `db:"status"`
			Heartbeat time.Time `db:"heartbeat"`
			LeaseMS   int64     `db:"lease_ms"`
		}
		err := tx.GetContext(ctx, &last, r.q.lastExecution, instanceID)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if err == nil {
			rule := repository.ApplyLaunchRules(req, instanceID, repository.LastExecution{ID: last.ID,
				Status: batch.BatchStatus(last.Status), Heartbeat: last.Heartbeat, Lease: time.Duration(last.LeaseMS) * time.Millisecond}, now)
			if rule.Crashed != "" {
				if _, err := tx.ExecContext(ctx, r.q.markExecutionCrashed, rule.Crashed, now, now, last.ID); err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, r.q.markStepsCrashed, rule.Crashed, now, now, last.ID); err != nil {
					return err
				}
			}
			if rule.Refusal != nil {
				if rule.Crashed == "" {
					return rule.Refusal // nothing to keep: roll back
				}
				// Commit the crash mark, but make no execution.
				refusal = rule.Refusal
				return nil
			}
		}
		if err := tx.GetContext(ctx, &id, r.q.insertExecution, instanceID, now, now, now,
			req.LeaseOrDefault().Milliseconds(), string(params)); err != nil {
			if r.d.IsUniqueViolation != nil && r.d.IsUniqueViolation(err) {
				return &batch.LaunchError{JobName: req.JobName, InstanceID: instanceID, Err: batch.ErrJobRunning}
			}
			return err
		}
		return nil
	})
	if err != nil {
		var le *batch.LaunchError
		if errors.As(err, &le) {
			return nil, err
		}
		if r.d.IsUniqueViolation != nil && r.d.IsUniqueViolation(err) {
			return nil, &batch.LaunchError{JobName: req.JobName, Err: batch.ErrJobRunning}
		}
		if r.d.IsLockTimeout != nil && r.d.IsLockTimeout(err) {
			return nil, r.wrap("create job execution", fmt.Errorf("waited %s for the instance of job %s, locked by another session "+
				"(a process cut off from the database in the middle of a commit holds it until the database drops its session); try again: %w",
				r.d.LockTimeout, req.JobName, err))
		}
		return nil, r.wrap("create job execution", err)
	}
	if refusal != nil {
		return nil, refusal
	}
	return r.JobExecution(ctx, id)
}

type execRow struct {
	ID              int64        `db:"id"`
	InstanceID      int64        `db:"job_instance_id"`
	JobName         string       `db:"job_name"`
	Version         int64        `db:"version"`
	Status          string       `db:"status"`
	ExitCode        string       `db:"exit_code"`
	ExitDescription string       `db:"exit_description"`
	CreateTime      time.Time    `db:"create_time"`
	StartTime       sql.NullTime `db:"start_time"`
	EndTime         sql.NullTime `db:"end_time"`
	LastUpdated     time.Time    `db:"last_updated"`
	Heartbeat       time.Time    `db:"heartbeat"`
	LeaseMS         int64        `db:"lease_ms"`
	Parameters      string       `db:"parameters"`
	Context         string       `db:"context"`
}

func (row *execRow) execution() (*batch.JobExecution, error) {
	e := &batch.JobExecution{
		ID: row.ID, InstanceID: row.InstanceID, JobName: row.JobName, Version: row.Version,
		Status:     batch.BatchStatus(row.Status),
		ExitStatus: batch.ExitStatus{Code: row.ExitCode, Description: row.ExitDescription},
		CreatedAt:  row.CreateTime.UTC(), StartTime: nullTime(row.StartTime), EndTime: nullTime(row.EndTime),
		UpdatedAt: row.LastUpdated.UTC(), Heartbeat: row.Heartbeat.UTC(),
		Lease: time.Duration(row.LeaseMS) * time.Millisecond,
	}
	if err := json.Unmarshal([]byte(row.Parameters), &e.Parameters); err != nil {
		return nil, fmt.Errorf("execution %d: parameters: %w", row.ID, err)
	}
	var err error
	if e.Context, err = repository.UnmarshalContext([]byte(row.Context)); err != nil {
		return nil, fmt.Errorf("execution %d: %w", row.ID, err)
	}
	return e, nil
}

func nullTime(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

func toNull(t time.Time) sql.NullTime {
	if t.IsZero() {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: t.UTC(), Valid: true}
}

// JobExecution implements repository.JobRepository.
func (r *Repository) JobExecution(ctx context.Context, id int64) (*batch.JobExecution, error) {
	var row execRow
	if err := sqlx.GetContext(ctx, r.reader(ctx), &row, r.q.selectExecution, id); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("job execution %d: %w", id, batch.ErrNotFound)
		}
		return nil, r.wrap("get job execution", err)
	}
	e, err := row.execution()
	return e, r.wrap("get job execution", err)
}

// UpdateJobExecution implements repository.JobRepository.
func (r *Repository) UpdateJobExecution(ctx context.Context, e *batch.JobExecution) error {
	ec, err := repository.MarshalContext(e.Context)
	if err != nil {
		return r.wrap("update job execution", err)
	}
	now := time.Now().UTC()
	var n int64
	err = r.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, r.q.updateExecution, string(e.Status), e.ExitStatus.Code, e.ExitStatus.Description,
			toNull(e.StartTime), toNull(e.EndTime), now, string(ec), e.ID, e.Version)
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 || e.Status.Running() {
			return err
		}
		// An execution that ended leaves no step running under it (one
		// whose end could not be saved, or whose creation's answer was
		// lost).
		_, err = tx.ExecContext(ctx, r.q.markStepsCrashed, "the job execution ended "+string(e.Status)+" while the step was running",
			now, now, e.ID)
		return err
	})
	if err != nil {
		return r.wrap("update job execution", err)
	}
	if n == 0 {
		if _, err := r.JobExecution(ctx, e.ID); err != nil {
			return err
		}
		return fmt.Errorf("job execution %d version %d: %w", e.ID, e.Version, batch.ErrStaleVersion)
	}
	e.Version++
	e.UpdatedAt = now
	return nil
}

// Heartbeat implements repository.JobRepository.
func (r *Repository) Heartbeat(ctx context.Context, id int64) (batch.BatchStatus, error) {
	var status string
	err := r.inTxOn(ctx, r.beat, func(tx *sqlx.Tx) error {
		now, err := r.now(ctx, tx)
		if err != nil {
			return err
		}
		return tx.GetContext(ctx, &status, r.q.heartbeat, now, id)
	})
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("job execution %d: %w", id, batch.ErrNotFound)
		}
		return "", r.wrap("heartbeat", err)
	}
	return batch.BatchStatus(status), nil
}

// JobExecutions implements repository.JobRepository.
func (r *Repository) JobExecutions(ctx context.Context, q batch.ExecutionQuery) ([]*batch.JobExecution, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 1 << 30
	}
	// Only the filters asked for are in the statement: each combination
	// is planned for what it selects (by job through the instances' index,
	// the newest first through the primary key), however long the history.
	var (
		where []string
		args  []any
	)
	if q.JobName != "" {
		where, args = append(where, "i.job_name = ?"), append(args, q.JobName)
	}
	if q.InstanceID != 0 {
		where, args = append(where, "e.job_instance_id = ?"), append(args, q.InstanceID)
	}
	if q.Running {
		where = append(where, "e.status IN ('STARTING','STARTED','STOPPING')")
	}
	if q.Status != "" {
		where, args = append(where, "e.status = ?"), append(args, string(q.Status))
	}
	if !q.Since.IsZero() {
		where, args = append(where, "e.create_time >= ?"), append(args, q.Since.UTC())
	}
	if !q.Until.IsZero() {
		where, args = append(where, "e.create_time < ?"), append(args, q.Until.UTC())
	}
	if q.BeforeID != 0 {
		where, args = append(where, "e.id < ?"), append(args, q.BeforeID)
	}
	query := `SELECT ` + execCols + ` FROM {{p}}job_execution e JOIN {{p}}job_instance i ON i.id = e.job_instance_id`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	var rows []execRow
	if err := r.db.SelectContext(ctx, &rows, r.sql(query+` ORDER BY e.id DESC LIMIT ?`), append(args, limit)...); err != nil {
		return nil, r.wrap("list job executions", err)
	}
	out := make([]*batch.JobExecution, 0, len(rows))
	for i := range rows {
		e, err := rows[i].execution()
		if err != nil {
			return nil, r.wrap("list job executions", err)
		}
		out = append(out, e)
	}
	return out, nil
}

// JobInstance implements repository.JobRepository.
func (r *Repository) JobInstance(ctx context.Context, id int64) (*batch.JobInstance, error) {
	var row struct {
		ID         int64     `db:"id"`
		JobName    string    `db:"job_name"`
		JobKey     string    `db:"job_key"`
		CreateTime time.Time `db:"create_time"`
	}
	if err := r.db.GetContext(ctx, &row, r.q.selectInstance, id); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("job instance %d: %w", id, batch.ErrNotFound)
		}
		return nil, r.wrap("get job instance", err)
	}
	return &batch.JobInstance{ID: row.ID, JobName: row.JobName, JobKey: row.JobKey, CreatedAt: row.CreateTime.UTC()}, nil
}

// JobNames implements repository.JobRepository.
func (r *Repository) JobNames(ctx context.Context) ([]string, error) {
	names := []string{}
	if err := r.db.SelectContext(ctx, &names, r.q.jobNames); err != nil {
		return nil, r.wrap("list job names", err)
	}
	return names, nil
}

type stepRow struct {
	ID               int64        `db:"id"`
	JobExecutionID   int64        `db:"job_execution_id"`
	StepName         string       `db:"step_name"`
	Version          int64        `db:"version"`
	Status           string       `db:"status"`
	ExitCode         string       `db:"exit_code"`
	ExitDescription  string       `db:"exit_description"`
	StartTime        sql.NullTime `db:"start_time"`
	EndTime          sql.NullTime `db:"end_time"`
	LastUpdated      time.Time    `db:"last_updated"`
	ReadCount        int64        `db:"read_count"`
	WriteCount       int64        `db:"write_count"`
	FilterCount      int64        `db:"filter_count"`
	CommitCount      int64        `db:"commit_count"`
	RollbackCount    int64        `db:"rollback_count"`
	ReadSkipCount    int64        `db:"read_skip_count"`
	ProcessSkipCount int64        `db:"process_skip_count"`
	WriteSkipCount   int64        `db:"write_skip_count"`
	InsertCount      int64        `db:"insert_count"`
	UpdateCount      int64        `db:"update_count"`
	UnchangedCount   int64        `db:"unchanged_count"`
	DeleteCount      int64        `db:"delete_count"`
	Context          string       `db:"context"`
}

func (row *stepRow) step() (*batch.StepExecution, error) {
	s := &batch.StepExecution{
		ID: row.ID, JobExecutionID: row.JobExecutionID, StepName: row.StepName, Version: row.Version,
		Status:     batch.BatchStatus(row.Status),
		ExitStatus: batch.ExitStatus{Code: row.ExitCode, Description: row.ExitDescription},
		StartTime:  nullTime(row.StartTime), EndTime: nullTime(row.EndTime), UpdatedAt: row.LastUpdated.UTC(),
		ReadCount: row.ReadCount, WriteCount: row.WriteCount, FilterCount: row.FilterCount,
		CommitCount: row.CommitCount, RollbackCount: row.RollbackCount, ReadSkipCount: row.ReadSkipCount,
		ProcessSkipCount: row.ProcessSkipCount, WriteSkipCount: row.WriteSkipCount,
		Changes: batch.Changes{Inserted: row.InsertCount, Updated: row.UpdateCount,
			Unchanged: row.UnchangedCount, Deleted: row.DeleteCount},
	}
	var err error
	if s.Context, err = repository.UnmarshalContext([]byte(row.Context)); err != nil {
		return nil, fmt.Errorf("step execution %d: %w", row.ID, err)
	}
	return s, nil
}

// CreateStepExecution implements repository.JobRepository.
func (r *Repository) CreateStepExecution(ctx context.Context, s *batch.StepExecution) error {
	ec, err := repository.MarshalContext(s.Context)
	if err != nil {
		return r.wrap("create step execution", err)
	}
	now := time.Now().UTC()
	var id int64
	err = r.inTx(ctx, func(tx *sqlx.Tx) error {
		// Only a running execution may start a step: one that was taken
		// over must not leave a step execution a restart would resume from.
		if err := r.fence(ctx, tx, s.JobExecutionID); err != nil {
			return err
		}
		return tx.GetContext(ctx, &id, r.q.insertStep, s.JobExecutionID, s.StepName, string(s.Status),
			s.ExitStatus.Code, s.ExitStatus.Description, toNull(s.StartTime), toNull(s.EndTime), now,
			s.ReadCount, s.WriteCount, s.FilterCount, s.CommitCount, s.RollbackCount, s.ReadSkipCount,
			s.ProcessSkipCount, s.WriteSkipCount, s.Changes.Inserted, s.Changes.Updated, s.Changes.Unchanged,
			s.Changes.Deleted, string(ec))
	})
	if err != nil {
		return r.wrap("create step execution", err)
	}
	s.ID, s.Version, s.UpdatedAt = id, 0, now
	if s.Context == nil {
		s.Context = batch.ExecutionContext{}
	}
	return nil
}

func (r *Repository) updateStep(ctx context.Context, ex sqlx.ExecerContext, s *batch.StepExecution) error {
	ec, err := repository.MarshalContext(s.Context)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	res, err := ex.ExecContext(ctx, r.q.updateStep, string(s.Status), s.ExitStatus.Code, s.ExitStatus.Description,
		toNull(s.StartTime), toNull(s.EndTime), now, s.ReadCount, s.WriteCount, s.FilterCount, s.CommitCount,
		s.RollbackCount, s.ReadSkipCount, s.ProcessSkipCount, s.WriteSkipCount, s.Changes.Inserted,
		s.Changes.Updated, s.Changes.Unchanged, s.Changes.Deleted, string(ec), s.ID, s.Version)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return r.whyNotUpdated(ctx, ex, s, false)
	}
	s.UpdatedAt = now
	return nil
}

// whyNotUpdated explains why a step execution update changed no row.
// A checkpoint asks fencedFirst: a fenced execution is reported as such
// even when its step's version changed too.
func (r *Repository) whyNotUpdated(ctx context.Context, ex sqlx.ExecerContext, s *batch.StepExecution, fencedFirst bool) error {
	q, ok := ex.(sqlx.QueryerContext)
	if !ok {
		return fmt.Errorf("step execution %d version %d: %w", s.ID, s.Version, batch.ErrStaleVersion)
	}
	var row struct {
		Version int64  `db:"version"`
		Status  string `db:"status"`
	}
	err := sqlx.GetContext(ctx, q, &row, r.q.stepState, s.ID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("step execution %d: %w", s.ID, batch.ErrNotFound)
	case err != nil:
		return err
	case fencedFirst && !batch.BatchStatus(row.Status).Running():
		// A takeover also ends the steps it finds running: for a
		// checkpoint, that the execution ended is what matters.
		return fmt.Errorf("step execution %d: job execution is %s: %w", s.ID, row.Status, batch.ErrFenced)
	case row.Version != s.Version:
		return fmt.Errorf("step execution %d version %d: %w", s.ID, s.Version, batch.ErrStaleVersion)
	}
	return fmt.Errorf("step execution %d: job execution is %s: %w", s.ID, row.Status, batch.ErrFenced)
}

// UpdateStepExecution implements repository.JobRepository.
func (r *Repository) UpdateStepExecution(ctx context.Context, s *batch.StepExecution) error {
	if err := r.inTx(ctx, func(tx *sqlx.Tx) error { return r.updateStep(ctx, tx, s) }); err != nil {
		return r.wrap("update step execution", err)
	}
	s.Version++
	return nil
}

// StepExecutions implements repository.JobRepository.
func (r *Repository) StepExecutions(ctx context.Context, jobExecutionID int64) ([]*batch.StepExecution, error) {
	var rows []stepRow
	if err := r.db.SelectContext(ctx, &rows, r.q.selectSteps, jobExecutionID); err != nil {
		return nil, r.wrap("list step executions", err)
	}
	out := make([]*batch.StepExecution, 0, len(rows))
	for i := range rows {
		s, err := rows[i].step()
		if err != nil {
			return nil, r.wrap("list step executions", err)
		}
		out = append(out, s)
	}
	return out, nil
}

// LastStepExecution implements repository.JobRepository.
func (r *Repository) LastStepExecution(ctx context.Context, instanceID int64, stepName string) (*batch.StepExecution, error) {
	var row stepRow
	if err := r.db.GetContext(ctx, &row, r.q.lastStep, instanceID, stepName); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("step %q of instance %d: %w", stepName, instanceID, batch.ErrNotFound)
		}
		return nil, r.wrap("last step execution", err)
	}
	s, err := row.step()
	return s, r.wrap("last step execution", err)
}

// StepExecutionCount implements repository.JobRepository.
func (r *Repository) StepExecutionCount(ctx context.Context, instanceID int64, stepName string) (int, error) {
	var n int
	if err := r.db.GetContext(ctx, &n, r.q.countSteps, instanceID, stepName); err != nil {
		return 0, r.wrap("count step executions", err)
	}
	return n, nil
}

// fenceStatus reads the status of a job execution under a shared lock and
// fails with ErrFenced when it is no longer running.
func (r *Repository) fenceStatus(ctx context.Context, tx *sqlx.Tx, jobExecutionID int64) (batch.BatchStatus, error) {
	var status string
	if err := tx.GetContext(ctx, &status, r.q.fenceExecution, jobExecutionID); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("job execution %d: %w", jobExecutionID, batch.ErrNotFound)
		}
		return "", err
	}
	if st := batch.BatchStatus(status); !st.Running() {
		return "", fmt.Errorf("job execution %d is %s: %w", jobExecutionID, st, batch.ErrFenced)
	}
	return batch.BatchStatus(status), nil
}

func (r *Repository) fence(ctx context.Context, tx *sqlx.Tx, jobExecutionID int64) error {
	_, err := r.fenceStatus(ctx, tx, jobExecutionID)
	return err
}

// checkpointSet is the SET list of the step execution columns a checkpoint
// saves, and checkpointArgs their values in order.
const checkpointSet = `status = ?, exit_code = ?, exit_description = ?,
	start_time = ?, end_time = ?, last_updated = ?, read_count = ?, write_count = ?, filter_count = ?,
	commit_count = ?, rollback_count = ?, read_skip_count = ?, process_skip_count = ?,
	write_skip_count = ?, insert_count = ?, update_count = ?, unchanged_count = ?, delete_count = ?,
	context = ?, version = version + 1`

func checkpointArgs(s *batch.StepExecution, now time.Time, ec []byte) []any {
	return []any{string(s.Status), s.ExitStatus.Code, s.ExitStatus.Description,
		toNull(s.StartTime), toNull(s.EndTime), now, s.ReadCount, s.WriteCount, s.FilterCount, s.CommitCount,
		s.RollbackCount, s.ReadSkipCount, s.ProcessSkipCount, s.WriteSkipCount, s.Changes.Inserted,
		s.Changes.Updated, s.Changes.Unchanged, s.Changes.Deleted, string(ec)}
}

// checkpointQuery is the one statement that saves a chunk's checkpoint:
// it applies the transaction's settings, fences — the step's job execution
// must still be running, and where the dialect locks rows, it is locked in
// share mode until the commit, so that a takeover waits for the chunk or
// the chunk for the takeover — updates the step execution at its version,
// and returns the job execution's status. It updates no row when the step
// is stale or fenced (whyNotUpdated tells which). Parameters: the job
// execution's id, then checkpointSet's, then the step's id and version.
func checkpointQuery(d Dialect) string {
	const running = `('STARTING','STARTED','STOPPING')`
	if d.ForShare == "" {
		// The transaction holds the database's write lock.
		return `WITH e AS (SELECT status FROM {{p}}job_execution WHERE id = ?)
			UPDATE {{p}}step_execution SET ` + checkpointSet + `
			WHERE id = ? AND version = ? AND (SELECT status FROM e) IN ` + running + `
			RETURNING (SELECT status FROM e)`
	}
	settings := ""
	if d.TxSettings != "" {
		// Materialized and asked for by the fence's condition, it is
		// evaluated before the fence waits for its lock.
		settings = `settings AS MATERIALIZED (SELECT ` + d.TxSettings + `), `
	}
	cond := ""
	if settings != "" {
		cond = ` AND EXISTS (SELECT 1 FROM settings)`
	}
	return `WITH ` + settings + `e AS MATERIALIZED (SELECT status FROM {{p}}job_execution
			WHERE id = ?` + cond + `{{forShare}})
		UPDATE {{p}}step_execution SET ` + checkpointSet + `
		WHERE id = ? AND version = ? AND (SELECT status FROM e) IN ` + running + `
		RETURNING (SELECT status FROM e)`
}

// checkpointStmt returns the checkpoint statement, prepared on the
// repository's database the first time (database/sql prepares it again on
// each connection it runs on, once), or nil when it could not be prepared:
// the statement is then sent as it is. It is called before the chunk's
// transaction begins, so that preparing it never waits for a connection
// that the transaction holds.
func (r *Repository) checkpointStmt(ctx context.Context) *sqlx.Stmt {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.checkpoint == nil {
		st, err := r.db.PreparexContext(ctx, r.q.checkpoint)
		if err != nil {
			return nil // tried again at the next chunk
		}
		r.checkpoint = st
	}
	return r.checkpoint
}

// CommitChunk implements repository.JobRepository. write gets a context
// carrying a chunk transaction on the repository's database; the
// checkpoint is then one statement in it (checkpointQuery). When no writer
// joined the transaction and the dialect allows it, the checkpoint is sent
// alone, without a transaction around it: one round trip per chunk.
func (r *Repository) CommitChunk(ctx context.Context, s *batch.StepExecution, write func(ctx context.Context) error) (batch.BatchStatus, error) {
	st := r.checkpointStmt(ctx)
	wctx, ct := repository.BeginChunk(ctx, r.db, r.d.TxOptions)
	defer func() { _ = ct.Rollback() }()
	if err := write(wctx); err != nil {
		return "", err
	}
	ec, err := repository.MarshalContext(s.Context)
	if err != nil {
		return "", r.wrap("commit chunk", err)
	}
	var q interface {
		sqlx.QueryerContext
		sqlx.ExecerContext
	}
	alone := r.d.CheckpointAlone && !ct.Began()
	if alone {
		q = r.db
	} else {
		tx, err := ct.Tx()
		if err != nil {
			return "", r.wrap("commit chunk", err)
		}
		q = tx
		if st != nil {
			st = tx.StmtxContext(ctx, st)
		}
	}
	now := time.Now().UTC()
	args := append(append([]any{s.JobExecutionID}, checkpointArgs(s, now, ec)...), s.ID, s.Version)
	var row *sqlx.Row
	if st != nil {
		row = st.QueryRowxContext(ctx, args...)
	} else {
		row = q.QueryRowxContext(ctx, r.q.checkpoint, args...)
	}
	var status string
	err = row.Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		err = r.whyNotUpdated(ctx, q, s, true)
	}
	if err != nil {
		return "", r.wrap("commit chunk", err)
	}
	if !alone {
		if err := ct.Commit(); err != nil {
			return "", r.wrap("commit chunk", err)
		}
	}
	s.Version++
	s.UpdatedAt = now
	return batch.BatchStatus(status), nil
}
