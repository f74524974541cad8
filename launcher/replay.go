package launcher

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

// Replay runs the rejected items of execution executionID again — the
// items its chunk steps skipped after a processor or writer error, as the
// job repository kept them — through the job's current processors and
// writers: for "we fixed the bug, now load what was rejected last night".
// It runs to its end as Run does.
//
// The replay is a job instance of its own: the replayed execution's
// parameters with batch.ReplayOfParam set to executionID, which links the
// two. So it completes once — a second Replay of the same execution is
// refused with a *batch.LaunchError wrapping batch.ErrJobComplete — and a
// failed or stopped replay is restarted (Restart, or Replay again) where it
// stopped. Items it skips again are its own rejects, numbered as in the
// replayed execution, and can be replayed in turn. Each step that skipped
// items runs again over its rejects only, in place of its reader (see
// batch.ReplayJob); the job's other steps and its listeners do not run.
//
// Read errors are rejects without an item and are not replayed. Replay
// fails with an error wrapping batch.ErrNothingToReplay when the execution
// has no reject to replay, and with one wrapping batch.ErrJobRunning while
// it is still running.
func (l *Launcher) Replay(ctx context.Context, executionID int64) (*batch.JobExecution, error) {
	name, params, err := l.replayLaunch(ctx, executionID)
	if err != nil {
		return nil, err
	}
	job, err := l.jobFor(ctx, name, params)
	if err != nil {
		return nil, err
	}
	return l.Run(ctx, job, params)
}

// rejectStore returns the repository that keeps the rejects l replays.
func (l *Launcher) rejectStore() (repository.RejectStore, error) {
	rs, ok := l.history.(repository.RejectStore)
	if !ok {
		return nil, fmt.Errorf("this job repository (%T) keeps no rejects", l.history)
	}
	return rs, nil
}

// replayLaunch checks that execution id has rejects to replay and returns
// the job and parameters of its replay.
func (l *Launcher) replayLaunch(ctx context.Context, id int64) (string, batch.JobParameters, error) {
	rs, err := l.rejectStore()
	if err != nil {
		return "", nil, fmt.Errorf("replay: %w", err)
	}
	e, err := l.history.JobExecution(ctx, id)
	if err != nil {
		return "", nil, fmt.Errorf("replay: %w", err)
	}
	if e.Status.Running() {
		return "", nil, fmt.Errorf("replay: execution %d of job %s is %s; replay it once it has ended: %w",
			id, e.JobName, e.Status, batch.ErrJobRunning)
	}
	list, err := rs.Rejects(ctx, id)
	if err != nil {
		return "", nil, fmt.Errorf("replay: %w", err)
	}
	replayable := 0
	for _, r := range list {
		if r.Replayable() {
			replayable++
		}
	}
	switch {
	case len(list) == 0:
		return "", nil, fmt.Errorf("execution %d of job %s has no rejects: %w", id, e.JobName, batch.ErrNothingToReplay)
	case replayable == 0:
		return "", nil, fmt.Errorf("execution %d of job %s has %d rejects, all read errors, which have no item to run again: %w",
			id, e.JobName, len(list), batch.ErrNothingToReplay)
	}
	params := maps.Clone(e.Parameters)
	params[batch.ReplayOfParam] = batch.IntParam(id)
	return e.JobName, params, nil
}

// jobFor builds the job a launch with params runs: the registered job, or
// for a replay's parameters the replay of the rejects of the execution they
// name.
func (l *Launcher) jobFor(ctx context.Context, name string, params batch.JobParameters) (*batch.Job, error) {
	of, replay := params.Int(batch.ReplayOfParam)
	if !replay {
		return l.Job(name, params)
	}
	base := maps.Clone(params)
	delete(base, batch.ReplayOfParam)
	job, err := l.Job(name, base)
	if err != nil {
		return nil, err
	}
	rs, err := l.rejectStore()
	if err != nil {
		return nil, fmt.Errorf("replay of execution %d: %w", of, err)
	}
	stored, err := rs.Rejects(ctx, of)
	if err != nil {
		return nil, fmt.Errorf("replay of execution %d: %w", of, err)
	}
	rejects := make([]batch.Reject, len(stored))
	for i, r := range stored {
		rejects[i] = r.Reject
	}
	job, err = batch.ReplayJob(job, rejects, func(step string) ([]batch.Partition, error) {
		return l.partitionsOf(ctx, of, step)
	})
	if err != nil {
		return nil, fmt.Errorf("replay of execution %d: %w", of, err)
	}
	return job, nil
}

// partitionsOf returns the partitions the partitioned step named step
// stored in execution id — or, when id is a replay, in the execution it
// replayed, where the partitions were made.
func (l *Launcher) partitionsOf(ctx context.Context, id int64, step string) ([]batch.Partition, error) {
	for seen := map[int64]bool{}; !seen[id]; {
		seen[id] = true
		steps, err := l.history.StepExecutions(ctx, id)
		if err != nil {
			return nil, err
		}
		for _, se := range steps {
			if se.StepName == step {
				if parts, ok := se.Partitions(); ok {
					return parts, nil
				}
			}
		}
		e, err := l.history.JobExecution(ctx, id)
		if err != nil {
			return nil, err
		}
		of, ok := e.Parameters.Int(batch.ReplayOfParam)
		if !ok {
			break
		}
		id = of
	}
	return nil, errors.New("no execution it replays stored them")
}
