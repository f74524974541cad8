package batch_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/memory"
)

// importJob is a two-step job on a SQLite file: "prepare" (a tasklet that
// creates the target table in the chunk transaction) then "load" (a chunk
// step that inserts items in the chunk transaction, joined with
// JoinTxx). The table's primary key makes an item written twice an error.
type importJob struct {
	job      *batch.Job
	reader   *streamReader
	writer   *recordingWriter[int]
	prepares int
}

func newImportJob(t *testing.T, db *sqlx.DB, n int, fail func(call int) error) *importJob {
	t.Helper()
	ij := &importJob{reader: newStreamReader(n)}
	prepare, err := batch.NewTaskletStep("prepare", batch.TaskletConfig{
		Tasklet: batch.TaskletFunc(func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
			ij.prepares++
			tx, err := batch.JoinTxx(ctx, db)
			if err != nil {
				return batch.Finished, err
			}
			_, err = tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS imported (item INTEGER PRIMARY KEY)`)
			return batch.Finished, err
		}),
	})
	require.NoError(t, err)
	ij.writer = &recordingWriter[int]{fail: func(ctx context.Context, call int, items []int) error {
		tx, err := batch.JoinTxx(ctx, db)
		if err != nil {
			return err
		}
		for _, it := range items {
			if _, err := tx.ExecContext(ctx, `INSERT INTO imported (item) VALUES (?)`, it); err != nil {
				return err
			}
		}
		if fail != nil {
			return fail(call) // after the inserts: they must roll back
		}
		return nil
	}}
	load, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{Reader: ij.reader, Writer: ij.writer, ChunkSize: 3})
	require.NoError(t, err)
	ij.job, err = batch.NewJob("import", batch.JobConfig{Steps: []batch.Step{prepare, load}})
	require.NoError(t, err)
	return ij
}

func importedItems(t *testing.T, db *sqlx.DB) []int {
	t.Helper()
	var items []int
	require.NoError(t, db.Select(&items, `SELECT item FROM imported ORDER BY item`))
	return items
}

func TestRestartResumesAfterLastCommittedChunk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "batch.db")
	disk := errors.New("disk full")

	// First process: the write of chunk 3 (items 7-9) fails.
	repo := openSQLite(t, path)
	first := newImportJob(t, repo.DB(), 10, func(call int) error {
		if call == 3 {
			return disk
		}
		return nil
	})
	engine := mustLauncher(t, launcher.Config{Repository: repo})
	exec1, err := engine.Run(ctx, first.job, batch.JobParameters{
		"file":    batch.StringParam("people.csv"),
		"attempt": batch.IntParam(1).NonIdentifying(),
	})
	require.ErrorIs(t, err, disk)
	var stepErr *batch.StepError
	require.ErrorAs(t, err, &stepErr)
	require.Equal(t, "load", stepErr.Step)
	require.Equal(t, int64(3), stepErr.Chunk)
	require.Equal(t, int64(7), stepErr.Item)
	require.Equal(t, "write", stepErr.Phase)
	require.Equal(t, batch.StatusFailed, exec1.Status)
	require.Equal(t, batch.ExitCodeFailed, exec1.ExitStatus.Code)
	require.Equal(t, "step load: chunk 3: item 7: write: chunk of items 7-9: disk full", exec1.ExitStatus.Description)
	require.Equal(t, 1, first.prepares)
	require.Equal(t, seq(1, 6), importedItems(t, repo.DB()), "the failed chunk's rows rolled back with it")

	stored, err := repo.JobExecution(ctx, exec1.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusFailed, stored.Status)
	require.Equal(t, exec1.ExitStatus, stored.ExitStatus)
	ses := stepExecutions(t, repo, exec1.ID)
	require.Len(t, ses, 2)
	require.Equal(t, batch.StatusCompleted, ses[0].Status)
	load1 := ses[1]
	require.Equal(t, batch.StatusFailed, load1.Status)
	require.Equal(t, int64(6), load1.ReadCount)
	require.Equal(t, int64(6), load1.WriteCount)
	require.Equal(t, int64(2), load1.CommitCount)
	require.Equal(t, int64(1), load1.RollbackCount)
	pos, _ := load1.Context.Int64(readerKey)
	require.Equal(t, int64(6), pos)
	require.NoError(t, repo.Close())

	// Second process, on the same file: the same identifying parameters
	// address the same instance; "prepare" is skipped and "load" resumes at
	// item 7.
	repo = openSQLite(t, path)
	second := newImportJob(t, repo.DB(), 10, nil)
	engine = mustLauncher(t, launcher.Config{Repository: repo})
	exec2, err := engine.Run(ctx, second.job, batch.JobParameters{
		"file":    batch.StringParam("people.csv"),
		"attempt": batch.IntParam(2).NonIdentifying(),
	})
	require.NoError(t, err)
	require.Equal(t, exec1.InstanceID, exec2.InstanceID)
	require.NotEqual(t, exec1.ID, exec2.ID)
	require.Equal(t, batch.StatusCompleted, exec2.Status)
	require.Equal(t, batch.ExitCodeCompleted, exec2.ExitStatus.Code)

	require.Zero(t, second.prepares, "a completed step is skipped on restart")
	require.Equal(t, []int{6}, second.reader.openedAt)
	require.Equal(t, [][]int{{7, 8, 9}, {10}}, second.writer.chunks)
	require.Equal(t, seq(1, 10), importedItems(t, repo.DB()), "every item written exactly once")

	load2 := onlyStep(t, repo, exec2.ID)
	require.Equal(t, "load", load2.StepName)
	require.Equal(t, batch.StatusCompleted, load2.Status)
	require.Equal(t, int64(4), load2.ReadCount)
	require.Equal(t, int64(4), load2.WriteCount)
	require.Equal(t, int64(2), load2.CommitCount)
	n, err := repo.StepExecutionCount(ctx, exec2.InstanceID, "load")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	n, err = repo.StepExecutionCount(ctx, exec2.InstanceID, "prepare")
	require.NoError(t, err)
	require.Equal(t, 1, n)

	// A completed instance cannot be launched again.
	_, err = engine.Run(ctx, second.job, batch.JobParameters{"file": batch.StringParam("people.csv")})
	require.ErrorIs(t, err, batch.ErrJobComplete)
	var le *batch.LaunchError
	require.ErrorAs(t, err, &le)
	require.Equal(t, exec2.InstanceID, le.InstanceID)
	require.Equal(t, exec2.ID, le.ExecutionID)
	require.Equal(t, "import", le.JobName)

	// Other identifying parameters are another instance.
	exec3, err := repo.CreateJobExecution(ctx, repository.LaunchRequest{JobName: "import",
		Parameters: batch.JobParameters{"file": batch.StringParam("other.csv")}})
	require.NoError(t, err)
	require.NotEqual(t, exec2.InstanceID, exec3.InstanceID)
}

func TestRestartItemNumbersContinue(t *testing.T) {
	t.Parallel()
	repo := memory.New()
	engine := mustLauncher(t, launcher.Config{Repository: repo})
	reader := newStreamReader(10)
	failAt := 0
	step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
		Reader: reader,
		Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
			if i == failAt {
				return 0, errors.New("bad")
			}
			return i, nil
		}),
		Writer:    &recordingWriter[int]{},
		ChunkSize: 3,
	})
	require.NoError(t, err)
	job, err := batch.NewJob("numbers", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)

	failAt = 5
	_, err = launchRun(t, engine, job, nil)
	var se *batch.StepError
	require.ErrorAs(t, err, &se)
	require.Equal(t, int64(2), se.Chunk)
	require.Equal(t, int64(5), se.Item)

	// The restart resumes at item 4; chunks are numbered from 1 again, items
	// go on counting over all executions.
	failAt = 8
	_, err = launchRun(t, engine, job, nil)
	require.ErrorAs(t, err, &se)
	require.Equal(t, int64(2), se.Chunk)
	require.Equal(t, int64(8), se.Item)
	require.Equal(t, []int{0, 3}, reader.openedAt)

	failAt = 0
	exec, err := launchRun(t, engine, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, []int{0, 3, 6}, reader.openedAt)
}

func TestRestartAllowStartIfComplete(t *testing.T) {
	t.Parallel()
	for _, allow := range []bool{false, true} {
		repo := memory.New()
		engine := mustLauncher(t, launcher.Config{Repository: repo})
		calls := 0
		setup, err := batch.NewTaskletStep("setup", batch.TaskletConfig{Tasklet: countingTasklet(&calls), AllowStartIfComplete: allow})
		require.NoError(t, err)
		require.Equal(t, allow, setup.AllowStartIfComplete())
		fail := true
		work, err := batch.NewTaskletStep("work", batch.TaskletConfig{
			Tasklet: batch.TaskletFunc(func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) {
				if fail {
					return batch.Finished, errors.New("not yet")
				}
				return batch.Finished, nil
			}),
		})
		require.NoError(t, err)
		job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{setup, work}})
		require.NoError(t, err)

		exec1, err := launchRun(t, engine, job, nil)
		require.Error(t, err)
		require.Equal(t, batch.StatusFailed, exec1.Status)
		require.Equal(t, 1, calls)

		fail = false
		exec2, err := launchRun(t, engine, job, nil)
		require.NoError(t, err)
		require.Equal(t, batch.StatusCompleted, exec2.Status)
		require.Equal(t, exec1.InstanceID, exec2.InstanceID)
		var names []string
		for _, se := range stepExecutions(t, repo, exec2.ID) {
			names = append(names, se.StepName)
		}
		if allow {
			require.Equal(t, 2, calls, "AllowStartIfComplete runs a completed step again")
			require.Equal(t, []string{"setup", "work"}, names)
		} else {
			require.Equal(t, 1, calls, "a completed step is skipped")
			require.Equal(t, []string{"work"}, names)
		}
	}
}

// afterJobOnce fails the first AfterJob call only.
type afterJobOnce struct{ calls int }

func (a *afterJobOnce) AfterJob(context.Context, *batch.JobExecution) error {
	a.calls++
	if a.calls == 1 {
		return errors.New("notification failed")
	}
	return nil
}

func TestRestartWithAllStepsCompletedIsNoop(t *testing.T) {
	t.Parallel()
	repo := memory.New()
	engine := mustLauncher(t, launcher.Config{Repository: repo})
	calls := 0
	step, err := batch.NewTaskletStep("only", batch.TaskletConfig{Tasklet: countingTasklet(&calls)})
	require.NoError(t, err)
	job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}, Listeners: []batch.Listener{&afterJobOnce{}}})
	require.NoError(t, err)

	exec, err := launchRun(t, engine, job, nil)
	require.ErrorContains(t, err, "after-job listener: notification failed")
	require.Equal(t, batch.StatusFailed, exec.Status)

	exec, err = launchRun(t, engine, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, batch.ExitCodeNoop, exec.ExitStatus.Code)
	require.Equal(t, 1, calls)
}

func TestLaunchWhileRunningRefused(t *testing.T) {
	t.Parallel()
	repo := memory.New()
	engine := mustLauncher(t, launcher.Config{Repository: repo})
	params := batch.JobParameters{"day": batch.StringParam("monday")}
	started, release := make(chan struct{}), make(chan struct{})
	step, err := batch.NewTaskletStep("only", batch.TaskletConfig{Tasklet: blockingTasklet(started, release)})
	require.NoError(t, err)
	job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	exec, done := runAsync(t, engine, job, params)
	require.Equal(t, batch.StatusStarting, exec.Status)
	<-started
	_, err = engine.Run(context.Background(), job, params)
	require.ErrorIs(t, err, batch.ErrJobRunning)
	var le *batch.LaunchError
	require.ErrorAs(t, err, &le)
	require.Equal(t, exec.ID, le.ExecutionID)
	require.Equal(t, batch.DefaultLease, le.Lease)
	require.ErrorContains(t, err, "presumed crashed after")
	close(release)
	require.NoError(t, (<-done).err)
}

// stepFunc is a Step made of a function, for tests of the engine itself.
type stepFunc struct {
	name string
	fn   func(ctx context.Context, sc batch.StepContext) error
}

func (s stepFunc) Name() string                                            { return s.name }
func (s stepFunc) Execute(ctx context.Context, sc batch.StepContext) error { return s.fn(ctx, sc) }

func TestJobContextSavedAndCarriedToRestart(t *testing.T) {
	repos(t, func(t *testing.T, repo repository.JobRepository) {
		ctx := context.Background()
		engine := mustLauncher(t, launcher.Config{Repository: repo})
		fail := true
		var seen string
		job, err := batch.NewJob("handoff", batch.JobConfig{Steps: []batch.Step{
			stepFunc{"count", func(_ context.Context, sc batch.StepContext) error {
				return sc.JobExecution().Context.Put("total", "42")
			}},
			stepFunc{"use", func(_ context.Context, sc batch.StepContext) error {
				seen, _ = sc.JobExecution().Context.String("total")
				if fail {
					return errors.New("not yet")
				}
				return nil
			}},
		}})
		require.NoError(t, err)

		exec, err := engine.Run(ctx, job, nil)
		require.Error(t, err)
		require.Equal(t, "42", seen)
		stored, err := repo.JobExecution(ctx, exec.ID)
		require.NoError(t, err)
		total, _ := stored.Context.String("total")
		require.Equal(t, "42", total, "saved after the step that set it")

		fail, seen = false, ""
		exec2, err := engine.Run(ctx, job, nil)
		require.NoError(t, err)
		require.Equal(t, batch.StatusCompleted, exec2.Status)
		require.Equal(t, "42", seen, "the restart skipped step count and still sees its value")
	})
}
