package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/writer"
)

const jobName = "overdue"

// task is a row of the table tasks.
type task struct {
	ID    int64  `db:"id"`
	DueOn string `db:"due_on"` // 2006-01-02
	State string `db:"state"`
}

var parameters = []batch.ParamSpec{
	{Name: "day", Type: batch.ParamDate, Description: "tasks due before this day are overdue; default today (UTC)"},
	{Name: "chunk", Type: batch.ParamInt, Default: "500", NonIdentifying: true, Description: "tasks per transaction"},
}

func newJob(env launcher.Env) (batch.JobConfig, error) {
	if env.DB == nil {
		return batch.JobConfig{}, errors.New("overdue needs a SQL job repository (SQLite or PostgreSQL)")
	}
	day, ok := env.Parameters.Time("day")
	if !ok {
		day = time.Now().UTC()
	}
	chunk, _ := env.Parameters.Int("chunk")
	failAt, err := failAt()
	if err != nil {
		return batch.JobConfig{}, err
	}

	schema, err := batch.NewTaskletStep("schema", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
		func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
			return batch.Finished, createDemoTasks(ctx, env)
		})})
	if err != nil {
		return batch.JobConfig{}, err
	}

	// The step changes the rows it selects (they leave state 'open'): a
	// keyset reader resumes after the last committed id, where a count of
	// rows read would skip the wrong ones.
	open, err := reader.NewKeyset(reader.KeysetConfig[task]{
		DB:     env.DB,
		Select: "id, due_on, state",
		From:   "tasks",
		Where:  "state = 'open' AND due_on < ?",
		Args:   []any{day.Format(time.DateOnly)},
		Key:    []string{"id"},
	})
	if err != nil {
		return batch.JobConfig{}, err
	}
	markOverdue := batch.ProcessorFunc[task, task](func(_ context.Context, t task) (task, error) {
		if failAt > 0 && t.ID >= failAt {
			return t, fmt.Errorf("FAIL_AT=%d: failing on purpose at task %d", failAt, t.ID)
		}
		t.State = "overdue"
		return t, nil
	})
	save, err := writer.NewUpdate(writer.UpdateConfig[task]{
		DB:      env.DB,
		Table:   "tasks",
		Columns: []string{"id", "state"},
		Key:     []string{"id"},
		Values:  func(t task) []any { return []any{t.ID, t.State} },
	})
	if err != nil {
		return batch.JobConfig{}, err
	}
	mark, err := batch.NewChunkStep("mark", batch.ChunkConfig[task, task]{
		Reader: open, Processor: markOverdue, Writer: save, ChunkSize: int(chunk),
	})
	if err != nil {
		return batch.JobConfig{}, err
	}
	return batch.JobConfig{Steps: []batch.Step{schema, mark}}, nil
}

// demoTasks is how many tasks createDemoTasks makes: one due every 30
// minutes, from 30 days before today to 10 days after.
const demoTasks = 40 * 48

// createDemoTasks creates the table tasks, with demo rows when it is empty:
// in a real deployment the table is the application's.
func createDemoTasks(ctx context.Context, env launcher.Env) error {
	tx, err := batch.JoinTxx(ctx, env.DB)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS tasks (
		id     BIGINT PRIMARY KEY,
		title  TEXT NOT NULL,
		due_on TEXT NOT NULL,
		state  TEXT NOT NULL
	)`); err != nil {
		return err
	}
	var n int
	if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM tasks`); err != nil || n > 0 {
		return err
	}
	start := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -30)
	insert := tx.Rebind(`INSERT INTO tasks (id, title, due_on, state) VALUES (?, ?, ?, ?)`)
	for i := 1; i <= demoTasks; i++ {
		state := "open"
		if i%7 == 0 {
			state = "done"
		}
		due := start.Add(time.Duration(i) * 30 * time.Minute)
		if _, err := tx.ExecContext(ctx, insert, i, "task "+strconv.Itoa(i), due.Format(time.DateOnly), state); err != nil {
			return err
		}
	}
	return nil
}

// failAt reads FAIL_AT: the job fails on purpose at the first task whose id
// is that or more.
func failAt() (int64, error) {
	s := os.Getenv("FAIL_AT")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("FAIL_AT=%q: want a task id from 1", s)
	}
	return n, nil
}
