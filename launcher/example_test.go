package launcher_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/memory"
)

func greetJob(env launcher.Env) (batch.JobConfig, error) {
	name, _ := env.Parameters.String("name")
	step, err := batch.NewChunkStep("greet", batch.ChunkConfig[string, string]{
		Reader: reader.FromSlice([]string{"hello", "goodbye"}),
		Processor: batch.ProcessorFunc[string, string](func(_ context.Context, s string) (string, error) {
			return s + ", " + name, nil
		}),
		Writer: batch.WriterFunc[string](func(_ context.Context, items []string) error {
			fmt.Fprintln(env.Stdout, strings.Join(items, "; "))
			return nil
		}),
	})
	return batch.JobConfig{Steps: []batch.Step{step}}, err
}

func ExampleLauncher() {
	var jobs launcher.Registry
	jobs.MustRegister("greet", greetJob)
	l, err := launcher.New(launcher.Config{Registry: &jobs, Repository: memory.New(), Stdout: os.Stdout})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	params := batch.JobParameters{"name": batch.StringParam("Ada")}
	job, err := l.Job("greet", params) // built by the registered factory
	if err != nil {
		panic(err)
	}
	exec, err := l.Run(ctx, job, params)
	fmt.Println(exec.Status, err)
	_, err = l.Run(ctx, job, params)
	fmt.Println(err)
	// Output:
	// hello, Ada; goodbye, Ada
	// COMPLETED <nil>
	// batch: job instance already completed: job "greet" instance 1 (execution 2)
}

func ExampleProgram() {
	var jobs launcher.Registry
	jobs.MustRegister("greet", greetJob)
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "batch.db")

	var out bytes.Buffer
	p := launcher.Program{Registry: &jobs, Stdout: &out}
	code := p.Run(context.Background(), []string{"-db", db, "-log-level", "error", "run", "name=Grace"})
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if !strings.Contains(line, "started") { // times vary
			fmt.Println(line)
		}
	}
	fmt.Println("exit code", code)
	// Output:
	// hello, Grace; goodbye, Grace
	// job greet, execution 1 (instance 1): COMPLETED
	//   parameters: name=Grace
	//   STEP   STATUS     READ  WRITTEN  FILTERED  SKIPPED  COMMITS  ROLLBACKS
	//   greet  COMPLETED  2     2        0         0        1        0
	// exit code 0
}

func ExampleLauncher_Prune() {
	var jobs launcher.Registry
	jobs.MustRegister("greet", greetJob)
	l, err := launcher.New(launcher.Config{Registry: &jobs, Repository: memory.New(), Stdout: io.Discard})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for _, name := range []string{"Ada", "Grace", "Edsger", "Barbara"} {
		params := batch.JobParameters{"name": batch.StringParam(name)}
		job, err := l.Job("greet", params)
		if err != nil {
			panic(err)
		}
		if _, err := l.Run(ctx, job, params); err != nil {
			panic(err)
		}
	}
	// Keep each job's two newest executions; say what would go first.
	req := repository.PruneRequest{KeepLast: 2, DryRun: true}
	res, err := l.Prune(ctx, req)
	if err != nil {
		panic(err)
	}
	t := res.Total()
	fmt.Printf("would delete %d executions, %d step executions, %d instances\n", t.Executions, t.StepExecutions, t.Instances)
	req.DryRun = false
	if _, err := l.Prune(ctx, req); err != nil {
		panic(err)
	}
	es, _ := l.Executions(ctx, batch.ExecutionQuery{})
	for _, e := range es {
		name, _ := e.Parameters.String("name")
		fmt.Println("kept", name, e.Status)
	}
	// Output:
	// would delete 2 executions, 2 step executions, 2 instances
	// kept Barbara COMPLETED
	// kept Edsger COMPLETED
}

func ExampleLauncher_Backfill() {
	var jobs launcher.Registry
	jobs.MustRegister("daily", func(env launcher.Env) (batch.JobConfig, error) {
		day, _ := env.Parameters.Time("day")
		step, err := batch.NewTaskletStep("load", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
			func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) {
				if day.Day() == 3 {
					return batch.Finished, errors.New("no data yet")
				}
				return batch.Finished, nil
			})})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	}, batch.ParamSpec{Name: "day", Type: batch.ParamDate, Required: true})
	l, err := launcher.New(launcher.Config{Registry: &jobs, Repository: memory.New(), Stdout: io.Discard})
	if err != nil {
		panic(err)
	}
	var days []batch.JobParameter
	for d := 1; d <= 4; d++ {
		days = append(days, batch.DateParam(time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC)))
	}
	ctx := context.Background()
	l.Backfill(ctx, "daily", "day", days[:2], nil, 1, nil) // an earlier, shorter backfill
	for _, r := range l.Backfill(ctx, "daily", "day", days, nil, 2, nil) {
		fmt.Println(r.Value, r.Status())
	}
	// Output:
	// 2026-11-01 SKIPPED
	// 2026-11-02 SKIPPED
	// 2026-11-03 FAILED
	// 2026-11-04 COMPLETED
}

func ExampleLauncher_DryRun() {
	l, err := launcher.New(launcher.Config{Repository: memory.New()})
	if err != nil {
		panic(err)
	}
	step, err := batch.NewChunkStep("notify", batch.ChunkConfig[string, string]{
		Reader: reader.FromSlice([]string{"ada@example.com", "grace@example.com"}),
		Writer: batch.WriterFunc[string](func(ctx context.Context, to []string) error {
			// A writer whose effect no transaction rolls back rehearses.
			if batch.IsDryRun(ctx) {
				fmt.Println("would mail", to)
				return nil
			}
			fmt.Println("mailing", to)
			return nil
		}),
	})
	if err != nil {
		panic(err)
	}
	job, err := batch.NewJob("newsletter", batch.JobConfig{Steps: []batch.Step{step}})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	exec, err := l.DryRun().Run(ctx, job, nil)
	fmt.Println(exec.Status, err)
	es, _ := l.Executions(ctx, batch.ExecutionQuery{})
	fmt.Println(len(es), "executions recorded")
	// Output:
	// would mail [ada@example.com grace@example.com]
	// COMPLETED <nil>
	// 0 executions recorded
}

func ExampleLauncher_Replay() {
	fixed := false // the processor's bug, fixed after the first run
	var reg launcher.Registry
	reg.MustRegister("prices", func(launcher.Env) (batch.JobConfig, error) {
		step, err := batch.NewChunkStep("reprice", batch.ChunkConfig[int, int]{
			Reader: reader.FromSlice([]int{10, 0, 30, 0, 50}),
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, cents int) (int, error) {
				if cents == 0 && !fixed {
					return 0, batch.Skippable(errors.New("no price"))
				}
				if cents == 0 {
					cents = 15 // the fix: the list price
				}
				return cents * 2, nil
			}),
			Writer: batch.WriterFunc[int](func(_ context.Context, prices []int) error {
				fmt.Println("wrote", prices)
				return nil
			}),
		})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
	l, err := launcher.New(launcher.Config{Registry: &reg, Repository: memory.New()})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	job, err := l.Job("prices", nil)
	if err != nil {
		panic(err)
	}
	first, err := l.Run(ctx, job, nil)
	if err != nil {
		panic(err)
	}

	fixed = true
	replay, err := l.Replay(ctx, first.ID) // items 2 and 4 only
	fmt.Println(replay.Status, err, replay.Parameters.Format())
	_, err = l.Replay(ctx, first.ID)
	fmt.Println(errors.Is(err, batch.ErrJobComplete))
	// Output:
	// wrote [20 60 100]
	// wrote [30 30]
	// COMPLETED <nil> [replay.of:int=2]
	// true
}

func ExampleLauncher_RunPartition() {
	// Both sides build the same job: a step of two partitions.
	register := func(reg *launcher.Registry, written *atomic.Int64) {
		reg.MustRegister("spread", func(launcher.Env) (batch.JobConfig, error) {
			step, err := batch.NewPartitionStep("load", batch.PartitionConfig{
				Partitioner: batch.PartitionerFunc(func(context.Context) ([]batch.Partition, error) {
					return []batch.Partition{{Name: "a"}, {Name: "b"}}, nil
				}),
				Step: func(name string, _ batch.Partition) (batch.Step, error) {
					return batch.NewChunkStep(name, batch.ChunkConfig[int, int]{
						Reader: reader.FromSlice([]int{1, 2, 3}),
						Writer: batch.WriterFunc[int](func(_ context.Context, items []int) error {
							written.Add(int64(len(items)))
							return nil
						}),
					})
				},
			})
			return batch.JobConfig{Steps: []batch.Step{step}}, err
		})
	}
	repo := memory.New() // shared: in production, one PostgreSQL database
	work := make(chan launcher.PartitionWork, 2)

	var managerWrote, workerWrote atomic.Int64
	var managerJobs, workerJobs launcher.Registry
	register(&managerJobs, &managerWrote)
	register(&workerJobs, &workerWrote)
	manager, err := launcher.New(launcher.Config{Registry: &managerJobs, Repository: repo,
		Remote: launcher.RemoteConfig{Poll: 10 * time.Millisecond,
			Dispatcher: launcher.DispatcherFunc(func(_ context.Context, w launcher.PartitionWork) error {
				work <- w // a message queue, in production
				return nil
			})}})
	if err != nil {
		panic(err)
	}
	worker, err := launcher.New(launcher.Config{Registry: &workerJobs, Repository: repo})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			select {
			case w := <-work:
				_, _ = worker.RunPartition(ctx, w, "worker-1", nil) // nil: never handed back
			case <-ctx.Done():
				return
			}
		}
	}()

	job, err := manager.Job("spread", nil)
	if err != nil {
		panic(err)
	}
	exec, err := manager.Run(ctx, job, nil)
	fmt.Println(exec.Status, err)
	fmt.Println("written by the manager:", managerWrote.Load(), "by the worker:", workerWrote.Load())
	// Output:
	// COMPLETED <nil>
	// written by the manager: 0 by the worker: 6
}

// StartRestart restarts a failed execution in the background, as a web
// page's Restart button would: it returns once the new execution exists.
func ExampleLauncher_StartRestart() {
	var down atomic.Bool
	down.Store(true)
	var jobs launcher.Registry
	jobs.MustRegister("sync", func(launcher.Env) (batch.JobConfig, error) {
		step, err := batch.NewChunkStep("push", batch.ChunkConfig[int, int]{
			Reader: reader.FromSlice([]int{1, 2, 3, 4}), ChunkSize: 2,
			Writer: batch.WriterFunc[int](func(_ context.Context, items []int) error {
				if down.Load() && items[0] == 3 {
					return errors.New("the API is down")
				}
				return nil
			}),
		})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
	l, err := launcher.New(launcher.Config{Registry: &jobs, Repository: memory.New()})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	job, _ := l.Job("sync", nil)
	failed, _ := l.Run(ctx, job, batch.JobParameters{"day": batch.StringParam("2026-12-01")})
	fmt.Println(failed.Status)

	down.Store(false)
	next, err := l.StartRestart(ctx, failed.ID)
	if err != nil {
		panic(err)
	}
	done, err := l.Wait(ctx, next.ID)
	fmt.Println(done.Status, err, done.InstanceID == failed.InstanceID)
	// Output:
	// FAILED
	// COMPLETED <nil> true
}
