package writer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/postgres"
	"github.com/chunkwise/chunkwise/writer"
)

// Amounts that do not parse are skipped and recorded, with their errors, in
// a reject file.
func ExampleNewRejectFile() {
	repo, cleanup := exampleRepo()
	defer cleanup()
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	rejects, err := writer.NewRejectFile[string, int](writer.RejectFileConfig{Path: filepath.Join(dir, "rejects.jsonl")})
	if err != nil {
		panic(err)
	}
	errBad := errors.New("not an amount")
	step, err := batch.NewChunkStep("amounts", batch.ChunkConfig[string, int]{
		Reader: reader.FromSlice([]string{"10", "x", "30"}),
		Processor: batch.ProcessorFunc[string, int](func(_ context.Context, s string) (int, error) {
			n, err := strconv.Atoi(s)
			if err != nil {
				return 0, fmt.Errorf("%q: %w", s, errBad)
			}
			return n, nil
		}),
		Writer:    &writer.Slice[int]{},
		Skip:      batch.MatchErrors(errBad),
		Listeners: []batch.Listener{rejects},
	})
	if err != nil {
		panic(err)
	}
	job, err := batch.NewJob("amounts", batch.JobConfig{Steps: []batch.Step{step}})
	if err != nil {
		panic(err)
	}
	l, err := launcher.New(launcher.Config{Repository: repo})
	if err != nil {
		panic(err)
	}
	if _, err := l.Run(context.Background(), job, nil); err != nil {
		panic(err)
	}
	var rej writer.Reject[string, int]
	b, err := os.ReadFile(filepath.Join(dir, "rejects.jsonl"))
	if err != nil {
		panic(err)
	}
	if err := json.Unmarshal(b, &rej); err != nil {
		panic(err)
	}
	fmt.Println(rej.Step, rej.Phase, rej.Item, *rej.Input, rej.Error)
	// Output:
	// amounts process 2 x "x": not an amount
}

// A bulk load into PostgreSQL: the rows of each chunk go in with one COPY,
// in the chunk's transaction. (Not run here: it needs a PostgreSQL server.)
func ExampleNewCopy() {
	ctx := context.Background()
	repo, err := postgres.Open(ctx, os.Getenv("DATABASE_URL"), postgres.Config{})
	if err != nil {
		panic(err)
	}
	defer repo.Close()
	type reading struct {
		Sensor string
		Value  float64
	}
	load, err := writer.NewCopy(writer.CopyConfig[reading]{
		DB:      repo.DB(),
		Table:   "readings",
		Columns: []string{"sensor", "value"},
		Values:  func(r reading) []any { return []any{r.Sensor, r.Value} },
	})
	if err != nil {
		panic(err)
	}
	step, err := batch.NewChunkStep("load", batch.ChunkConfig[reading, reading]{
		Reader: reader.FromSlice([]reading{{"a", 1.5}, {"b", 2}}), Writer: load, ChunkSize: 10_000,
	})
	if err != nil {
		panic(err)
	}
	job, err := batch.NewJob("load", batch.JobConfig{Steps: []batch.Step{step}})
	if err != nil {
		panic(err)
	}
	l, err := launcher.New(launcher.Config{Repository: repo})
	if err != nil {
		panic(err)
	}
	if _, err := l.Run(ctx, job, nil); err != nil {
		panic(err)
	}
}
