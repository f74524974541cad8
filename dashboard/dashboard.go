package dashboard

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
)

// Action names what a POST to the dashboard asks for, as Authorize sees it.
type Action string

// The actions. Each is a button on the page it acts from, shown only when
// Options.AllowActions is set and Authorize allows it.
const (
	ActionStop    Action = "stop"    // ask a running execution to stop at its next chunk boundary
	ActionRestart Action = "restart" // restart a FAILED or STOPPED execution
	ActionAbandon Action = "abandon" // mark a FAILED or STOPPED execution never to be restarted
	ActionTrigger Action = "trigger" // fire a schedule now
	ActionPause   Action = "pause"   // pause a schedule
	ActionResume  Action = "resume"  // resume a paused schedule
)

// Operator carries out the actions. A *launcher.Launcher is one: restart
// and trigger build the job from its registry and run it in this process.
type Operator interface {
	Stop(ctx context.Context, executionID int64) error
	Abandon(ctx context.Context, executionID int64) error
	StartRestart(ctx context.Context, executionID int64) (*batch.JobExecution, error)
	TriggerSchedule(ctx context.Context, name string) (*batch.JobExecution, error)
	PauseSchedule(ctx context.Context, name string, paused bool) error
	Wait(ctx context.Context, executionID int64) (*batch.JobExecution, error)
	// JobNames are the jobs it can restart and fire.
	JobNames() []string
}

// Options configures a dashboard.
type Options struct {
	// Title heads every page. Default "chunkwise".
	Title string
	// AllowActions turns on the buttons that act: stop, restart, abandon,
	// and a schedule's trigger, pause and resume. Default false: the
	// dashboard only reads, and refuses every POST with 403 Forbidden.
	AllowActions bool
	// Authorize, when set, is asked before every action and before a page
	// shows its button; an error refuses it (403, with the error's text).
	// Authenticate the user here, or in a handler around the dashboard
	// (which then guards the pages that read too).
	Authorize func(r *http.Request, action Action) error
	// Operator carries the actions out; with none, AllowActions has no
	// effect. Restart and trigger need the job in Operator.JobNames.
	Operator Operator
	// TrustedOrigins are origins besides the dashboard's own from which a
	// browser may send actions ("https://ops.example.com"), for a
	// dashboard behind a proxy that changes the host.
	TrustedOrigins []string
	// Location is the time zone times are shown in. Default UTC.
	Location *time.Location
	// PageSize is how many executions a page of the list shows. Default 50.
	PageSize int
	// History is how many executions of a job the step history page looks
	// back over. Default 30.
	History int
	// Refresh is how often a page that shows a running execution reloads
	// itself. Default 2s.
	Refresh time.Duration
	// Logger receives a line per action. Default: discard.
	Logger *slog.Logger
}

// Handler is the dashboard: an http.Handler that serves its pages under the
// path it is mounted at (with http.StripPrefix, under any prefix).
type Handler struct {
	repo  repository.JobRepository
	opts  Options
	mux   *http.ServeMux
	pages map[string]*template.Template
	csrf  *http.CrossOriginProtection

	mu      sync.Mutex
	started map[int64]bool // executions its actions started, still running
	closed  bool           // Shutdown was called: no more actions
}

//go:embed templates static
var assets embed.FS

// New returns a dashboard over the job repository repo. It reads: its
// schedules when repo is a repository.ScheduleStore, its rejects when it is
// a repository.RejectStore. It errs only on invalid options.
func New(repo repository.JobRepository, opts Options) (*Handler, error) {
	if repo == nil {
		return nil, errors.New("dashboard: no job repository")
	}
	if opts.Title == "" {
		opts.Title = "chunkwise"
	}
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 50
	}
	if opts.History <= 0 {
		opts.History = 30
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Handler{repo: repo, opts: opts, mux: http.NewServeMux(), csrf: http.NewCrossOriginProtection(), started: map[int64]bool{}}
	for _, o := range opts.TrustedOrigins {
		if err := h.csrf.AddTrustedOrigin(o); err != nil {
			return nil, fmt.Errorf("dashboard: trusted origin: %w", err)
		}
	}
	var err error
	if h.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(assets, "static")
	h.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	h.mux.HandleFunc("GET /{$}", h.executions)
	h.mux.HandleFunc("GET /executions/{id}", h.execution)
	h.mux.HandleFunc("GET /jobs/{job}/steps/{step}", h.stepHistory)
	h.mux.HandleFunc("GET /schedules", h.schedules)
	h.mux.HandleFunc("POST /executions/{id}/{action}", h.executionAction)
	h.mux.HandleFunc("POST /schedules/{name}/{action}", h.scheduleAction)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	h.mux.ServeHTTP(w, r)
}

// Shutdown stops the executions the dashboard's actions started (restart,
// trigger) at their next chunk boundary — they stay restartable — and
// waits for them to end, or for ctx's. The dashboard takes no action after
// it (503 Service Unavailable); its pages still read.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	ids := make([]int64, 0, len(h.started))
	for id := range h.started {
		ids = append(ids, id)
	}
	h.mu.Unlock()
	if len(ids) == 0 || h.opts.Operator == nil {
		return nil
	}
	for _, id := range ids {
		if err := h.opts.Operator.Stop(ctx, id); err != nil && !errors.Is(err, batch.ErrNotRunning) {
			h.opts.Logger.Warn("dashboard: stop", "execution", id, "error", err)
		}
	}
	for _, id := range ids {
		if _, err := h.opts.Operator.Wait(ctx, id); err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// run records that execution e, started by an action, runs until it ends.
func (h *Handler) run(e *batch.JobExecution) {
	h.mu.Lock()
	h.started[e.ID] = true
	h.mu.Unlock()
	go func() {
		_, _ = h.opts.Operator.Wait(context.Background(), e.ID)
		h.mu.Lock()
		delete(h.started, e.ID)
		h.mu.Unlock()
	}()
}

// allowed reports whether the page of r may show action's button.
func (h *Handler) allowed(r *http.Request, a Action) bool {
	if !h.opts.AllowActions || h.opts.Operator == nil {
		return false
	}
	return h.opts.Authorize == nil || h.opts.Authorize(r, a) == nil
}

// refuse checks a POST for action a: actions allowed, the request from the
// dashboard's own origin, and authorized. It answers the refusal itself.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, a Action) bool {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	var err error
	switch {
	case !h.opts.AllowActions || h.opts.Operator == nil:
		err = errors.New("this dashboard is read-only")
	case closed:
		h.fail(w, r, http.StatusServiceUnavailable, errors.New("the dashboard is shutting down: it takes no more actions"))
		return true
	default:
		if err = h.csrf.Check(r); err != nil {
			err = fmt.Errorf("refused: %w", err)
		} else if h.opts.Authorize != nil {
			err = h.opts.Authorize(r, a)
		}
	}
	if err != nil {
		h.opts.Logger.Warn("dashboard: action refused", "action", a, "path", r.URL.Path, "error", err)
		h.fail(w, r, http.StatusForbidden, err)
		return true
	}
	return false
}

// base returns the path the dashboard is mounted at, without its trailing
// slash: what http.StripPrefix took off the request's path.
func base(r *http.Request) string {
	full := r.URL.RawPath
	if full == "" {
		full = r.URL.EscapedPath()
	}
	uri := r.RequestURI
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	if strings.HasSuffix(uri, full) {
		return strings.TrimSuffix(strings.TrimSuffix(uri, full), "/")
	}
	return ""
}
