package launcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/dashboard"
	"github.com/chunkwise/chunkwise/repository"
)

// runsJobs reports whether command cmd (with its arguments rest) may launch
// jobs: it creates the repository's tables when missing, and connects to
// NATS with -nats.
func runsJobs(cmd string, rest []string) bool {
	switch cmd {
	case "run", "restart", "backfill", "replay", "worker", "serve":
		return true
	case "schedule":
		return len(rest) > 0 && rest[0] == "trigger"
	}
	return false
}

// serve fires the program's schedules, with a queue serves partitions,
// and with addr serves the dashboard, until SIGINT or SIGTERM (or ctx's
// end): a signal stops the executions the scheduler and the dashboard
// started at their next chunk boundary and hands the partitions running
// back; a second exits at once.
func serve(ctx context.Context, l *Launcher, q *NATSQueue, stderr io.Writer, prog string, slots int, addr string, dash dashboard.Options) int {
	ctx, cancel := untilSignal(ctx, stderr, prog,
		"stopping the running executions at their next chunk boundary",
		"the running executions can be restarted once their lease expires")
	defer cancel()
	owner := processOwner()
	schedules := l.reg.Schedules()
	// One part's failure (the dashboard's address taken away) ends the
	// others.
	g, ctx := errgroup.WithContext(ctx)
	if addr != "" {
		if dash.Operator == nil {
			dash.Operator = l
		}
		if dash.Logger == nil {
			dash.Logger = l.engine.logger
		}
		h, err := dashboard.New(l.Repository(), dash)
		if err != nil {
			fmt.Fprintf(stderr, "%s: serve: %v\n", prog, err)
			return ExitFailed
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintf(stderr, "%s: serve: dashboard: %v\n", prog, err)
			return ExitFailed
		}
		mode := "read-only"
		if dash.AllowActions {
			mode = "actions allowed"
		}
		fmt.Fprintf(stderr, "%s: dashboard on http://%s/ (%s)\n", prog, ln.Addr(), mode)
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("dashboard: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
			// The executions its actions started: stopped at their next
			// chunk boundary, as the scheduler's are.
			return h.Shutdown(context.WithoutCancel(ctx))
		})
	}
	fmt.Fprintf(stderr, "%s: serving %d schedules as %s\n", prog, len(schedules), owner)
	if len(schedules) > 0 {
		g.Go(func() error { return l.RunSchedules(ctx, SchedulerConfig{Schedules: schedules}) })
	}
	if q != nil {
		g.Go(func() error { return q.Serve(ctx, l, owner, slots) })
	}
	if err := g.Wait(); err != nil {
		fmt.Fprintf(stderr, "%s: serve: %v\n", prog, err)
		return ExitFailed
	}
	return ExitCompleted
}

// writeSchedules prints the stored schedules: a line each, with the next
// due time in the schedule's time zone, and the status of its last fire.
func writeSchedules(ctx context.Context, l *Launcher, w io.Writer, list []repository.Schedule) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no schedules (serve stores the schedules a program declares)")
		return
	}
	now := time.Now()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tJOB\tSPEC\tTIME ZONE\tNEXT\tLAST FIRE\tPARAMETERS")
	for _, s := range list {
		loc, err := time.LoadLocation(s.TimeZone)
		if err != nil {
			loc = time.UTC
		}
		spec := s.Spec
		if s.Seconds {
			spec += " (with seconds)"
		}
		next := s.NextFire.In(loc).Format("2006-01-02 15:04:05 MST")
		switch {
		case s.Paused:
			next = "paused (due " + next + ")"
		case s.NextFire.After(now):
			next += " (in " + s.NextFire.Sub(now).Round(time.Second).String() + ")"
		}
		last := "never"
		if s.LastExecutionID != 0 {
			last = fmt.Sprintf("%s, execution %d", s.LastFire.In(loc).Format("2006-01-02 15:04:05"), s.LastExecutionID)
			if e, err := l.Repository().JobExecution(ctx, s.LastExecutionID); err == nil {
				last += " " + string(e.Status)
			}
		}
		tz := s.TimeZone
		if tz == "" {
			tz = "UTC"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.JobName, spec, tz, next, last, strings.Join(s.Parameters.Format(), " "))
	}
	_ = tw.Flush()
}

// triggerParams returns the job and parameters of a fire of schedule name
// now: the stored schedule's (the program's declaration if none is stored
// yet), with the fire time now by the repository's clock, to the second.
func (l *Launcher) triggerParams(ctx context.Context, name string) (string, batch.JobParameters, error) {
	reg := l.reg
	var (
		job    string
		params batch.JobParameters
		found  bool
	)
	stored, err := l.Schedules(ctx)
	if err != nil {
		return "", nil, err
	}
	for _, s := range stored {
		if s.Name == name {
			job, params, found = s.JobName, s.Parameters, true
		}
	}
	if !found {
		for _, s := range reg.Schedules() {
			if s.Name == name {
				job, params, found = s.Job, s.Parameters, true
			}
		}
	}
	if !found {
		return "", nil, fmt.Errorf("schedule %q: %w", name, batch.ErrNotFound)
	}
	if !reg.has(job) {
		return "", nil, fmt.Errorf("schedule %s fires job %q, which this program does not have", name, job)
	}
	now, err := l.Repository().(repository.ScheduleStore).ScheduleNow(ctx)
	if err != nil {
		return "", nil, err
	}
	params = maps.Clone(params)
	if params == nil {
		params = batch.JobParameters{}
	}
	params[batch.FireTimeParam] = batch.TimeParam(now.Truncate(time.Second))
	return job, params, nil
}
