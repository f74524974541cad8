package dashboard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/format"
	"github.com/chunkwise/chunkwise/internal/lastrun"
	"github.com/chunkwise/chunkwise/repository"
)

// page is what every page's template gets.
type page struct {
	Title   string
	Base    string // the path the dashboard is mounted at
	Nav     string // the section: "executions" or "schedules"
	Refresh int    // milliseconds between reloads; 0: none
	Notice  string
	Data    any
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, name, nav string, refresh bool, data any) {
	p := page{Title: h.opts.Title, Base: base(r), Nav: nav, Notice: notice(r.URL.Query()), Data: data}
	if refresh {
		p.Refresh = int(h.opts.Refresh / time.Millisecond)
	}
	var b strings.Builder
	if err := h.pages[name].ExecuteTemplate(&b, "layout", p); err != nil {
		h.opts.Logger.Error("dashboard: render", "page", name, "error", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// notices are what a page says after an action redirected to it
// (?done=ACTION): fixed texts, so that a link cannot make the dashboard say
// what its author wants.
var notices = map[Action]string{
	ActionStop:    "Stop requested: it stops at its next chunk boundary.",
	ActionRestart: "Restarted from execution %d.",
	ActionAbandon: "Abandoned: its instance will not be restarted.",
	ActionTrigger: "Fired now.",
	ActionPause:   "Paused for every replica.",
	ActionResume:  "Resumed.",
}

func notice(q url.Values) string {
	text := notices[Action(q.Get("done"))]
	if strings.Contains(text, "%d") {
		from, err := strconv.ParseInt(q.Get("from"), 10, 64)
		if err != nil {
			return ""
		}
		text = fmt.Sprintf(text, from)
	}
	return text
}

// fail shows err as the page, with status.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	h.render(w, r, status, "error", "", false, struct {
		Status int
		Text   string
		Error  string
	}{status, http.StatusText(status), redact(err.Error())})
}

func (h *Handler) failRead(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	if errors.Is(err, batch.ErrNotFound) {
		status = http.StatusNotFound
	} else {
		h.opts.Logger.Error("dashboard: read", "path", r.URL.Path, "error", err)
	}
	h.fail(w, r, status, err)
}

// The executions list.

type listView struct {
	Jobs, Statuses []string
	Filter         filter
	Rows           []execRow
	Older          string // the query of the next page; "" on the last
	Newest         string // the query of the first page; "" on it
}

// filter is the list's query string, as typed.
type filter struct {
	Job, Status, Since, Until string
	Before                    int64
}

func (f filter) query(before int64) string {
	v := url.Values{}
	for k, s := range map[string]string{"job": f.Job, "status": f.Status, "since": f.Since, "until": f.Until} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if before != 0 {
		v.Set("before", strconv.FormatInt(before, 10))
	}
	if len(v) == 0 {
		return "?"
	}
	return "?" + v.Encode()
}

type execRow struct {
	ID                 int64
	Job, Status        string
	Created, Duration  string
	Exit, Parameters   string
	Running            bool
	CreatedAt, EndedAt time.Time
}

func (h *Handler) row(e *batch.JobExecution) execRow {
	return execRow{ID: e.ID, Job: e.JobName, Status: string(e.Status), Created: h.when(e.CreatedAt),
		Duration: duration(e.StartTime, e.EndTime, e.Status.Running()), Exit: firstLine(redact(e.ExitStatus.Description)),
		Parameters: strings.Join(formatParams(e.Parameters), " "), Running: e.Status.Running()}
}

var statuses = []string{string(batch.StatusStarting), string(batch.StatusStarted), string(batch.StatusStopping),
	string(batch.StatusStopped), string(batch.StatusFailed), string(batch.StatusCompleted), string(batch.StatusAbandoned)}

func (h *Handler) executions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := filter{Job: q.Get("job"), Status: strings.ToUpper(q.Get("status")), Since: q.Get("since"), Until: q.Get("until")}
	eq := batch.ExecutionQuery{JobName: f.Job, Status: batch.BatchStatus(f.Status), Limit: h.opts.PageSize + 1}
	var err error
	if f.Status != "" && !slices.Contains(statuses, f.Status) {
		h.fail(w, r, http.StatusBadRequest, fmt.Errorf("status %q: want one of %s", f.Status, strings.Join(statuses, ", ")))
		return
	}
	if eq.Since, err = h.parseDate(f.Since, false); err != nil {
		h.fail(w, r, http.StatusBadRequest, fmt.Errorf("since: %w", err))
		return
	}
	if eq.Until, err = h.parseDate(f.Until, true); err != nil {
		h.fail(w, r, http.StatusBadRequest, fmt.Errorf("until: %w", err))
		return
	}
	if s := q.Get("before"); s != "" {
		if f.Before, err = strconv.ParseInt(s, 10, 64); err != nil || f.Before <= 0 {
			h.fail(w, r, http.StatusBadRequest, fmt.Errorf("before %q: want an execution id", s))
			return
		}
		eq.BeforeID = f.Before
	}
	list, err := h.repo.JobExecutions(r.Context(), eq)
	if err != nil {
		h.failRead(w, r, err)
		return
	}
	jobs, err := h.repo.JobNames(r.Context())
	if err != nil {
		h.failRead(w, r, err)
		return
	}
	v := listView{Jobs: jobs, Statuses: statuses, Filter: f}
	if len(list) > h.opts.PageSize {
		list = list[:h.opts.PageSize]
		v.Older = f.query(list[len(list)-1].ID)
	}
	if f.Before != 0 {
		v.Newest = f.query(0)
	}
	running := false
	for _, e := range list {
		v.Rows = append(v.Rows, h.row(e))
		running = running || e.Status.Running()
	}
	h.render(w, r, http.StatusOK, "executions", "executions", running, v)
}

// parseDate reads a date (2006-01-02) or a time (2006-01-02T15:04) in the
// dashboard's time zone; a date as an upper bound includes its whole day.
func (h *Handler) parseDate(s string, upper bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04", s, h.opts.Location); err == nil {
		return t, nil
	}
	t, err := time.ParseInLocation(time.DateOnly, s, h.opts.Location)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want a date such as 2026-12-01 or a time such as 2026-12-01T15:04", s)
	}
	if upper {
		t = t.AddDate(0, 0, 1)
	}
	if t.Year() > 9999 {
		return time.Time{}, nil // no bound: stores that keep times as text have no year 10000
	}
	return t, nil
}

// The execution page.

type execView struct {
	execRow
	Instance                 int64
	ExitCode, ExitFull       string
	Started, Ended, Beat     string
	Params                   []paramRow
	Steps                    []stepRow
	Rejects                  []rejectRow
	RejectsShown, RejectsAll int
	KeepsRejects             bool
	CanStop, CanRestart      bool
	CanAbandon               bool
}

type paramRow struct {
	Name, Type, Value string
	Identifying       bool
}

type stepRow struct {
	ID                          int64
	Name, Link, Status          string
	Partition                   bool
	Partitions                  int
	Read, Written, Filtered     int64
	Skipped, Commits, Rollbacks int64
	Duration, Exit, Rate        string
	Running, HasBar             bool
	Percent                     int
	ETA, Done                   string
	Resumed                     string
}

type rejectRow struct {
	Step, Phase, Error, Input string
	Item                      int64
}

// maxRejects is how many rejects the execution page lists.
const maxRejects = 200

func (h *Handler) execution(w http.ResponseWriter, r *http.Request) {
	e, ok := h.lookup(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	steps, err := h.repo.StepExecutions(ctx, e.ID)
	if err != nil {
		h.failRead(w, r, err)
		return
	}
	v := execView{execRow: h.row(e), Instance: e.InstanceID, ExitCode: e.ExitStatus.Code,
		ExitFull: redact(e.ExitStatus.Description), Started: h.when(e.StartTime), Ended: h.when(e.EndTime)}
	if e.Status.Running() && !e.Heartbeat.IsZero() {
		v.Beat = roughly(time.Since(e.Heartbeat)) + " ago"
	}
	for _, name := range e.Parameters.Names() {
		p := e.Parameters[name]
		v.Params = append(v.Params, paramRow{Name: name, Type: string(p.Type), Value: paramValue(name, p), Identifying: p.Identifying})
	}
	v.Steps = h.stepRows(ctx, e, steps)
	if rs, ok := h.repo.(repository.RejectStore); ok {
		v.KeepsRejects = true
		rejects, err := rs.Rejects(ctx, e.ID)
		if err != nil {
			h.failRead(w, r, err)
			return
		}
		v.RejectsAll = len(rejects)
		for _, rj := range rejects[:min(len(rejects), maxRejects)] {
			v.Rejects = append(v.Rejects, rejectRow{Step: rj.Step, Phase: rj.Phase, Item: rj.Item,
				Error: redact(rj.Error), Input: redact(string(rj.Input))})
		}
		v.RejectsShown = len(v.Rejects)
	}
	known := h.opts.Operator != nil && slices.Contains(h.opts.Operator.JobNames(), e.JobName)
	lapsed := e.Status.Running() && time.Since(e.Heartbeat) > leaseOf(e)
	v.CanStop = e.Status.Running() && e.Status != batch.StatusStopping && h.allowed(r, ActionStop)
	v.CanRestart = known && (e.Status == batch.StatusFailed || e.Status == batch.StatusStopped) && h.allowed(r, ActionRestart)
	v.CanAbandon = (e.Status == batch.StatusFailed || e.Status == batch.StatusStopped || lapsed) && h.allowed(r, ActionAbandon)
	h.render(w, r, http.StatusOK, "execution", "executions", e.Status.Running(), v)
}

func leaseOf(e *batch.JobExecution) time.Duration {
	if e.Lease > 0 {
		return e.Lease
	}
	return batch.DefaultLease
}

func (h *Handler) lookup(w http.ResponseWriter, r *http.Request) (*batch.JobExecution, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		h.fail(w, r, http.StatusNotFound, fmt.Errorf("no execution %q", r.PathValue("id")))
		return nil, false
	}
	e, err := h.repo.JobExecution(r.Context(), id)
	if err != nil {
		h.failRead(w, r, err)
		return nil, false
	}
	return e, true
}

// stepRows describes steps, a partitioned step's partitions (named
// step:partition) under it.
func (h *Handler) stepRows(ctx context.Context, e *batch.JobExecution, steps []*batch.StepExecution) []stepRow {
	last := lastrun.New(h.repo)
	var rows []stepRow
	parent := map[string]int{} // step name → its row
	for _, s := range steps {
		row := stepRow{ID: s.ID, Name: s.StepName, Status: string(s.Status), Read: s.ReadCount, Written: s.WriteCount,
			Filtered: s.FilterCount, Skipped: s.SkipCount(), Commits: s.CommitCount, Rollbacks: s.RollbackCount,
			Duration: duration(s.StartTime, s.EndTime, s.Status.Running()), Exit: redact(s.ExitStatus.Description),
			Running: s.Status.Running()}
		if n, ok := s.ResumedAt(); ok {
			row.Resumed = fmt.Sprintf("resumed at item %d", n)
		}
		name := s.StepName
		if i := strings.LastIndexByte(name, ':'); i > 0 {
			if p, ok := parent[name[:i]]; ok {
				row.Partition = true
				rows[p].Partitions++
				name = name[:i]
			}
		}
		row.Link = "jobs/" + url.PathEscape(e.JobName) + "/steps/" + url.PathEscape(name)
		if row.Running {
			est := s.Estimate(last.Of(ctx, e.JobName, e.ID, s.StepName))
			if est.HasRate {
				row.Rate = format.Rate(est.Rate.Items) + " items/s"
			}
			if est.Fraction >= 0 {
				row.HasBar, row.Percent = true, int(est.Fraction*100)
				if est.HasProgress && est.Progress.Total > 0 {
					row.Done = format.Amount(est.Progress.Done, est.Progress.Unit) + " of " + format.Amount(est.Progress.Total, est.Progress.Unit)
				} else {
					row.Done = fmt.Sprintf("%d of the last run's %d items", s.ReadCount, est.Last)
				}
			}
			if est.ETA > 0 {
				row.ETA = roughly(est.ETA)
			}
		}
		if !row.Partition {
			parent[s.StepName] = len(rows)
		}
		rows = append(rows, row)
	}
	// A step's partitions, created at once, in the order of their names
	// (p2 before p10).
	for i := 0; i < len(rows); {
		j := i + 1
		for j < len(rows) && rows[j].Partition {
			j++
		}
		slices.SortStableFunc(rows[i+1:j], func(a, b stepRow) int { return naturalCompare(a.Name, b.Name) })
		i = j
	}
	return rows
}

// naturalCompare orders names with their runs of digits read as numbers:
// load:p2 before load:p10.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), strings.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

// digits is the length of the run of digits s starts with.
func digits(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// The step history page.

type historyView struct {
	Job, Step        string
	Runs             []historyRow
	Durations, Items chart
	Executions       int
}

type historyRow struct {
	Execution              int64
	Status, Created        string
	Duration               string
	Read, Written, Skipped int64
	Rate                   string
}

type chart struct {
	Width, Height int
	Bars          []bar
	Max           string // the longest duration, the chart's top
}

type bar struct {
	X, Y, W, H int
	Status     string
	Title      string
	Execution  int64
}

// The charts' bars: their width, the gap between them, the charts' height.
const barW, gap, chartHeight = 28, 6, 120

// add adds the i-th bar, of value v on a scale whose top is top.
func (c *chart) add(i int, v, top float64, execution int64, status batch.BatchStatus, title string) {
	h := 2
	if top > 0 {
		h = max(int(float64(chartHeight-2)*v/top), 2)
	}
	c.Bars = append(c.Bars, bar{X: i * (barW + gap), Y: chartHeight - h, W: barW, H: h,
		Status: strings.ToLower(string(status)), Execution: execution, Title: title})
}

func (h *Handler) stepHistory(w http.ResponseWriter, r *http.Request) {
	job, step := r.PathValue("job"), r.PathValue("step")
	ctx := r.Context()
	es, err := h.repo.JobExecutions(ctx, batch.ExecutionQuery{JobName: job, Limit: h.opts.History})
	if err != nil {
		h.failRead(w, r, err)
		return
	}
	v := historyView{Job: job, Step: step, Executions: len(es)}
	type run struct {
		s   *batch.StepExecution
		e   *batch.JobExecution
		dur time.Duration
	}
	var runs []run
	var longest time.Duration
	for _, e := range es {
		steps, err := h.repo.StepExecutions(ctx, e.ID)
		if err != nil {
			h.failRead(w, r, err)
			return
		}
		for _, s := range steps {
			if s.StepName != step {
				continue
			}
			end := s.EndTime
			if end.IsZero() {
				end = time.Now()
			}
			d := max(end.Sub(s.StartTime), 0)
			if s.StartTime.IsZero() {
				d = 0
			}
			runs = append(runs, run{s, e, d})
			longest = max(longest, d)
		}
	}
	slices.Reverse(runs) // oldest first, as the charts read
	var most int64
	for _, ru := range runs {
		most = max(most, ru.s.ReadCount)
	}
	v.Durations = chart{Width: max(len(runs), 1) * (barW + gap), Height: chartHeight, Max: roughly(longest)}
	v.Items = chart{Width: v.Durations.Width, Height: chartHeight, Max: strconv.FormatInt(most, 10)}
	for i, ru := range runs {
		s := ru.s
		row := historyRow{Execution: ru.e.ID, Status: string(s.Status), Created: h.when(ru.e.CreatedAt),
			Duration: duration(s.StartTime, s.EndTime, s.Status.Running()), Read: s.ReadCount, Written: s.WriteCount, Skipped: s.SkipCount()}
		if ru.dur > 0 {
			row.Rate = format.Rate(float64(s.ReadCount)/ru.dur.Seconds()) + " items/s"
		}
		v.Runs = append(v.Runs, row)
		title := fmt.Sprintf("execution %d: %s, %s, %d read", ru.e.ID, s.Status, row.Duration, s.ReadCount)
		v.Durations.add(i, float64(ru.dur), float64(longest), ru.e.ID, s.Status, title)
		v.Items.add(i, float64(s.ReadCount), float64(most), ru.e.ID, s.Status, title)
	}
	slices.Reverse(v.Runs) // the table: newest first
	if len(runs) == 0 {
		h.fail(w, r, http.StatusNotFound, fmt.Errorf("no execution of step %q in the last %d executions of job %q", step, h.opts.History, job))
		return
	}
	h.render(w, r, http.StatusOK, "history", "executions", false, v)
}

// The schedules page.

type schedulesView struct {
	Kept bool
	Rows []scheduleRow
}

type scheduleRow struct {
	Name, Path, Job, Spec string
	Zone                  string
	Next, In, Policies    string
	Parameters            string
	Paused                bool
	LastExecution         int64
	LastFire, LastStatus  string
	CanTrigger, CanPause  bool
	CanResume             bool
}

func (h *Handler) schedules(w http.ResponseWriter, r *http.Request) {
	store, ok := h.repo.(repository.ScheduleStore)
	if !ok {
		h.render(w, r, http.StatusOK, "schedules", "schedules", false, schedulesView{})
		return
	}
	ctx := r.Context()
	list, err := store.Schedules(ctx)
	if err != nil {
		h.failRead(w, r, err)
		return
	}
	known := map[string]bool{}
	if h.opts.Operator != nil {
		for _, n := range h.opts.Operator.JobNames() {
			known[n] = true
		}
	}
	v := schedulesView{Kept: true}
	for _, s := range list {
		loc, err := time.LoadLocation(s.TimeZone)
		if err != nil {
			loc = time.UTC
		}
		row := scheduleRow{Name: s.Name, Path: url.PathEscape(s.Name), Job: s.JobName, Spec: s.Spec, Zone: loc.String(), Paused: s.Paused,
			Next: s.NextFire.In(loc).Format("2006-01-02 15:04:05 MST"), Policies: "misfire " + s.Misfire + ", overlap " + s.Overlap,
			Parameters: strings.Join(formatParams(s.Parameters), " "), LastExecution: s.LastExecutionID}
		if s.Seconds {
			row.Spec += " (with seconds)"
		}
		if d := time.Until(s.NextFire); d > 0 {
			row.In = "in " + roughly(d)
		}
		if s.LastExecutionID != 0 {
			row.LastFire = s.LastFire.In(loc).Format("2006-01-02 15:04:05")
			if e, err := h.repo.JobExecution(ctx, s.LastExecutionID); err == nil {
				row.LastStatus = string(e.Status)
			}
		}
		row.CanTrigger = known[s.JobName] && h.allowed(r, ActionTrigger)
		row.CanPause = !s.Paused && h.allowed(r, ActionPause)
		row.CanResume = s.Paused && h.allowed(r, ActionResume)
		v.Rows = append(v.Rows, row)
	}
	h.render(w, r, http.StatusOK, "schedules", "schedules", false, v)
}

// The actions.

// action returns the action a POST asks for, when it is one of valid (on
// what they act on) and may be taken; else it answers the request itself.
func (h *Handler) action(w http.ResponseWriter, r *http.Request, on string, valid ...Action) (Action, bool) {
	a := Action(r.PathValue("action"))
	if !slices.Contains(valid, a) {
		h.fail(w, r, http.StatusNotFound, fmt.Errorf("no action %q on %s", a, on))
		return a, false
	}
	return a, !h.refuse(w, r, a)
}

func (h *Handler) executionAction(w http.ResponseWriter, r *http.Request) {
	a, ok := h.action(w, r, "an execution", ActionStop, ActionRestart, ActionAbandon)
	if !ok {
		return
	}
	e, ok := h.lookup(w, r)
	if !ok {
		return
	}
	op, ctx := h.opts.Operator, r.Context()
	id := strconv.FormatInt(e.ID, 10)
	to := "executions/" + id + "?done=" + string(a)
	var err error
	switch a {
	case ActionStop:
		err = op.Stop(ctx, e.ID)
	case ActionAbandon:
		err = op.Abandon(ctx, e.ID)
	case ActionRestart:
		var next *batch.JobExecution
		if next, err = op.StartRestart(context.WithoutCancel(ctx), e.ID); err == nil {
			h.run(next)
			to = "executions/" + strconv.FormatInt(next.ID, 10) + "?done=restart&from=" + id
		}
	}
	h.done(w, r, a, "execution "+id, err, to)
}

func (h *Handler) scheduleAction(w http.ResponseWriter, r *http.Request) {
	a, ok := h.action(w, r, "a schedule", ActionTrigger, ActionPause, ActionResume)
	if !ok {
		return
	}
	name, op, ctx := r.PathValue("name"), h.opts.Operator, r.Context()
	var err error
	to := "schedules?done=" + string(a)
	switch a {
	case ActionPause, ActionResume:
		err = op.PauseSchedule(ctx, name, a == ActionPause)
	case ActionTrigger:
		var e *batch.JobExecution
		if e, err = op.TriggerSchedule(context.WithoutCancel(ctx), name); err == nil {
			h.run(e)
			to = "executions/" + strconv.FormatInt(e.ID, 10) + "?done=trigger"
		}
	}
	h.done(w, r, a, "schedule "+name, err, to)
}

// done answers an action: a redirect to the page to, or the error (409
// Conflict: the state did not allow it).
func (h *Handler) done(w http.ResponseWriter, r *http.Request, a Action, what string, err error, to string) {
	if err != nil {
		h.opts.Logger.Info("dashboard: action failed", "action", a, "on", what, "error", err)
		status := http.StatusConflict
		if errors.Is(err, batch.ErrNotFound) {
			status = http.StatusNotFound
		}
		h.fail(w, r, status, fmt.Errorf("%s %s: %w", a, what, err))
		return
	}
	h.opts.Logger.Info("dashboard: action", "action", a, "on", what)
	http.Redirect(w, r, base(r)+"/"+to, http.StatusSeeOther)
}

// parsePages parses each page's template with the layout.
func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"lower": strings.ToLower,
		"pct":   func(n int) string { return strconv.Itoa(n) + "%" },
		"args": func(base, id string, c chart) any {
			return struct {
				Base, ID string
				Chart    chart
			}{base, id, c}
		},
	}
	layout, err := template.New("layout").Funcs(funcs).ParseFS(assets, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range []string{"executions", "execution", "history", "schedules", "error"} {
		t, err := template.Must(layout.Clone()).ParseFS(assets, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard: %w", err)
		}
		pages[name] = t
	}
	return pages, nil
}
