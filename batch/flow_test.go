package batch_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
)

// skipsExit is an after-step listener that sets the exit code COMPLETED
// WITH SKIPS on a step that skipped items.
type skipsExit struct{}

func (skipsExit) AfterStep(_ context.Context, se *batch.StepExecution) error {
	if se.Status == batch.StatusCompleted && se.SkipCount() > 0 {
		se.ExitStatus = batch.ExitStatus{Code: "COMPLETED WITH SKIPS"}
	}
	return nil
}

// ran records the steps a flow ran.
type ran struct{ names []string }

func (r *ran) tasklet(t *testing.T, name string, fail func() error) batch.Step {
	t.Helper()
	s, err := batch.NewTaskletStep(name, batch.TaskletConfig{Tasklet: batch.TaskletFunc(
		func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) {
			r.names = append(r.names, name)
			if fail != nil {
				return batch.Finished, fail()
			}
			return batch.Finished, nil
		})})
	require.NoError(t, err)
	return s
}

// TestFlowSkipReport: the load step's exit code picks the way — a report of
// the skips, a clean-up after a failure, or the end — and a restart of a
// report that failed passes the completed load with its stored code and
// takes the same branch.
func TestFlowSkipReport(t *testing.T) {
	t.Parallel()
	errBadLine := errors.New("bad line")
	for _, tt := range []struct {
		name     string
		items    []int
		want     []string
		wantExit string
	}{
		{"clean", []int{1, 2, 3}, []string{"load"}, batch.ExitCodeCompleted},
		{"skips", []int{1, -2, 3}, []string{"load", "report"}, batch.ExitCodeCompleted},
		{"failure", []int{1, -2, -3, -4}, []string{"load", "cleanup"}, batch.ExitCodeCompleted},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
			var r ran
			reportFails := tt.name == "skips"
			load, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
				Reader: sliceReader(tt.items...),
				Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
					if i < 0 {
						return 0, errBadLine
					}
					return i, nil
				}),
				Writer:    &recordingWriter[int]{},
				Skip:      batch.MatchErrors(errBadLine),
				SkipLimit: 2,
				Listeners: []batch.Listener{skipsExit{}, recordStep(&r)},
			})
			require.NoError(t, err)
			job, err := batch.NewJob("import", batch.JobConfig{
				Steps: []batch.Step{load,
					r.tasklet(t, "report", func() error {
						if reportFails {
							reportFails = false
							return errors.New("mail server down")
						}
						return nil
					}),
					r.tasklet(t, "cleanup", nil)},
				Transitions: []batch.Transition{
					{From: "load", On: "COMPLETED WITH SKIPS", To: "report"},
					{From: "load", On: "FAILED", To: "cleanup"},
					{From: "load", End: true}, // anything else
					// A report or a clean-up that fails fails the job: no
					// transition matches FAILED.
					{From: "report", On: "COMPLETED", End: true},
					{From: "cleanup", On: "COMPLETED", End: true},
				},
			})
			require.NoError(t, err)
			l := mustLauncher(t, launcher.Config{Repository: repo})
			exec, err := launchRun(t, l, job, nil)
			if tt.name == "skips" {
				require.ErrorContains(t, err, "mail server down")
				require.Equal(t, batch.StatusFailed, exec.Status)
				require.Equal(t, []string{"load", "report"}, r.names)
				r.names = nil
				exec, err = launchRun(t, l, job, nil)
				require.NoError(t, err)
				require.Equal(t, []string{"report"}, r.names, "the restart passes the completed load and reports again")
			} else {
				require.NoError(t, err)
				require.Equal(t, tt.want, r.names)
			}
			require.Equal(t, batch.StatusCompleted, exec.Status)
			require.Equal(t, tt.wantExit, exec.ExitStatus.Code)
		})
	}
}

// recordStep returns a listener that records the steps it is told about.
func recordStep(r *ran) batch.Listener {
	return afterStep(func(se *batch.StepExecution) { r.names = append(r.names, se.StepName) })
}

type afterStep func(se *batch.StepExecution)

func (f afterStep) AfterStep(_ context.Context, se *batch.StepExecution) error {
	f(se)
	return nil
}

// TestFlowDeciderAndStop: a decider picks the branch from the job's
// parameters; a Stop transition ends the job STOPPED, and its restart begins
// at the step the transition names.
func TestFlowDeciderAndStop(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	var r ran
	var lastSeen []string
	job, err := batch.NewJob("nightly", batch.JobConfig{
		Steps: []batch.Step{r.tasklet(t, "extract", nil), r.tasklet(t, "weekly", nil), r.tasklet(t, "daily", nil),
			r.tasklet(t, "publish", nil)},
		Deciders: []batch.Decider{{Name: "which", Decide: func(_ context.Context, e *batch.JobExecution, last *batch.StepExecution) (string, error) {
			lastSeen = append(lastSeen, last.StepName+" "+last.ExitStatus.Code)
			day, _ := e.Parameters.String("day")
			if day == "sunday" {
				return "WEEKLY", nil
			}
			return "DAILY", nil
		}}},
		Transitions: []batch.Transition{
			{From: "extract", To: "which"},
			{From: "which", On: "WEEKLY", To: "weekly"},
			{From: "which", On: "DAILY", To: "daily"},
			{From: "weekly", Stop: true, To: "publish"}, // a person checks the weekly figures first
			{From: "daily", To: "publish"},
			{From: "publish", End: true},
		},
	})
	require.NoError(t, err)
	l := mustLauncher(t, launcher.Config{Repository: repo})
	exec, err := launchRun(t, l, job, batch.JobParameters{"day": batch.StringParam("monday")})
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, []string{"extract", "daily", "publish"}, r.names)

	r.names = nil
	sunday := batch.JobParameters{"day": batch.StringParam("sunday")}
	exec, err = launchRun(t, l, job, sunday)
	require.NoError(t, err)
	require.Equal(t, batch.StatusStopped, exec.Status)
	require.Equal(t, "the flow stops after weekly ended COMPLETED; a restart begins at publish", exec.ExitStatus.Description)
	require.Equal(t, []string{"extract", "weekly"}, r.names)
	r.names = nil
	exec, err = launchRun(t, l, job, sunday)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, []string{"publish"}, r.names, "the restart begins where the stop said")
	require.Equal(t, []string{"extract COMPLETED", "extract COMPLETED"}, lastSeen)
}

func TestFlowFail(t *testing.T) {
	t.Parallel()
	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	var r ran
	check, err := batch.NewTaskletStep("check", batch.TaskletConfig{
		Tasklet: batch.TaskletFunc(func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) {
			r.names = append(r.names, "check")
			return batch.Finished, nil
		}),
		Listeners: []batch.Listener{afterStep(func(se *batch.StepExecution) { se.ExitStatus = batch.ExitStatus{Code: "EMPTY"} })},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("load", batch.JobConfig{
		Steps: []batch.Step{check, r.tasklet(t, "load", nil)},
		Transitions: []batch.Transition{
			{From: "check", On: "EMPTY", Fail: true},
			{From: "check", On: "*", To: "load"},
		},
	})
	require.NoError(t, err)
	exec, err := launchRun(t, mustLauncher(t, launcher.Config{Repository: repo}), job, nil)
	require.ErrorContains(t, err, "the flow fails after check ended EMPTY")
	require.Equal(t, batch.StatusFailed, exec.Status)
	require.Equal(t, []string{"check"}, r.names)
}

func TestFlowValidation(t *testing.T) {
	t.Parallel()
	var r ran
	a, b, c := r.tasklet(t, "a", nil), r.tasklet(t, "b", nil), r.tasklet(t, "c", nil)
	decide := func(context.Context, *batch.JobExecution, *batch.StepExecution) (string, error) { return "X", nil }
	for _, tt := range []struct {
		cfg  batch.JobConfig
		want string
	}{
		{batch.JobConfig{Steps: []batch.Step{a, b}, Transitions: []batch.Transition{{From: "a", To: "nope"}}}, `no step, decider or split "nope"`},
		{batch.JobConfig{Steps: []batch.Step{a, b}, Transitions: []batch.Transition{{From: "x", To: "b"}}}, `no step, decider or split "x"`},
		{batch.JobConfig{Steps: []batch.Step{a, b, c}, Transitions: []batch.Transition{{From: "a", To: "b"}}}, "the flow never reaches c"},
		{batch.JobConfig{Steps: []batch.Step{a, b}, Transitions: []batch.Transition{{From: "a", To: "b"}, {From: "b", To: "a"}}}, "cycle"},
		{batch.JobConfig{Steps: []batch.Step{a, b}, Transitions: []batch.Transition{{From: "a", To: "b", End: true}}}, "exactly one of To, End, Fail and Stop"},
		{batch.JobConfig{Steps: []batch.Step{a}, Transitions: []batch.Transition{{From: "a"}}}, "exactly one of To, End, Fail and Stop"},
		{batch.JobConfig{Steps: []batch.Step{a}, Transitions: []batch.Transition{{From: "a", Stop: true}}}, "Stop needs the To"},
		{batch.JobConfig{Steps: []batch.Step{a}, Transitions: []batch.Transition{{From: "a", On: "[", End: true}}}, "pattern"},
		{batch.JobConfig{Steps: []batch.Step{a}, Deciders: []batch.Decider{{Name: "a", Decide: decide}},
			Transitions: []batch.Transition{{From: "a", End: true}}}, `two steps, deciders or splits named "a"`},
		{batch.JobConfig{Steps: []batch.Step{a}, Deciders: []batch.Decider{{Name: "d", Decide: decide}}}, "deciders without transitions"},
	} {
		_, err := batch.NewJob("j", tt.cfg)
		require.ErrorIs(t, err, batch.ErrInvalidConfig)
		require.True(t, strings.Contains(err.Error(), tt.want), "%v, want %q", err, tt.want)
	}
}
