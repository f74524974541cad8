package launcher

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

// ErrUnknownJob: no job of that name is registered.
var ErrUnknownJob = errors.New("launcher: unknown job")

// Env is what a job factory is given to build its job: the database the job
// repository runs on (so that writers join the chunk transaction), the
// repository itself, where to log, and the execution's parameters.
type Env struct {
	// DB is the job repository's database; nil when the repository has no
	// SQL database (the memory repository).
	DB *sqlx.DB
	// Repository is the job repository.
	Repository repository.JobRepository
	// Logger is the program's logger.
	Logger *slog.Logger
	// Stdout is where a job may print results for the person running it.
	Stdout io.Writer
	// Parameters are the parameters of the execution the job is built for
	// (on a restart, the restarted instance's), so that a factory can
	// configure readers and writers from them.
	Parameters batch.JobParameters
}

// JobFactory builds the configuration of a job: its steps and listeners. It
// is called for each launch, so a job gets fresh readers and writers every
// time. The job's name is the one it is registered under.
type JobFactory func(env Env) (batch.JobConfig, error)

// Registry holds the jobs a program can run, by name. The zero value is
// ready to use; it is safe for concurrent use.
type Registry struct {
	mu        sync.RWMutex
	jobs      map[string]registered
	schedules []Schedule
}

type registered struct {
	factory JobFactory
	params  batch.ParamSpecs
}

// Register adds a job factory under name, with the parameters the job
// takes. Parameters are checked (batch.ParamSpecs.Apply) before the factory
// is called, so that a factory sees them complete and of their declared
// types, and a launch with a missing, unknown or mistyped one fails with an
// error that names it; they become the job's JobConfig.Parameters unless
// the factory sets its own. A name registered twice, an empty name, a nil
// factory or invalid parameter declarations are errors.
func (r *Registry) Register(name string, f JobFactory, params ...batch.ParamSpec) error {
	if name == "" || f == nil {
		return fmt.Errorf("launcher: register %q: empty name or nil factory", name)
	}
	if err := batch.ParamSpecs(params).Validate(); err != nil {
		return fmt.Errorf("launcher: register %q: %w", name, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.jobs == nil {
		r.jobs = map[string]registered{}
	}
	if _, dup := r.jobs[name]; dup {
		return fmt.Errorf("launcher: job %q registered twice", name)
	}
	r.jobs[name] = registered{factory: f, params: params}
	return nil
}

// MustRegister is Register for program start-up: it panics on error.
func (r *Registry) MustRegister(name string, f JobFactory, params ...batch.ParamSpec) {
	if err := r.Register(name, f, params...); err != nil {
		panic(err)
	}
}

// Schedule declares a schedule of a registered job: the command line's
// serve fires it (see Launcher.RunSchedules), schedules lists it, and
// schedule pause, resume and trigger act on it. It fails if the schedule
// is malformed, its job not registered yet, or its name taken.
func (r *Registry) Schedule(s Schedule) error {
	if _, err := compileSchedule(s, r); err != nil {
		return fmt.Errorf("launcher: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.schedules {
		if o.Name == s.Name {
			return fmt.Errorf("launcher: schedule %s declared twice", s.Name)
		}
	}
	r.schedules = append(r.schedules, s)
	return nil
}

// MustSchedule is Schedule for program start-up: it panics on error.
func (r *Registry) MustSchedule(s Schedule) {
	if err := r.Schedule(s); err != nil {
		panic(err)
	}
}

// Schedules returns the declared schedules, in the order declared.
func (r *Registry) Schedules() []Schedule {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.schedules)
}

// Parameters returns the parameters the job registered under name takes.
func (r *Registry) Parameters(name string) batch.ParamSpecs {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append(batch.ParamSpecs(nil), r.jobs[name].params...)
}

// Names returns the registered job names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.jobs))
	for n := range r.jobs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// has reports whether a job is registered under name.
func (r *Registry) has(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.jobs[name]
	return ok
}

// Job builds the job registered under name.
func (r *Registry) Job(name string, env Env) (*batch.Job, error) {
	r.mu.RLock()
	reg, ok := r.jobs[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownJob, name)
	}
	params, err := reg.params.Apply(env.Parameters)
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", name, err)
	}
	env.Parameters = params
	cfg, err := reg.factory(env)
	if err != nil {
		return nil, fmt.Errorf("launcher: build job %q: %w", name, err)
	}
	if cfg.Parameters == nil {
		cfg.Parameters = reg.params
	}
	return batch.NewJob(name, cfg)
}
