package batch_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/postgres"
)

// reposWithPostgres runs fn against the memory and SQLite repositories and,
// in a schema of its own, the PostgreSQL one.
func reposWithPostgres(t *testing.T, fn func(t *testing.T, repo repository.JobRepository)) {
	repos(t, fn)
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		repo, err := postgres.Open(context.Background(), pgtest.DSN(t), postgres.Config{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = repo.Close() })
		require.NoError(t, repo.Migrate(context.Background()))
		fn(t, repo)
	})
}

// splitJob is a job "prepare → fetch (a1 → a2 | b1 → b2) → merge": a1 and
// b1 are chunk steps over 1..100 and 101..200 into one writer, a2 and b2
// tasklets that leave a key in the job's context, merge a tasklet that reads
// both keys.
type splitJob struct {
	mu      sync.Mutex
	ran     []string
	written []int
	merged  string // what merge found in the job's context

	failA2 atomic.Bool // a2 fails while set
	failB1 atomic.Bool // b1's writer fails while set
	// write, when set, is called before every write of a1 (branch "a")
	// and b1 ("b").
	write func(branch string) error
}

func (sj *splitJob) record(name string) {
	sj.mu.Lock()
	defer sj.mu.Unlock()
	sj.ran = append(sj.ran, name)
}

func (sj *splitJob) steps() []string {
	sj.mu.Lock()
	defer sj.mu.Unlock()
	return slices.Clone(sj.ran)
}

func (sj *splitJob) items() []int {
	sj.mu.Lock()
	defer sj.mu.Unlock()
	out := slices.Clone(sj.written)
	slices.Sort(out)
	return out
}

func (sj *splitJob) load(t *testing.T, name string, from, to int) batch.Step {
	t.Helper()
	branch := name[:1]
	s, err := batch.NewChunkStep(name, batch.ChunkConfig[int, int]{
		Reader:    reader.FromSlice(seq(from, to)),
		ChunkSize: 10,
		Writer: batch.WriterFunc[int](func(_ context.Context, items []int) error {
			if sj.write != nil {
				if err := sj.write(branch); err != nil {
					return err
				}
			}
			if branch == "b" && sj.failB1.Load() {
				return errors.New("b1: disk full")
			}
			sj.mu.Lock()
			defer sj.mu.Unlock()
			sj.written = append(sj.written, items...)
			return nil
		}),
		Listeners: []batch.Listener{afterStep(func(se *batch.StepExecution) {
			if se.Status == batch.StatusCompleted {
				sj.record(name)
			}
		})},
	})
	require.NoError(t, err)
	return s
}

func (sj *splitJob) tasklet(t *testing.T, name string, fn func(ctx context.Context) error) batch.Step {
	t.Helper()
	s, err := batch.NewTaskletStep(name, batch.TaskletConfig{Tasklet: batch.TaskletFunc(
		func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
			sj.record(name)
			return batch.Finished, fn(ctx)
		})})
	require.NoError(t, err)
	return s
}

func (sj *splitJob) job(t *testing.T, extra func(*batch.JobConfig)) *batch.Job {
	t.Helper()
	put := func(key string) func(ctx context.Context) error {
		return func(ctx context.Context) error { return batch.JobContext(ctx).Put(key, "done") }
	}
	cfg := batch.JobConfig{
		Steps: []batch.Step{
			sj.tasklet(t, "prepare", put("prepared")),
			sj.load(t, "a1", 1, 100),
			sj.tasklet(t, "a2", func(ctx context.Context) error {
				if sj.failA2.Load() {
					return errors.New("a2: mail server down")
				}
				return put("a")(ctx)
			}),
			sj.load(t, "b1", 101, 200),
			sj.tasklet(t, "b2", put("b")),
			sj.tasklet(t, "merge", func(ctx context.Context) error {
				jc := batch.JobContext(ctx)
				var keys []string
				for _, k := range []string{"prepared", "a", "b"} {
					if v, _ := jc.String(k); v == "done" {
						keys = append(keys, k)
					}
				}
				sj.mu.Lock()
				defer sj.mu.Unlock()
				sj.merged = strings.Join(keys, ",")
				return nil
			}),
		},
		Splits: []batch.Split{{Name: "fetch", Branches: []string{"a1", "b1"}}},
		Transitions: []batch.Transition{
			{From: "prepare", To: "fetch"},
			{From: "a1", On: "COMPLETED", To: "a2"},
			{From: "b1", On: "COMPLETED", To: "b2"},
			{From: "fetch", On: "COMPLETED", To: "merge"},
		},
	}
	if extra != nil {
		extra(&cfg)
	}
	job, err := batch.NewJob("split", cfg)
	require.NoError(t, err)
	return job
}

// TestSplitBranchesRunAtOnce: the branches of a split run at the same time
// (each waits for the other to have begun writing), each in order, and the
// flow goes on once both ended, with the keys both left in the job's
// context.
func TestSplitBranchesRunAtOnce(t *testing.T) {
	t.Parallel()
	reposWithPostgres(t, func(t *testing.T, repo repository.JobRepository) {
		sj := &splitJob{}
		began := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})}
		var once sync.Map
		sj.write = func(branch string) error {
			if o, _ := once.LoadOrStore(branch, &sync.Once{}); o != nil {
				o.(*sync.Once).Do(func() { close(began[branch]) })
			}
			other := map[string]string{"a": "b", "b": "a"}[branch]
			select {
			case <-began[other]:
				return nil
			case <-time.After(30 * time.Second):
				return fmt.Errorf("branch %s never saw branch %s begin: the branches do not run at once", branch, other)
			}
		}
		exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), sj.job(t, nil), nil)
		require.NoError(t, err)
		require.Equal(t, batch.StatusCompleted, exec.Status)
		require.Equal(t, batch.ExitCodeCompleted, exec.ExitStatus.Code)
		require.Equal(t, seq(1, 200), sj.items())
		require.Equal(t, "prepared,a,b", sj.merged)
		ran := sj.steps()
		require.Len(t, ran, 6)
		require.Equal(t, "prepare", ran[0])
		require.Equal(t, "merge", ran[5])
		require.Less(t, slices.Index(ran, "a1"), slices.Index(ran, "a2"))
		require.Less(t, slices.Index(ran, "b1"), slices.Index(ran, "b2"))
		stored, err := repo.JobExecution(context.Background(), exec.ID)
		require.NoError(t, err)
		for _, k := range []string{"prepared", "a", "b"} {
			v, _ := stored.Context.String(k)
			require.Equal(t, "done", v, "the job's stored context has %s", k)
		}
	})
}

// TestSplitRestart: a branch that fails fails the split and the job, while
// the other branch completes; the restart runs only the failed step of the
// failed branch, then goes on past the split.
func TestSplitRestart(t *testing.T) {
	t.Parallel()
	reposWithPostgres(t, func(t *testing.T, repo repository.JobRepository) {
		sj := &splitJob{}
		sj.failA2.Store(true)
		job := sj.job(t, nil)
		l := mustLauncher(t, launcher.Config{Repository: repo})
		exec, err := launchRun(t, l, job, nil)
		require.ErrorContains(t, err, "split fetch: branch a1: step a2")
		require.ErrorContains(t, err, "a2: mail server down")
		require.Equal(t, batch.StatusFailed, exec.Status)
		require.Equal(t, batch.ExitCodeFailed, exec.ExitStatus.Code)
		require.Contains(t, exec.ExitStatus.Description, "branch a1: ")
		require.ElementsMatch(t, []string{"prepare", "a1", "a2", "b1", "b2"}, sj.steps())
		require.Equal(t, seq(1, 200), sj.items())

		sj.failA2.Store(false)
		sj.ran = nil
		exec, err = launchRun(t, l, job, nil)
		require.NoError(t, err)
		require.Equal(t, batch.StatusCompleted, exec.Status)
		require.Equal(t, []string{"a2", "merge"}, sj.steps(), "only the failed step runs again, then the join")
		require.Equal(t, seq(1, 200), sj.items(), "every item once")
		require.Equal(t, "prepared,a,b", sj.merged, "the restart carries on the context of both branches")
		var names []string
		for _, se := range stepExecutions(t, repo, exec.ID) {
			names = append(names, se.StepName)
		}
		require.ElementsMatch(t, []string{"a2", "merge"}, names)
	})
}

// TestSplitFailedTransition: a split that failed takes the transition that
// matches FAILED, to a clean-up step.
func TestSplitFailedTransition(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	sj := &splitJob{}
	sj.failB1.Store(true)
	job := sj.job(t, func(cfg *batch.JobConfig) {
		cfg.Steps = append(cfg.Steps, sj.tasklet(t, "cleanup", func(context.Context) error { return nil }))
		cfg.Transitions = append(cfg.Transitions,
			batch.Transition{From: "fetch", On: "FAILED", To: "cleanup"},
			batch.Transition{From: "cleanup", End: true})
	})
	exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	ran := sj.steps()
	require.ElementsMatch(t, []string{"prepare", "a1", "a2", "cleanup"}, ran)
	require.Equal(t, "cleanup", ran[len(ran)-1])
	for _, se := range stepExecutions(t, repo, exec.ID) {
		if se.StepName == "b1" {
			require.Equal(t, batch.StatusFailed, se.Status)
			require.Contains(t, se.ExitStatus.Description, "b1: disk full")
		}
	}
}

// TestSplitStop: an operator stop stops both branches at their next chunk
// boundary and the job ends STOPPED; the restart finishes both from their
// checkpoints, every item once, and joins.
func TestSplitStop(t *testing.T) {
	t.Parallel()
	reposWithPostgres(t, func(t *testing.T, repo repository.JobRepository) {
		sj := &splitJob{}
		var (
			first sync.WaitGroup
			once  = map[string]*sync.Once{"a": {}, "b": {}}
			gate  = make(chan struct{})
			gated atomic.Bool
		)
		gated.Store(true)
		first.Add(2)
		sj.write = func(branch string) error {
			if gated.Load() {
				once[branch].Do(first.Done)
				<-gate // both branches are under way when the stop comes
			}
			return nil
		}
		job := sj.job(t, nil)
		l := mustLauncher(t, launcher.Config{Repository: repo})
		exec, done := runAsync(t, l, job, nil)
		first.Wait()
		require.NoError(t, l.Stop(context.Background(), exec.ID))
		close(gate)
		res := <-done
		require.NoError(t, res.err)
		require.Equal(t, batch.StatusStopped, res.exec.Status)
		for _, se := range stepExecutions(t, repo, exec.ID) {
			if se.StepName == "a1" || se.StepName == "b1" {
				require.Equal(t, batch.StatusStopped, se.Status, se.StepName)
			}
		}
		require.Less(t, len(sj.items()), 200)
		require.NotContains(t, sj.steps(), "merge")

		gated.Store(false)
		sj.ran = nil
		exec2, err := launchRun(t, l, job, nil)
		require.NoError(t, err)
		require.Equal(t, batch.StatusCompleted, exec2.Status)
		require.Equal(t, seq(1, 200), sj.items(), "every item once")
		require.ElementsMatch(t, []string{"a1", "a2", "b1", "b2", "merge"}, sj.steps())
	})
}

// TestSplitStopTransition: a Stop transition inside a branch stops that
// branch; the other completes; the job ends STOPPED, and its restart begins
// that branch where the transition said, passes the other, and joins.
func TestSplitStopTransition(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	sj := &splitJob{}
	job := sj.job(t, func(cfg *batch.JobConfig) {
		cfg.Transitions[1] = batch.Transition{From: "a1", Stop: true, To: "a2"} // a person checks a1's figures
	})
	l := mustLauncher(t, launcher.Config{Repository: repo})
	exec, err := launchRun(t, l, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusStopped, exec.Status)
	require.Equal(t, "branch a1: the flow stops after a1 ended COMPLETED; a restart begins at a2", exec.ExitStatus.Description)
	require.ElementsMatch(t, []string{"prepare", "a1", "b1", "b2"}, sj.steps())

	sj.ran = nil
	exec, err = launchRun(t, l, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, []string{"a2", "merge"}, sj.steps())
	require.Equal(t, "prepared,a,b", sj.merged)
}

// TestSplitNested: a branch may hold a split of its own, and a decider; a
// flow may begin with a split.
func TestSplitNested(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	sj := &splitJob{}
	noop := func(context.Context) error { return nil }
	var steps []batch.Step
	for _, n := range []string{"x", "y1", "y2", "z", "w", "end"} {
		steps = append(steps, sj.tasklet(t, n, noop))
	}
	job, err := batch.NewJob("nested", batch.JobConfig{
		Steps:    steps,
		Start:    "outer",
		Deciders: []batch.Decider{{Name: "pick", Decide: func(context.Context, *batch.JobExecution, *batch.StepExecution) (string, error) { return "W", nil }}},
		Splits: []batch.Split{
			{Name: "outer", Branches: []string{"x", "inner"}},
			{Name: "inner", Branches: []string{"y1", "pick"}},
		},
		Transitions: []batch.Transition{
			{From: "y1", To: "y2"},
			{From: "pick", On: "W", To: "w"},
			{From: "w", To: "z"},
			{From: "outer", To: "end"},
		},
	})
	require.NoError(t, err)
	exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	ran := sj.steps()
	require.ElementsMatch(t, []string{"x", "y1", "y2", "w", "z", "end"}, ran)
	require.Equal(t, "end", ran[len(ran)-1])
}

func TestSplitValidation(t *testing.T) {
	t.Parallel()
	var r ran
	a, b, c := r.tasklet(t, "a", nil), r.tasklet(t, "b", nil), r.tasklet(t, "c", nil)
	steps := []batch.Step{a, b, c}
	for _, tt := range []struct {
		cfg  batch.JobConfig
		want string
	}{
		{batch.JobConfig{Steps: steps, Start: "s", Splits: []batch.Split{{Name: "s", Branches: []string{"a"}}}}, "want two branches or more"},
		{batch.JobConfig{Steps: steps, Start: "s", Splits: []batch.Split{{Name: "s", Branches: []string{"a", "nope"}}}}, `split s: no step, decider or split "nope"`},
		{batch.JobConfig{Steps: steps, Start: "nope"}, `the flow starts with "nope"`},
		{batch.JobConfig{Steps: steps, Splits: []batch.Split{{Name: "a", Branches: []string{"b", "c"}}}}, `two steps, deciders or splits named "a"`},
		{batch.JobConfig{Steps: steps, Start: "s", Splits: []batch.Split{{Name: "s", Branches: []string{"a", "b"}}},
			Transitions: []batch.Transition{{From: "b", To: "a"}, {From: "s", To: "c"}}}, "a is both in branch a of split s and in branch b of split s"},
		{batch.JobConfig{Steps: steps, Splits: []batch.Split{{Name: "s", Branches: []string{"b", "c"}}},
			Transitions: []batch.Transition{{From: "a", To: "s"}, {From: "a", On: "X", To: "c"}}}, "c is both in branch c of split s and in the main flow"},
		{batch.JobConfig{Steps: steps, Splits: []batch.Split{{Name: "s", Branches: []string{"b", "c"}}},
			Transitions: []batch.Transition{{From: "a", To: "s"}, {From: "c", To: "s"}}}, "s is both in the main flow and in branch c of split s"},
		{batch.JobConfig{Steps: steps, Splits: []batch.Split{{Name: "s", Branches: []string{"b", "s"}}},
			Transitions: []batch.Transition{{From: "a", To: "s"}, {From: "s", To: "c"}}}, "s is both in the main flow and in branch s of split s"},
	} {
		_, err := batch.NewJob("j", tt.cfg)
		require.ErrorIs(t, err, batch.ErrInvalidConfig)
		require.True(t, strings.Contains(err.Error(), tt.want), "%v, want %q", err, tt.want)
	}
}
