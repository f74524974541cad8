package dashboard_test

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/dashboard"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

var errBadRow = errors.New("not a number")

// fixture is a program with one job, import, on an SQLite job repository,
// and a dashboard over it served on a local port.
type fixture struct {
	t      *testing.T
	l      *launcher.Launcher
	repo   *sqlite.Repository
	srv    *httptest.Server
	dash   *dashboard.Handler
	client *http.Client
	// fail is how many more runs of import fail at item 25.
	fail atomic.Int32
}

// The import job reads items 1..rows (default 40) in chunks of 5, sleeping
// delay (default 0) per chunk; every seventh item fails to process and is
// skipped (a reject). While fixture.fail is positive, a run fails writing
// the chunk that holds item 25, with an error that names a connection
// string with its password.
func newFixture(t *testing.T, opts dashboard.Options, schedules ...launcher.Schedule) *fixture {
	t.Helper()
	ctx := context.Background()
	repo, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "batch.db"), sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = repo.Close() })
	require.NoError(t, repo.Migrate(ctx))
	f := &fixture{t: t, repo: repo}
	var reg launcher.Registry
	reg.MustRegister("import", func(env launcher.Env) (batch.JobConfig, error) {
		rows, ok := env.Parameters.Int("rows")
		if !ok {
			rows = 40
		}
		delay := time.Duration(0)
		if s, ok := env.Parameters.String("delay"); ok {
			delay, _ = time.ParseDuration(s)
		}
		items := make([]int, rows)
		for i := range items {
			items[i] = i + 1
		}
		failing := f.fail.Load() > 0
		if failing {
			f.fail.Add(-1)
		}
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
			Reader:    reader.FromSlice(items),
			ChunkSize: 5,
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
				if i%7 == 0 {
					return 0, fmt.Errorf("row %d: amount %q: %w", i, "12,5<b>", errBadRow)
				}
				return i, nil
			}),
			Writer: batch.WriterFunc[int](func(ctx context.Context, items []int) error {
				time.Sleep(delay)
				for _, i := range items {
					if failing && i == 25 {
						return errors.New("insert into target: dial postgres://app:hunter2@db.internal/app: connection refused")
					}
				}
				return nil
			}),
			Skip:      batch.MatchErrors(errBadRow),
			SkipLimit: -1,
		})
		if err != nil {
			return batch.JobConfig{}, err
		}
		return batch.JobConfig{Steps: []batch.Step{step}}, nil
	})
	reg.MustSchedule(launcher.Schedule{Name: "nightly-import", Job: "import", Spec: "30 2 * * *", TimeZone: "Europe/Berlin",
		Parameters: batch.JobParameters{"rows": batch.IntParam(10)}})
	for _, s := range schedules {
		reg.MustSchedule(s)
	}
	f.l, err = launcher.New(launcher.Config{Repository: repo, Registry: &reg})
	require.NoError(t, err)
	// The scheduler stores the schedule (its next fire, at 02:30, is not
	// reached while a test runs).
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- f.l.RunSchedules(sctx, launcher.SchedulerConfig{Schedules: reg.Schedules()}) }()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-done)
	})
	require.Eventually(t, func() bool {
		list, err := f.l.Schedules(ctx)
		return err == nil && len(list) == 1+len(schedules)
	}, 5*time.Second, 10*time.Millisecond)
	if opts.Operator == nil {
		opts.Operator = f.l
	}
	f.dash, err = dashboard.New(repo, opts)
	require.NoError(t, err)
	f.srv = httptest.NewServer(f.dash)
	t.Cleanup(func() {
		f.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, f.dash.Shutdown(ctx))
	})
	jar, _ := cookiejar.New(nil)
	f.client = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return f
}

// run runs import with params to its end.
func (f *fixture) run(params batch.JobParameters) *batch.JobExecution {
	f.t.Helper()
	job, err := f.l.Job("import", params)
	require.NoError(f.t, err)
	e, _ := f.l.Run(context.Background(), job, params)
	require.NotNil(f.t, e)
	return e
}

func (f *fixture) get(path string) (int, string) {
	f.t.Helper()
	resp, err := f.client.Get(f.srv.URL + path)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(f.t, err)
	return resp.StatusCode, string(body)
}

// post sends a form POST as a browser on the dashboard's own page would:
// with Sec-Fetch-Site same-origin, or with the site given.
func (f *fixture) post(path, site string) *http.Response {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(""))
	require.NoError(f.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", site)
	resp, err := f.client.Do(req)
	require.NoError(f.t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

func (f *fixture) executions() []*batch.JobExecution {
	f.t.Helper()
	es, err := f.repo.JobExecutions(context.Background(), batch.ExecutionQuery{})
	require.NoError(f.t, err)
	return es
}

var rowID = regexp.MustCompile(`<tr data-id="(\d+)">`)

// listed returns the execution ids a list page shows, in order.
func listed(body string) []int64 {
	var ids []int64
	for _, m := range rowID.FindAllStringSubmatch(body, -1) {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		ids = append(ids, id)
	}
	return ids
}

func TestReadOnlyByDefault(t *testing.T) {
	f := newFixture(t, dashboard.Options{})
	f.fail.Store(1)
	failed := f.run(batch.JobParameters{"day": batch.StringParam("1")})
	require.Equal(t, batch.StatusFailed, failed.Status)

	code, body := f.get("/executions/" + strconv.FormatInt(failed.ID, 10))
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "FAILED")
	require.NotContains(t, body, "<button", "a read-only dashboard shows no buttons")
	_, body = f.get("/schedules")
	require.Contains(t, body, "nightly-import")
	require.NotContains(t, body, "<button")

	for _, path := range []string{"/executions/1/restart", "/executions/1/stop", "/executions/1/abandon",
		"/schedules/nightly-import/trigger", "/schedules/nightly-import/pause"} {
		resp := f.post(path, "same-origin")
		require.Equal(t, http.StatusForbidden, resp.StatusCode, path)
	}
	require.Len(t, f.executions(), 1, "nothing was launched")
	got, err := f.repo.JobExecution(context.Background(), failed.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusFailed, got.Status, "nothing was abandoned")
	list, err := f.l.Schedules(context.Background())
	require.NoError(t, err)
	for _, s := range list {
		require.False(t, s.Paused)
	}
}

func TestListFiltersAndPages(t *testing.T) {
	f := newFixture(t, dashboard.Options{PageSize: 3})
	var ids []int64
	for i := range 7 {
		if i == 2 || i == 5 {
			f.fail.Store(1)
		}
		ids = append(ids, f.run(batch.JobParameters{"day": batch.IntParam(int64(i))}).ID)
	}
	code, body := f.get("/")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, []int64{ids[6], ids[5], ids[4]}, listed(body))
	require.NotContains(t, body, `id="newest"`)

	// Page by page to the end, through the links the pages give.
	var all []int64
	path := "/"
	for page := range 5 {
		_, body = f.get(path)
		all = append(all, listed(body)...)
		if page > 0 {
			require.Contains(t, body, `id="newest"`)
		}
		m := regexp.MustCompile(`href="([^"]*)" id="older"`).FindStringSubmatch(body)
		if m == nil {
			break
		}
		path = strings.ReplaceAll(m[1], "&amp;", "&")
	}
	require.Equal(t, []int64{ids[6], ids[5], ids[4], ids[3], ids[2], ids[1], ids[0]}, all)

	_, body = f.get("/?status=FAILED")
	require.Equal(t, []int64{ids[5], ids[2]}, listed(body))
	_, body = f.get("/?status=failed&job=import")
	require.Equal(t, []int64{ids[5], ids[2]}, listed(body))
	_, body = f.get("/?job=other")
	require.Empty(t, listed(body))
	require.Contains(t, body, "No executions match these filters")

	today := time.Now().UTC().Format(time.DateOnly)
	_, body = f.get("/?since=" + today + "&until=" + today)
	require.Len(t, listed(body), 3)
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	_, body = f.get("/?since=" + tomorrow)
	require.Empty(t, listed(body))

	code, body = f.get("/?since=yesterday")
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body, `since: &#34;yesterday&#34;: want a date`)
	code, _ = f.get("/?status=NOPE")
	require.Equal(t, http.StatusBadRequest, code)
	code, _ = f.get("/executions/999")
	require.Equal(t, http.StatusNotFound, code)
}

func TestExecutionPage(t *testing.T) {
	f := newFixture(t, dashboard.Options{})
	f.fail.Store(1)
	params := batch.JobParameters{
		"day":      batch.StringParam("<script>alert(1)</script>"),
		"source":   batch.StringParam("postgres://reader:s3cr3t-pw@db.internal/app?sslmode=disable"),
		"apiToken": batch.StringParam("tok-abcdef123"),
	}
	e := f.run(params)
	require.Equal(t, batch.StatusFailed, e.Status)
	code, body := f.get("/executions/" + strconv.FormatInt(e.ID, 10))
	require.Equal(t, http.StatusOK, code)

	// Every value escaped, no password shown.
	require.NotContains(t, body, "<script>alert(1)")
	require.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;")
	for _, secret := range []string{"hunter2", "s3cr3t-pw", "tok-abcdef123"} {
		require.NotContains(t, body, secret)
	}
	require.Contains(t, body, "postgres://reader:xxxxx@db.internal/app")
	require.Contains(t, body, "dial postgres://app:xxxxx@db.internal/app: connection refused", "the error, its password hidden")

	// The step with its counts, and the rejects of items 7 and 14 (that of
	// item 21 rolled back with its chunk, which failed).
	require.Contains(t, body, `data-step="load"`)
	rejects := regexp.MustCompile(`(?s)<table class="list" id="rejects">.*?</table>`).FindString(body)
	require.Equal(t, 2, strings.Count(rejects, "<tr><td>load</td><td>process</td>"), rejects)
	require.Contains(t, rejects, "row 14: amount &#34;12,5&lt;b&gt;&#34;: not a number")

	// The step's history links from the page.
	f.run(batch.JobParameters{"day": batch.StringParam("2")})
	code, body = f.get("/jobs/import/steps/load")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 4, strings.Count(body, "<rect "), "a bar per run in each of the two charts")
	require.Contains(t, body, `class="failed"`)
	require.Contains(t, body, `class="completed"`)
	code, _ = f.get("/jobs/import/steps/nosuch")
	require.Equal(t, http.StatusNotFound, code)
}

func TestActions(t *testing.T) {
	var refuse atomic.Bool
	f := newFixture(t, dashboard.Options{AllowActions: true, Authorize: func(r *http.Request, a dashboard.Action) error {
		if refuse.Load() && a != dashboard.ActionStop {
			return fmt.Errorf("%s: not for you", a)
		}
		return nil
	}})
	f.fail.Store(1)
	failed := f.run(batch.JobParameters{"day": batch.StringParam("1")})
	page := "/executions/" + strconv.FormatInt(failed.ID, 10)
	_, body := f.get(page)
	require.Contains(t, body, `id="restart"`)
	require.Contains(t, body, `id="abandon"`)
	require.NotContains(t, body, `id="stop"`, "it does not run")

	// Refused by Authorize: no button, and the POST is 403.
	refuse.Store(true)
	_, body = f.get(page)
	require.NotContains(t, body, `id="restart"`)
	require.Equal(t, http.StatusForbidden, f.post(page+"/restart", "same-origin").StatusCode)
	refuse.Store(false)

	// From another site: refused, whatever Authorize says.
	require.Equal(t, http.StatusForbidden, f.post(page+"/restart", "cross-site").StatusCode)
	require.Len(t, f.executions(), 1)

	// Restart: to the new execution's page, which completes.
	resp := f.post(page+"/restart", "same-origin")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	require.Regexp(t, `^/executions/\d+$`, loc.Path)
	next, _ := strconv.ParseInt(strings.TrimPrefix(loc.Path, "/executions/"), 10, 64)
	require.NotEqual(t, failed.ID, next)
	e, err := f.l.Wait(context.Background(), next)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, e.Status)
	require.Equal(t, failed.InstanceID, e.InstanceID)

	// A completed execution cannot be restarted: 409, with the reason.
	require.Equal(t, http.StatusConflict, f.post(loc.Path+"/restart", "same-origin").StatusCode)

	// Stop a running one; abandon it once stopped.
	job, err := f.l.Job("import", nil)
	require.NoError(t, err)
	slow := batch.JobParameters{"day": batch.StringParam("slow"), "delay": batch.StringParam("200ms")}
	run, err := f.l.Start(context.Background(), job, slow)
	require.NoError(t, err)
	page = "/executions/" + strconv.FormatInt(run.ID, 10)
	_, body = f.get(page)
	require.Contains(t, body, `data-refresh=`, "a running execution's page reloads itself")
	require.Equal(t, http.StatusSeeOther, f.post(page+"/stop", "same-origin").StatusCode)
	stopped, err := f.l.Wait(context.Background(), run.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusStopped, stopped.Status)
	require.Equal(t, http.StatusSeeOther, f.post(page+"/abandon", "same-origin").StatusCode)
	got, err := f.repo.JobExecution(context.Background(), run.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusAbandoned, got.Status)

	// Schedules: pause, resume, trigger.
	require.Equal(t, http.StatusSeeOther, f.post("/schedules/nightly-import/pause", "same-origin").StatusCode)
	_, body = f.get("/schedules")
	require.Contains(t, body, "PAUSED")
	require.Equal(t, http.StatusSeeOther, f.post("/schedules/nightly-import/resume", "same-origin").StatusCode)
	_, body = f.get("/schedules")
	require.NotContains(t, body, "PAUSED")
	resp = f.post("/schedules/nightly-import/trigger", "same-origin")
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	require.Equal(t, http.StatusNotFound, f.post("/schedules/nosuch/pause", "same-origin").StatusCode)
}

// TestPartitionsUnderTheirStep: a partitioned step's partitions are listed
// under it, each with its counts, and the step says how many it has.
func TestPartitionsUnderTheirStep(t *testing.T) {
	f := newFixture(t, dashboard.Options{})
	step, err := batch.NewPartitionStep("load", batch.PartitionConfig{
		Partitioner: batch.PartitionerFunc(func(context.Context) ([]batch.Partition, error) {
			return []batch.Partition{{Name: "p1"}, {Name: "p2"}, {Name: "p3"}}, nil
		}),
		Step: func(name string, p batch.Partition) (batch.Step, error) {
			n := map[string]int{"p1": 10, "p2": 20, "p3": 30}[p.Name]
			return batch.NewChunkStep(name, batch.ChunkConfig[int, int]{
				Reader: reader.FromSlice(make([]int, n)), ChunkSize: 5,
				Writer: batch.WriterFunc[int](func(context.Context, []int) error { return nil }),
			})
		},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("split", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	e, err := f.l.Run(context.Background(), job, nil)
	require.NoError(t, err)
	_, body := f.get("/executions/" + strconv.FormatInt(e.ID, 10))
	require.Contains(t, body, "(3 partitions)")
	rows := regexp.MustCompile(`<tr class="(partition)?" data-step="([^"]+)">\s*<td>(?:<span class="indent">([^<]+)</span>)?`).FindAllStringSubmatch(body, -1)
	var got []string
	for _, m := range rows {
		if m[1] == "partition" {
			got = append(got, "  "+m[3])
		} else {
			got = append(got, m[2])
		}
	}
	require.Equal(t, []string{"load", "  load:p1", "  load:p2", "  load:p3"}, got)
	require.Regexp(t, `load:p3</span></td>\s*<td><span class="status completed">COMPLETED</span></td>\s*<td class="num">30</td>`, body)
}

// TestScheduleNames: a schedule's buttons act on it, whatever its name
// holds (a slash, an escape, a question mark).
func TestScheduleNames(t *testing.T) {
	var names []launcher.Schedule
	for _, n := range []string{"team/nightly", "a/b", "a%2Fb", "why?not", "ünï cödé"} {
		names = append(names, launcher.Schedule{Name: n, Job: "import", Spec: "30 2 * * *"})
	}
	f := newFixture(t, dashboard.Options{AllowActions: true}, names...)
	_, body := f.get("/schedules")
	paused := map[string]bool{}
	for _, s := range names {
		m := regexp.MustCompile(`data-schedule="` + regexp.QuoteMeta(html.EscapeString(s.Name)) + `">(?s:.*?)action="([^"]*/pause)"`).FindStringSubmatch(body)
		require.NotNil(t, m, s.Name)
		resp := f.post(html.UnescapeString(m[1]), "same-origin")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, s.Name)
		list, err := f.l.Schedules(context.Background())
		require.NoError(t, err)
		paused[s.Name] = true
		for _, got := range list {
			require.Equal(t, paused[got.Name], got.Paused, "after pausing %q, %q", s.Name, got.Name)
		}
	}
}

// TestOddQueries: bounds at the ends of the calendar, and actions after
// Shutdown.
func TestOddQueries(t *testing.T) {
	f := newFixture(t, dashboard.Options{AllowActions: true})
	f.fail.Store(1)
	e := f.run(batch.JobParameters{"day": batch.StringParam("1")})
	_, body := f.get("/?until=9999-12-31")
	require.Equal(t, []int64{e.ID}, listed(body))
	_, body = f.get("/?since=0001-01-01&until=9999-12-31T23:59")
	require.Equal(t, []int64{e.ID}, listed(body))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, f.dash.Shutdown(ctx))
	resp := f.post("/executions/"+strconv.FormatInt(e.ID, 10)+"/restart", "same-origin")
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	require.Len(t, f.executions(), 1)
	code, _ := f.get("/")
	require.Equal(t, http.StatusOK, code, "the pages still read")
}
