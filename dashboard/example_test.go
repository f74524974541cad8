package dashboard_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/dashboard"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/memory"
)

// A program mounts the dashboard under /batch/ next to its own handlers.
// Here it allows actions, to the users its own authentication let in.
func ExampleNew() {
	ctx := context.Background()
	repo := memory.New()
	var jobs launcher.Registry
	jobs.MustRegister("count", func(launcher.Env) (batch.JobConfig, error) {
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
			Reader: reader.FromSlice([]int{1, 2, 3}), ChunkSize: 2,
			Writer: batch.WriterFunc[int](func(context.Context, []int) error { return nil }),
		})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
	l, err := launcher.New(launcher.Config{Repository: repo, Registry: &jobs})
	if err != nil {
		panic(err)
	}
	job, _ := l.Job("count", nil)
	exec, err := l.Run(ctx, job, batch.JobParameters{"day": batch.StringParam("2026-12-01")})
	if err != nil {
		panic(err)
	}

	dash, err := dashboard.New(repo, dashboard.Options{
		AllowActions: true,
		Operator:     l,
		Authorize: func(r *http.Request, a dashboard.Action) error {
			if r.Header.Get("X-User-Role") != "operator" { // set by the program's own authentication
				return errors.New("operators only")
			}
			return nil
		},
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/batch/", http.StripPrefix("/batch", dash))
	// go http.ListenAndServe(":8080", mux); here, one request:
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, fmt.Sprintf("/batch/executions/%d", exec.ID), nil))
	page := rec.Body.String()
	fmt.Println(rec.Code, strings.Contains(page, "COMPLETED"), strings.Contains(page, `href="/batch/jobs/count/steps/load"`))
	// Output: 200 true true
}
