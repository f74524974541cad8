// Package lastrun finds a step's last completed run: what a progress
// report's ETA falls back on when the running step's reader does not know
// its total (see batch.StepExecution.Estimate). The command line's status
// and progress bars and the dashboard use it.
package lastrun

import (
	"context"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

// lookBack is how many completed executions of a job Of looks back over.
const lookBack = 20

// Finder finds steps' last completed runs in repo, and keeps what it found.
type Finder struct {
	repo  repository.JobRepository
	found map[string]*batch.StepExecution // by job and step; nil: none
}

// New returns a Finder over repo.
func New(repo repository.JobRepository) *Finder {
	return &Finder{repo: repo, found: map[string]*batch.StepExecution{}}
}

// Of returns the last completed execution of step, with items read, in a
// completed execution of job other than execID, looking back over the
// job's last 20 completed executions; nil if none (or if the repository
// could not be read).
func (f *Finder) Of(ctx context.Context, job string, execID int64, step string) *batch.StepExecution {
	key := job + "\x00" + step
	if s, ok := f.found[key]; ok {
		return s
	}
	f.found[key] = nil
	es, err := f.repo.JobExecutions(ctx, batch.ExecutionQuery{JobName: job, Status: batch.StatusCompleted, Limit: lookBack})
	if err != nil {
		return nil
	}
	for _, e := range es {
		if e.ID == execID {
			continue
		}
		steps, err := f.repo.StepExecutions(ctx, e.ID)
		if err != nil {
			return nil
		}
		for _, s := range steps {
			if s.StepName == step && s.Status == batch.StatusCompleted && s.ReadCount > 0 {
				f.found[key] = s
				return s
			}
		}
	}
	return nil
}
