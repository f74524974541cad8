package launcher

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/postgres"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

// Exit codes of the command-line runner.
const (
	ExitCompleted   = 0   // the execution COMPLETED (or the command succeeded)
	ExitFailed      = 1   // the execution FAILED
	ExitUsage       = 2   // usage or configuration error; nothing was run
	ExitStopped     = 3   // the execution STOPPED (on request or signal); restartable
	ExitRefused     = 4   // the launch was refused: the instance completed, is running, was abandoned or may not restart
	ExitInterrupted = 130 // a second signal ended the process before the execution could record its end
)

// DefaultDB is the job repository the command-line runner uses when neither
// -db nor BATCH_DB is set: an SQLite file in the working directory.
const DefaultDB = "batch.db"

// Main is the whole main function of a batch program: it runs the command
// line in os.Args against the registry's jobs and exits with the runner's
// exit code. It is Program{Registry: reg}.Main().
//
//	func main() {
//		var jobs launcher.Registry
//		jobs.MustRegister("import", newImportJob)
//		launcher.Main(&jobs)
//	}
func Main(reg *Registry) {
	Program{Registry: reg}.Main()
}

// Program is a batch program's command line: its jobs, and what it brings of
// its own instead of what the command line would open.
type Program struct {
	// Registry holds the jobs. Required.
	Registry *Registry
	// Repository, when set, is the job repository, for a program that
	// already has one (on its own connection pool: see postgres.New); -db
	// and BATCH_DB are then refused, and Repository is not closed. Default:
	// the one -db names, opened and closed by the command.
	Repository repository.JobRepository
	// Logger receives the logs. Default: text lines on Stderr at the level
	// of -log-level.
	Logger *slog.Logger
	// Stdout and Stderr default to os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
}

// Main runs the command line in os.Args and exits with its exit code.
func (p Program) Main() {
	os.Exit(p.Run(context.Background(), os.Args[1:]))
}

const usage = `usage: %[1]s [flags] command [arguments]

commands:
  run [JOB] [PARAM ...]    launch JOB (or restart its failed/stopped instance) and wait for it;
                           JOB may be left out when the program has only one
  restart EXECUTION_ID     restart the instance of a failed or stopped execution
  stop EXECUTION_ID        ask a running execution to stop at its next chunk boundary
  abandon EXECUTION_ID     mark a failed or stopped execution as never to be restarted
  status [JOB|EXECUTION_ID] list recent executions, or describe one
  jobs                     list the jobs this program can run

parameters:
  name=value               identifying string parameter
  name(type)=value         typed: string, int, float, bool, time (RFC 3339), date (2006-01-02)
  -name=value, -name(type)=value   not identifying: recorded, but not part of the instance's identity

exit codes: 0 completed, 1 failed, 2 usage or configuration error, 3 stopped,
  4 launch refused (instance completed, running, abandoned or not restartable)

flags:
`

// Run runs one command line (without the program name) and returns the exit
// code. Main calls it with os.Args; tests and programs with their own main
// call it directly.
func (p Program) Run(ctx context.Context, args []string) int {
	reg, stdout, stderr := p.Registry, p.Stdout, p.Stderr
	if stdout == nil {
		stdout = os.Stdout
	}
	if stderr == nil {
		stderr = os.Stderr
	}
	if reg == nil {
		reg = &Registry{}
	}
	prog := filepath.Base(os.Args[0])
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The default is resolved after parsing, so that a URL in BATCH_DB is
	// never printed as the flag's default.
	dbFlag := fs.String("db", "", "job repository: an SQLite file path or a postgres:// URL (default: $BATCH_DB, else "+DefaultDB+")")
	leaseFlag := fs.String("lease", envOr("BATCH_LEASE", batch.DefaultLease.String()),
		"how old a running execution's heartbeat may be before it counts as crashed (env BATCH_LEASE)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(stderr, usage, prog)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitCompleted
		}
		return ExitUsage
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "%s: %s\n", prog, fmt.Sprintf(format, a...))
		return ExitUsage
	}
	if p.Repository != nil && (*dbFlag != "" || os.Getenv("BATCH_DB") != "") {
		return fail("-db and BATCH_DB cannot be used: this program has its own job repository")
	}
	if *dbFlag == "" {
		*dbFlag = envOr("BATCH_DB", DefaultDB)
	}
	lease, err := time.ParseDuration(*leaseFlag)
	if err != nil || lease <= 0 {
		return fail("invalid -lease %q: want a positive Go duration such as 30s", *leaseFlag)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fail("invalid -log-level %q", *logLevel)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return ExitUsage
	}
	cmd, rest := rest[0], rest[1:]

	// Check what can be checked before touching the database.
	var (
		params batch.JobParameters
		execID int64
	)
	switch cmd {
	case "run":
		names := reg.Names()
		// A program with one job may leave its name out.
		if len(names) == 1 && (len(rest) == 0 || rest[0] != names[0] && strings.Contains(rest[0], "=")) {
			rest = append([]string{names[0]}, rest...)
		}
		if len(rest) == 0 {
			return fail("run: missing job name (jobs: %s)", strings.Join(names, ", "))
		}
		if !slices.Contains(names, rest[0]) {
			return fail("run: unknown job %q (jobs: %s)", rest[0], strings.Join(names, ", "))
		}
		if params, err = batch.ParseParameters(rest[1:]); err != nil {
			return fail("run %s: %v", rest[0], err)
		}
	case "restart", "stop", "abandon":
		if len(rest) != 1 {
			return fail("%s: want exactly one execution id", cmd)
		}
		if execID, err = strconv.ParseInt(rest[0], 10, 64); err != nil || execID <= 0 {
			return fail("%s: invalid execution id %q", cmd, rest[0])
		}
	case "status":
		if len(rest) > 1 {
			return fail("status: want at most one job name or execution id")
		}
	case "jobs":
		for _, n := range reg.Names() {
			fmt.Fprintln(stdout, n)
		}
		return ExitCompleted
	default:
		return fail("unknown command %q (run %s -h for help)", cmd, prog)
	}

	logger := p.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	}
	repo := p.Repository
	if repo == nil {
		var closeRepo func()
		repo, closeRepo, err = openRepository(ctx, *dbFlag, cmd == "run" || cmd == "restart")
		if err != nil {
			return fail("%v", err)
		}
		defer closeRepo()
	}
	l, err := New(Config{Registry: reg, Repository: repo, Lease: lease, Logger: logger, Stdout: stdout})
	if err != nil {
		return fail("%v", err)
	}

	switch cmd {
	case "run":
		return runJob(ctx, l, stdout, stderr, prog, rest[0], params)
	case "restart":
		prev, err := l.Repository().JobExecution(ctx, execID)
		if err != nil {
			return fail("restart: %v", err)
		}
		if prev.Status == batch.StatusCompleted {
			return fail("restart: execution %d of job %s completed; nothing to restart", prev.ID, prev.JobName)
		}
		if !slices.Contains(reg.Names(), prev.JobName) {
			return fail("restart: execution %d is of job %q, which this program does not have", prev.ID, prev.JobName)
		}
		return runJob(ctx, l, stdout, stderr, prog, prev.JobName, prev.Parameters)
	case "stop":
		if err := l.Stop(ctx, execID); err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(stdout, "execution %d: stop requested; it stops at its next chunk boundary\n", execID)
		return ExitCompleted
	case "abandon":
		if err := l.Abandon(ctx, execID); err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(stdout, "execution %d: abandoned\n", execID)
		return ExitCompleted
	default: // status
		return status(ctx, l, rest, stdout, fail)
	}
}

func status(ctx context.Context, l *Launcher, rest []string, stdout io.Writer, fail func(string, ...any) int) int {
	if len(rest) == 1 {
		if id, err := strconv.ParseInt(rest[0], 10, 64); err == nil {
			s, err := l.Summary(ctx, id)
			if err != nil {
				return fail("status: %v", err)
			}
			fmt.Fprint(stdout, s)
			return ExitCompleted
		}
	}
	q := batch.ExecutionQuery{Limit: 20}
	if len(rest) == 1 {
		q.JobName = rest[0]
	}
	es, err := l.Executions(ctx, q)
	if err != nil {
		return fail("status: %v", err)
	}
	if len(es) == 0 {
		fmt.Fprintln(stdout, "no executions")
		return ExitCompleted
	}
	l.writeExecutions(stdout, es)
	return ExitCompleted
}

func runJob(ctx context.Context, l *Launcher, stdout, stderr io.Writer, prog, name string, params batch.JobParameters) int {
	job, err := l.Job(name, params)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return ExitUsage
	}
	exec, err := l.Start(ctx, job, params)
	var le *batch.LaunchError
	switch {
	case errors.As(err, &le):
		fmt.Fprintf(stderr, "%s: %v\n%s\n", prog, err, refusalAdvice(le))
		return ExitRefused
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return ExitUsage
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-done:
			return
		case sig := <-sigs:
			fmt.Fprintf(stderr, "%s: %v: stopping execution %d at the next chunk boundary (signal again to exit at once)\n", prog, sig, exec.ID)
			// The in-process stop is immediate; recording STOPPING may wait
			// for the database, and must not hold up a second signal.
			go func() {
				if err := l.Stop(context.WithoutCancel(ctx), exec.ID); err != nil {
					fmt.Fprintf(stderr, "%s: stop: %v\n", prog, err)
				}
			}()
		}
		select {
		case <-done:
		case sig := <-sigs:
			fmt.Fprintf(stderr, "%s: %v again: exiting; execution %d can be restarted once its lease expires\n", prog, sig, exec.ID)
			os.Exit(ExitInterrupted)
		}
	}()
	final, err := l.Wait(context.WithoutCancel(ctx), exec.ID)
	if s, serr := l.Summary(context.WithoutCancel(ctx), exec.ID); serr == nil {
		fmt.Fprint(stdout, s)
	}
	if err != nil || final == nil {
		// Failed, fenced off, or its end could not be recorded.
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return ExitFailed
	}
	switch final.Status {
	case batch.StatusCompleted:
		return ExitCompleted
	case batch.StatusStopped:
		return ExitStopped
	}
	fmt.Fprintf(stderr, "%s: execution %d ended %s\n", prog, final.ID, final.Status)
	return ExitFailed
}

// refusalAdvice says what to do about a refused launch.
func refusalAdvice(le *batch.LaunchError) string {
	switch {
	case errors.Is(le.Err, batch.ErrJobComplete):
		return "it completed: run it with other identifying parameters for a new instance"
	case errors.Is(le.Err, batch.ErrJobRunning):
		return fmt.Sprintf("wait for execution %d to end, or stop it (stop %d)", le.ExecutionID, le.ExecutionID)
	case errors.Is(le.Err, batch.ErrJobAbandoned):
		return "it was abandoned and is never restarted: run it with other identifying parameters for a new instance"
	case errors.Is(le.Err, batch.ErrJobNotRestartable):
		return "the job prevents restarts: run it with other identifying parameters for a new instance"
	}
	return ""
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// openRepository opens and migrates the job repository named by db: a
// postgres:// URL or key=value connection string, or an SQLite file path
// (optionally written sqlite:PATH). An SQLite file that does not exist is
// created only when create is set. Errors never contain a password.
func openRepository(ctx context.Context, db string, create bool) (repository.JobRepository, func(), error) {
	ref := parseDB(db)
	switch ref.kind {
	case dbPostgres:
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		repo, err := postgres.Open(cctx, db, postgres.Config{})
		if err != nil {
			return nil, nil, fmt.Errorf("job repository %s: %s", ref.shown, ref.scrub(err.Error()))
		}
		if err := repo.Migrate(cctx); err != nil {
			_ = repo.Close()
			return nil, nil, fmt.Errorf("job repository %s: %s", ref.shown, ref.scrub(err.Error()))
		}
		return repo, func() { _ = repo.Close() }, nil
	case dbInvalid:
		return nil, nil, fmt.Errorf("invalid -db %s: want an SQLite file path or a postgres:// URL", ref.shown)
	}
	path := strings.TrimPrefix(db, "sqlite:")
	if path == "" {
		return nil, nil, fmt.Errorf("invalid -db %q: empty SQLite file path", db)
	}
	if !create {
		if _, err := os.Stat(path); err != nil {
			return nil, nil, fmt.Errorf("no job repository at %s (-db): %v", path, errors.Unwrap(err))
		}
	}
	repo, err := sqlite.Open(ctx, path, sqlite.Config{})
	if err != nil {
		return nil, nil, err
	}
	if err := repo.Migrate(ctx); err != nil {
		_ = repo.Close()
		return nil, nil, fmt.Errorf("job repository %s: %v", path, err)
	}
	return repo, func() { _ = repo.Close() }, nil
}

type dbKind int

const (
	dbSQLite dbKind = iota
	dbPostgres
	dbInvalid
)

// dbRef is a -db value understood well enough to open it and to show it
// without its secrets.
type dbRef struct {
	kind    dbKind
	shown   string   // printable: no password, no query string
	secrets []string // passwords found in it, to scrub from messages
}

var (
	keywordDSN  = regexp.MustCompile(`^\s*(host|hostaddr|port|user|password|dbname|sslmode|service)\s*=`)
	keywordPass = regexp.MustCompile(`password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)
)

func parseDB(db string) dbRef {
	switch {
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		scheme, rest, _ := strings.Cut(db, "://")
		ref := dbRef{kind: dbPostgres}
		// The password may hold '@', '/', '#' or '?': the host starts after
		// the last '@'.
		user := ""
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			userinfo := rest[:at]
			rest = rest[at+1:]
			name, pass, hasPass := strings.Cut(userinfo, ":")
			user = name + "@"
			if hasPass && pass != "" {
				ref.secrets = append(ref.secrets, pass)
				if p, err := url.PathUnescape(pass); err == nil && p != pass {
					ref.secrets = append(ref.secrets, p)
				}
			}
		}
		hostPath, query, _ := strings.Cut(rest, "?")
		if q, err := url.ParseQuery(query); err == nil {
			for _, p := range q["password"] {
				if p != "" {
					ref.secrets = append(ref.secrets, p)
				}
			}
		}
		for _, kv := range strings.Split(query, "&") {
			if k, v, ok := strings.Cut(kv, "="); ok && k == "password" && v != "" {
				ref.secrets = append(ref.secrets, v)
			}
		}
		ref.shown = scheme + "://" + user + hostPath
		return ref
	case keywordDSN.MatchString(db):
		ref := dbRef{kind: dbPostgres}
		for _, m := range keywordPass.FindAllStringSubmatch(db, -1) {
			ref.secrets = append(ref.secrets, strings.Trim(m[1], "'"))
		}
		ref.shown = "postgres " + strings.TrimSpace(keywordPass.ReplaceAllString(db, "password=xxxxx"))
		return ref
	case strings.Contains(db, "://"):
		scheme, _, _ := strings.Cut(db, "://")
		return dbRef{kind: dbInvalid, shown: scheme + "://..."}
	}
	return dbRef{kind: dbSQLite, shown: db}
}

// scrub removes the passwords of the reference from a message.
func (r dbRef) scrub(msg string) string {
	for _, s := range r.secrets {
		msg = strings.ReplaceAll(msg, s, "xxxxx")
	}
	return msg
}
