package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/writer"
)

// TestManyJobsAtOnce runs 16 jobs of 4 chunk steps each at the same time on
// one repository — each launched twice at once, heartbeats every 20ms, an
// operator listing executions all along — and checks that every job
// completes with exact counts: no deadlock, no optimistic-locking failure
// reaches the user.
func TestManyJobsAtOnce(t *testing.T) {
	ctx := context.Background()
	repo := open(t)
	db := repo.DB()
	_, err := db.Exec(`CREATE TABLE rows (job INTEGER NOT NULL, step INTEGER NOT NULL, n INTEGER NOT NULL)`)
	require.NoError(t, err)
	const jobs, steps, items = 16, 4, 1000
	newJob := func(j int) *batch.Job {
		var ss []batch.Step
		for s := range steps {
			w, err := writer.NewSQL(writer.SQLConfig[int]{DB: db, Table: "rows", Columns: []string{"job", "step", "n"},
				Values: func(n int) []any { return []any{j, s, n} }})
			require.NoError(t, err)
			nums := make([]int, items)
			for i := range nums {
				nums[i] = i
			}
			step, err := batch.NewChunkStep(fmt.Sprintf("step%d", s), batch.ChunkConfig[int, int]{
				Reader: reader.FromSlice(nums), Writer: w, ChunkSize: 50,
			})
			require.NoError(t, err)
			ss = append(ss, step)
		}
		job, err := batch.NewJob(fmt.Sprintf("job%02d", j), batch.JobConfig{Steps: ss})
		require.NoError(t, err)
		return job
	}
	engine, err := launcher.New(launcher.Config{Repository: repo, HeartbeatInterval: 20 * time.Millisecond})
	require.NoError(t, err)

	stop := make(chan struct{})
	var operator sync.WaitGroup
	operator.Add(1)
	go func() {
		defer operator.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := repo.JobExecutions(ctx, batch.ExecutionQuery{Running: true}); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	var wg sync.WaitGroup
	results := make(chan error, jobs*2)
	for j := range jobs {
		for range 2 { // two launches of each instance at once: one runs
			wg.Add(1)
			go func() {
				defer wg.Done()
				job := newJob(j)
				final, err := engine.Run(ctx, job, nil)
				if errors.Is(err, batch.ErrJobRunning) || errors.Is(err, batch.ErrJobComplete) {
					return // the other launch has it
				}
				if err == nil && final.Status != batch.StatusCompleted {
					err = fmt.Errorf("job %d ended %s", j, final.Status)
				}
				results <- err
			}()
		}
	}
	wg.Wait()
	close(stop)
	operator.Wait()
	close(results)
	ran := 0
	for err := range results {
		require.NoError(t, err)
		ran++
	}
	require.Equal(t, jobs, ran, "one launch of each instance ran")

	var counts []struct {
		Job   int `db:"job"`
		Step  int `db:"step"`
		Count int `db:"count"`
	}
	require.NoError(t, db.Select(&counts, `SELECT job, step, COUNT(*) AS count FROM rows GROUP BY job, step ORDER BY job, step`))
	require.Len(t, counts, jobs*steps)
	for _, c := range counts {
		require.Equal(t, items, c.Count, "job %d step %d", c.Job, c.Step)
	}
	execs, err := repo.JobExecutions(ctx, batch.ExecutionQuery{})
	require.NoError(t, err)
	require.Len(t, execs, jobs)
	for _, e := range execs {
		require.Equal(t, batch.StatusCompleted, e.Status)
		ses, err := repo.StepExecutions(ctx, e.ID)
		require.NoError(t, err)
		require.Len(t, ses, steps)
		for _, se := range ses {
			require.Equal(t, int64(items), se.WriteCount)
			require.Equal(t, int64(items/50), se.CommitCount)
			require.Zero(t, se.RollbackCount, "no chunk had to be retried")
		}
	}
}
