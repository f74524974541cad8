package launcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/schedule"
	"github.com/chunkwise/chunkwise/repository"
)

// Schedule fires a job of the launcher's registry on a cron spec. Each
// fire is an instance of its own: the job runs with Parameters and
// batch.FireTimeParam set to the time it fired for.
type Schedule struct {
	// Name names the schedule in the job repository: unique there.
	Name string
	// Job is the registered job it fires.
	Job string
	// Spec is a cron spec: minute, hour, day of month, month, day of week
	// ("30 2 * * *"), or a descriptor (@daily, @hourly, @every 10m); with
	// Seconds, a leading seconds field.
	Spec    string
	Seconds bool
	// TimeZone is the IANA time zone the spec is read in. Default UTC. On
	// the night the clocks go forward, a fire time in the skipped hour
	// fires once, as late as they moved (02:30 at 03:30); on the night
	// they go back, a time in the repeated hour fires once, the first time.
	TimeZone string
	// Parameters are the job's identifying parameters besides the fire
	// time.
	Parameters batch.JobParameters
	// Misfire is what happens to fire times found more than the
	// scheduler's Grace late (all the schedulers were down): "skip" (the
	// default) runs none of them, "run-once" runs the latest of them once.
	// Never a backlog.
	Misfire string
	// Overlap is what happens when the schedule's last fire is still
	// running at the next: "skip" (the default) passes the new fire over,
	// "allow" runs both.
	Overlap string
	// Paused is the state of a schedule new to the repository; a stored
	// schedule keeps its own (pause and resume it with PauseSchedule).
	Paused bool
}

// The overlap policies.
const (
	OverlapSkip  = "skip"
	OverlapAllow = "allow"
)

// SchedulerConfig configures RunSchedules.
type SchedulerConfig struct {
	// Schedules are the schedules this scheduler fires, synced into the
	// job repository when it starts.
	Schedules []Schedule
	// Tick is how often the scheduler looks for due schedules. Default 1s.
	Tick time.Duration
	// Grace is how late a due time may be found and still fire as due;
	// later, it is a misfire. Default 1m.
	Grace time.Duration
}

// compiled is a schedule with its spec parsed.
type compiled struct {
	Schedule
	spec    *schedule.Spec
	misfire schedule.Misfire
}

func compileSchedule(s Schedule, reg *Registry) (compiled, error) {
	c := compiled{Schedule: s}
	switch {
	case s.Name == "":
		return c, errors.New("schedule: no name")
	case s.Job == "":
		return c, fmt.Errorf("schedule %s: no job", s.Name)
	case !reg.has(s.Job):
		return c, fmt.Errorf("schedule %s: job %q is not registered", s.Name, s.Job)
	case s.Overlap == "":
		c.Overlap = OverlapSkip
	case s.Overlap != OverlapSkip && s.Overlap != OverlapAllow:
		return c, fmt.Errorf("schedule %s: overlap policy %q: want skip or allow", s.Name, s.Overlap)
	}
	if _, ok := s.Parameters[batch.FireTimeParam]; ok {
		return c, fmt.Errorf("schedule %s: parameter %s is the fire time, set by the scheduler", s.Name, batch.FireTimeParam)
	}
	var err error
	if c.misfire, err = schedule.ParseMisfire(s.Misfire); err != nil {
		return c, fmt.Errorf("schedule %s: %w", s.Name, err)
	}
	c.Misfire = string(c.misfire)
	if c.spec, err = schedule.Parse(s.Spec, s.Seconds, s.TimeZone); err != nil {
		return c, fmt.Errorf("schedule %s: %w", s.Name, err)
	}
	return c, nil
}

// RunSchedules fires cfg's schedules until ctx ends. It first stores them
// in the job repository, which must be a repository.ScheduleStore, then
// looks every Tick for those due, by the repository's clock.
//
// Every replica of a program may run the same schedules on the same
// repository: each due time fires once. A replica fires it by a
// compare-and-set that moves the schedule's due time on, in the
// transaction that creates the fire's job execution (see
// repository.ScheduleStore.FireSchedule); the others find it moved. The
// next due time is computed from the due time, not from the moment it was
// found. The replica that fired runs the job; a replica that dies while it
// runs leaves an execution that counts as crashed once its lease expires,
// to restart as any other.
//
// When ctx ends, the executions this scheduler started are stopped at
// their next chunk boundary (they stay restartable), and RunSchedules
// returns once they ended.
func (l *Launcher) RunSchedules(ctx context.Context, cfg SchedulerConfig) error {
	store, ok := l.Repository().(repository.ScheduleStore)
	if !ok {
		return fmt.Errorf("schedules: %T does not keep schedules", l.Repository())
	}
	if cfg.Tick <= 0 {
		cfg.Tick = time.Second
	}
	if cfg.Grace <= 0 {
		cfg.Grace = time.Minute
	}
	var list []compiled
	seen := map[string]bool{}
	for _, s := range cfg.Schedules {
		c, err := compileSchedule(s, l.reg)
		if err != nil {
			return err
		}
		if seen[s.Name] {
			return fmt.Errorf("schedule %s: declared twice", s.Name)
		}
		seen[s.Name] = true
		list = append(list, c)
	}
	for _, c := range list {
		stored := repository.Schedule{Name: c.Name, JobName: c.Job, Spec: c.Spec, Seconds: c.Seconds, TimeZone: c.TimeZone,
			Parameters: c.Parameters, Misfire: c.Misfire, Overlap: c.Overlap, Paused: c.Paused}
		if err := store.SyncSchedule(ctx, stored, c.spec.Next); err != nil {
			return fmt.Errorf("schedules: %w", err)
		}
	}
	log := l.engine.logger.With("scheduler", true)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		running = map[int64]bool{}
	)
	defer func() {
		mu.Lock()
		for id := range running {
			if err := l.Stop(context.WithoutCancel(ctx), id); err != nil && !errors.Is(err, batch.ErrNotRunning) {
				log.Warn("schedules: stop", "execution", id, "error", err)
			}
		}
		mu.Unlock()
		wg.Wait()
	}()
	t := time.NewTicker(cfg.Tick)
	defer t.Stop()
	for {
		if err := l.fireDue(ctx, store, list, cfg.Grace, func(job *batch.Job, exec *batch.JobExecution) {
			mu.Lock()
			running[exec.ID] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(running, exec.ID)
					mu.Unlock()
				}()
				// Stopped through Stop when ctx ends, never interrupted
				// mid-chunk.
				_, _ = l.engine.run(context.WithoutCancel(ctx), job, exec)
			}()
		}); err != nil && ctx.Err() == nil {
			log.Warn("schedules: the job repository is out of reach; trying again", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// fireDue fires the schedules of list that are due, calling start with
// each execution it launched.
func (l *Launcher) fireDue(ctx context.Context, store repository.ScheduleStore, list []compiled, grace time.Duration,
	start func(*batch.Job, *batch.JobExecution)) error {
	now, err := store.ScheduleNow(ctx)
	if err != nil {
		return err
	}
	stored, err := store.Schedules(ctx)
	if err != nil {
		return err
	}
	byName := map[string]repository.Schedule{}
	for _, s := range stored {
		byName[s.Name] = s
	}
	for _, c := range list {
		s, ok := byName[c.Name]
		if !ok || s.Paused {
			continue
		}
		plan := c.spec.Plan(s.NextFire, now, grace, c.misfire)
		if !plan.Run && plan.Next.Equal(s.NextFire) {
			continue // not due
		}
		log := l.engine.logger.With("schedule", c.Name, "job", c.Job, "due", s.NextFire)
		if plan.Misfire {
			log.Warn("schedule: due time missed by more than the grace", "late", now.Sub(s.NextFire).Round(time.Second),
				"policy", c.Misfire, "fire", plan.Fire, "next", plan.Next)
		}
		if plan.Run && c.Overlap == OverlapSkip && l.stillRunning(ctx, s.LastExecutionID, now) {
			log.Info("schedule: the last fire still runs; this one is passed over", "execution", s.LastExecutionID)
			plan.Run = false
		}
		var (
			job  *batch.Job
			exec *batch.JobExecution
		)
		fired, err := store.FireSchedule(ctx, c.Name, s.NextFire, plan.Next, func(ctx context.Context) (int64, error) {
			if !plan.Run {
				return 0, nil
			}
			params := maps.Clone(c.Parameters)
			if params == nil {
				params = batch.JobParameters{}
			}
			params[batch.FireTimeParam] = batch.TimeParam(plan.Fire.UTC())
			var err error
			if job, err = l.Job(c.Job, params); err != nil {
				return 0, err
			}
			if exec, err = l.engine.launch(ctx, job, params); err != nil {
				return 0, err
			}
			return exec.ID, nil
		})
		switch {
		case err != nil && fired:
			log.Error("schedule: fired, but the job did not launch", "fire", plan.Fire, "error", err)
		case err != nil:
			return err
		case fired && exec != nil:
			log.Info("schedule: fired", "fire", plan.Fire, "execution", exec.ID, "next", plan.Next)
			start(job, exec)
		}
	}
	return nil
}

// stillRunning reports whether execution id runs: not ended, and its
// heartbeat within its lease at now (a crashed one does not count).
func (l *Launcher) stillRunning(ctx context.Context, id int64, now time.Time) bool {
	if id == 0 {
		return false
	}
	e, err := l.Repository().JobExecution(ctx, id)
	if err != nil {
		return false
	}
	lease := e.Lease
	if lease <= 0 {
		lease = l.engine.lease
	}
	return e.Status.Running() && now.Sub(e.Heartbeat) <= lease
}

// PauseSchedule pauses (or, with paused false, resumes) the stored schedule
// name: no replica fires it while paused. A resumed schedule's due times
// passed meanwhile are misfires.
func (l *Launcher) PauseSchedule(ctx context.Context, name string, paused bool) error {
	store, ok := l.Repository().(repository.ScheduleStore)
	if !ok {
		return fmt.Errorf("schedules: %T does not keep schedules", l.Repository())
	}
	return store.SetSchedulePaused(ctx, name, paused)
}

// Schedules returns the schedules stored in the job repository, with their
// next due times.
func (l *Launcher) Schedules(ctx context.Context) ([]repository.Schedule, error) {
	store, ok := l.Repository().(repository.ScheduleStore)
	if !ok {
		return nil, fmt.Errorf("schedules: %T does not keep schedules", l.Repository())
	}
	return store.Schedules(ctx)
}

// TriggerSchedule fires schedule name now, in the background as Start
// runs, besides its due times (which it leaves as they are): the job runs
// with the schedule's parameters and batch.FireTimeParam set to the
// repository's time, to the second. The stored schedule is fired, paused or
// not; a schedule not stored yet is looked up in the registry's. Wait waits
// for the execution's end.
func (l *Launcher) TriggerSchedule(ctx context.Context, name string) (*batch.JobExecution, error) {
	job, params, err := l.triggerParams(ctx, name)
	if err != nil {
		return nil, err
	}
	j, err := l.Job(job, params)
	if err != nil {
		return nil, err
	}
	return l.Start(ctx, j, params)
}
