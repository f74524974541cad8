package launcher

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chunkwise/chunkwise/batch"
)

// BackfillRun is what became of one value of a backfill.
type BackfillRun struct {
	// Value is the value of the backfilled parameter.
	Value batch.JobParameter
	// Execution is the value's execution as it ended; nil when it was not
	// launched.
	Execution *batch.JobExecution
	// Skipped says that the value's instance had already completed.
	Skipped bool
	// Err is why the value was not launched (other than Skipped), or why
	// its end could not be read.
	Err error
	// Took is how long the value's execution ran.
	Took time.Duration
}

// Status is the run's status for a summary: the execution's, or SKIPPED,
// REFUSED or NOT STARTED.
func (r BackfillRun) Status() string {
	switch {
	case r.Skipped:
		return "SKIPPED"
	case r.Execution != nil:
		return string(r.Execution.Status)
	case errors.Is(r.Err, context.Canceled):
		return "NOT STARTED"
	}
	return "REFUSED"
}

// Backfill runs the registered job name once for each of values of the
// parameter param, with params for the others: each value is an instance
// of its own. A value whose instance already completed is skipped; one
// whose instance failed or stopped is restarted — so a backfill run again
// resumes where the last one ended. At most parallel values run at once
// (at least one), started in the order of values; onDone, when not nil, is
// called as each value ends, from one goroutine at a time. When ctx is
// done, no value starts any more and the running ones are asked to stop at
// their next chunk boundary. The runs are returned in the order of values.
func (l *Launcher) Backfill(ctx context.Context, name, param string, values []batch.JobParameter, params batch.JobParameters,
	parallel int, onDone func(BackfillRun)) []BackfillRun {
	runs := make([]BackfillRun, len(values))
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		slot = make(chan struct{}, max(parallel, 1))
	)
	done := func(i int, r BackfillRun) {
		mu.Lock()
		defer mu.Unlock()
		runs[i] = r
		if onDone != nil {
			onDone(r)
		}
	}
	for i, v := range values {
		select {
		case slot <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			done(i, BackfillRun{Value: v, Err: ctx.Err()})
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slot }()
			done(i, l.backfillOne(ctx, name, param, v, params))
		}()
	}
	wg.Wait()
	return runs
}

// backfillOne runs one value of a backfill.
func (l *Launcher) backfillOne(ctx context.Context, name, param string, v batch.JobParameter, params batch.JobParameters) BackfillRun {
	r := BackfillRun{Value: v}
	p := make(batch.JobParameters, len(params)+1)
	for k, x := range params {
		p[k] = x
	}
	p[param] = v
	job, err := l.Job(name, p)
	if err != nil {
		r.Err = err
		return r
	}
	start := time.Now()
	// A backfill that ends stops its values at a chunk boundary (below):
	// their executions do not end with ctx.
	exec, err := l.Start(context.WithoutCancel(ctx), job, p)
	if err != nil {
		r.Skipped = errors.Is(err, batch.ErrJobComplete)
		r.Err = err
		return r
	}
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			_ = l.Stop(context.WithoutCancel(ctx), exec.ID)
		case <-stopped:
		}
	}()
	r.Execution, r.Err = l.Wait(context.WithoutCancel(ctx), exec.ID)
	r.Took = time.Since(start)
	return r
}

// backfillValues returns the values from from to to (both included), step
// apart, of a parameter of type typ; typ "" infers it from from: a date
// (2006-01-02), a time (RFC 3339) or an integer. A step of "" is a day for
// dates and times and 1 for integers.
func backfillValues(typ batch.ParamType, from, to, step string) ([]batch.JobParameter, error) {
	if typ == "" {
		switch {
		case isDate(from):
			typ = batch.ParamDate
		case isTime(from):
			typ = batch.ParamTime
		default:
			if _, err := strconv.ParseInt(from, 10, 64); err == nil {
				typ = batch.ParamInt
			}
		}
	}
	const limit = 100_000
	switch typ {
	case batch.ParamDate, batch.ParamTime:
		layout, what := time.RFC3339, "a time such as 2026-11-01T00:00:00Z"
		if typ == batch.ParamDate {
			layout, what = time.DateOnly, "a date such as 2026-11-01"
		}
		a, err := time.Parse(layout, from)
		if err != nil {
			return nil, fmt.Errorf("-from %q: want %s", from, what)
		}
		b, err := time.Parse(layout, to)
		if err != nil {
			return nil, fmt.Errorf("-to %q: want %s", to, what)
		}
		d := 24 * time.Hour
		if step != "" {
			if d, err = parseAge(step); err != nil {
				return nil, fmt.Errorf("-step %q: want a positive duration such as 24h or 7d", step)
			}
		}
		if typ == batch.ParamDate && d%(24*time.Hour) != 0 {
			return nil, fmt.Errorf("-step %s: a date parameter steps by whole days", step)
		}
		if b.Before(a) {
			return nil, fmt.Errorf("-from %s is after -to %s", from, to)
		}
		var out []batch.JobParameter
		for t := a; !t.After(b); t = t.Add(d) {
			if len(out) == limit {
				return nil, fmt.Errorf("more than %d values from %s to %s", limit, from, to)
			}
			if typ == batch.ParamDate {
				out = append(out, batch.DateParam(t))
			} else {
				out = append(out, batch.TimeParam(t))
			}
		}
		return out, nil
	case batch.ParamInt:
		a, err := strconv.ParseInt(from, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("-from %q: want an integer", from)
		}
		b, err := strconv.ParseInt(to, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("-to %q: want an integer", to)
		}
		n := int64(1)
		if step != "" {
			if n, err = strconv.ParseInt(step, 10, 64); err != nil || n <= 0 {
				return nil, fmt.Errorf("-step %q: want a positive integer", step)
			}
		}
		if b < a {
			return nil, fmt.Errorf("-from %d is after -to %d", a, b)
		}
		if (b-a)/n >= limit {
			return nil, fmt.Errorf("more than %d values from %d to %d", limit, a, b)
		}
		var out []batch.JobParameter
		for v := a; v <= b && v >= a; v += n {
			out = append(out, batch.IntParam(v))
		}
		return out, nil
	case "":
		return nil, fmt.Errorf("-from %q: want a date (2026-11-01), a time (RFC 3339) or an integer", from)
	}
	return nil, fmt.Errorf("a %s parameter cannot be backfilled: want a date, time or int parameter", typ)
}

func isDate(s string) bool {
	_, err := time.Parse(time.DateOnly, s)
	return err == nil
}

func isTime(s string) bool {
	_, err := time.Parse(time.RFC3339, s)
	return err == nil && strings.Contains(s, "T")
}
