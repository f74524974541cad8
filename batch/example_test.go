package batch_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/memory"
)

func ExampleNewChunkStep() {
	ctx := context.Background()

	names := []string{"ada", "grace", "", "linus", "ken"}
	next := 0
	read := batch.ReaderFunc[string](func(context.Context) (string, error) {
		if next == len(names) {
			return "", io.EOF
		}
		next++
		return names[next-1], nil
	})
	upper := batch.ProcessorFunc[string, string](func(_ context.Context, name string) (string, error) {
		if name == "" {
			return "", batch.ErrFilter // dropped, counted as filtered
		}
		return strings.ToUpper(name), nil
	})
	write := batch.WriterFunc[string](func(_ context.Context, items []string) error {
		fmt.Println("write", items)
		return nil
	})

	step, err := batch.NewChunkStep("uppercase", batch.ChunkConfig[string, string]{
		Reader: read, Processor: upper, Writer: write, ChunkSize: 2,
	})
	if err != nil {
		panic(err)
	}
	job, err := batch.NewJob("names", batch.JobConfig{Steps: []batch.Step{step}})
	if err != nil {
		panic(err)
	}

	repo := memory.New()
	l, err := launcher.New(launcher.Config{Repository: repo})
	if err != nil {
		panic(err)
	}
	exec, err := l.Run(ctx, job, batch.JobParameters{"source": batch.StringParam("names.txt")})
	if err != nil {
		panic(err)
	}
	steps, err := repo.StepExecutions(ctx, exec.ID)
	if err != nil {
		panic(err)
	}
	se := steps[0]
	fmt.Println(exec.Status, exec.ExitStatus)
	fmt.Printf("read %d, filtered %d, written %d, commits %d\n", se.ReadCount, se.FilterCount, se.WriteCount, se.CommitCount)

	// The instance completed: launching it again is refused.
	_, err = l.Run(ctx, job, batch.JobParameters{"source": batch.StringParam("names.txt")})
	fmt.Println(err != nil && errors.Is(err, batch.ErrJobComplete))
	// Output:
	// write [ADA GRACE]
	// write [LINUS]
	// write [KEN]
	// COMPLETED COMPLETED
	// read 5, filtered 1, written 4, commits 3
	// true
}

func ExampleParseParameters() {
	params, err := batch.ParseParameters([]string{
		"file=people.csv",                   // identifying string
		"day:date=2024-05-01",               // identifying, typed
		"limit:int=500",                     // identifying, typed
		"+attempt:int=7",                    // not identifying: same instance whatever its value
		"+verbose:bool=true",                // not identifying
		"at:time=2024-05-01T04:00:00+02:00", // stored in UTC
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	limit, _ := params.Int("limit")
	fmt.Println("limit:", limit)
	fmt.Println("identifying:", params.Identifying().Names())
	for _, arg := range params.Format() {
		fmt.Println(arg)
	}

	_, err = batch.ParseParameters([]string{"limit:int=many"})
	fmt.Println(err)
	// Output:
	// limit: 500
	// identifying: [at day file limit]
	// at:time=2024-05-01T02:00:00Z
	// +attempt:int=7
	// day:date=2024-05-01
	// file=people.csv
	// limit:int=500
	// +verbose:bool=true
	// batch: parameter "limit:int=many": not an int: "many"
}

func ExampleNewTaskletStep() {
	ctx := context.Background()

	// Delete old rows 1000 at a time: each call is its own transaction, and
	// the progress is in the step's context should the job be restarted.
	remaining := 2500
	purge, err := batch.NewTaskletStep("purge", batch.TaskletConfig{
		Tasklet: batch.TaskletFunc(func(_ context.Context, se *batch.StepExecution) (batch.RepeatStatus, error) {
			n := min(remaining, 1000)
			remaining -= n
			se.WriteCount += int64(n)
			if err := se.Context.Put("purge.remaining", remaining); err != nil {
				return batch.Finished, err
			}
			fmt.Println("deleted", n)
			if remaining > 0 {
				return batch.Continuable, nil
			}
			return batch.Finished, nil
		}),
	})
	if err != nil {
		panic(err)
	}
	job, err := batch.NewJob("purge", batch.JobConfig{Steps: []batch.Step{purge}})
	if err != nil {
		panic(err)
	}
	repo := memory.New()
	l, err := launcher.New(launcher.Config{Repository: repo})
	if err != nil {
		panic(err)
	}
	exec, err := l.Run(ctx, job, nil)
	if err != nil {
		panic(err)
	}
	steps, _ := repo.StepExecutions(ctx, exec.ID)
	left, _ := steps[0].Context.Int64("purge.remaining")
	fmt.Println(exec.Status, "commits:", steps[0].CommitCount, "deleted:", steps[0].WriteCount, "left:", left)
	// Output:
	// deleted 1000
	// deleted 1000
	// deleted 500
	// COMPLETED commits: 3 deleted: 2500 left: 0
}

func ExampleExecutionContext() {
	// A reader records where it is; the step commits the context with the
	// chunk, and a restarted step opens the reader with it.
	type position struct {
		Line   int64 `json:"line"`
		Offset int64 `json:"offset"`
	}
	ec := batch.ExecutionContext{}
	_ = ec.Put("people.csv.position", position{Line: 41237, Offset: 3_145_728})
	_ = ec.Put("people.csv.file", "people-2024-05-01.csv")

	stored, _ := repository.MarshalContext(ec)
	fmt.Println(string(stored))

	restored, _ := repository.UnmarshalContext(stored)
	var pos position
	found, _ := restored.Get("people.csv.position", &pos)
	file, _ := restored.String("people.csv.file")
	_, ok := restored.Int64("people.csv.missing")
	fmt.Println(found, pos.Line, pos.Offset, file, ok)
	// Output:
	// {"people.csv.file":"people-2024-05-01.csv","people.csv.position":{"line":41237,"offset":3145728}}
	// true 41237 3145728 people-2024-05-01.csv false
}

// printSkips is a skip listener that prints each skip.
type printSkips struct{}

func (printSkips) OnSkip(_ context.Context, s *batch.Skip[string, int]) error {
	fmt.Printf("skipped item %d (%s): %v\n", s.Item, s.Phase, s.Err)
	return nil
}

// ExampleChunkConfig_skip skips the items whose amount does not parse, up to
// a limit, and reports them to a listener; everything else is written.
func ExampleChunkConfig_skip() {
	ctx := context.Background()
	errBadAmount := errors.New("bad amount")
	lines := []string{"10", "x", "20", "30", "?", "40"}
	next := 0
	read := batch.ReaderFunc[string](func(context.Context) (string, error) {
		if next == len(lines) {
			return "", io.EOF
		}
		next++
		return lines[next-1], nil
	})
	parse := batch.ProcessorFunc[string, int](func(_ context.Context, s string) (int, error) {
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil {
			return 0, fmt.Errorf("%q: %w", s, errBadAmount)
		}
		return n, nil
	})
	write := batch.WriterFunc[int](func(_ context.Context, items []int) error {
		fmt.Println("write", items)
		return nil
	})
	step, err := batch.NewChunkStep("amounts", batch.ChunkConfig[string, int]{
		Reader: read, Processor: parse, Writer: write, ChunkSize: 3,
		Skip:      batch.MatchErrors(errBadAmount),
		SkipLimit: 5,
		Listeners: []batch.Listener{printSkips{}},
	})
	if err != nil {
		panic(err)
	}
	job, err := batch.NewJob("amounts", batch.JobConfig{Steps: []batch.Step{step}})
	if err != nil {
		panic(err)
	}
	repo := memory.New()
	l, err := launcher.New(launcher.Config{Repository: repo})
	if err != nil {
		panic(err)
	}
	exec, err := l.Run(ctx, job, nil)
	if err != nil {
		panic(err)
	}
	steps, _ := repo.StepExecutions(ctx, exec.ID)
	fmt.Println(exec.Status, "written:", steps[0].WriteCount, "process skips:", steps[0].ProcessSkipCount)
	// Output:
	// write [10 20]
	// skipped item 2 (process): "x": bad amount
	// write [30 40]
	// skipped item 5 (process): "?": bad amount
	// COMPLETED written: 4 process skips: 2
}

// A CPU-bound processor on four goroutines: the writer still gets the items
// in the order they were read.
func ExampleChunkConfig_processWorkers() {
	square := batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
		return i * i, nil
	})
	next := 0
	read := batch.ReaderFunc[int](func(context.Context) (int, error) {
		if next == 8 {
			return 0, io.EOF
		}
		next++
		return next, nil
	})
	write := batch.WriterFunc[int](func(_ context.Context, items []int) error {
		fmt.Println(items)
		return nil
	})
	step, err := batch.NewChunkStep("squares", batch.ChunkConfig[int, int]{
		Reader: read, Processor: square, Writer: write, ChunkSize: 4, ProcessWorkers: 4,
	})
	if err != nil {
		panic(err)
	}
	job, err := batch.NewJob("squares", batch.JobConfig{Steps: []batch.Step{step}})
	if err != nil {
		panic(err)
	}
	l, err := launcher.New(launcher.Config{Repository: memory.New()})
	if err != nil {
		panic(err)
	}
	if _, err := l.Run(context.Background(), job, nil); err != nil {
		panic(err)
	}
	// Output:
	// [1 4 9 16]
	// [25 36 49 64]
}

// The next chunk is read while the one before is written: the writer of a
// slow sink no longer waits for the reader, and each checkpoint still holds
// the reader's position at the end of the chunk it commits.
func ExampleChunkConfig_readAhead() {
	lines := reader.FromSlice([]string{"a", "b", "c", "d", "e"})
	write := batch.WriterFunc[string](func(ctx context.Context, items []string) error {
		time.Sleep(10 * time.Millisecond) // a slow sink: the next chunk is read meanwhile
		fmt.Println(items)
		return nil
	})
	step, err := batch.NewChunkStep("copy", batch.ChunkConfig[string, string]{
		Reader: lines, Writer: write, ChunkSize: 2, ReadAhead: true,
	})
	if err != nil {
		panic(err)
	}
	job, err := batch.NewJob("copy", batch.JobConfig{Steps: []batch.Step{step}})
	if err != nil {
		panic(err)
	}
	l, err := launcher.New(launcher.Config{Repository: memory.New()})
	if err != nil {
		panic(err)
	}
	if _, err := l.Run(context.Background(), job, nil); err != nil {
		panic(err)
	}
	// Output:
	// [a b]
	// [c d]
	// [e]
}

// Three partitions of a range of numbers, each summed by a step of its own.
func ExampleNewPartitionStep() {
	var mu sync.Mutex
	sums := map[string]int{}
	step, err := batch.NewPartitionStep("sum", batch.PartitionConfig{
		Partitioner: batch.PartitionerFunc(func(context.Context) ([]batch.Partition, error) {
			var parts []batch.Partition
			for i := range 3 {
				ec := batch.ExecutionContext{}
				if err := ec.Put("from", i*100+1); err != nil {
					return nil, err
				}
				parts = append(parts, batch.Partition{Name: fmt.Sprintf("p%d", i+1), Context: ec})
			}
			return parts, nil
		}),
		Step: func(name string, p batch.Partition) (batch.Step, error) {
			from, _ := p.Context.Int64("from")
			next := int(from)
			read := batch.ReaderFunc[int](func(context.Context) (int, error) {
				if next == int(from)+100 {
					return 0, io.EOF
				}
				next++
				return next - 1, nil
			})
			return batch.NewChunkStep(name, batch.ChunkConfig[int, int]{
				Reader: read, ChunkSize: 25,
				Writer: batch.WriterFunc[int](func(_ context.Context, items []int) error {
					mu.Lock()
					defer mu.Unlock()
					for _, it := range items {
						sums[name] += it
					}
					return nil
				}),
			})
		},
	})
	if err != nil {
		panic(err)
	}
	job, err := batch.NewJob("sums", batch.JobConfig{Steps: []batch.Step{step}})
	if err != nil {
		panic(err)
	}
	repo := memory.New()
	l, err := launcher.New(launcher.Config{Repository: repo})
	if err != nil {
		panic(err)
	}
	exec, err := l.Run(context.Background(), job, nil)
	if err != nil {
		panic(err)
	}
	steps, _ := repo.StepExecutions(context.Background(), exec.ID)
	for _, s := range steps {
		if s.StepName == "sum" {
			fmt.Println(s.StepName, "read", s.ReadCount)
		}
	}
	fmt.Println(sums["sum:p1"], sums["sum:p2"], sums["sum:p3"])
	// Output:
	// sum read 300
	// 5050 15050 25050
}

// A job whose two fetch steps run at the same time, joined before the merge.
func ExampleSplit() {
	var mu sync.Mutex
	say := func(name string) batch.Step {
		step, err := batch.NewTaskletStep(name, batch.TaskletConfig{Tasklet: batch.TaskletFunc(
			func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
				mu.Lock()
				defer mu.Unlock()
				if name == "merge" {
					orders, _ := batch.JobContext(ctx).Int64("orders")
					stock, _ := batch.JobContext(ctx).Int64("stock")
					fmt.Println("merge", orders, "orders with", stock, "stock lines")
					return batch.Finished, nil
				}
				// Each branch leaves a key of its own for the merge.
				return batch.Finished, batch.JobContext(ctx).Put(name, len(name)*10)
			})})
		if err != nil {
			panic(err)
		}
		return step
	}
	job, err := batch.NewJob("nightly", batch.JobConfig{
		Steps:  []batch.Step{say("orders"), say("stock"), say("merge")},
		Start:  "fetch",
		Splits: []batch.Split{{Name: "fetch", Branches: []string{"orders", "stock"}}},
		Transitions: []batch.Transition{
			{From: "fetch", On: "COMPLETED", To: "merge"},
			{From: "merge", End: true},
		},
	})
	if err != nil {
		panic(err)
	}
	l, err := launcher.New(launcher.Config{Repository: memory.New()})
	if err != nil {
		panic(err)
	}
	exec, err := l.Run(context.Background(), job, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(exec.Status)
	// Output:
	// merge 60 orders with 50 stock lines
	// COMPLETED
}

// The skip report: the load's exit code picks the next step.
func ExampleTransition() {
	load, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
		Reader: batch.ReaderFunc[int](func() func(context.Context) (int, error) {
			items := []int{1, -2, 3}
			return func(context.Context) (int, error) {
				if len(items) == 0 {
					return 0, io.EOF
				}
				it := items[0]
				items = items[1:]
				return it, nil
			}
		}()),
		Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
			if i < 0 {
				return 0, batch.Skippable(fmt.Errorf("negative: %d", i))
			}
			return i, nil
		}),
		Writer:    batch.WriterFunc[int](func(context.Context, []int) error { return nil }),
		SkipLimit: 10,
		Listeners: []batch.Listener{skipsExit{}}, // sets COMPLETED WITH SKIPS
	})
	if err != nil {
		panic(err)
	}
	report, err := batch.NewTaskletStep("report", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
		func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
			fmt.Println("mailing the skip report")
			return batch.Finished, nil
		})})
	if err != nil {
		panic(err)
	}
	job, err := batch.NewJob("import", batch.JobConfig{
		Steps: []batch.Step{load, report},
		Transitions: []batch.Transition{
			{From: "load", On: "COMPLETED WITH SKIPS", To: "report"},
			{From: "load", End: true},
			{From: "report", End: true},
		},
	})
	if err != nil {
		panic(err)
	}
	l, err := launcher.New(launcher.Config{Repository: memory.New()})
	if err != nil {
		panic(err)
	}
	exec, err := l.Run(context.Background(), job, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(exec.Status)
	// Output:
	// mailing the skip report
	// COMPLETED
}
