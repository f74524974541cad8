package launcher_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/postgres"
)

// tickJob registers "tick": a tasklet that records the time it fired for
// and who ran it in the table ticks, in its chunk's transaction, after
// sleeping for the parameter sleep (a duration, default none).
func tickJob(reg *launcher.Registry, replica string) {
	reg.MustRegister("tick", func(env launcher.Env) (batch.JobConfig, error) {
		fire, ok := env.Parameters.Time(batch.FireTimeParam)
		if !ok {
			return batch.JobConfig{}, fmt.Errorf("no %s", batch.FireTimeParam)
		}
		sleep, _ := env.Parameters.String("sleep")
		d, _ := time.ParseDuration(sleep)
		step, err := batch.NewTaskletStep("record", batch.TaskletConfig{
			Tasklet: batch.TaskletFunc(func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
				time.Sleep(d)
				tx, err := batch.JoinTxx(ctx, env.DB)
				if err == nil {
					_, err = tx.ExecContext(ctx, `INSERT INTO ticks (fire, replica) VALUES ($1, $2)`, fire, replica)
				}
				return batch.Finished, err
			}),
		})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
}

// scheduleWorld is a PostgreSQL schema with the table ticks, and replicas
// of a program that runs tick on a schedule.
type scheduleWorld struct {
	t   *testing.T
	dsn string
	db  *sqlx.DB
}

func newScheduleWorld(t *testing.T) *scheduleWorld {
	db, dsn := pgtest.DB(t)
	_, err := db.Exec(`CREATE TABLE ticks (fire TIMESTAMPTZ NOT NULL, replica TEXT NOT NULL,
		at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())`)
	require.NoError(t, err)
	return &scheduleWorld{t: t, dsn: dsn, db: db}
}

// replica returns a launcher of its own on the schema, as a process would
// have.
func (w *scheduleWorld) replica(name string) *launcher.Launcher {
	repo, err := postgres.Open(context.Background(), w.dsn, postgres.Config{})
	require.NoError(w.t, err)
	w.t.Cleanup(func() { _ = repo.Close() })
	require.NoError(w.t, repo.Migrate(context.Background()))
	var reg launcher.Registry
	tickJob(&reg, name)
	l, err := launcher.New(launcher.Config{Registry: &reg, Repository: repo, Lease: 5 * time.Second})
	require.NoError(w.t, err)
	return l
}

// run runs the replicas' schedulers for d.
func (w *scheduleWorld) run(d time.Duration, cfg launcher.SchedulerConfig, replicas ...*launcher.Launcher) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for _, r := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			require.NoError(w.t, r.RunSchedules(ctx, cfg))
		}()
	}
	wg.Wait()
}

// ticks returns the fire times recorded, in order, and how many times each.
func (w *scheduleWorld) ticks() (fires []time.Time, counts map[time.Time]int, replicas map[string]int) {
	var rows []struct {
		Fire    time.Time `db:"fire"`
		Replica string    `db:"replica"`
	}
	require.NoError(w.t, w.db.Select(&rows, `SELECT fire, replica FROM ticks ORDER BY fire`))
	counts, replicas = map[time.Time]int{}, map[string]int{}
	for _, r := range rows {
		f := r.Fire.UTC()
		if counts[f] == 0 {
			fires = append(fires, f)
		}
		counts[f]++
		replicas[r.Replica]++
	}
	return fires, counts, replicas
}

// TestSchedulesFireOnceAcrossReplicas: three replicas run a schedule every
// second for 6 s: every second from the first fire to the last ran once,
// whichever replica fired it.
func TestSchedulesFireOnceAcrossReplicas(t *testing.T) {
	w := newScheduleWorld(t)
	cfg := launcher.SchedulerConfig{Tick: 100 * time.Millisecond,
		Schedules: []launcher.Schedule{{Name: "every-second", Job: "tick", Spec: "* * * * * *", Seconds: true}}}
	w.run(6*time.Second, cfg, w.replica("a"), w.replica("b"), w.replica("c"))

	fires, counts, replicas := w.ticks()
	require.GreaterOrEqual(t, len(fires), 4, "%v", fires)
	for i, f := range fires {
		require.Equal(t, 1, counts[f], "%s ran %d times", f, counts[f])
		require.Zero(t, f.Nanosecond())
		if i > 0 {
			require.Equal(t, time.Second, f.Sub(fires[i-1]), "no second missed between %s and %s", fires[i-1], f)
		}
	}
	total := 0
	for _, n := range replicas {
		total += n
	}
	require.Equal(t, len(fires), total)

	// Each fire is an instance of its own, identified by its fire time.
	l := w.replica("reader")
	execs, err := l.Repository().JobExecutions(context.Background(), batch.ExecutionQuery{JobName: "tick"})
	require.NoError(t, err)
	require.Len(t, execs, len(fires))
	for _, e := range execs {
		require.Equal(t, batch.StatusCompleted, e.Status)
		fire, ok := e.Parameters.Time(batch.FireTimeParam)
		require.True(t, ok)
		require.Equal(t, 1, counts[fire.UTC()])
	}
	list, err := l.Schedules(context.Background())
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.True(t, list[0].LastFire.Equal(fires[len(fires)-1]) || list[0].LastFire.After(fires[len(fires)-1]))
}

// TestSchedulesWithSkewedClocks: two replicas whose machines' clocks are 4 s
// ahead and 4 s behind run a schedule every second: every second still
// fires once, and none before its time by the database's clock — the
// scheduler reads the database's clock, never its machine's (which the
// replicas' executions show in their start times).
func TestSchedulesWithSkewedClocks(t *testing.T) {
	w := newScheduleWorld(t)
	ahead, behind := w.replica("ahead"), w.replica("behind")
	launcher.SetClock(ahead, func() time.Time { return time.Now().Add(4 * time.Second) })
	launcher.SetClock(behind, func() time.Time { return time.Now().Add(-4 * time.Second) })
	cfg := launcher.SchedulerConfig{Tick: 100 * time.Millisecond,
		Schedules: []launcher.Schedule{{Name: "every-second", Job: "tick", Spec: "* * * * * *", Seconds: true}}}
	w.run(6*time.Second, cfg, ahead, behind)

	fires, counts, replicas := w.ticks()
	require.GreaterOrEqual(t, len(fires), 4, "%v", fires)
	for i, f := range fires {
		require.Equal(t, 1, counts[f], "%s ran %d times", f, counts[f])
		if i > 0 {
			require.Equal(t, time.Second, f.Sub(fires[i-1]), "no second missed between %s and %s", fires[i-1], f)
		}
	}
	require.Equal(t, len(fires), replicas["ahead"]+replicas["behind"])
	var early int
	require.NoError(t, w.db.Get(&early, `SELECT COUNT(*) FROM ticks WHERE at < fire`))
	require.Zero(t, early, "a fire ran before its time by the database's clock")

	// The clocks were skewed: each execution's start, read from its
	// machine's clock, is 4 s off its creation, read from the database's.
	execs, err := ahead.Repository().JobExecutions(context.Background(), batch.ExecutionQuery{JobName: "tick"})
	require.NoError(t, err)
	// The end of the run may cut off the last fire's execution before its
	// tick.
	require.GreaterOrEqual(t, len(execs), len(fires))
	require.LessOrEqual(t, len(execs), len(fires)+1, "one execution per fire")
	for _, e := range execs {
		if e.StartTime.IsZero() {
			continue // the one cut off before it started
		}
		skew := e.StartTime.Sub(e.CreatedAt).Abs()
		require.InDelta(t, 4, skew.Seconds(), 0.5, "execution %d: created %s, started %s", e.ID, e.CreatedAt, e.StartTime)
	}
}

// TestScheduleMisfire: a schedule whose due time passed an hour ago (every
// scheduler was down): run-once runs the latest missed fire time once;
// skip runs none; both go on at the next fire time after now.
func TestScheduleMisfire(t *testing.T) {
	for _, policy := range []string{"run-once", "skip"} {
		t.Run(policy, func(t *testing.T) {
			w := newScheduleWorld(t)
			l := w.replica("a")
			cfg := launcher.SchedulerConfig{Tick: 50 * time.Millisecond, Schedules: []launcher.Schedule{
				{Name: "hourly", Job: "tick", Spec: "0 * * * *", Misfire: policy}}}
			w.run(200*time.Millisecond, cfg, l) // stored, due at the next full hour
			_, err := w.db.Exec(`UPDATE batch_schedule SET next_fire_at = date_trunc('hour', now()) - interval '3 hours'`)
			require.NoError(t, err)
			w.run(500*time.Millisecond, cfg, l)

			fires, _, _ := w.ticks()
			var now time.Time
			require.NoError(t, w.db.Get(&now, `SELECT now()`))
			latest := now.UTC().Truncate(time.Hour)
			if policy == "run-once" {
				require.Equal(t, []time.Time{latest}, fires, "once, for the latest missed hour")
			} else {
				require.Empty(t, fires)
			}
			list, err := l.Schedules(context.Background())
			require.NoError(t, err)
			require.True(t, list[0].NextFire.Equal(latest.Add(time.Hour)), "next %s", list[0].NextFire)
		})
	}
}

// TestSchedulePausedAndOverlap: a paused schedule does not fire; resumed,
// it does. A fire while the last still runs is passed over with overlap
// skip, and runs with allow.
func TestSchedulePausedAndOverlap(t *testing.T) {
	w := newScheduleWorld(t)
	l := w.replica("a")
	slow := batch.JobParameters{"sleep": batch.StringParam("2500ms")}
	cfg := launcher.SchedulerConfig{Tick: 50 * time.Millisecond, Schedules: []launcher.Schedule{
		{Name: "paused", Job: "tick", Spec: "* * * * * *", Seconds: true, Paused: true},
	}}
	w.run(2500*time.Millisecond, cfg, l)
	fires, _, _ := w.ticks()
	require.Empty(t, fires)
	require.NoError(t, l.PauseSchedule(context.Background(), "paused", false))
	require.ErrorIs(t, l.PauseSchedule(context.Background(), "nonesuch", true), batch.ErrNotFound)
	w.run(2500*time.Millisecond, cfg, l)
	fires, _, _ = w.ticks()
	require.NotEmpty(t, fires, "resumed")

	_, err := w.db.Exec(`DELETE FROM ticks`)
	require.NoError(t, err)
	cfg.Schedules = []launcher.Schedule{{Name: "slow", Job: "tick", Spec: "* * * * * *", Seconds: true, Parameters: slow}}
	w.run(3500*time.Millisecond, cfg, l)
	fires, _, _ = w.ticks()
	require.NotEmpty(t, fires)
	for i := 1; i < len(fires); i++ {
		require.GreaterOrEqual(t, fires[i].Sub(fires[i-1]), 3*time.Second, "the fires while one ran (2.5 s) were passed over: %v", fires)
	}

	_, err = w.db.Exec(`DELETE FROM ticks`)
	require.NoError(t, err)
	cfg.Schedules = []launcher.Schedule{{Name: "overlapping", Job: "tick", Spec: "* * * * * *", Seconds: true,
		Parameters: slow, Overlap: launcher.OverlapAllow}}
	w.run(3500*time.Millisecond, cfg, l)
	fires, _, _ = w.ticks()
	require.GreaterOrEqual(t, len(fires), 2, "fires ran side by side: %v", fires)
	for i := 1; i < len(fires); i++ {
		require.Equal(t, time.Second, fires[i].Sub(fires[i-1]), "%v", fires)
	}
}

// TestScheduleRefusals: schedules that cannot fire are refused before
// anything is stored.
func TestScheduleRefusals(t *testing.T) {
	w := newScheduleWorld(t)
	l := w.replica("a")
	for _, tc := range []struct {
		s   launcher.Schedule
		msg string
	}{
		{launcher.Schedule{Name: "x", Job: "nonesuch", Spec: "@daily"}, `schedule x: job "nonesuch" is not registered`},
		{launcher.Schedule{Name: "x", Job: "tick", Spec: "61 * * * *"}, `schedule x: cron spec "61 * * * *"`},
		{launcher.Schedule{Name: "x", Job: "tick", Spec: "@daily", TimeZone: "Nowhere/Town"}, `schedule x: time zone "Nowhere/Town"`},
		{launcher.Schedule{Name: "x", Job: "tick", Spec: "@daily", Misfire: "always"}, `schedule x: misfire policy "always"`},
		{launcher.Schedule{Name: "x", Job: "tick", Spec: "@daily", Overlap: "queue"}, `schedule x: overlap policy "queue"`},
		{launcher.Schedule{Name: "x", Job: "tick", Spec: "@daily",
			Parameters: batch.JobParameters{batch.FireTimeParam: batch.TimeParam(time.Now())}}, "is the fire time, set by the scheduler"},
	} {
		err := l.RunSchedules(context.Background(), launcher.SchedulerConfig{Schedules: []launcher.Schedule{tc.s}})
		require.ErrorContains(t, err, tc.msg)
	}
	err := l.RunSchedules(context.Background(), launcher.SchedulerConfig{Schedules: []launcher.Schedule{
		{Name: "x", Job: "tick", Spec: "@daily"}, {Name: "x", Job: "tick", Spec: "@hourly"}}})
	require.ErrorContains(t, err, "schedule x: declared twice")
	list, err := l.Repository().(repository.ScheduleStore).Schedules(context.Background())
	require.NoError(t, err)
	require.Empty(t, list)
}

// TestCommandSchedules: serve fires a program's schedule; schedules lists
// it with its last fire; schedule pause, resume and trigger act on it.
func TestCommandSchedules(t *testing.T) {
	w := newScheduleWorld(t)
	program := func(stdout, stderr *bytes.Buffer) launcher.Program {
		var reg launcher.Registry
		tickJob(&reg, "cli")
		reg.MustSchedule(launcher.Schedule{Name: "every-second", Job: "tick", Spec: "* * * * * *", Seconds: true,
			Parameters: batch.JobParameters{"sleep": batch.StringParam("0s")}})
		return launcher.Program{Registry: &reg, Stdout: stdout, Stderr: stderr}
	}
	cmd := func(ctx context.Context, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := program(&out, &errOut).Run(ctx, append([]string{"-db", w.dsn, "-log-level", "error"}, args...))
		return code, out.String(), errOut.String()
	}
	ctx := context.Background()

	code, _, errOut := cmd(ctx, "schedule", "pause")
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut, "schedule: want pause, resume or trigger, and a schedule's name")
	var none bytes.Buffer
	code = launcher.Program{Registry: &launcher.Registry{}, Stderr: &none}.Run(ctx, []string{"-db", w.dsn, "serve"})
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, none.String(), "serve: this program declares no schedules")
	require.Panics(t, func() {
		var reg launcher.Registry
		reg.MustSchedule(launcher.Schedule{Name: "x", Job: "tick", Spec: "@daily"})
	}, "a schedule of a job not registered")

	code, _, errOut = cmd(ctx, "migrate")
	require.Equal(t, 0, code, errOut)
	code, out, errOut := cmd(ctx, "schedules")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "no schedules")

	sctx, stop := context.WithTimeout(ctx, 2500*time.Millisecond)
	defer stop()
	code, _, errOut = cmd(sctx, "serve")
	require.Equal(t, 0, code, errOut)
	fires, counts, _ := w.ticks()
	require.NotEmpty(t, fires)
	for _, f := range fires {
		require.Equal(t, 1, counts[f])
	}

	code, out, errOut = cmd(ctx, "schedules")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `every-second\s+tick\s+\* \* \* \* \* \* \(with seconds\)\s+UTC\s+\d{4}-\d\d-\d\d [\d:]+ UTC( \(in [^)]+\))?\s+\d{4}-\d\d-\d\d [\d:]+, execution \d+ COMPLETED\s+sleep=0s`, out)

	code, out, errOut = cmd(ctx, "schedule", "pause", "every-second")
	require.Equal(t, 0, code, errOut)
	require.Equal(t, "schedule every-second: paused\n", out)
	_, out, _ = cmd(ctx, "schedules")
	require.Contains(t, out, "paused (due ")
	code, _, errOut = cmd(ctx, "schedule", "resume", "nonesuch")
	require.NotEqual(t, 0, code)
	require.Contains(t, errOut, `schedule "nonesuch"`)

	// Paused: serve fires nothing; trigger runs it here, now.
	before := len(fires)
	sctx, stop = context.WithTimeout(ctx, 1500*time.Millisecond)
	defer stop()
	code, _, errOut = cmd(sctx, "serve")
	require.Equal(t, 0, code, errOut)
	fires, _, _ = w.ticks()
	require.Len(t, fires, before)
	code, out, errOut = cmd(ctx, "-progress", "off", "schedule", "trigger", "every-second")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "COMPLETED")
	require.Contains(t, out, batch.FireTimeParam+":time=")
	fires, _, _ = w.ticks()
	require.Len(t, fires, before+1)
}
