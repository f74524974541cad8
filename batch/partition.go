package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Partition is one part of a partitioned step's work: a name, unique within
// the step, and what the partition's step is built from — a key range, a
// file — in an ExecutionContext.
type Partition struct {
	Name    string           `json:"name"`
	Context ExecutionContext `json:"context"`
}

// Partitioner splits the work of a partitioned step into partitions.
type Partitioner interface {
	Partitions(ctx context.Context) ([]Partition, error)
}

// PartitionerFunc adapts a function to a [Partitioner].
type PartitionerFunc func(ctx context.Context) ([]Partition, error)

// Partitions calls f.
func (f PartitionerFunc) Partitions(ctx context.Context) ([]Partition, error) { return f(ctx) }

// PartitionConfig configures a partitioned step.
type PartitionConfig struct {
	// Partitioner splits the work. It is asked once per step, on the first
	// run: its partitions are stored with the step before any runs, and a
	// restart reuses them, even if the data changed since. A partitioner
	// that failed before they were stored is asked again. Required.
	Partitioner Partitioner
	// Step builds the step that runs one partition, under the name given
	// ("load:partition-3": the step's name, a colon, the partition's): a
	// chunk step whose reader reads the partition's part, typically. Each
	// partition's step is a step of its own — its own StepExecution,
	// counts and checkpoint, resumed on a restart — and uses a connection
	// of its own for its chunk transactions. Required.
	Step func(name string, p Partition) (Step, error)
	// Concurrency is how many partitions run at once. Default: all of them,
	// up to MaxConcurrency.
	Concurrency int
	// MaxConcurrency caps the default Concurrency. Default
	// DefaultMaxConcurrency.
	MaxConcurrency int
	// Listeners receive the partitioned step's own events (before and after
	// the step). Default none.
	Listeners []Listener
	// AllowStartIfComplete and StartLimit are as in ChunkConfig.
	AllowStartIfComplete bool
	StartLimit           int
}

// DefaultMaxConcurrency caps the default concurrency of a partitioned step.
const DefaultMaxConcurrency = 16

// partitionsKey holds a partitioned step's partitions in its context.
const partitionsKey = "batch.partitions"

// Partitions returns the partitions a partitioned step stored in its
// execution's context before running them, and false for another step (or
// a partitioned step whose partitioner has not answered yet). A partition's
// step is named after the step: the step's name, a colon, the partition's.
func (s *StepExecution) Partitions() ([]Partition, bool) {
	var parts []Partition
	ok, err := s.Context.Get(partitionsKey, &parts)
	return parts, ok && err == nil
}

// PartitionStep is a step that splits its work into partitions and runs
// each as a step of its own, several at a time. Build one with
// [NewPartitionStep].
//
// Its counts are the sum of those of the partitions that ran in the
// execution. A partition that fails fails the step, once the others have
// stopped at their next chunk boundary; a stop request stops every
// partition at its next chunk boundary and the step ends STOPPED. Either
// way the partitions that had not begun do not begin. A restart runs only
// the partitions that did not complete, each from its own checkpoint.
type PartitionStep struct {
	name string
	cfg  PartitionConfig
}

// NewPartitionStep returns a partitioned step, or an error wrapping
// ErrInvalidConfig.
func NewPartitionStep(name string, cfg PartitionConfig) (*PartitionStep, error) {
	switch {
	case name == "":
		return nil, configError("partitioned step: empty name")
	case cfg.Partitioner == nil:
		return nil, configError("step %s: no Partitioner", name)
	case cfg.Step == nil:
		return nil, configError("step %s: no Step func", name)
	case cfg.Concurrency < 0 || cfg.MaxConcurrency < 0 || cfg.StartLimit < 0:
		return nil, configError("step %s: negative Concurrency, MaxConcurrency or StartLimit", name)
	}
	if cfg.MaxConcurrency == 0 {
		cfg.MaxConcurrency = DefaultMaxConcurrency
	}
	if err := validateListeners("step "+name, stepListeners, cfg.Listeners); err != nil {
		return nil, err
	}
	return &PartitionStep{name: name, cfg: cfg}, nil
}

// Name returns the step's name.
func (s *PartitionStep) Name() string { return s.name }

// AllowStartIfComplete reports whether a restart runs the step again after
// it completed.
func (s *PartitionStep) AllowStartIfComplete() bool { return s.cfg.AllowStartIfComplete }

// StartLimit returns how many times the step may be started for one job
// instance; 0 means no limit.
func (s *PartitionStep) StartLimit() int { return s.cfg.StartLimit }

// Listeners returns the step's listeners.
func (s *PartitionStep) Listeners() []Listener { return s.cfg.Listeners }

// Partition returns the step that runs partition p: the one the
// configuration's Step func builds, named after the step and the partition
// ("load:partition-3").
func (s *PartitionStep) Partition(p Partition) (Step, error) {
	name := s.name + ":" + p.Name
	step, err := s.cfg.Step(name, p)
	if err == nil && (step == nil || step.Name() != name) {
		err = fmt.Errorf("the Step func must return a step named %q", name)
	}
	return step, err
}

// Execute takes the stored partitions, or asks the partitioner and stores
// them, then runs the partitions.
func (s *PartitionStep) Execute(ctx context.Context, sc StepContext) error {
	ctx = WithStepContext(ctx, sc)
	se := sc.StepExecution()
	var parts []Partition
	stored, err := se.Context.Get(partitionsKey, &parts)
	if err != nil {
		return &StepError{Step: s.name, Phase: "partition", Err: err}
	}
	if !stored {
		if parts, err = s.cfg.Partitioner.Partitions(ctx); err != nil {
			return &StepError{Step: s.name, Phase: "partition", Err: err}
		}
		seen := map[string]bool{}
		for _, p := range parts {
			if p.Name == "" || seen[p.Name] {
				return &StepError{Step: s.name, Phase: "partition", Err: fmt.Errorf("partition names must be unique and not empty: %q", p.Name)}
			}
			seen[p.Name] = true
		}
		if parts == nil {
			parts = []Partition{}
		}
		if err := se.Context.Put(partitionsKey, parts); err != nil {
			return &StepError{Step: s.name, Phase: "partition", Err: err}
		}
		if err := sc.Save(ctx); err != nil {
			return &StepError{Step: s.name, Phase: "partition", Err: err}
		}
		sc.Logger().Info("partitioned", "partitions", len(parts))
	}
	if len(parts) == 0 {
		return nil
	}
	workers := s.cfg.Concurrency
	if workers == 0 {
		workers = min(len(parts), s.cfg.MaxConcurrency)
	}
	var (
		g        errgroup.Group
		stop     = make(chan struct{})
		stopOnce sync.Once
		children = make([]*StepExecution, len(parts))
		errs     = make([]error, len(parts))
	)
	halt := func() { stopOnce.Do(func() { close(stop) }) }
	g.SetLimit(workers)
	for i, p := range parts {
		g.Go(func() error {
			select {
			case <-stop:
				return nil // a sibling failed: the partitions not begun wait for the restart
			default:
			}
			if sc.StopRequested() {
				return nil // and so on a stop request
			}
			step, err := s.Partition(p)
			if err == nil {
				children[i], err = sc.RunStep(ctx, step, stop)
			}
			if err != nil {
				errs[i] = fmt.Errorf("partition %s: %w", p.Name, err)
				halt() // the others stop at their next chunk boundary
			}
			return nil
		})
	}
	_ = g.Wait()
	stopped := false
	for _, c := range children {
		if c == nil {
			stopped = true // not begun
			continue
		}
		if c.JobExecutionID != se.JobExecutionID {
			continue // completed in an earlier execution
		}
		se.ReadCount += c.ReadCount
		se.WriteCount += c.WriteCount
		se.FilterCount += c.FilterCount
		se.CommitCount += c.CommitCount
		se.RollbackCount += c.RollbackCount
		se.ReadSkipCount += c.ReadSkipCount
		se.ProcessSkipCount += c.ProcessSkipCount
		se.WriteSkipCount += c.WriteSkipCount
		se.Changes.Add(c.Changes)
		stopped = stopped || c.Status == StatusStopped
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if stopped {
		return ErrStopped
	}
	return nil
}
