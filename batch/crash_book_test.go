package batch_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
)

// bookRepo is a crashRepo that dies at its at-th bookkeeping write — the
// creation of a step execution, a step's save, a job execution's save — before
// or just after it lands.
type bookRepo struct {
	crashRepo
	k atomic.Int64
}

func (r *bookRepo) book(save func() error) error {
	if r.dead.Load() {
		return errDead
	}
	if r.k.Add(1) != r.at {
		return save()
	}
	if r.after {
		_ = save()
	}
	r.dead.Store(true)
	return errDead
}

func (r *bookRepo) CommitChunk(ctx context.Context, s *batch.StepExecution, write func(ctx context.Context) error) (batch.BatchStatus, error) {
	if r.dead.Load() {
		return "", errDead
	}
	return r.Repository.CommitChunk(ctx, s, write)
}

func (r *bookRepo) CreateStepExecution(ctx context.Context, s *batch.StepExecution) error {
	return r.book(func() error { return r.Repository.CreateStepExecution(ctx, s) })
}

func (r *bookRepo) UpdateStepExecution(ctx context.Context, s *batch.StepExecution) error {
	return r.book(func() error { return r.Repository.UpdateStepExecution(ctx, s) })
}

func (r *bookRepo) UpdateJobExecution(ctx context.Context, e *batch.JobExecution) error {
	return r.book(func() error { return r.Repository.UpdateJobExecution(ctx, e) })
}

// TestBookkeepingCrashSweep: a process that dies at any save of the
// bookkeeping — a step's creation, its start state, its end, the job's start,
// context and end — before or after it lands, is restarted to exactly the
// rows, counts and rejects of a clean run, and leaves no step running.
func TestBookkeepingCrashSweep(t *testing.T) {
	var cases []sweepCase
	for _, size := range []int{3, 10} {
		w := newCrashWorld(t, size)
		counter := &bookRepo{crashRepo: crashRepo{Repository: w.base}}
		w.run(t, counter)
		w.check(t)
		total := counter.k.Load()
		require.Greater(t, total, int64(4), "a run saves its bookkeeping several times")
		for _, after := range []bool{false, true} {
			for at := int64(1); at <= total; at++ {
				cases = append(cases, sweepCase{fmt.Sprintf("size=%d/after=%v/at=%d", size, after, at), func(t *testing.T) {
					w := newCrashWorld(t, size)
					w.run(t, &bookRepo{crashRepo: crashRepo{Repository: w.base, at: at, after: after}})
					w.check(t)
					var running int
					require.NoError(t, w.base.DB().Get(&running, `SELECT COUNT(*) FROM batch_step_execution
						WHERE status IN ('STARTING', 'STARTED', 'STOPPING')`))
					require.Zero(t, running, "no step left running")
				}})
			}
		}
	}
	runSweep(t, 6, cases)
}
