package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/writer"
)

const jobName = "report"

// sale is a row of the input and of the table sales.
type sale struct {
	ID     int64  `db:"id" csv:"id"`
	Region string `db:"region" csv:"region"`
	Cents  int64  `db:"cents"`
}

var parameters = []batch.ParamSpec{
	{Name: "input", Description: "the sales CSV file; 20,000 generated sales when not given"},
	{Name: "output", Default: "report.csv", Description: "the report to write"},
}

func newJob(env launcher.Env) (batch.JobConfig, error) {
	if env.DB == nil {
		return batch.JobConfig{}, errors.New("report needs a SQL job repository (SQLite or PostgreSQL)")
	}
	var delay time.Duration
	if s := os.Getenv("REPORT_DELAY"); s != "" {
		var err error
		if delay, err = time.ParseDuration(s); err != nil {
			return batch.JobConfig{}, fmt.Errorf("REPORT_DELAY=%q: %w", s, err)
		}
	}
	schema, err := batch.NewTaskletStep("schema", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
		func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
			tx, err := batch.JoinTxx(ctx, env.DB)
			if err != nil {
				return batch.Finished, err
			}
			_, err = tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS sales (id BIGINT PRIMARY KEY,
				region TEXT NOT NULL, cents BIGINT NOT NULL)`)
			return batch.Finished, err
		})})
	if err != nil {
		return batch.JobConfig{}, err
	}

	// Step 1: the CSV file into the table.
	cfg := reader.CSVConfig[sale]{Header: true, Map: func(rec reader.Record) (sale, error) {
		id, err := rec.Int("id")
		if err != nil {
			return sale{}, err
		}
		region, err := rec.Get("region")
		if err != nil {
			return sale{}, err
		}
		amount, err := rec.Get("amount")
		if err != nil {
			return sale{}, err
		}
		cents, err := parseCents(amount)
		if err != nil {
			return sale{}, fmt.Errorf("column \"amount\": %w", err)
		}
		return sale{ID: id, Region: region, Cents: cents}, nil
	}}
	if path, ok := env.Parameters.String("input"); ok {
		cfg.Path = path
	} else {
		cfg.Name = "generated-sales.csv"
		cfg.Open = func() (io.ReadSeekCloser, error) { return nopCloser{bytes.NewReader(generate(20_000))}, nil }
	}
	in, err := reader.NewCSV(cfg)
	if err != nil {
		return batch.JobConfig{}, err
	}
	table, err := writer.NewSQL(writer.SQLConfig[sale]{
		DB: env.DB, Table: "sales", Columns: []string{"id", "region", "cents"},
		Values: func(s sale) []any { return []any{s.ID, s.Region, s.Cents} },
	})
	if err != nil {
		return batch.JobConfig{}, err
	}
	load, err := batch.NewChunkStep("import", batch.ChunkConfig[sale, sale]{Reader: in, Writer: table, ChunkSize: 1000})
	if err != nil {
		return batch.JobConfig{}, err
	}

	// Step 2: the table into the report, with the running total of each
	// region and the grand total in the footer. The totals so far are kept
	// in the step's context, so that a restart goes on counting from the
	// last commit.
	rows, err := reader.NewKeyset(reader.KeysetConfig[sale]{
		DB: env.DB, Select: "id, region, cents", From: "sales", Key: []string{"id"}, PageSize: 500,
	})
	if err != nil {
		return batch.JobConfig{}, err
	}
	totals := &runningTotals{delay: delay}
	path, _ := env.Parameters.String("output")
	file, err := writer.NewCSVFile(writer.CSVFileConfig[line]{
		Path:    path,
		Columns: []string{"id", "region", "amount", "region_total"},
		Fields: func(l line) ([]string, error) {
			return []string{strconv.FormatInt(l.ID, 10), l.Region, formatCents(l.Cents), formatCents(l.RegionTotal)}, nil
		},
		Footer: func(w io.Writer, written int64) error {
			_, err := fmt.Fprintf(w, "total,%d sales,%s,\n", written, formatCents(totals.committed()))
			return err
		},
	})
	if err != nil {
		return batch.JobConfig{}, err
	}
	report, err := batch.NewChunkStep("report", batch.ChunkConfig[sale, line]{
		Reader: rows, Processor: totals, Writer: file, ChunkSize: 200,
	})
	if err != nil {
		return batch.JobConfig{}, err
	}
	return batch.JobConfig{Steps: []batch.Step{schema, load, report}}, nil
}

// line is a line of the report.
type line struct {
	sale
	RegionTotal int64
}

// runningTotals is the report's processor: it adds each sale to its
// region's total. It is an ItemStream, so that the totals are saved with
// every commit and restored on a restart: a chunk rolled back is counted
// again from the totals of the last commit.
type runningTotals struct {
	delay time.Duration
	// done are the totals as of the last commit; work as of the last item
	// processed.
	done, work map[string]int64
}

const totalsKey = "report.totals"

func (r *runningTotals) Open(_ context.Context, ec batch.ExecutionContext) error {
	r.done = map[string]int64{}
	if _, err := ec.Get(totalsKey, &r.done); err != nil {
		return err
	}
	r.work = clone(r.done)
	return nil
}

func (r *runningTotals) Process(_ context.Context, s sale) (line, error) {
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	r.work[s.Region] += s.Cents
	return line{sale: s, RegionTotal: r.work[s.Region]}, nil
}

// Update stores the totals of the chunk being committed. The report file's
// footer, written in the same commit, reads them.
func (r *runningTotals) Update(_ context.Context, ec batch.ExecutionContext) error {
	r.done = clone(r.work)
	return ec.Put(totalsKey, r.done)
}

func (r *runningTotals) Close(context.Context) error { return nil }

func (r *runningTotals) committed() int64 {
	var sum int64
	for _, v := range r.done {
		sum += v
	}
	return sum
}

func clone(m map[string]int64) map[string]int64 {
	c := make(map[string]int64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// generate returns n sales, the same every time.
func generate(n int) []byte {
	var b bytes.Buffer
	b.WriteString("id,region,amount\n")
	regions := []string{"north", "south", "east", "west"}
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d,%s,%s\n", i, regions[(i*7)%len(regions)], formatCents(int64((i*7919)%100000)))
	}
	return b.Bytes()
}

func parseCents(s string) (int64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return int64(f*100 + 0.5), nil
}

func formatCents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }
