package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/dashboard"
	"github.com/chunkwise/chunkwise/internal/lastrun"
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
	// MeterProvider, TracerProvider and ChunkSpans are the launcher's (see
	// Config): where the metrics and spans of the runs go. Default:
	// OpenTelemetry's global providers.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
	ChunkSpans     bool
	// Dashboard configures the dashboard that serve -http serves. Default:
	// read-only. With AllowActions, its actions run on this program's
	// launcher (Operator is set to it when nil): set Authorize too, for
	// anyone who reaches the address may otherwise act.
	Dashboard dashboard.Options
}

// Main runs the command line in os.Args and exits with its exit code.
func (p Program) Main() {
	os.Exit(p.Run(context.Background(), os.Args[1:]))
}

const usage = `usage: %[1]s [flags] command [arguments] [flags]

commands:
  run [-next] [JOB] [PARAM ...]  launch JOB (or restart its failed/stopped instance) and wait
                           for it, showing its progress (-progress auto|bars|log|off: bars on a
                           terminal, else a log line per step every -progress-every, 10s);
                           JOB may be left out when the program has only one;
                           -next gives it a new instance (run.id one more than the last);
                           -dry-run runs it from the start, rolls every chunk back and
                           records nothing
  restart EXECUTION_ID     restart the instance of a failed or stopped execution
  stop EXECUTION_ID        ask a running execution to stop at its next chunk boundary
  abandon [-force] EXECUTION_ID  mark a failed or stopped execution as never to be restarted;
                           -force: also one that runs or stops (a stuck process)
  status [JOB|EXECUTION_ID] list recent executions, or describe one (never writes); a running
                           step's line says its rate, how far it is, its ETA, or that it is
                           stalled (-stalled 5m); -watch prints the list again while executions run
  rejects [-json] EXECUTION_ID  the items an execution skipped, with where and why (-json: as
                           JSON lines, with the items)
  replay EXECUTION_ID      run the items an execution's processors and writers skipped again,
                           through the job as it is now, as a new execution linked to it
                           (replay.of=EXECUTION_ID); once: a failed replay is restarted;
                           -dry-run rolls it back and records nothing
  prune [JOB] [-older-than AGE] [-keep-last N] [-restartable] [-dry-run]
                           delete the executions (of JOB, or of every job) that ended more than
                           AGE ago (30d, 12h) and are not among their job's N newest, a batch per
                           transaction; running instances and, without -restartable, instances
                           that can still be restarted are kept whole; -dry-run: only say what
                           would go
  backfill [JOB] -param NAME -from A -to B [-step S] [-parallel N] [PARAM ...]
                           run JOB once per value of NAME from A to B (dates, times or integers;
                           -step: 24h by default for dates and times, 1 for integers), at most N
                           at once; values that completed before are skipped, failed or stopped
                           ones restarted: run it again to resume
  worker [-slots N]        run partitions handed out through NATS (-nats) until SIGINT or
                           SIGTERM, N at a time (default 1); a signal takes no more and hands
                           those running back at their next chunk boundary, for other workers
                           to resume at once; a second exits at once (another worker resumes
                           them from their checkpoints once their lease expires)
  serve [-http ADDR]       fire the program's schedules (every replica may: each due time fires
                           once), with -nats also serve partitions as worker does, and with
                           -http serve the dashboard on ADDR (:8080; read-only unless the
                           program allows actions), until SIGINT or SIGTERM: a signal stops
                           the running executions at their next chunk boundary (restartable)
                           and hands partitions back
  schedules                list the schedules in the job repository: next due time, paused,
                           last fire and its execution
  schedule pause|resume|trigger NAME
                           pause or resume a schedule for every replica; trigger runs its job
                           now, here, for the fire time now
  jobs                     list the jobs this program can run, with their parameters
  migrate                  create or upgrade the job repository's tables

parameters (no quoting needed in sh or bash):
  name=value               identifying string parameter
  name:type=value          typed: string, int, float, bool, time (RFC 3339), date (2006-01-02)
  +name=value, +name:type=value   not identifying: recorded, but not part of the instance's identity

Flags may come before or after the command; "--" ends them.

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
	fs.SetOutput(io.Discard)
	// The default is resolved after parsing, so that a URL in BATCH_DB is
	// never printed as the flag's default.
	dbFlag := fs.String("db", "", "job repository: an SQLite file path or a postgres:// URL (default: $BATCH_DB, else "+DefaultDB+")")
	leaseFlag := fs.String("lease", envOr("BATCH_LEASE", batch.DefaultLease.String()),
		"the lease of the executions this command starts: how old their heartbeat may grow before they count as crashed (env BATCH_LEASE)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	natsFlag := fs.String("nats", "", "NATS server URL (default: $BATCH_NATS): run, restart, backfill, replay and serve hand partitions to workers through it; worker and serve serve them")
	slots := fs.Int("slots", 1, "worker, serve: how many partitions run at once")
	httpAddr := fs.String("http", "", "serve: serve the dashboard on this address (:8080, 127.0.0.1:8080)")
	remoteTimeout := fs.Duration("remote-timeout", 0, "with -nats: how long a partitioned step waits for its partitions before it fails those not ended; 0: no bound")
	migrateFlag := fs.String("migrate", envOr("BATCH_MIGRATE", "auto"),
		"auto: run and restart create or upgrade the repository's tables; off: they refuse an outdated schema, for a role that may not change it (env BATCH_MIGRATE)")
	next := fs.Bool("next", false, "run: launch a new instance, with run.id one more than the job's last")
	force := fs.Bool("force", false, "abandon: abandon an execution even while it runs or stops (its process, if alive, is fenced off)")
	olderThan := fs.String("older-than", "", "prune: delete executions that ended longer ago than this: a Go duration, or days such as 30d")
	keepLast := fs.Int("keep-last", 0, "prune: keep each job's N newest executions, whatever their age")
	restartable := fs.Bool("restartable", false, "prune: also delete executions of instances that could still be restarted")
	dryRun := fs.Bool("dry-run", false, "run, replay: roll every chunk back instead of committing it and record nothing; prune: say what would be deleted, delete nothing")
	progressFlag := fs.String("progress", progressAuto, "run, restart, replay: auto (bars on a terminal, else log lines), bars, log or off")
	progressEvery := fs.Duration("progress-every", 10*time.Second, "run, restart, replay: how often -progress=log writes a line per running step")
	stalledAfter := fs.Duration("stalled", 5*time.Minute, "status: call a running step stalled when it has not committed for this long")
	asJSON := fs.Bool("json", false, "rejects: write JSON lines, with the items")
	watch := fs.Bool("watch", false, "status: print the list again every 2 seconds while executions run")
	bfParam := fs.String("param", "", "backfill: the parameter that takes each value")
	bfFrom := fs.String("from", "", "backfill: the first value")
	bfTo := fs.String("to", "", "backfill: the last value")
	bfStep := fs.String("step", "", "backfill: between two values: a duration (24h, 7d) for dates and times, an integer for integers")
	bfParallel := fs.Int("parallel", 1, "backfill: how many values run at once")
	printUsage := func() {
		fmt.Fprintf(stderr, usage, prog)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "%s: %s\n", prog, fmt.Sprintf(format, a...))
		return ExitUsage
	}
	pos, err := parseArgs(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage()
		return ExitCompleted
	}
	if err != nil {
		return fail("%v (%s -h for help)", err, prog)
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
	if *migrateFlag != "auto" && *migrateFlag != "off" {
		return fail("invalid -migrate %q: want auto or off", *migrateFlag)
	}
	if len(pos) == 0 {
		printUsage()
		return ExitUsage
	}
	cmd, rest := pos[0], pos[1:]
	if *next && cmd != "run" {
		return fail("-next goes with run only")
	}
	if *force && cmd != "abandon" {
		return fail("-force goes with abandon only")
	}
	if cmd != "prune" && (*olderThan != "" || *keepLast != 0 || *restartable) {
		return fail("-older-than, -keep-last and -restartable go with prune only")
	}
	trigger := cmd == "schedule" && len(rest) > 0 && rest[0] == "trigger"
	if cmd != "run" && cmd != "restart" && cmd != "replay" && !trigger && (*progressFlag != progressAuto || *progressEvery != 10*time.Second) {
		return fail("-progress and -progress-every go with run, restart, replay and schedule trigger only")
	}
	mode, err := progressMode(*progressFlag, stderr)
	if err != nil {
		return fail("%v", err)
	}
	if *progressEvery <= 0 {
		return fail("invalid -progress-every %s: want a positive duration", *progressEvery)
	}
	if *natsFlag == "" {
		*natsFlag = os.Getenv("BATCH_NATS")
	}
	if cmd != "worker" && cmd != "serve" && *slots != 1 {
		return fail("-slots goes with worker and serve only")
	}
	if cmd != "serve" && *httpAddr != "" {
		return fail("-http goes with serve only")
	}
	if *remoteTimeout != 0 && (*natsFlag == "" || cmd == "worker") {
		return fail("-remote-timeout goes with -nats, and a command that runs a job")
	}
	if *remoteTimeout < 0 {
		return fail("invalid -remote-timeout %s: want 0 or more", *remoteTimeout)
	}
	if *asJSON && cmd != "rejects" {
		return fail("-json goes with rejects only")
	}
	if cmd != "status" && (*watch || *stalledAfter != 5*time.Minute) {
		return fail("-watch and -stalled go with status only")
	}
	if *dryRun && cmd != "prune" && cmd != "run" && cmd != "replay" {
		return fail("-dry-run goes with run, replay and prune only")
	}
	if *dryRun && *next {
		return fail("run: -dry-run and -next: a dry run is a new instance already")
	}
	if cmd != "backfill" && (*bfParam != "" || *bfFrom != "" || *bfTo != "" || *bfStep != "" || *bfParallel != 1) {
		return fail("-param, -from, -to, -step and -parallel go with backfill only")
	}

	// Check what can be checked before touching the database.
	var (
		params batch.JobParameters
		execID int64
		prune  repository.PruneRequest
		values []batch.JobParameter
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
		if _, given := params[batch.RunIDParam]; given && *next {
			return fail("run %s: -next sets %s; do not give it too", rest[0], batch.RunIDParam)
		}
		// Parameters are checked before the database is touched.
		if _, err := reg.Parameters(rest[0]).Apply(params); err != nil {
			return fail("run %s: %v", rest[0], err)
		}
	case "backfill":
		names := reg.Names()
		// A program with one job may leave its name out.
		if len(names) == 1 && (len(rest) == 0 || rest[0] != names[0] && strings.Contains(rest[0], "=")) {
			rest = append([]string{names[0]}, rest...)
		}
		if len(rest) == 0 || strings.Contains(rest[0], "=") {
			return fail("backfill: missing job name (jobs: %s)", strings.Join(names, ", "))
		}
		if !slices.Contains(names, rest[0]) {
			return fail("backfill: unknown job %q (jobs: %s)", rest[0], strings.Join(names, ", "))
		}
		if *bfParam == "" || *bfFrom == "" || *bfTo == "" {
			return fail("backfill %s: want -param NAME, -from and -to", rest[0])
		}
		if *bfParallel < 1 {
			return fail("backfill %s: invalid -parallel %d: want at least 1", rest[0], *bfParallel)
		}
		if params, err = batch.ParseParameters(rest[1:]); err != nil {
			return fail("backfill %s: %v", rest[0], err)
		}
		if _, given := params[*bfParam]; given {
			return fail("backfill %s: %s takes the backfill's values; do not give it too", rest[0], *bfParam)
		}
		var typ batch.ParamType
		for _, spec := range reg.Parameters(rest[0]) {
			if spec.Name == *bfParam {
				typ = spec.Type
				if typ == "" {
					typ = batch.ParamString
				}
			}
		}
		if values, err = backfillValues(typ, *bfFrom, *bfTo, *bfStep); err != nil {
			return fail("backfill %s: %v", rest[0], err)
		}
		// Parameters are checked before the database is touched.
		first := maps.Clone(params)
		first[*bfParam] = values[0]
		if _, err := reg.Parameters(rest[0]).Apply(first); err != nil {
			return fail("backfill %s: %v", rest[0], err)
		}
	case "restart", "stop", "abandon", "rejects", "replay":
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
	case "prune":
		if len(rest) > 1 {
			return fail("prune: want at most one job name")
		}
		if len(rest) == 1 {
			prune.Job = rest[0]
		}
		if *olderThan != "" {
			if prune.OlderThan, err = parseAge(*olderThan); err != nil {
				return fail("prune: invalid -older-than %q: want a positive duration such as 30d or 12h", *olderThan)
			}
		}
		if *keepLast < 0 {
			return fail("prune: invalid -keep-last %d: want a positive count", *keepLast)
		}
		prune.KeepLast, prune.Restartable, prune.DryRun = *keepLast, *restartable, *dryRun
		if err := prune.Check(); err != nil {
			return fail("prune: give -older-than, -keep-last or both: without them every execution would go")
		}
	case "migrate":
		if len(rest) > 0 {
			return fail("migrate: takes no arguments")
		}
	case "worker":
		if len(rest) > 0 {
			return fail("worker: takes no arguments")
		}
		if *natsFlag == "" {
			return fail("worker: give the NATS server with -nats URL or BATCH_NATS")
		}
		if *slots < 1 {
			return fail("worker: invalid -slots %d: want at least 1", *slots)
		}
	case "serve":
		if len(rest) > 0 {
			return fail("serve: takes no arguments")
		}
		if len(reg.Schedules()) == 0 && *natsFlag == "" && *httpAddr == "" {
			return fail("serve: this program declares no schedules, and without -nats or -http there is nothing to serve")
		}
	case "schedules":
		if len(rest) > 0 {
			return fail("schedules: takes no arguments")
		}
	case "schedule":
		if len(rest) != 2 || rest[0] != "pause" && rest[0] != "resume" && rest[0] != "trigger" {
			return fail("schedule: want pause, resume or trigger, and a schedule's name")
		}
	case "jobs":
		if len(rest) > 0 {
			return fail("jobs: takes no arguments")
		}
		for _, n := range reg.Names() {
			fmt.Fprintln(stdout, n)
			for _, s := range reg.Parameters(n) {
				fmt.Fprintf(stdout, "  %s\n", s)
			}
		}
		return ExitCompleted
	default:
		return fail("unknown command %q (%s -h for help)", cmd, prog)
	}

	// The log goes through errOut, which the progress bars take over while
	// they are drawn; everything else to stderr goes through it too.
	errOut := &switchWriter{w: stderr}
	logger := p.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: level}))
	}
	repo := p.Repository
	if repo == nil {
		mode := openReadOnly
		switch {
		case cmd == "migrate":
			mode = openMigrate
		case runsJobs(cmd, rest) && *migrateFlag == "auto":
			mode = openMigrate
		case runsJobs(cmd, rest):
			mode = openCreate
		}
		var (
			closeRepo func()
			applied   []string
		)
		repo, closeRepo, applied, err = openRepository(ctx, *dbFlag, mode, prog)
		if err != nil {
			return fail("%v", err)
		}
		defer closeRepo()
		if cmd == "migrate" {
			if len(applied) == 0 {
				fmt.Fprintln(stdout, "job repository: up to date")
			} else {
				fmt.Fprintf(stdout, "job repository: applied %s\n", strings.Join(applied, ", "))
			}
		}
	} else if cmd == "migrate" {
		return fail("migrate: this program has its own job repository; migrate it where it is opened")
	}
	var queue *NATSQueue
	if *natsFlag != "" && runsJobs(cmd, rest) {
		nc, err := nats.Connect(*natsFlag, nats.Name(prog), nats.MaxReconnects(-1))
		if err != nil {
			return fail("nats %s: %v", *natsFlag, err)
		}
		defer nc.Close()
		if queue, err = NewNATSQueue(ctx, NATSConfig{Conn: nc, Logger: logger}); err != nil {
			return fail("%v", err)
		}
	}
	var remote RemoteConfig
	if queue != nil && cmd != "worker" {
		remote.Dispatcher, remote.Timeout = queue, *remoteTimeout
	}
	l, err := New(Config{Registry: reg, Repository: repo, Lease: lease, Logger: logger, Stdout: stdout,
		MeterProvider: p.MeterProvider, TracerProvider: p.TracerProvider, ChunkSpans: p.ChunkSpans, Remote: remote})
	show := progressDisplay{mode: mode, every: *progressEvery, logger: logger, out: errOut}
	if err != nil {
		return fail("%v", err)
	}

	switch cmd {
	case "run":
		if *next {
			id, err := nextRunID(ctx, l, rest[0])
			if err != nil {
				return fail("run %s: -next: %v", rest[0], err)
			}
			params[batch.RunIDParam] = batch.IntParam(id)
		}
		if *dryRun {
			fmt.Fprintln(stdout, "dry run: every chunk is rolled back and nothing is recorded; what the run would do:")
			return runJob(ctx, l.DryRun(), stdout, stderr, prog, rest[0], params, show)
		}
		return runJob(ctx, l, stdout, stderr, prog, rest[0], params, show)
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
		return runJob(ctx, l, stdout, stderr, prog, prev.JobName, prev.Parameters, show)
	case "stop":
		if err := l.Stop(ctx, execID); err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(stdout, "execution %d: stop requested; it stops at its next chunk boundary\n", execID)
		return ExitCompleted
	case "abandon":
		abandon := l.Abandon
		if *force {
			abandon = l.ForceAbandon
			if e, err := l.Repository().JobExecution(ctx, execID); err == nil && e.Status.Running() {
				fmt.Fprintf(stderr, "%s: warning: execution %d is %s (heartbeat %s ago): if its process is still alive it is fenced off "+
					"at its next commit or heartbeat and writes nothing more to the job repository, but what it does elsewhere until then stays done\n",
					prog, e.ID, e.Status, time.Since(e.Heartbeat).Round(time.Second))
			}
		}
		if err := abandon(ctx, execID); err != nil {
			return fail("%v", err)
		}
		fmt.Fprintf(stdout, "execution %d: abandoned\n", execID)
		return ExitCompleted
	case "migrate":
		return ExitCompleted
	case "worker":
		return serveWorker(ctx, l, queue, stderr, prog, *slots)
	case "backfill":
		return backfill(ctx, l, stdout, stderr, prog, rest[0], *bfParam, values, params, *bfParallel)
	case "rejects":
		return rejects(ctx, l, stdout, fail, execID, *asJSON)
	case "serve":
		return serve(ctx, l, queue, stderr, prog, *slots, *httpAddr, p.Dashboard)
	case "schedules":
		list, err := l.Schedules(ctx)
		if err != nil {
			return fail("%v", err)
		}
		writeSchedules(ctx, l, stdout, list)
		return ExitCompleted
	case "schedule":
		if rest[0] == "trigger" {
			job, params, err := l.triggerParams(ctx, rest[1])
			if err != nil {
				return fail("schedule trigger: %v", err)
			}
			return runJob(ctx, l, stdout, stderr, prog, job, params, show)
		}
		if err := l.PauseSchedule(ctx, rest[1], rest[0] == "pause"); err != nil {
			return fail("schedule %s: %v", rest[0], err)
		}
		fmt.Fprintf(stdout, "schedule %s: %sd\n", rest[1], rest[0])
		return ExitCompleted
	case "replay":
		target := l
		if *dryRun {
			target = l.DryRun()
		}
		name, params, err := target.replayLaunch(ctx, execID)
		switch {
		case errors.Is(err, batch.ErrNothingToReplay):
			fmt.Fprintln(stdout, err) // "execution 5 of job x has no rejects: nothing to replay"
			return ExitCompleted
		case err != nil:
			return fail("%v", err)
		case !slices.Contains(reg.Names(), name):
			return fail("replay: execution %d is of job %q, which this program does not have", execID, name)
		}
		if *dryRun {
			fmt.Fprintln(stdout, "dry run: every chunk is rolled back and nothing is recorded; what the replay would do:")
		}
		return runJob(ctx, target, stdout, stderr, prog, name, params, show)
	case "prune":
		res, err := l.Prune(ctx, prune)
		if err != nil {
			return fail("%v", err)
		}
		writePruned(stdout, res, prune.DryRun)
		return ExitCompleted
	default: // status
		return status(ctx, l, rest, stdout, fail, *stalledAfter, *watch)
	}
}

// backfill runs a backfill, printing a line as each value ends and a
// summary at the end. The first SIGINT or SIGTERM stops the running values
// at their next chunk boundary and starts no more; a second exits at once.
func backfill(ctx context.Context, l *Launcher, stdout, stderr io.Writer, prog, name, param string,
	values []batch.JobParameter, params batch.JobParameters, parallel int) int {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		sig, ok := <-sigs
		if !ok {
			return
		}
		fmt.Fprintf(stderr, "%s: %v: stopping the running values at their next chunk boundary, starting no more (signal again to exit at once)\n", prog, sig)
		cancel()
		if sig, ok := <-sigs; ok {
			fmt.Fprintf(stderr, "%s: %v again: exiting; the running values can be restarted once their lease expires\n", prog, sig)
			os.Exit(ExitInterrupted)
		}
	}()
	fmt.Fprintf(stdout, "backfill %s: %s from %s to %s, %d values\n", name, param, values[0], values[len(values)-1], len(values))
	runs := l.Backfill(ctx, name, param, values, params, parallel, func(r BackfillRun) {
		fmt.Fprintf(stdout, "  %s=%s: %s\n", param, r.Value, backfillDetail(r))
	})
	counts := map[string]int{}
	for _, r := range runs {
		counts[r.Status()]++
	}
	var parts []string
	for _, st := range []string{"COMPLETED", "SKIPPED", "FAILED", "STOPPED", "REFUSED", "NOT STARTED"} {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], strings.ToLower(st)))
		}
	}
	fmt.Fprintf(stdout, "\nbackfill %s: %s\n", name, strings.Join(parts, ", "))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  %s\tEXECUTION\tSTATUS\tTOOK\n", strings.ToUpper(param))
	for _, r := range runs {
		id, took := "-", "-"
		if r.Execution != nil {
			id, took = strconv.FormatInt(r.Execution.ID, 10), r.Took.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", r.Value, id, r.Status(), took)
	}
	_ = tw.Flush()
	switch {
	case counts["FAILED"] > 0:
		return ExitFailed
	case counts["STOPPED"] > 0 || counts["NOT STARTED"] > 0:
		return ExitStopped
	case counts["REFUSED"] > 0:
		return ExitRefused
	}
	return ExitCompleted
}

// backfillDetail says in a few words what became of a backfill's value.
func backfillDetail(r BackfillRun) string {
	switch st := r.Status(); {
	case r.Skipped:
		return "already completed, skipped"
	case r.Execution != nil:
		s := fmt.Sprintf("%s (execution %d, %s)", st, r.Execution.ID, r.Took.Round(time.Millisecond))
		if r.Execution.Status != batch.StatusCompleted && r.Execution.ExitStatus.Description != "" {
			s += ": " + firstLine(r.Execution.ExitStatus.Description)
		}
		return s
	default:
		return strings.ToLower(st) + ": " + r.Err.Error()
	}
}

// firstLine returns s up to its first line break.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// rejects lists the rejects of an execution: a table, or JSON lines.
func rejects(ctx context.Context, l *Launcher, stdout io.Writer, fail func(string, ...any) int, execID int64, asJSON bool) int {
	rs, ok := l.Repository().(repository.RejectStore)
	if !ok {
		return fail("rejects: this job repository keeps no rejects")
	}
	if _, err := l.Repository().JobExecution(ctx, execID); err != nil {
		return fail("rejects: %v", err)
	}
	list, err := rs.Rejects(ctx, execID)
	if err != nil {
		return fail("rejects: %v", err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range list {
			_ = enc.Encode(struct {
				ID            int64           `json:"id"`
				Execution     int64           `json:"execution"`
				StepExecution int64           `json:"step_execution"`
				Step          string          `json:"step"`
				Phase         string          `json:"phase"`
				Item          int64           `json:"item"`
				Error         string          `json:"error"`
				Input         json.RawMessage `json:"input,omitempty"`
				Output        json.RawMessage `json:"output,omitempty"`
				CreatedAt     time.Time       `json:"created_at"`
			}{r.ID, r.JobExecutionID, r.StepExecutionID, r.Step, r.Phase, r.Item, r.Error, r.Input, r.Output, r.CreatedAt})
		}
		return ExitCompleted
	}
	if len(list) == 0 {
		fmt.Fprintf(stdout, "execution %d: no rejects\n", execID)
		return ExitCompleted
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tPHASE\tITEM\tERROR")
	for _, r := range list {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.Step, r.Phase, r.Item, firstLine(r.Error))
	}
	_ = tw.Flush()
	return ExitCompleted
}

// parseAge parses a positive Go duration, or a number of days ("30d").
func parseAge(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int64
		if n, err = strconv.ParseInt(days, 10, 32); err == nil {
			d = time.Duration(n) * 24 * time.Hour
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err == nil && d <= 0 {
		err = errors.New("not positive")
	}
	return d, err
}

// writePruned prints what a prune deleted, or with dryRun would delete.
func writePruned(w io.Writer, res repository.PruneResult, dryRun bool) {
	if len(res.Jobs) == 0 {
		fmt.Fprintln(w, "nothing to prune")
		return
	}
	verb := "deleted"
	if dryRun {
		verb = "would delete (dry run)"
	}
	fmt.Fprintf(w, "%s:\n", verb)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  JOB\tEXECUTIONS\tSTEP EXECUTIONS\tINSTANCES\tENDED FROM\tTO")
	row := func(j repository.PrunedJob) {
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\t%s\n", j.Job, j.Executions, j.StepExecutions, j.Instances,
			j.Oldest.Local().Format(time.DateTime), j.Newest.Local().Format(time.DateTime))
	}
	for _, j := range res.Jobs {
		row(j)
	}
	if len(res.Jobs) > 1 {
		t := res.Total()
		t.Job = "(all)"
		row(t)
	}
	_ = tw.Flush()
}

// parseArgs parses the flags wherever they are among args, before a "--",
// and returns the other arguments in order. An argument that looks like a
// parameter in the old not-identifying form (-name=value) gets an error
// saying how to write it.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos, after []string
	if i := slices.Index(args, "--"); i >= 0 {
		args, after = args[:i], args[i+1:]
	}
	for len(args) > 0 {
		a := args[0]
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			args = args[1:]
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if fs.Lookup(name) == nil {
			if pname, param, err := batch.ParseParameter(a); hasValue && err == nil {
				return nil, fmt.Errorf("%s is not a flag; a parameter that does not identify the instance is written %s",
					a, batch.JobParameters{pname: param}.Format()[0])
			}
			if name == "h" || name == "help" {
				return nil, flag.ErrHelp
			}
			return nil, fmt.Errorf("unknown flag %s", a)
		}
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
	}
	return append(pos, after...), nil
}

// nextRunID returns one more than the run.id of the job's newest execution
// that has one (1 when none has): the run -next incrementer. Two launches
// at the same moment may pick the same number; one of them is then refused.
func nextRunID(ctx context.Context, l *Launcher, job string) (int64, error) {
	es, err := l.Executions(ctx, batch.ExecutionQuery{JobName: job, Limit: 100})
	if err != nil {
		return 0, err
	}
	var last int64
	for _, e := range es {
		if id, ok := e.Parameters.Int(batch.RunIDParam); ok && id > last {
			last = id
		}
	}
	return last + 1, nil
}

func status(ctx context.Context, l *Launcher, rest []string, stdout io.Writer, fail func(string, ...any) int,
	stalled time.Duration, watch bool) int {
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
	prev := lastrun.New(l.monitor())
	for {
		es, err := l.Executions(ctx, q)
		if err != nil {
			return fail("status: %v", err)
		}
		if len(es) == 0 {
			fmt.Fprintln(stdout, "no executions")
			return ExitCompleted
		}
		l.writeExecutions(stdout, es)
		running := false
		for _, e := range es {
			if !e.Status.Running() {
				continue
			}
			running = true
			steps, err := l.Repository().StepExecutions(ctx, e.ID)
			if err != nil {
				return fail("status: %v", err)
			}
			for _, s := range steps {
				if s.Status.Running() {
					fmt.Fprintf(stdout, "  %d %s\n", e.ID, progressLine(s, prev.Of(ctx, e.JobName, e.ID, s.StepName), time.Now(), stalled))
				}
			}
		}
		if !watch || !running {
			return ExitCompleted
		}
		select {
		case <-ctx.Done():
			return ExitCompleted
		case <-time.After(2 * time.Second):
		}
		fmt.Fprintf(stdout, "\n%s\n", time.Now().Format(time.DateTime))
	}
}

// progressDisplay is how runJob shows a run's progress.
type progressDisplay struct {
	mode   string // progressBars, progressLog or progressOff
	every  time.Duration
	logger *slog.Logger
	out    *switchWriter // standard error
}

func runJob(ctx context.Context, l *Launcher, stdout, stderr io.Writer, prog, name string, params batch.JobParameters, show progressDisplay) int {
	job, err := l.jobFor(ctx, name, params)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return ExitUsage
	}
	exec, err := l.Start(ctx, job, params)
	var le *batch.LaunchError
	switch {
	case errors.As(err, &le):
		fmt.Fprintf(stderr, "%s: %v\n%s\n", prog, err, refusalAdvice(le, params))
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
	if show.out == nil {
		show.out = &switchWriter{w: stderr}
	}
	stopProgress := l.showProgress(context.WithoutCancel(ctx), exec.ID, show.mode, show.out, show.logger, show.every)
	final, err := l.Wait(context.WithoutCancel(ctx), exec.ID)
	stopProgress()
	s, serr := l.Summary(context.WithoutCancel(ctx), exec.ID)
	if serr == nil {
		fmt.Fprint(stdout, s)
	}
	if err != nil || final == nil {
		// Failed, fenced off, or its end could not be recorded. A failure
		// the summary shows is not repeated.
		if serr != nil || final == nil || final.Status != batch.StatusFailed || !strings.Contains(s, final.ExitStatus.Description) {
			fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		}
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
func refusalAdvice(le *batch.LaunchError, params batch.JobParameters) string {
	of, replay := params.Int(batch.ReplayOfParam)
	switch {
	case replay && errors.Is(le.Err, batch.ErrJobComplete):
		return fmt.Sprintf("the rejects of execution %d were replayed by execution %d, which completed; "+
			"what it skipped in turn: rejects %d, and replay %d", of, le.ExecutionID, le.ExecutionID, le.ExecutionID)
	case errors.Is(le.Err, batch.ErrJobComplete):
		return "it completed: run it with other identifying parameters for a new instance (run -next adds a new run.id)"
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

// How a command opens the job repository.
type openMode int

const (
	openReadOnly openMode = iota // no file created, no migration; an outdated schema is an error
	openCreate                   // an SQLite file may be created; no migration
	openMigrate                  // create or upgrade the tables
)

// schemaRepository is what the command line needs of a repository it opens.
type schemaRepository interface {
	repository.JobRepository
	Migrate(ctx context.Context) error
	Pending(ctx context.Context) ([]string, error)
	Close() error
}

// openRepository opens the job repository named by db: a postgres:// URL or
// key=value connection string, or an SQLite file path (optionally written
// sqlite:PATH), and brings its schema up to date or checks it, as mode says.
// Errors never contain a password.
//
// It returns the migrations it applied.
func openRepository(ctx context.Context, db string, mode openMode, prog string) (repository.JobRepository, func(), []string, error) {
	ref := parseDB(db)
	var (
		repo  schemaRepository
		shown = ref.shown
	)
	switch ref.kind {
	case dbPostgres:
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		pg, err := postgres.Open(cctx, db, postgres.Config{Driver: os.Getenv("BATCH_POSTGRES_DRIVER")})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("job repository %s: %s", ref.shown, ref.scrub(err.Error()))
		}
		repo = pg
	case dbInvalid:
		return nil, nil, nil, fmt.Errorf("invalid -db %s: want an SQLite file path or a postgres:// URL", ref.shown)
	default:
		path := strings.TrimPrefix(db, "sqlite:")
		if path == "" {
			return nil, nil, nil, fmt.Errorf("invalid -db %q: empty SQLite file path", db)
		}
		if mode == openReadOnly {
			if _, err := os.Stat(path); err != nil {
				return nil, nil, nil, fmt.Errorf("no job repository at %s (-db): %v", path, errors.Unwrap(err))
			}
		}
		lite, err := sqlite.Open(ctx, path, sqlite.Config{})
		if err != nil {
			return nil, nil, nil, err
		}
		repo, shown = lite, path
	}
	pending, err := repo.Pending(ctx)
	if err == nil && len(pending) > 0 {
		if mode == openMigrate {
			err = repo.Migrate(ctx)
		} else {
			err = fmt.Errorf("its tables need migrating (%s): run %s migrate", strings.Join(pending, ", "), prog)
		}
	}
	if err != nil {
		_ = repo.Close()
		return nil, nil, nil, fmt.Errorf("job repository %s: %s", shown, ref.scrub(err.Error()))
	}
	if mode != openMigrate {
		pending = nil
	}
	return repo, func() { _ = repo.Close() }, pending, nil
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
	// libpqKeywords are the connection parameters libpq knows: a -db value
	// that starts with one of them is a key=value connection string.
	libpqKeywords = `host|hostaddr|port|dbname|user|password|passfile|require_auth|channel_binding|` +
		`connect_timeout|client_encoding|options|application_name|fallback_application_name|` +
		`keepalives|keepalives_idle|keepalives_interval|keepalives_count|tcp_user_timeout|replication|` +
		`gssencmode|sslmode|sslnegotiation|requiressl|sslcompression|sslcert|sslkey|sslpassword|` +
		`sslcertmode|sslrootcert|sslcrl|sslcrldir|sslsni|requirepeer|ssl_min_protocol_version|` +
		`ssl_max_protocol_version|krbsrvname|gsslib|gssdelegation|service|target_session_attrs|` +
		`load_balance_hosts|search_path|statement_timeout|lock_timeout|idle_in_transaction_session_timeout`
	keywordDSN = regexp.MustCompile(`^\s*(` + libpqKeywords + `)\s*=`)
	// keywordPass finds a password up to the next keyword, so that an
	// unquoted space in it hides the rest too.
	keywordPass = regexp.MustCompile(`(password|sslpassword)\s*=\s*('(?:[^'\\]|\\.)*'|.*?)(\s+(` + libpqKeywords + `)\s*=|\s*$)`)
	// looksLikeDSN matches what would be an SQLite file named like a
	// connection string.
	looksLikeDSN = regexp.MustCompile(`^\s*[A-Za-z_]+\s*=`)
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
				// A driver that splits the URL elsewhere (a password holding
				// '/' read as a host and a path) may quote any part of it.
				for _, w := range strings.FieldsFunc(pass, func(r rune) bool { return strings.ContainsRune("/#?:@", r) }) {
					if len(w) >= 3 && w != pass {
						ref.secrets = append(ref.secrets, w)
					}
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
			secret := strings.Trim(m[2], "'")
			if secret == "" {
				continue
			}
			ref.secrets = append(ref.secrets, secret)
			// A driver may quote any word of an unquoted value (words too
			// short to scrub without mangling the message are left).
			for _, w := range strings.Fields(secret) {
				if len(w) >= 3 {
					ref.secrets = append(ref.secrets, w)
				}
			}
		}
		ref.shown = "postgres " + strings.TrimSpace(keywordPass.ReplaceAllString(db, "${1}=xxxxx$3"))
		return ref
	case looksLikeDSN.MatchString(db):
		// Not a keyword libpq knows, and no file to create either.
		return dbRef{kind: dbInvalid, shown: "(a key=value string that starts with an unknown keyword)"}
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

// processOwner names this process as a claimer of partitions: host/pid.
func processOwner() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// untilSignal returns a context that ends at the first SIGINT or SIGTERM,
// saying first; a second signal says again and exits the process at once
// (ExitInterrupted). Calling stop ends the context and the watch.
func untilSignal(ctx context.Context, stderr io.Writer, prog, first, again string) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case sig := <-sigs:
			fmt.Fprintf(stderr, "%s: %v: %s (signal again to exit at once)\n", prog, sig, first)
			cancel()
		}
		select {
		case <-done:
		case sig := <-sigs:
			fmt.Fprintf(stderr, "%s: %v again: exiting; %s\n", prog, sig, again)
			os.Exit(ExitInterrupted)
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

// serveWorker runs partitions from the queue until SIGINT or SIGTERM (or
// ctx's end): a signal takes no more and hands the partitions running back
// at their next chunk boundary, for other workers to resume at once; a
// second exits at once, and their leases lapse for another worker to
// resume them.
func serveWorker(ctx context.Context, l *Launcher, q *NATSQueue, stderr io.Writer, prog string, slots int) int {
	owner := processOwner()
	ctx, cancel := untilSignal(ctx, stderr, prog,
		"taking no more partitions; handing those running back at their next chunk boundary",
		"the running partitions resume elsewhere once their lease expires")
	defer cancel()
	fmt.Fprintf(stderr, "%s: worker %s serving partitions, %d at a time\n", prog, owner, slots)
	if err := q.Serve(ctx, l, owner, slots); err != nil {
		fmt.Fprintf(stderr, "%s: worker: %v\n", prog, err)
		return ExitFailed
	}
	return ExitCompleted
}
