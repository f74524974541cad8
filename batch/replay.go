package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// ReplayOfParam is the identifying parameter of a replay's job instance:
// the id of the job execution whose rejects it runs again. A replay of one
// execution is one instance — it completes once, and a failed one is
// restarted where it stopped, like any other.
const ReplayOfParam = "replay.of"

// ErrNothingToReplay is the error of [ReplayJob] when none of the rejects
// can be run again.
var ErrNothingToReplay = errors.New("nothing to replay")

// Replayable reports whether the reject's item can be run again: it was
// read (a read error has no item) and it was kept (it encoded as JSON).
func (r Reject) Replayable() bool { return r.Phase != "read" && len(r.Input) > 0 }

// Replayer is a step that can run items it skipped through its processor
// and writer again. [ChunkStep] is one.
type Replayer interface {
	Step
	// Replay returns a step of the same name that reads the items of
	// rejects — their Input, decoded from JSON — in their order, in place of
	// its reader, and hands them to the step's processor and writer with
	// its listeners, chunk size and fault tolerance. Items keep the numbers
	// they had when they were skipped, in errors and in new rejects.
	Replay(rejects []Reject) (Step, error)
}

// ReplayJob returns the job that runs the replayable rejects of one
// execution of job again: one step per step that skipped items, in the
// order of their first reject, each its Replayer's Replay of its rejects.
// Rejects of a partition (a step named "step:partition") are replayed by
// the step the partitioned step builds for that partition, found through
// partitions, which returns the partitions the named partitioned step
// stored in the replayed execution (see [StepExecution.Partitions]).
//
// The job has job's name and none of its listeners, flow or other steps: it
// runs the rejected items, not the job's other work. It fails with
// ErrNothingToReplay when no reject is replayable, and names the step when
// a step of the rejects is no longer in job or cannot replay.
func ReplayJob(job *Job, rejects []Reject, partitions func(step string) ([]Partition, error)) (*Job, error) {
	var (
		order []string
		by    = map[string][]Reject{}
	)
	for _, r := range rejects {
		if !r.Replayable() {
			continue
		}
		if _, seen := by[r.Step]; !seen {
			order = append(order, r.Step)
		}
		by[r.Step] = append(by[r.Step], r)
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("job %s: %w", job.name, ErrNothingToReplay)
	}
	steps := make([]Step, 0, len(order))
	for _, name := range order {
		step, err := job.FindStep(name, partitions)
		if err != nil {
			return nil, fmt.Errorf("job %s: replay step %s: %w", job.name, name, err)
		}
		rp, ok := step.(Replayer)
		if !ok {
			return nil, fmt.Errorf("job %s: replay step %s: a %T cannot replay items", job.name, name, step)
		}
		if step, err = rp.Replay(by[name]); err != nil {
			return nil, fmt.Errorf("job %s: replay step %s: %w", job.name, name, err)
		}
		steps = append(steps, step)
	}
	return NewJob(job.name, JobConfig{Steps: steps})
}

// FindStep returns the step of the job named name: one of its steps, or the
// step of a partition of one of its partitioned steps ("load:p3"), built
// from the partition that partitions finds among those the partitioned
// step stored (see StepExecution.Partitions).
func (job *Job) FindStep(name string, partitions func(step string) ([]Partition, error)) (Step, error) {
	for _, s := range job.steps {
		if s.Name() == name {
			return s, nil
		}
	}
	for _, s := range job.steps {
		ps, ok := s.(*PartitionStep)
		part, isPart := strings.CutPrefix(name, s.Name()+":")
		if !ok || !isPart {
			continue
		}
		if partitions == nil {
			return nil, fmt.Errorf("the partitions of step %s are not known", s.Name())
		}
		parts, err := partitions(s.Name())
		if err != nil {
			return nil, fmt.Errorf("the partitions of step %s: %w", s.Name(), err)
		}
		for _, p := range parts {
			if p.Name == part {
				return ps.Partition(p)
			}
		}
		return nil, fmt.Errorf("step %s stored no partition %q", s.Name(), part)
	}
	return nil, fmt.Errorf("no step of that name in the job now")
}

// Replay implements Replayer: see there. The replay's reader decodes each
// reject's Input into a T (exported fields only, as encoding/json does); one
// that does not decode is a read error naming the item.
func (s *ChunkStep[T, U]) Replay(rejects []Reject) (Step, error) {
	for _, r := range rejects {
		if r.Step != s.name {
			return nil, fmt.Errorf("step %s: a reject of step %s", s.name, r.Step)
		}
		if !r.Replayable() {
			return nil, fmt.Errorf("step %s: item %d (a %s reject) has no item to replay", s.name, r.Item, r.Phase)
		}
	}
	rr := &replayReader[T]{rejects: rejects}
	r := *s
	r.cfg.Reader, r.cfg.ReaderStream, r.reader = rr, nil, rr
	r.cfg.AllowStartIfComplete, r.cfg.StartLimit = false, 0
	r.streams = []ItemStream{rr}
	for _, st := range s.streams {
		if st != s.reader && st != any(s.cfg.Reader) {
			r.streams = append(r.streams, st)
		}
	}
	r.numbers = make([]int64, len(rejects))
	for i, rj := range rejects {
		r.numbers[i] = rj.Item
	}
	return &r, nil
}

// number returns the number an item of the step goes by in errors, events
// and rejects: its place among the items read, or in a replay the number it
// had when it was skipped.
func (s *ChunkStep[T, U]) number(index int64) int64 {
	if s.numbers == nil || index < 1 || index > int64(len(s.numbers)) {
		return index
	}
	return s.numbers[index-1]
}

// replayKey holds the number of rejects a replay's reader has returned.
const replayKey = "batch.replay.read"

// replayReader reads the items of rejects, decoded from their JSON.
type replayReader[T any] struct {
	rejects []Reject
	next    int
}

func (r *replayReader[T]) Read(context.Context) (T, error) {
	var v T
	if r.next >= len(r.rejects) {
		return v, io.EOF
	}
	rj := r.rejects[r.next]
	r.next++
	if err := json.Unmarshal(rj.Input, &v); err != nil {
		return v, fmt.Errorf("replay of item %d: its JSON does not decode as a %v: %w", rj.Item, reflect.TypeFor[T](), err)
	}
	return v, nil
}

func (r *replayReader[T]) Open(_ context.Context, ec ExecutionContext) error {
	n, _ := ec.Int64(replayKey)
	if n < 0 || n > int64(len(r.rejects)) {
		return fmt.Errorf("replay: the checkpoint is at reject %d of %d", n, len(r.rejects))
	}
	r.next = int(n)
	return nil
}

func (r *replayReader[T]) Update(_ context.Context, ec ExecutionContext) error {
	return ec.Put(replayKey, int64(r.next))
}

func (r *replayReader[T]) Close(context.Context) error { return nil }

// Progress implements ProgressReader: rejects replayed, of all.
func (r *replayReader[T]) Progress() Progress {
	return Progress{Done: int64(r.next), Total: int64(len(r.rejects)), Unit: "items"}
}
