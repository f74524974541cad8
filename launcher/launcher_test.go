package launcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/sqlite"
	"github.com/chunkwise/chunkwise/writer"
)

// testJobs registers:
//   - "count": writes the numbers 1..n (parameter n, default 10) into a slice
//     writer that sleeps pause per chunk and can fail at item failAt;
//   - "noop": a tasklet.
type testJobs struct {
	reg     launcher.Registry
	out     *writer.Slice[int]
	pause   time.Duration
	failAt  atomic.Int64
	started chan struct{} // receives once per chunk written, when not nil
}

func newTestJobs(t *testing.T) *testJobs {
	tj := &testJobs{out: &writer.Slice[int]{}}
	tj.reg.MustRegister("count", func(env launcher.Env) (batch.JobConfig, error) {
		n, ok := env.Parameters.Int("n")
		if !ok {
			n = 10
		}
		items := make([]int, n)
		for i := range items {
			items[i] = i + 1
		}
		step, err := batch.NewChunkStep("numbers", batch.ChunkConfig[int, int]{
			Reader: reader.FromSlice(items),
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
				if int64(i) == tj.failAt.Load() {
					return 0, errors.New("bad number")
				}
				return i, nil
			}),
			Writer: batch.WriterFunc[int](func(ctx context.Context, items []int) error {
				if tj.started != nil {
					select {
					case tj.started <- struct{}{}:
					default:
					}
				}
				time.Sleep(tj.pause)
				return tj.out.Write(ctx, items)
			}),
			ChunkSize: 2,
		})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
	tj.reg.MustRegister("noop", func(launcher.Env) (batch.JobConfig, error) {
		step, err := batch.NewTaskletStep("noop", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
			func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) { return batch.Finished, nil })})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
	return tj
}

func openRepo(t *testing.T, path string) *sqlite.Repository {
	repo, err := sqlite.Open(context.Background(), path, sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = repo.Close() })
	require.NoError(t, repo.Migrate(context.Background()))
	return repo
}

// runNamed runs the job registered under name.
func runNamed(t *testing.T, l *launcher.Launcher, name string, params batch.JobParameters) (*batch.JobExecution, error) {
	t.Helper()
	job, err := l.Job(name, params)
	if err != nil {
		return nil, err
	}
	return l.Run(context.Background(), job, params)
}

// startNamed starts the job registered under name and returns the new
// execution's id.
func startNamed(t *testing.T, l *launcher.Launcher, name string, params batch.JobParameters) int64 {
	t.Helper()
	job, err := l.Job(name, params)
	require.NoError(t, err)
	exec, err := l.Start(context.Background(), job, params)
	require.NoError(t, err)
	return exec.ID
}

func newLauncher(t *testing.T, tj *testJobs) (*launcher.Launcher, string) {
	path := filepath.Join(t.TempDir(), "batch.db")
	l, err := launcher.New(launcher.Config{Registry: &tj.reg, Repository: openRepo(t, path)})
	require.NoError(t, err)
	return l, path
}

func TestRegistry(t *testing.T) {
	var reg launcher.Registry
	f := func(launcher.Env) (batch.JobConfig, error) { return batch.JobConfig{}, errors.New("broken") }
	require.NoError(t, reg.Register("b", f))
	require.NoError(t, reg.Register("a", f))
	require.ErrorContains(t, reg.Register("a", f), "registered twice")
	require.Error(t, reg.Register("", f))
	require.Error(t, reg.Register("c", nil))
	require.Equal(t, []string{"a", "b"}, reg.Names())
	_, err := reg.Job("zzz", launcher.Env{})
	require.ErrorIs(t, err, launcher.ErrUnknownJob)
	_, err = reg.Job("a", launcher.Env{})
	require.ErrorContains(t, err, "broken")

	// The job's name is the one it is registered under: it is given once.
	tj := newTestJobs(t)
	job, err := tj.reg.Job("noop", launcher.Env{})
	require.NoError(t, err)
	require.Equal(t, "noop", job.Name())
	reg.MustRegister("empty", func(launcher.Env) (batch.JobConfig, error) { return batch.JobConfig{}, nil })
	_, err = reg.Job("empty", launcher.Env{})
	require.ErrorIs(t, err, batch.ErrInvalidConfig)
	require.Panics(t, func() { reg.MustRegister("a", f) })
}

func TestRunAndRestart(t *testing.T) {
	tj := newTestJobs(t)
	l, _ := newLauncher(t, tj)
	ctx := context.Background()
	params := batch.JobParameters{"n": batch.IntParam(10)}

	tj.failAt.Store(7)
	failed, err := runNamed(t, l, "count", params)
	require.Error(t, err)
	require.Equal(t, batch.StatusFailed, failed.Status)
	require.Equal(t, []int{1, 2, 3, 4, 5, 6}, tj.out.Items(), "chunks before the failing one were written")

	tj.failAt.Store(0)
	done, err := l.Restart(ctx, failed.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, done.Status)
	require.Equal(t, failed.InstanceID, done.InstanceID)
	require.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, tj.out.Items(), "each item exactly once")

	_, err = l.Restart(ctx, done.ID)
	require.ErrorIs(t, err, batch.ErrJobComplete)
	_, err = runNamed(t, l, "count", params)
	require.ErrorIs(t, err, batch.ErrJobComplete)
	_, err = runNamed(t, l, "nosuch", nil)
	require.ErrorIs(t, err, launcher.ErrUnknownJob)

	s, err := l.Summary(ctx, failed.ID)
	require.NoError(t, err)
	require.Contains(t, s, "job count, execution 1 (instance 1): FAILED")
	require.Contains(t, s, "parameters: n:int=10")
	require.Contains(t, s, "item 7")
	require.Regexp(t, `numbers\s+FAILED\s+6\s+6`, s)

	es, err := l.Executions(ctx, batch.ExecutionQuery{JobName: "count"})
	require.NoError(t, err)
	require.Len(t, es, 2)
}

func TestStartWaitStop(t *testing.T) {
	tj := newTestJobs(t)
	tj.pause = 20 * time.Millisecond
	tj.started = make(chan struct{}, 1)
	l, _ := newLauncher(t, tj)
	ctx := context.Background()

	id := startNamed(t, l, "count", batch.JobParameters{"n": batch.IntParam(1000)})
	<-tj.started
	require.NoError(t, l.Stop(ctx, id))
	final, err := l.Wait(ctx, id)
	require.NoError(t, err)
	require.Equal(t, batch.StatusStopped, final.Status)
	written := len(tj.out.Items())
	require.Less(t, written, 1000)
	require.Zero(t, written%2, "stopped at a chunk boundary")
	require.ErrorIs(t, l.Stop(ctx, id), batch.ErrNotRunning)

	tj.pause = 0
	done, err := l.Restart(ctx, id)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, done.Status)
	require.Len(t, tj.out.Items(), 1000)
	for i, v := range tj.out.Items() {
		require.Equal(t, i+1, v)
	}
}

func TestAbandon(t *testing.T) {
	tj := newTestJobs(t)
	tj.pause = 20 * time.Millisecond
	tj.started = make(chan struct{}, 1)
	l, _ := newLauncher(t, tj)
	ctx := context.Background()
	id := startNamed(t, l, "count", batch.JobParameters{"n": batch.IntParam(1000)})
	<-tj.started
	require.ErrorIs(t, l.Abandon(ctx, id), batch.ErrJobRunning, "a running execution must be stopped first")
	require.NoError(t, l.Stop(ctx, id))
	_, err := l.Wait(ctx, id)
	require.NoError(t, err)
	require.NoError(t, l.Abandon(ctx, id))
	require.NoError(t, l.Abandon(ctx, id), "abandoning twice is harmless")
	_, err = l.Restart(ctx, id)
	require.ErrorIs(t, err, batch.ErrJobAbandoned)

	done, err := runNamed(t, l, "noop", nil)
	require.NoError(t, err)
	require.ErrorContains(t, l.Abandon(ctx, done.ID), "it completed")
}

// command runs the command line against the registry.
func command(tj *testJobs, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := launcher.Program{Registry: &tj.reg, Stdout: &stdout, Stderr: &stderr}.Run(context.Background(), args)
	return code, stdout.String(), stderr.String()
}

func TestCommand(t *testing.T) {
	tj := newTestJobs(t)
	db := filepath.Join(t.TempDir(), "batch.db")

	code, out, _ := command(tj, "jobs")
	require.Equal(t, 0, code)
	require.Equal(t, "count\nnoop\n", out)

	code, _, errOut := command(tj, "-db", db, "status")
	require.Equal(t, 2, code, "no repository yet: nothing to show, nothing created")
	require.Contains(t, errOut, "no job repository at")

	tj.failAt.Store(3)
	code, out, _ = command(tj, "-db", db, "-log-level", "error", "run", "count", "n:int=6")
	require.Equal(t, 1, code)
	require.Contains(t, out, "FAILED")

	tj.failAt.Store(0)
	code, out, _ = command(tj, "-db", db, "restart", "1")
	require.Equal(t, 0, code)
	require.Contains(t, out, "execution 2 (instance 1): COMPLETED")
	require.Equal(t, []int{1, 2, 3, 4, 5, 6}, tj.out.Items())

	code, _, errOut = command(tj, "-db", db, "run", "count", "n:int=6")
	require.Equal(t, launcher.ExitRefused, code)
	require.Contains(t, errOut, "already completed")
	require.Contains(t, errOut, "run it with other identifying parameters")

	code, out, _ = command(tj, "-db", db, "status")
	require.Equal(t, 0, code)
	require.Regexp(t, `(?m)^2\s+count\s+COMPLETED`, out)
	require.Regexp(t, `(?m)^1\s+count\s+FAILED`, out)
	code, out, _ = command(tj, "-db", db, "status", "noop")
	require.Equal(t, 0, code)
	require.Equal(t, "no executions\n", out)
	code, out, _ = command(tj, "-db", db, "status", "1")
	require.Equal(t, 0, code)
	require.Contains(t, out, "bad number")

	code, _, errOut = command(tj, "-db", db, "stop", "2")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "not running")
	code, out, _ = command(tj, "-db", db, "abandon", "1")
	require.Equal(t, 0, code, out)

	for _, args := range [][]string{
		{"-db", db, "run"},
		{"-db", db, "run", "count", "n:int=x"},
		{"-db", db, "restart"},
		{"-db", db, "restart", "0"},
		{"-db", db, "restart", "77"},
		{"-db", db, "status", "a", "b"},
		{"-lease", "-1s", "status"},
		{"-log-level", "loud", "status"},
		{"-db", "ftp://x/y", "status"},
		{"-nosuchflag"},
		{},
	} {
		code, _, _ := command(tj, args...)
		require.Equal(t, 2, code, "%q", args)
	}
	code, _, errOut = command(tj, "-h")
	require.Equal(t, 0, code)
	require.Contains(t, errOut, "exit codes: 0 completed, 1 failed, 2 usage or configuration error, 3 stopped")
}

func TestCommandRunsTheOnlyJob(t *testing.T) {
	var reg launcher.Registry
	reg.MustRegister("noop", func(env launcher.Env) (batch.JobConfig, error) {
		step, err := batch.NewTaskletStep("noop", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
			func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) { return batch.Finished, nil })})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
	db := filepath.Join(t.TempDir(), "batch.db")
	var stdout bytes.Buffer
	code := launcher.Program{Registry: &reg, Stdout: &stdout, Stderr: io.Discard}.Run(context.Background(),
		[]string{"-db", db, "run", "day:date=2026-11-24"})
	require.Equal(t, 0, code)
	require.Contains(t, stdout.String(), "parameters: day:date=2026-11-24")
}

// TestStopFromAnotherProcess stops, through the repository, an execution
// running on another connection: the way `stop ID` from a second shell works.
func TestStopFromAnotherProcess(t *testing.T) {
	tj := newTestJobs(t)
	tj.pause = 20 * time.Millisecond
	tj.started = make(chan struct{}, 1)
	l, db := newLauncher(t, tj)
	ctx := context.Background()
	id := startNamed(t, l, "count", batch.JobParameters{"n": batch.IntParam(1000)})
	<-tj.started

	code, out, errOut := command(tj, "-db", db, "stop", strconv.FormatInt(id, 10))
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "stop requested")
	final, err := l.Wait(ctx, id)
	require.NoError(t, err)
	require.Equal(t, batch.StatusStopped, final.Status)
	require.Less(t, len(tj.out.Items()), 1000)

	code, out, _ = command(tj, "-db", db, "status")
	require.Equal(t, 0, code)
	require.True(t, strings.Contains(out, "STOPPED"), out)
}

func TestNewValidates(t *testing.T) {
	_, err := launcher.New(launcher.Config{})
	require.Error(t, err)
}

// TestPasswordsNeverPrinted runs commands with passwords in every form a -db
// value can hold them, failing and succeeding, and checks every byte of
// output.
func TestPasswordsNeverPrinted(t *testing.T) {
	const secret = "hunter2"
	tj := newTestJobs(t)
	for _, db := range []string{
		"postgres://user:hunter2@127.0.0.1:1/x?sslmode=disable",
		"postgres://user@127.0.0.1:1/x?password=hunter2&sslmode=disable",
		"postgres://user:123#hunter2@127.0.0.1:1/x?sslmode=disable",
		"postgres://user:99/hunter2@127.0.0.1:1/x?sslmode=disable",
		"postgres://user:hun%74er2@127.0.0.1:1/x?sslmode=disable",
		"postgresql://user:a@hunter2@127.0.0.1:1/x?sslmode=disable",
		"host=127.0.0.1 port=1 user=postgres password=hunter2 dbname=test sslmode=disable",
		"host=127.0.0.1 port=1 user=postgres password='hunter2' dbname=test sslmode=disable",
		"mysql://u:hunter2@h/db",
	} {
		for _, args := range [][]string{{"-db", db, "status"}, {"-db", db, "run", "noop"}} {
			code, out, errOut := command(tj, args...)
			require.Equal(t, 2, code, "%q", args)
			require.NotContains(t, out+errOut, secret, "%q", args)
			require.NotContains(t, out+errOut, "hun%74er2")
		}
	}
	t.Setenv("BATCH_DB", "postgres://user:hunter2@127.0.0.1:1/x")
	code, out, errOut := command(tj, "-h")
	require.Equal(t, 0, code)
	require.Contains(t, errOut, "-db")
	require.NotContains(t, out+errOut, secret, "usage shows no secret default")
}

func TestPasswordsNeverPrintedByARun(t *testing.T) {
	// The server trusts local connections and ignores the password, so the
	// job runs with a password in its URL.
	dsn := strings.Replace(pgtest.DSN(t), "postgres://postgres@", "postgres://postgres:hunter2@", 1)
	require.Contains(t, dsn, "hunter2")
	tj := newTestJobs(t)
	for _, args := range [][]string{
		{"-db", dsn, "-log-level", "debug", "run", "count", "n:int=4"},
		{"-db", dsn, "status"},
		{"-db", dsn, "status", "1"},
		{"-db", dsn, "jobs"},
	} {
		code, out, errOut := command(tj, args...)
		require.Equal(t, 0, code, "%q: %s", args, errOut)
		require.NotContains(t, out+errOut, "hunter2", "%q", args)
	}
}

func TestSummaryShowsSkipsByPhase(t *testing.T) {
	var reg launcher.Registry
	errBad := errors.New("bad")
	reg.MustRegister("skippy", func(launcher.Env) (batch.JobConfig, error) {
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
			Reader: reader.FromSlice([]int{1, 2, 3, 4}),
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
				if i%2 == 0 {
					return 0, errBad
				}
				return i, nil
			}),
			Writer: batch.WriterFunc[int](func(context.Context, []int) error { return nil }),
			Skip:   batch.MatchErrors(errBad),
		})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
	l, err := launcher.New(launcher.Config{Registry: &reg, Repository: openRepo(t, filepath.Join(t.TempDir(), "b.db"))})
	require.NoError(t, err)
	exec, err := runNamed(t, l, "skippy", nil)
	require.NoError(t, err)
	s, err := l.Summary(context.Background(), exec.ID)
	require.NoError(t, err)
	require.Contains(t, s, "step load skipped: 0 in read, 2 in process, 0 in write")
	require.Regexp(t, `load\s+COMPLETED\s+4\s+2\s+0\s+2`, s)
}

// TestProgramWithItsOwnRepository: a program that already has a repository
// (and pool) hands it to the command line, which uses it and refuses -db.
func TestProgramWithItsOwnRepository(t *testing.T) {
	tj := newTestJobs(t)
	repo := openRepo(t, filepath.Join(t.TempDir(), "own.db"))
	var stdout, stderr bytes.Buffer
	p := launcher.Program{Registry: &tj.reg, Repository: repo, Stdout: &stdout, Stderr: &stderr}
	require.Equal(t, launcher.ExitCompleted, p.Run(context.Background(), []string{"run", "noop"}), stderr.String())
	es, err := repo.JobExecutions(context.Background(), batch.ExecutionQuery{})
	require.NoError(t, err)
	require.Len(t, es, 1, "the run is in the program's repository")
	require.Equal(t, launcher.ExitUsage, p.Run(context.Background(), []string{"-db", "other.db", "status"}))
	require.Contains(t, stderr.String(), "this program has its own job repository")
	require.NoError(t, repo.DB().Ping(), "the program's repository is not closed")
}

// TestPanicExitsFailed: a job whose processor panics fails with the panic
// and its stack recorded, and the command exits 1.
func TestPanicExitsFailed(t *testing.T) {
	var reg launcher.Registry
	reg.MustRegister("panics", func(launcher.Env) (batch.JobConfig, error) {
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
			Reader: reader.FromSlice([]int{1, 2, 3}),
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
				var seen []int
				return seen[i], nil // out of range: a bug in user code
			}),
			Writer: batch.WriterFunc[int](func(context.Context, []int) error { return nil }),
		})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
	db := filepath.Join(t.TempDir(), "batch.db")
	var stdout, stderr bytes.Buffer
	p := launcher.Program{Registry: &reg, Stdout: &stdout, Stderr: &stderr}
	code := p.Run(context.Background(), []string{"-db", db, "-log-level", "error", "run"})
	require.Equal(t, launcher.ExitFailed, code, stderr.String())
	require.Contains(t, stderr.String(), "panic: runtime error: index out of range [1] with length 0")
	stdout.Reset()
	require.Equal(t, launcher.ExitCompleted, p.Run(context.Background(), []string{"-db", db, "status", "1"}))
	require.Contains(t, stdout.String(), "FAILED")
	require.Contains(t, stdout.String(), "panic: runtime error: index out of range [1] with length 0")
	require.Contains(t, stdout.String(), "launcher_test.go", "the stack is recorded")
}

// TestFlagsAfterTheCommand: a flag after the command is honoured, an unknown
// one refused; nothing becomes a parameter by accident.
func TestFlagsAfterTheCommand(t *testing.T) {
	tj := newTestJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "other.db")
	code, out, errOut := command(tj, "run", "count", "n:int=4", "-db="+db, "-log-level", "error")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "parameters: n:int=4")
	_, err := os.Stat(db)
	require.NoError(t, err, "the run used -db given after the command")
	_, err = os.Stat(filepath.Join(dir, "batch.db"))
	require.True(t, os.IsNotExist(err))

	code, out, _ = command(tj, "status", "-db", db)
	require.Equal(t, 0, code)
	require.Regexp(t, `(?m)^1\s+count\s+COMPLETED`, out)

	code, _, errOut = command(tj, "run", "count", "n:int=5", "-dbb="+db)
	require.Equal(t, launcher.ExitUsage, code)
	require.Equal(t, "launcher.test: -dbb="+db+" is not a flag; a parameter that does not identify the instance is written +dbb="+db+" (launcher.test -h for help)\n", errOut)
	code, _, errOut = command(tj, "-db", db, "run", "count", "-n(int)=5")
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut, "is written +n:int=5")
	code, _, errOut = command(tj, "-db", db, "status", "-follow")
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut, "unknown flag -follow")

	// After "--" nothing is a flag: -db=x is a parameter in the old
	// not-identifying form.
	code, out, errOut = command(tj, "-db", db, "-log-level", "error", "run", "count", "n:int=2", "--", "-db=x")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "parameters: +db=x n:int=2")
}

// TestRunNext: run -next gives the job a new instance each time.
func TestRunNext(t *testing.T) {
	tj := newTestJobs(t)
	db := filepath.Join(t.TempDir(), "batch.db")
	for want := 1; want <= 2; want++ {
		code, out, errOut := command(tj, "-db", db, "-log-level", "error", "run", "-next", "noop")
		require.Equal(t, 0, code, errOut)
		require.Contains(t, out, fmt.Sprintf("parameters: run.id:int=%d", want))
		require.Contains(t, out, fmt.Sprintf("(instance %d)", want))
	}
	code, _, _ := command(tj, "-db", db, "-log-level", "error", "run", "noop", "run.id:int=7")
	require.Equal(t, 0, code)
	code, out, _ := command(tj, "-db", db, "-log-level", "error", "run", "noop", "-next")
	require.Equal(t, 0, code)
	require.Contains(t, out, "parameters: run.id:int=8", "one more than the largest")

	code, _, errOut := command(tj, "-db", db, "status", "-next")
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut, "-next goes with run only")
	code, _, errOut = command(tj, "-db", db, "run", "-next", "noop", "run.id:int=3")
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut, "-next sets run.id")

	// Refused without -next, and told so.
	code, _, errOut = command(tj, "-db", db, "run", "noop", "run.id:int=8")
	require.Equal(t, launcher.ExitRefused, code)
	require.Contains(t, errOut, "run -next")
}

// TestDeclaredParameters: a job's declared parameters are checked before
// anything runs, with a one-line error naming the parameter.
func TestDeclaredParameters(t *testing.T) {
	var reg launcher.Registry
	var got batch.JobParameters
	reg.MustRegister("load", func(env launcher.Env) (batch.JobConfig, error) {
		got = env.Parameters
		step, err := batch.NewTaskletStep("t", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
			func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) { return batch.Finished, nil })})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	},
		batch.ParamSpec{Name: "input", Required: true, Description: "the file to load"},
		batch.ParamSpec{Name: "day", Type: batch.ParamDate, Required: true},
		batch.ParamSpec{Name: "chunk", Type: batch.ParamInt, Default: "500", NonIdentifying: true},
	)
	require.Panics(t, func() {
		reg.MustRegister("bad", func(launcher.Env) (batch.JobConfig, error) { return batch.JobConfig{}, nil },
			batch.ParamSpec{Name: "n", Type: batch.ParamInt, Default: "many"})
	})
	db := filepath.Join(t.TempDir(), "batch.db")
	cmd := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := launcher.Program{Registry: &reg, Stdout: &stdout, Stderr: &stderr}.Run(context.Background(),
			append([]string{"-db", db, "-log-level", "error"}, args...))
		return code, stdout.String(), stderr.String()
	}
	for args, msg := range map[string]string{
		"run day=2026-11-30":                              "invalid parameter input: missing; it is required (string)",
		"run input=a.csv":                                 "invalid parameter day: missing; it is required (date)",
		"run input=a.csv day=yesterday":                   `invalid parameter day: not a date (2006-01-02): "yesterday"`,
		"run input=a.csv day=2026-11-30 chunk=5.5":        `invalid parameter chunk: not an int: "5.5"`,
		"run input=a.csv day=2026-11-30 +chunk:float=5.5": "invalid parameter chunk: want int, got float 5.5",
		"run input=a.csv day=2026-11-30 inptu=b":          "invalid parameter inptu: unknown (the job takes input, day, chunk)",
	} {
		code, _, errOut := cmd(strings.Fields(args)...)
		require.Equal(t, launcher.ExitUsage, code, args)
		require.Contains(t, errOut, msg, args)
		require.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
	}
	_, err := os.Stat(db)
	require.True(t, os.IsNotExist(err), "nothing was created")

	code, out, errOut := cmd("run", "input=a.csv", "day=2026-11-30")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "parameters: +chunk:int=500 day:date=2026-11-30 input=a.csv")
	chunk, _ := got.Int("chunk")
	require.Equal(t, int64(500), chunk, "the factory sees the default")
	// chunk does not identify the instance: another value is the same one.
	code, _, errOut = cmd("run", "input=a.csv", "day=2026-11-30", "chunk=100")
	require.Equal(t, launcher.ExitRefused, code)
	require.Contains(t, errOut, "already completed")

	code, out, _ = cmd("jobs")
	require.Equal(t, 0, code)
	require.Equal(t, "load\n  input (string, required): the file to load\n  day (date, required)\n  chunk (int, default 500, not identifying)\n", out)
}

// TestReadOnlyCommandsNeverWrite: status never migrates; run with
// -migrate=off refuses an outdated schema; migrate upgrades it.
func TestReadOnlyCommandsNeverWrite(t *testing.T) {
	tj := newTestJobs(t)
	db := filepath.Join(t.TempDir(), "batch.db")
	code, out, _ := command(tj, "-db", db, "migrate")
	require.Equal(t, 0, code)
	require.Equal(t, "job repository: applied 001_init, 002_execution_lease, 003_step_changes, 004_rejects, 005_step_lease, 006_schedule, 007_execution_filters\n", out)
	code, out, _ = command(tj, "-db", db, "migrate")
	require.Equal(t, 0, code)
	require.Equal(t, "job repository: up to date\n", out)

	// Take the schema back to version 1, as an older program left it.
	repo := openRepo(t, db)
	_, err := repo.DB().Exec(`DELETE FROM batch_schema_migration WHERE version >= 2`)
	require.NoError(t, err)
	for _, stmt := range []string{`ALTER TABLE batch_job_execution DROP COLUMN lease_ms`,
		`ALTER TABLE batch_step_execution DROP COLUMN insert_count`, `ALTER TABLE batch_step_execution DROP COLUMN update_count`,
		`ALTER TABLE batch_step_execution DROP COLUMN unchanged_count`, `ALTER TABLE batch_step_execution DROP COLUMN delete_count`,
		`DROP TABLE batch_step_reject`, `ALTER TABLE batch_step_execution DROP COLUMN lease_owner`,
		`ALTER TABLE batch_step_execution DROP COLUMN lease_until`, `ALTER TABLE batch_step_execution DROP COLUMN claims`,
		`DROP TABLE batch_schedule`, `DROP INDEX batch_job_execution_status`, `DROP INDEX batch_job_execution_created`} {
		_, err = repo.DB().Exec(stmt)
		require.NoError(t, err)
	}
	require.NoError(t, repo.Close())
	versions := func() int {
		r, err := sqlite.Open(context.Background(), db, sqlite.Config{})
		require.NoError(t, err)
		defer r.Close()
		var n int
		require.NoError(t, r.DB().Get(&n, `SELECT COUNT(*) FROM batch_schema_migration`))
		return n
	}

	for _, args := range [][]string{{"status"}, {"status", "1"}, {"stop", "1"}, {"abandon", "1"}, {"-migrate", "off", "run", "noop"}} {
		code, _, errOut := command(tj, append([]string{"-db", db}, args...)...)
		require.Equal(t, launcher.ExitUsage, code, "%q", args)
		require.Contains(t, errOut, "its tables need migrating (002_execution_lease, 003_step_changes, 004_rejects, 005_step_lease, 006_schedule, 007_execution_filters): run launcher.test migrate", "%q", args)
		require.Equal(t, 1, versions(), "%q changed nothing", args)
	}
	t.Setenv("BATCH_MIGRATE", "off")
	code, _, _ = command(tj, "-db", db, "run", "noop")
	require.Equal(t, launcher.ExitUsage, code)
	t.Setenv("BATCH_MIGRATE", "")

	code, _, errOut := command(tj, "-db", db, "-log-level", "error", "run", "noop")
	require.Equal(t, 0, code, "run migrates by default: %s", errOut)
	require.Equal(t, 7, versions())
	code, _, _ = command(tj, "-db", db, "status")
	require.Equal(t, 0, code)
}

// TestSilentServerTimesOut: a -db server that accepts connections and never
// answers fails the command after the connect timeout, instead of hanging.
func TestSilentServerTimesOut(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // hold it open, say nothing
		}
	}()
	tj := newTestJobs(t)
	for _, db := range []string{
		"postgres://u@" + ln.Addr().String() + "/x?sslmode=disable&connect_timeout=1",
		"host=127.0.0.1 port=" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) + " user=u sslmode=disable", // the default timeout
	} {
		start := time.Now()
		code, _, errOut := command(tj, "-db", db, "status")
		require.Equal(t, launcher.ExitUsage, code)
		require.Contains(t, errOut, "timeout")
		require.Less(t, time.Since(start), 14*time.Second, db)
	}
}

// TestConnectionStrings: every libpq keyword starts a key=value connection
// string; a value that only looks like one is refused, not made a file; a
// password is never echoed, not even in part.
func TestConnectionStrings(t *testing.T) {
	tj := newTestJobs(t)
	dir := t.TempDir()
	t.Chdir(dir)
	for _, db := range []string{
		"connect_timeout=1 host=127.0.0.1 port=1 user=u password=hunter2 sslmode=disable",
		"application_name=x host=127.0.0.1 port=1 password=hunter2 sslmode=disable",
		"sslmode=disable host=127.0.0.1 port=1 password=hunter2",
		"host=127.0.0.1 port=1 password=hunter2 extra dbname=x sslmode=disable",
		"host=127.0.0.1 port=1 password=abc hunter2 sslmode=disable",
		"hots=127.0.0.1 password=hunter2",
	} {
		code, out, errOut := command(tj, "-db", db, "run", "noop")
		require.Equal(t, launcher.ExitUsage, code, db)
		require.NotContains(t, out+errOut, "hunter2", db)
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		require.Empty(t, entries, "no file was created for %q", db)
	}
	code, _, errOut := command(tj, "-db", "hots=x password=hunter2", "status")
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut, "a key=value string that starts with an unknown keyword")
}

// blockedReader blocks in Read, as a reader on a pipe or a hung call does,
// until its context ends.
type blockedReader struct{ started chan struct{} }

func (r *blockedReader) Read(ctx context.Context) (int, error) {
	select {
	case r.started <- struct{}{}:
	default:
	}
	<-ctx.Done()
	return 0, ctx.Err()
}

// blockedJob returns a job whose one chunk step reads from a blockedReader.
func blockedJob(t *testing.T, name string) (*batch.Job, *blockedReader) {
	t.Helper()
	r := &blockedReader{started: make(chan struct{}, 1)}
	step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
		Reader: r, Writer: batch.WriterFunc[int](func(context.Context, []int) error { return nil })})
	require.NoError(t, err)
	job, err := batch.NewJob(name, batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	return job, r
}

// TestStuckStepStopsAfterGrace: a stop reaches a step blocked in a read
// after the grace period: the chunk in flight rolls back, the execution ends
// STOPPED and restartable.
func TestStuckStepStopsAfterGrace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo := openRepo(t, filepath.Join(t.TempDir(), "batch.db"))
	l, err := launcher.New(launcher.Config{Repository: repo, StopGrace: 200 * time.Millisecond})
	require.NoError(t, err)
	job, r := blockedJob(t, "stuck")
	exec, err := l.Start(ctx, job, nil)
	require.NoError(t, err)
	<-r.started
	require.NoError(t, l.Stop(ctx, exec.ID))
	final, err := l.Wait(ctx, exec.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusStopped, final.Status)
	steps, err := repo.StepExecutions(ctx, exec.ID)
	require.NoError(t, err)
	require.Contains(t, steps[0].ExitStatus.Description, "grace period")
}

// TestForceAbandon: an execution that stays STOPPING can be abandoned by
// force; its process, still running, is fenced off.
func TestForceAbandon(t *testing.T) {
	t.Parallel()
	tj := newTestJobs(t)
	tj.pause = 50 * time.Millisecond
	tj.started = make(chan struct{}, 1)
	l, db := newLauncher(t, tj)
	ctx := context.Background()
	id := startNamed(t, l, "count", batch.JobParameters{"n": batch.IntParam(1000)})
	<-tj.started

	code, _, errOut := command(tj, "-db", db, "abandon", strconv.FormatInt(id, 10))
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut, "stop it first, or abandon -force")
	code, out, errOut := command(tj, "-db", db, "abandon", "-force", strconv.FormatInt(id, 10))
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "warning: execution 1 is STARTED")
	require.Contains(t, out, "abandoned")

	_, err := l.Wait(ctx, id)
	require.ErrorIs(t, err, batch.ErrFenced, "the running process is fenced off")
	stored, err := l.Repository().JobExecution(ctx, id)
	require.NoError(t, err)
	require.Equal(t, batch.StatusAbandoned, stored.Status)
	code, _, _ = command(tj, "-db", db, "run", "-force", "count")
	require.Equal(t, launcher.ExitUsage, code)
}

// unreachable is a repository whose heartbeats fail, as when the network to
// the database is down.
type unreachable struct{ repository.JobRepository }

func (unreachable) Heartbeat(context.Context, int64) (batch.BatchStatus, error) {
	return "", fmt.Errorf("dial tcp 10.0.0.1:5432: %w", syscall.ETIMEDOUT)
}

// TestLostRepositoryStopsTheRun: a run that cannot reach its repository for
// longer than its lease stops working, saying why.
func TestLostRepositoryStopsTheRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	repo := unreachable{openRepo(t, filepath.Join(t.TempDir(), "batch.db"))}
	l, err := launcher.New(launcher.Config{Repository: repo, Lease: 300 * time.Millisecond, HeartbeatInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	job, _ := blockedJob(t, "cutoff")
	start := time.Now()
	_, err = l.Run(ctx, job, nil)
	require.ErrorIs(t, err, batch.ErrFenced)
	require.ErrorContains(t, err, "no contact with the job repository")
	require.Less(t, time.Since(start), 5*time.Second)
}

// TestSummaryOfSixteenPartitions: the summary lists each partitioned step
// with its partitions under it, in the partitioner's order (p2 before p10),
// and says which partitions completed in an earlier execution and which
// have not run.
func TestSummaryOfSixteenPartitions(t *testing.T) {
	var (
		reg   launcher.Registry
		fail  atomic.Bool
		began = make(chan string, 16) // partitions in their first write
	)
	fail.Store(true)
	reg.MustRegister("parts", func(launcher.Env) (batch.JobConfig, error) {
		step, err := batch.NewPartitionStep("load", batch.PartitionConfig{
			Concurrency: 4,
			Partitioner: batch.PartitionerFunc(func(context.Context) ([]batch.Partition, error) {
				var parts []batch.Partition
				for i := range 16 {
					parts = append(parts, batch.Partition{Name: fmt.Sprintf("p%d", i+1), Context: batch.ExecutionContext{}})
				}
				return parts, nil
			}),
			Step: func(name string, p batch.Partition) (batch.Step, error) {
				// The first time: p1 completes, p5 takes its place and
				// fails while p2 to p4 are under way; p6 to p16 do not
				// begin.
				return batch.NewChunkStep(name, batch.ChunkConfig[int, int]{
					Reader: reader.FromSlice([]int{1, 2, 3}), ChunkSize: 1,
					Writer: batch.WriterFunc[int](func(ctx context.Context, items []int) error {
						if !fail.Load() {
							return nil
						}
						switch p.Name {
						case "p1":
							if items[0] == 1 { // p2 to p4 have begun before p1 ends
								for range 3 {
									<-began
								}
							}
						case "p5":
							return errors.New("p5 broke")
						default:
							began <- p.Name
							<-batch.Stopping(ctx) // until p5 failed
						}
						return nil
					}),
				})
			},
		})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
	l, err := launcher.New(launcher.Config{Registry: &reg, Repository: openRepo(t, filepath.Join(t.TempDir(), "b.db"))})
	require.NoError(t, err)
	first, err := runNamed(t, l, "parts", nil)
	require.ErrorContains(t, err, "p5 broke")
	fail.Store(false)
	second, err := runNamed(t, l, "parts", nil)
	require.NoError(t, err)

	for _, exec := range []*batch.JobExecution{first, second} {
		s, err := l.Summary(context.Background(), exec.ID)
		require.NoError(t, err)
		var names []string
		for _, line := range strings.Split(s, "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[0], "load") {
				names = append(names, f[0])
				if f[0] != "load" {
					require.True(t, strings.HasPrefix(line, "    load:"), "a partition is indented under its step: %q", line)
				}
			}
		}
		if exec == first {
			require.Equal(t, []string{"load", "load:p1", "load:p2", "load:p3", "load:p4", "load:p5"}, names, s)
			require.Regexp(t, `load:p1\s+COMPLETED\s+3`, s)
			require.Regexp(t, `load:p3\s+STOPPED`, s)
			require.Regexp(t, `load:p5\s+FAILED`, s)
			require.Contains(t, s, "step load: 11 of 16 partitions not run: p6, p7, p8, p9, p10, p11, p12, p13, p14, p15, p16\n")
			continue
		}
		want := []string{"load"}
		for i := 2; i <= 16; i++ {
			want = append(want, fmt.Sprintf("load:p%d", i))
		}
		require.Equal(t, want, names, s)
		require.Regexp(t, `\n  load\s+COMPLETED`, s)
		require.Contains(t, s, "step load: 1 of 16 partitions completed in an earlier execution: p1\n")
	}
	var partitions, managers int64
	for _, exec := range []*batch.JobExecution{first, second} {
		ses, err := l.Repository().StepExecutions(context.Background(), exec.ID)
		require.NoError(t, err)
		for _, se := range ses {
			if se.StepName == "load" {
				managers += se.WriteCount
			} else {
				partitions += se.WriteCount
			}
		}
	}
	require.Equal(t, int64(48), partitions, "every item of the 16 partitions once")
	require.Equal(t, partitions, managers, "the step's counts are its partitions'")
}

// TestCommandPrune: prune as a user runs it — what a dry run says goes is
// what goes, the newest executions and a restartable instance stay, and a
// prune without criteria, or its flags on another command, are usage
// errors that change nothing.
func TestCommandPrune(t *testing.T) {
	tj := newTestJobs(t)
	db := filepath.Join(t.TempDir(), "batch.db")
	for range 5 {
		code, _, errOut := command(tj, "-db", db, "-log-level", "error", "run", "-next", "noop")
		require.Equal(t, 0, code, errOut)
	}
	tj.failAt.Store(3)
	code, _, _ := command(tj, "-db", db, "-log-level", "error", "run", "count", "n:int=6")
	require.Equal(t, 1, code)

	code, _, errOut := command(tj, "-db", db, "prune")
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut, "give -older-than, -keep-last or both")
	code, _, errOut = command(tj, "-db", db, "status", "-dry-run")
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut, "-dry-run goes with run, replay and prune only")
	code, _, errOut = command(tj, "-db", db, "prune", "-older-than", "-3d")
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut, "invalid -older-than")

	code, out, errOut := command(tj, "-db", db, "prune", "-keep-last", "2", "-dry-run")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "would delete (dry run):")
	require.Regexp(t, `noop\s+3\s+3\s+3\s`, out)
	require.NotContains(t, out, "count", "the failed instance can be restarted")
	_, out, _ = command(tj, "-db", db, "status", "noop")
	require.Equal(t, 5, strings.Count(out, "COMPLETED"), "a dry run deletes nothing")

	code, out, errOut = command(tj, "-db", db, "prune", "-keep-last", "2")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "deleted:")
	require.Regexp(t, `noop\s+3\s+3\s+3\s`, out)
	_, out, _ = command(tj, "-db", db, "status", "noop")
	require.Equal(t, 2, strings.Count(out, "COMPLETED"))

	code, out, _ = command(tj, "-db", db, "prune", "-keep-last", "2")
	require.Equal(t, 0, code)
	require.Equal(t, "nothing to prune\n", out)

	// Asked to, prune takes the restartable instance too; it then runs
	// afresh.
	code, out, errOut = command(tj, "-db", db, "prune", "count", "-older-than", "1ns", "-restartable")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `count\s+1\s+1\s+1\s`, out)
	tj.failAt.Store(0)
	code, out, _ = command(tj, "-db", db, "-log-level", "error", "run", "count", "n:int=6")
	require.Equal(t, 0, code)
	require.Contains(t, out, "COMPLETED")
}

// TestCommandBackfill: backfill as a user runs it — one instance per day,
// a failed day fails the backfill, running it again skips the completed
// days and restarts the failed one; values run in parallel; bad ranges are
// one-line usage errors.
func TestCommandBackfill(t *testing.T) {
	tj := newTestJobs(t)
	var failDay atomic.Value
	failDay.Store("")
	var (
		ran              sync.Map // day → runs
		inFlight, peak   atomic.Int64
		waitForCompanion atomic.Bool
	)
	tj.reg.MustRegister("daily", func(env launcher.Env) (batch.JobConfig, error) {
		day, _ := env.Parameters.Time("day")
		step, err := batch.NewTaskletStep("load", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
			func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) {
				d := day.Format(time.DateOnly)
				n, _ := ran.LoadOrStore(d, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
				now := inFlight.Add(1)
				defer inFlight.Add(-1)
				for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
				}
				// In parallel, the first value waits for a second to run
				// beside it (sequentially, it would wait in vain).
				for deadline := time.Now().Add(10 * time.Second); waitForCompanion.Load() && peak.Load() < 2 && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
				if d == failDay.Load() {
					return batch.Finished, errors.New("the source has no data for " + d)
				}
				return batch.Finished, nil
			})})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	}, batch.ParamSpec{Name: "day", Type: batch.ParamDate, Required: true})
	db := filepath.Join(t.TempDir(), "batch.db")
	bf := func(args ...string) (int, string, string) {
		return command(tj, append([]string{"-db", db, "-log-level", "error", "backfill"}, args...)...)
	}

	failDay.Store("2026-11-03")
	code, out, errOut := bf("daily", "-param", "day", "-from", "2026-11-01", "-to", "2026-11-05")
	require.Equal(t, launcher.ExitFailed, code, errOut)
	require.Contains(t, out, "backfill daily: day from 2026-11-01 to 2026-11-05, 5 values")
	require.Contains(t, out, "day=2026-11-03: FAILED (execution 3, ")
	require.Contains(t, out, "the source has no data for 2026-11-03")
	require.Contains(t, out, "backfill daily: 4 completed, 1 failed")
	require.Regexp(t, `2026-11-05\s+5\s+COMPLETED`, out)

	failDay.Store("")
	code, out, errOut = bf("daily", "-param", "day", "-from", "2026-11-01", "-to", "2026-11-05")
	require.Equal(t, launcher.ExitCompleted, code, errOut)
	require.Contains(t, out, "day=2026-11-01: already completed, skipped")
	require.Contains(t, out, "backfill daily: 1 completed, 4 skipped")
	require.Regexp(t, `2026-11-03\s+6\s+COMPLETED`, out)
	for d, want := range map[string]int64{"2026-11-01": 1, "2026-11-03": 2, "2026-11-05": 1} {
		n, _ := ran.Load(d)
		require.Equal(t, want, n.(*atomic.Int64).Load(), d)
	}

	// Several at once, every other day.
	peak.Store(0)
	waitForCompanion.Store(true)
	code, out, errOut = bf("daily", "-param", "day", "-from", "2026-12-01", "-to", "2026-12-11", "-step", "2d", "-parallel", "3")
	require.Equal(t, launcher.ExitCompleted, code, errOut)
	require.Contains(t, out, "backfill daily: 6 completed")
	require.GreaterOrEqual(t, peak.Load(), int64(2), "values ran at once")
	require.LessOrEqual(t, peak.Load(), int64(3), "no more than -parallel at once")
	waitForCompanion.Store(false)
	_, seen := ran.Load("2026-12-02")
	require.False(t, seen)
	_, seen = ran.Load("2026-12-11")
	require.True(t, seen)

	// An undeclared parameter: the type comes from -from.
	code, out, errOut = bf("count", "-param", "n", "-from", "3", "-to", "5")
	require.Equal(t, launcher.ExitCompleted, code, errOut)
	require.Contains(t, out, "backfill count: 3 completed")

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"daily", "-param", "day", "-from", "2026-11-05", "-to", "2026-11-01"}, "-from 2026-11-05 is after -to 2026-11-01"},
		{[]string{"daily", "-param", "day", "-from", "5", "-to", "9"}, `-from "5": want a date such as 2026-11-01`},
		{[]string{"daily", "-param", "day", "-from", "2026-11-01", "-to", "2026-11-02", "-step", "12h"}, "steps by whole days"},
		{[]string{"daily", "-from", "2026-11-01", "-to", "2026-11-02"}, "want -param NAME, -from and -to"},
		{[]string{"count", "-param", "n", "-from", "x", "-to", "y"}, "want a date (2026-11-01), a time (RFC 3339) or an integer"},
		{[]string{"daily", "-param", "day", "-from", "2026-11-01", "-to", "2026-11-02", "day=2026-11-01"}, "do not give it too"},
		{[]string{"nosuch", "-param", "day", "-from", "2026-11-01", "-to", "2026-11-02"}, `unknown job "nosuch"`},
	} {
		code, out, errOut := bf(c.args...)
		require.Equal(t, launcher.ExitUsage, code, c.args)
		require.Empty(t, out)
		require.Contains(t, errOut, c.want, c.args)
		require.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %s", errOut)
	}
	code, _, errOut = command(tj, "-db", db, "status", "-parallel", "2")
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut, "go with backfill only")
}

// TestCommandBackfillOneJob: a program with one job backfills it without
// naming it, as it runs it.
func TestCommandBackfillOneJob(t *testing.T) {
	var reg launcher.Registry
	reg.MustRegister("daily", func(launcher.Env) (batch.JobConfig, error) {
		step, err := batch.NewTaskletStep("load", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
			func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) { return batch.Finished, nil })})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	}, batch.ParamSpec{Name: "day", Type: batch.ParamDate, Required: true})
	var stdout, stderr bytes.Buffer
	code := launcher.Program{Registry: &reg, Stdout: &stdout, Stderr: &stderr}.Run(context.Background(),
		[]string{"-db", filepath.Join(t.TempDir(), "batch.db"), "-log-level", "error",
			"backfill", "-param", "day", "-from", "2026-11-01", "-to", "2026-11-02"})
	require.Equal(t, launcher.ExitCompleted, code, stderr.String())
	require.Contains(t, stdout.String(), "backfill daily: 2 completed")
}

// TestDryRunWriters: in a dry run, a writer that joins the chunk's
// transaction has its rows rolled back; a file writer and a writer with a
// transaction of its own refuse (batch.ErrDryRun), and write nothing.
func TestDryRunWriters(t *testing.T) {
	repo := openRepo(t, filepath.Join(t.TempDir(), "batch.db"))
	db := repo.DB()
	_, err := db.Exec(`CREATE TABLE nums (n INTEGER PRIMARY KEY)`)
	require.NoError(t, err)
	l, err := launcher.New(launcher.Config{Repository: repo})
	require.NoError(t, err)
	var dry *launcher.Launcher
	ctx := context.Background()
	runWith := func(w batch.ItemWriter[int]) (*batch.JobExecution, error) {
		dry = l.DryRun()
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
			Reader: reader.FromSlice([]int{1, 2, 3, 4, 5}), Writer: w, ChunkSize: 2})
		require.NoError(t, err)
		job, err := batch.NewJob("dry", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		return dry.Run(ctx, job, nil)
	}
	sqlWriter := func(own bool) batch.ItemWriter[int] {
		w, err := writer.NewSQL(writer.SQLConfig[int]{DB: db, Table: "nums", Columns: []string{"n"}, OwnTransaction: own,
			Values: func(n int) []any { return []any{n} }})
		require.NoError(t, err)
		return w
	}
	count := func() int {
		var n int
		require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM nums`))
		return n
	}

	e, err := runWith(sqlWriter(false))
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, e.Status)
	steps, err := dry.Repository().StepExecutions(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, int64(5), steps[0].WriteCount)
	require.Equal(t, 0, count(), "rolled back")

	e, err = runWith(sqlWriter(true))
	require.Error(t, err)
	require.ErrorIs(t, err, batch.ErrDryRun)
	require.Equal(t, batch.StatusFailed, e.Status)
	require.Contains(t, e.ExitStatus.Description, "OwnTransaction commits outside the chunk's transaction")
	require.Equal(t, 0, count())

	path := filepath.Join(t.TempDir(), "out.csv")
	fw, err := writer.NewCSVFile(writer.CSVFileConfig[int]{Path: path, Columns: []string{"n"},
		Fields: func(n int) ([]string, error) { return []string{strconv.Itoa(n)}, nil }})
	require.NoError(t, err)
	e, err = runWith(fw)
	require.ErrorIs(t, err, batch.ErrDryRun)
	require.Contains(t, e.ExitStatus.Description, "the file is written outside the chunk's transaction")
	require.NoFileExists(t, path)

	// Nothing of it is in the real repository.
	es, err := repo.JobExecutions(ctx, batch.ExecutionQuery{})
	require.NoError(t, err)
	require.Empty(t, es)
}

// TestStatusProgress: status, from another process, says how a running
// step goes — items read, its rate, how far it is of its reader's input and
// the time left — and calls it stalled once it has not committed for longer
// than -stalled.
func TestStatusProgress(t *testing.T) {
	var reg launcher.Registry
	gate := make(chan struct{})
	var chunks atomic.Int64
	reg.MustRegister("slow", func(launcher.Env) (batch.JobConfig, error) {
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
			Reader: reader.FromSlice(make([]int, 100)), ChunkSize: 10,
			Writer: batch.WriterFunc[int](func(context.Context, []int) error {
				if chunks.Add(1) == 4 {
					<-gate // the fourth chunk waits: three committed, then a stall
				}
				time.Sleep(5 * time.Millisecond)
				return nil
			}),
		})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
	db := filepath.Join(t.TempDir(), "batch.db")
	repo := openRepo(t, db)
	l, err := launcher.New(launcher.Config{Registry: &reg, Repository: repo})
	require.NoError(t, err)
	ctx := context.Background()
	id := startNamed(t, l, "slow", nil)
	require.Eventually(t, func() bool { return chunks.Load() >= 4 }, 10*time.Second, time.Millisecond)

	cmd := func(args ...string) string {
		var stdout, stderr bytes.Buffer
		code := launcher.Program{Registry: &reg, Stdout: &stdout, Stderr: &stderr}.Run(ctx, append([]string{"-db", db}, args...))
		require.Equal(t, 0, code, stderr.String())
		return stdout.String()
	}
	out := cmd("status")
	require.Regexp(t, fmt.Sprintf(`(?m)^  %d load: 30 read, [0-9.]+ items/s, 30%% of 100 items, ETA [0-9.]+m?s$`, id), out)
	time.Sleep(150 * time.Millisecond) // no commit meanwhile: the fourth chunk waits
	out = cmd("status", "-stalled", "100ms")
	require.Regexp(t, fmt.Sprintf(`(?m)^  %d load: 30 read, .*, STALLED: no commit for [0-9.]+m?s$`, id), out)

	close(gate)
	final, err := l.Wait(ctx, id)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, final.Status)
	out = cmd("status")
	require.NotContains(t, out, "load:", "no progress line for a finished execution")
}

// TestStatusETAFromTheLastRun: a step whose reader does not know its total
// gets its ETA from its last completed run's item count.
func TestStatusETAFromTheLastRun(t *testing.T) {
	var reg launcher.Registry
	gate := make(chan struct{})
	var wait atomic.Bool
	var chunks atomic.Int64
	reg.MustRegister("nightly", func(launcher.Env) (batch.JobConfig, error) {
		n := 0
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
			Reader: batch.ReaderFunc[int](func(context.Context) (int, error) { // no ProgressReader
				if n == 100 {
					return 0, io.EOF
				}
				n++
				return n, nil
			}),
			ChunkSize: 10,
			Writer: batch.WriterFunc[int](func(context.Context, []int) error {
				if wait.Load() && chunks.Add(1) == 4 {
					<-gate
				}
				time.Sleep(2 * time.Millisecond)
				return nil
			}),
		})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
	db := filepath.Join(t.TempDir(), "batch.db")
	l, err := launcher.New(launcher.Config{Registry: &reg, Repository: openRepo(t, db)})
	require.NoError(t, err)
	_, err = runNamed(t, l, "nightly", batch.JobParameters{"day": batch.StringParam("1")})
	require.NoError(t, err)

	wait.Store(true)
	id := startNamed(t, l, "nightly", batch.JobParameters{"day": batch.StringParam("2")})
	require.Eventually(t, func() bool { return chunks.Load() >= 4 }, 10*time.Second, time.Millisecond)
	var stdout, stderr bytes.Buffer
	code := launcher.Program{Registry: &reg, Stdout: &stdout, Stderr: &stderr}.Run(context.Background(), []string{"-db", db, "status"})
	require.Equal(t, 0, code, stderr.String())
	require.Regexp(t, fmt.Sprintf(`(?m)^  %d load: 30 read, [0-9.]+ items/s, ETA [0-9.]+m?s \(the last run read 100\)$`, id), stdout.String())
	close(gate)
	_, err = l.Wait(context.Background(), id)
	require.NoError(t, err)
}

// TestCommandRejects: the items a run skipped are kept with the chunks that
// counted them, and rejects lists them — as a table, and as JSON lines with
// the items; a run without skips has none.
func TestCommandRejects(t *testing.T) {
	var reg launcher.Registry
	errBad := errors.New("not a multiple of 10")
	type thing struct {
		N    int    `json:"n"`
		Name string `json:"name"`
	}
	reg.MustRegister("skips", func(launcher.Env) (batch.JobConfig, error) {
		items := make([]thing, 30)
		for i := range items {
			items[i] = thing{N: i + 1, Name: "t" + strconv.Itoa(i+1)}
		}
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[thing, thing]{
			Reader: reader.FromSlice(items), ChunkSize: 10, Skip: batch.MatchErrors(errBad), SkipLimit: 5,
			Processor: batch.ProcessorFunc[thing, thing](func(_ context.Context, x thing) (thing, error) {
				if x.N%13 == 0 {
					return x, fmt.Errorf("item %d: %w", x.N, errBad)
				}
				return x, nil
			}),
			Writer: batch.WriterFunc[thing](func(context.Context, []thing) error { return nil }),
		})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
	db := filepath.Join(t.TempDir(), "batch.db")
	cmd := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := launcher.Program{Registry: &reg, Stdout: &stdout, Stderr: &stderr}.Run(context.Background(), append([]string{"-db", db, "-log-level", "error"}, args...))
		return code, stdout.String(), stderr.String()
	}
	code, out, errOut := cmd("run", "skips")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `load\s+COMPLETED\s+30\s+28\s+0\s+2`, out)

	code, out, errOut = cmd("rejects", "1")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?m)^STEP\s+PHASE\s+ITEM\s+ERROR\nload\s+process\s+13\s+.*item 13: not a multiple of 10\nload\s+process\s+26\s+`, out)

	code, out, errOut = cmd("rejects", "-json", "1")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2)
	var first struct {
		Execution int64  `json:"execution"`
		Step      string `json:"step"`
		Phase     string `json:"phase"`
		Item      int64  `json:"item"`
		Error     string `json:"error"`
		Input     thing  `json:"input"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
	require.Equal(t, int64(1), first.Execution)
	require.Equal(t, thing{N: 13, Name: "t13"}, first.Input)
	require.Contains(t, first.Error, "not a multiple of 10")

	code, _, errOut = cmd("rejects", "99")
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut, "not found")
	code, _, errOut = cmd("status", "-json")
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut, "-json goes with rejects only")
}
