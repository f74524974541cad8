package launcher_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository/memory"
)

// A scheduler that fires a job every second, and holds a nightly one;
// every replica of the program may run the same schedules on one
// PostgreSQL repository, and each fire time runs once.
func ExampleLauncher_RunSchedules() {
	var ran atomic.Int64
	var jobs launcher.Registry
	jobs.MustRegister("export", func(env launcher.Env) (batch.JobConfig, error) {
		fire, _ := env.Parameters.Time(batch.FireTimeParam) // the time it runs for
		step, err := batch.NewTaskletStep("export", batch.TaskletConfig{
			Tasklet: batch.TaskletFunc(func(context.Context, *batch.StepExecution) (batch.RepeatStatus, error) {
				if !fire.IsZero() {
					ran.Add(1)
				}
				return batch.Finished, nil
			}),
		})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
	l, err := launcher.New(launcher.Config{Registry: &jobs, Repository: memory.New()})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	err = l.RunSchedules(ctx, launcher.SchedulerConfig{Schedules: []launcher.Schedule{
		{Name: "nightly", Job: "export", Spec: "30 2 * * *", TimeZone: "Europe/Berlin", Misfire: "run-once"},
		{Name: "often", Job: "export", Spec: "* * * * * *", Seconds: true},
	}})
	if err != nil {
		panic(err)
	}
	list, err := l.Schedules(context.Background())
	if err != nil {
		panic(err)
	}
	for _, s := range list {
		fmt.Printf("%s %q %s fired: %t\n", s.Name, s.Spec, s.TimeZone, s.LastExecutionID != 0)
	}
	fmt.Println("ran for their fire times:", ran.Load() >= 2)
	// Output:
	// nightly "30 2 * * *" Europe/Berlin fired: false
	// often "* * * * * *"  fired: true
	// ran for their fire times: true
}
