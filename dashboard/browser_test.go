package dashboard_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/dashboard"
)

// browser starts a headless Chromium for the test, or skips it when there
// is none (BATCH_REQUIRE_BROWSER=1, as CI sets, fails it instead).
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		if os.Getenv("BATCH_REQUIRE_BROWSER") != "" {
			t.Fatal("no Chromium (apt-get install chromium), and BATCH_REQUIRE_BROWSER is set")
		}
		t.Skip("no Chromium: apt-get install chromium to run the browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() {
		cancelTimeout()
		cancel()
		cancelAlloc()
	})
	_, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`1`))
	require.NoError(t, err, "start Chromium")
	return ctx
}

// screenshot saves the page as NAME.png in $DASHBOARD_SCREENSHOTS, when
// it is set (the screenshots of docs/dashboard.md are made so).
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("DASHBOARD_SCREENSHOTS")
	if dir == "" {
		return
	}
	img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), img, 0o644))
}

// waitFor evaluates the JavaScript expression until it is true, through
// the page's navigations and reloads (an evaluation that a navigation
// interrupts is tried again).
func waitFor(t *testing.T, ctx context.Context, expr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.readyState === "complete" && !!(`+expr+`)`))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 30s for %s (last error: %v)", expr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eval evaluates expr on the page, whose result is a T.
func eval[T any](t *testing.T, ctx context.Context, expr string, opts ...chromedp.EvaluateOption) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	require.NoError(t, err, expr)
	return v
}

// TestBrowser drives the dashboard in a real headless Chromium as the
// on-call person would: the list, a filter by status, the failed
// execution's error and rejects, a restart watched until it completes.
func TestBrowser(t *testing.T) {
	ctx := browser(t)
	f := newFixture(t, dashboard.Options{AllowActions: true})
	for i := range 3 {
		f.run(batch.JobParameters{"day": batch.StringParam("2026-11-2" + strconv.Itoa(i)), "delay": batch.StringParam("20ms")})
	}
	f.fail.Store(1)
	failed := f.run(batch.JobParameters{"day": batch.StringParam("2026-11-23"), "delay": batch.StringParam("400ms")})
	require.Equal(t, batch.StatusFailed, failed.Status)
	f.run(batch.JobParameters{"day": batch.StringParam("2026-11-24")})

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#executions"))))
	require.Equal(t, 5, eval[int](t, ctx, `document.querySelectorAll("#executions tbody tr").length`))
	screenshot(t, ctx, "executions")

	// Filter by status: only the failed execution is left.
	require.NoError(t, chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#status"), "FAILED"), chromedp.Click(chromedp.CSS("#filter"))))
	waitFor(t, ctx, `location.search.includes("status=FAILED")`)
	require.Equal(t, []string{"FAILED"}, eval[[]string](t, ctx, `[...document.querySelectorAll("#executions tbody .status")].map(e => e.textContent)`))

	// Open it: its error, password hidden, and its rejects.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#executions tbody a"))))
	waitFor(t, ctx, `document.querySelector("#exit")`)
	exitText := eval[string](t, ctx, `document.querySelector("#exit").textContent`)
	require.Contains(t, exitText, "postgres://app:xxxxx@db.internal/app: connection refused")
	require.NotContains(t, exitText, "hunter2")
	rejects := eval[string](t, ctx, `document.querySelector("#rejects").textContent`)
	require.Contains(t, rejects, `row 7: amount "12,5<b>": not a number`)
	require.Contains(t, rejects, `row 14:`)
	screenshot(t, ctx, "execution-failed")

	// Restart it, and watch the new execution's page until it completes.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#restart"))))
	waitFor(t, ctx, `document.querySelector(".notice")`)
	path := eval[string](t, ctx, `location.pathname`)
	require.NotEqual(t, "/executions/"+strconv.FormatInt(failed.ID, 10), path, "on the new execution's page")
	if os.Getenv("DASHBOARD_SCREENSHOTS") != "" && eval[bool](t, ctx, `document.querySelector("progress") !== null`) {
		// Once its first chunk committed: with its rate and ETA.
		waitFor(t, ctx, `document.querySelector(".rate") || document.querySelector("#status").textContent === "COMPLETED"`)
		screenshot(t, ctx, "execution-running")
	}
	// The page reloads itself while the execution runs.
	waitFor(t, ctx, `document.querySelector("#status").textContent === "COMPLETED"`)
	read := eval[string](t, ctx, `document.querySelector('#steps tr[data-step="load"] td:nth-child(3)').textContent`)
	require.Equal(t, "20", strings.TrimSpace(read), "the restart read the items after the failed chunk's checkpoint")

	// The step's history and the schedules, for the documentation.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#steps a"))))
	waitFor(t, ctx, `document.querySelector("#chart")`)
	require.Equal(t, 6, eval[int](t, ctx, `document.querySelectorAll("#chart rect").length`), "a bar per run")
	screenshot(t, ctx, "step-history")
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.srv.URL+"/schedules"), chromedp.WaitVisible(chromedp.CSS("#schedules"))))
	screenshot(t, ctx, "schedules")
}

// TestBrowserReadOnly: without AllowActions the buttons are absent, and a
// POST the page itself sends is refused with 403.
func TestBrowserReadOnly(t *testing.T) {
	ctx := browser(t)
	f := newFixture(t, dashboard.Options{})
	f.fail.Store(1)
	failed := f.run(batch.JobParameters{"day": batch.StringParam("1")})
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(f.srv.URL+"/executions/"+strconv.FormatInt(failed.ID, 10)),
		chromedp.WaitVisible(chromedp.CSS("#exit"))))
	require.Zero(t, eval[int](t, ctx, `document.querySelectorAll("button, form[method=post]").length`))
	status := eval[int](t, ctx, `fetch(location.pathname + "/restart", {method: "POST"}).then(r => r.status)`, chromedp.EvalAwaitPromise)
	require.Equal(t, 403, status)
	require.Len(t, f.executions(), 1, "nothing launched")
}
