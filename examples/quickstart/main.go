// Command quickstart is the job of docs/getting-started.md: it reads
// name,amount lines from a CSV file, drops zero amounts, and inserts the rest
// into the table payments, 500 rows per transaction.
//
//	quickstart run input=payments.csv
package main

import (
	"context"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/writer"
)

type payment struct {
	Name   string  `csv:"name"`
	Amount float64 `csv:"amount"`
}

func newJob(env launcher.Env) (batch.JobConfig, error) {
	path, _ := env.Parameters.String("input")
	mapRow, err := reader.MapStruct[payment]()
	if err != nil {
		return batch.JobConfig{}, err
	}
	in, err := reader.NewCSV(reader.CSVConfig[payment]{Path: path, Header: true, Map: mapRow})
	if err != nil {
		return batch.JobConfig{}, err
	}
	out, err := writer.NewSQL(writer.SQLConfig[payment]{
		DB: env.DB, Table: "payments", Columns: []string{"name", "amount"},
		Values: func(p payment) []any { return []any{p.Name, p.Amount} },
	})
	if err != nil {
		return batch.JobConfig{}, err
	}
	dropZero := batch.ProcessorFunc[payment, payment](func(_ context.Context, p payment) (payment, error) {
		if p.Amount == 0 {
			return p, batch.ErrFilter
		}
		return p, nil
	})
	step, err := batch.NewChunkStep("load", batch.ChunkConfig[payment, payment]{
		Reader: in, Processor: dropZero, Writer: out, ChunkSize: 500,
	})
	if err != nil {
		return batch.JobConfig{}, err
	}
	create, err := createTable(env)
	if err != nil {
		return batch.JobConfig{}, err
	}
	return batch.JobConfig{Steps: []batch.Step{create, step}}, nil
}

// createTable is a tasklet step that creates the table if it is missing.
func createTable(env launcher.Env) (batch.Step, error) {
	return batch.NewTaskletStep("create-table", batch.TaskletConfig{
		Tasklet: batch.TaskletFunc(func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
			tx, err := batch.JoinTxx(ctx, env.DB)
			if err != nil {
				return batch.Finished, err
			}
			_, err = tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS payments (name TEXT NOT NULL, amount NUMERIC NOT NULL)`)
			return batch.Finished, err
		}),
	})
}

func main() {
	var jobs launcher.Registry
	jobs.MustRegister("payments", newJob)
	launcher.Main(&jobs)
}
