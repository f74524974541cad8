package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
)

const createPulse = `CREATE TABLE IF NOT EXISTS pulse (
	fire   TIMESTAMP NOT NULL,
	worker TEXT NOT NULL
)`

// fireTime returns the time the schedule fired the job for; a job run by
// hand (run) runs for now.
func fireTime(env launcher.Env) time.Time {
	if t, ok := env.Parameters.Time(batch.FireTimeParam); ok {
		return t.UTC()
	}
	return time.Now().UTC().Truncate(time.Second)
}

func needDB(env launcher.Env) error {
	if env.DB == nil {
		return errors.New("serve's jobs need a SQL job repository (SQLite or PostgreSQL): the table pulse lives in its database")
	}
	return nil
}

// newPulse builds pulse: one tasklet that records the fire time and this
// process, in its transaction.
func newPulse(env launcher.Env) (batch.JobConfig, error) {
	if err := needDB(env); err != nil {
		return batch.JobConfig{}, err
	}
	work, err := time.ParseDuration(envOr("PULSE_WORK", "0s"))
	if err != nil || work < 0 {
		return batch.JobConfig{}, fmt.Errorf("PULSE_WORK=%q: want a Go duration such as 2s", os.Getenv("PULSE_WORK"))
	}
	fire := fireTime(env)
	host, _ := os.Hostname()
	worker := fmt.Sprintf("%s/%d", host, os.Getpid())
	step, err := batch.NewTaskletStep("record", batch.TaskletConfig{
		Tasklet: batch.TaskletFunc(func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
			select {
			case <-time.After(work):
			case <-ctx.Done():
				return batch.Finished, ctx.Err()
			}
			tx, err := batch.JoinTxx(ctx, env.DB)
			if err != nil {
				return batch.Finished, err
			}
			if _, err := tx.ExecContext(ctx, createPulse); err != nil {
				return batch.Finished, err
			}
			_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO pulse (fire, worker) VALUES (?, ?)`), fire, worker)
			return batch.Finished, err
		}),
	})
	return batch.JobConfig{Steps: []batch.Step{step}}, err
}

// newCleanup builds cleanup: the pulses older than a week before the fire
// time deleted, 1,000 per transaction, each call of the tasklet a chunk.
func newCleanup(env launcher.Env) (batch.JobConfig, error) {
	if err := needDB(env); err != nil {
		return batch.JobConfig{}, err
	}
	before := fireTime(env).AddDate(0, 0, -7)
	step, err := batch.NewTaskletStep("delete-old", batch.TaskletConfig{
		Tasklet: batch.TaskletFunc(func(ctx context.Context, se *batch.StepExecution) (batch.RepeatStatus, error) {
			tx, err := batch.JoinTxx(ctx, env.DB)
			if err != nil {
				return batch.Finished, err
			}
			if _, err := tx.ExecContext(ctx, createPulse); err != nil {
				return batch.Finished, err
			}
			n, err := deleteOld(ctx, tx, before)
			if err != nil {
				return batch.Finished, err
			}
			se.WriteCount += n
			if n < 1000 {
				return batch.Finished, nil
			}
			return batch.Continuable, nil
		}),
	})
	return batch.JobConfig{Steps: []batch.Step{step}}, err
}

// deleteOld deletes at most 1,000 pulses fired before before.
func deleteOld(ctx context.Context, tx *sqlx.Tx, before time.Time) (int64, error) {
	res, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM pulse WHERE fire IN
		(SELECT fire FROM pulse WHERE fire < ? ORDER BY fire LIMIT 1000)`), before)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
