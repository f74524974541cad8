package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/writer"
)

const jobName = "trade"

//go:embed sample/trades.csv
var sample []byte

// trade is a line of the input and a row of the table trade.
type trade struct {
	ID       int64   `db:"id"`
	ISIN     string  `db:"isin"`
	Quantity int64   `db:"quantity"`
	Price    float64 `db:"price"`
	Customer string  `db:"customer"`
}

// customer is a row of the table customer.
type customer struct {
	Name   string  `db:"name"`
	Credit float64 `db:"credit"`
}

var parameters = []batch.ParamSpec{
	{Name: "input", Description: "the trades file; the bundled sample when not given"},
	{Name: "report", Default: "customer-report.csv", Description: "the customer report to write"},
}

func newJob(env launcher.Env) (batch.JobConfig, error) {
	if env.DB == nil {
		return batch.JobConfig{}, errors.New("trade needs a SQL job repository (SQLite or PostgreSQL)")
	}
	schema, err := batch.NewTaskletStep("schema", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
		func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
			return batch.Finished, createTables(ctx, env)
		})})
	if err != nil {
		return batch.JobConfig{}, err
	}
	load, err := loadStep(env)
	if err != nil {
		return batch.JobConfig{}, err
	}
	debit, err := debitStep(env)
	if err != nil {
		return batch.JobConfig{}, err
	}
	report, err := reportStep(env)
	if err != nil {
		return batch.JobConfig{}, err
	}
	return batch.JobConfig{Steps: []batch.Step{schema, load, debit, report}}, nil
}

// loadStep reads the trades file into the table trade. Each trade gets the
// number of its line as id, so that the debit step can read them in order.
func loadStep(env launcher.Env) (batch.Step, error) {
	cfg := reader.CSVConfig[trade]{Map: func(rec reader.Record) (trade, error) {
		if len(rec.Fields) != 4 {
			return trade{}, fmt.Errorf("want 4 fields, have %d", len(rec.Fields))
		}
		qty, err := strconv.ParseInt(rec.Fields[1], 10, 64)
		if err != nil {
			return trade{}, fmt.Errorf("quantity: %w", err)
		}
		price, err := strconv.ParseFloat(rec.Fields[2], 64)
		if err != nil {
			return trade{}, fmt.Errorf("price: %w", err)
		}
		return trade{ID: rec.Index, ISIN: rec.Fields[0], Quantity: qty, Price: price, Customer: rec.Fields[3]}, nil
	}}
	if path, ok := env.Parameters.String("input"); ok {
		cfg.Path = path
	} else {
		cfg.Name = "sample/trades.csv"
		cfg.Open = func() (io.ReadSeekCloser, error) { return nopCloser{bytes.NewReader(sample)}, nil }
	}
	in, err := reader.NewCSV(cfg)
	if err != nil {
		return nil, err
	}
	out, err := writer.NewSQL(writer.SQLConfig[trade]{
		DB: env.DB, Table: "trade", Columns: []string{"id", "isin", "quantity", "price", "customer"},
		Values: func(t trade) []any { return []any{t.ID, t.ISIN, t.Quantity, t.Price, t.Customer} },
	})
	if err != nil {
		return nil, err
	}
	return batch.NewChunkStep("load", batch.ChunkConfig[trade, trade]{Reader: in, Writer: out, ChunkSize: 2})
}

// debitStep debits each trade's price from its customer's credit. The
// statement is not idempotent — run twice, it debits twice — so it runs in
// the chunk's transaction: exactly once, whatever fails.
func debitStep(env launcher.Env) (batch.Step, error) {
	trades, err := reader.NewKeyset(reader.KeysetConfig[trade]{
		DB: env.DB, Select: "id, isin, quantity, price, customer", From: "trade", Key: []string{"id"},
	})
	if err != nil {
		return nil, err
	}
	failAt := os.Getenv("FAIL_AT")
	check := batch.ProcessorFunc[trade, trade](func(_ context.Context, t trade) (trade, error) {
		if t.ISIN == failAt {
			return t, fmt.Errorf("FAIL_AT=%s: failing on purpose", failAt)
		}
		return t, nil
	})
	debit, err := writer.NewNamed(writer.NamedConfig[trade]{
		DB:       env.DB,
		Query:    `UPDATE customer SET credit = credit - :price, version = version + 1 WHERE name = :customer`,
		Affected: writer.AffectedUpdated,
	})
	if err != nil {
		return nil, err
	}
	return batch.NewChunkStep("debit", batch.ChunkConfig[trade, trade]{
		Reader: trades, Processor: check, Writer: debit, ChunkSize: 2,
	})
}

// reportStep writes each customer's credit to the report file.
func reportStep(env launcher.Env) (batch.Step, error) {
	customers, err := reader.NewKeyset(reader.KeysetConfig[customer]{
		DB: env.DB, Select: "name, credit", From: "customer", Key: []string{"name"},
	})
	if err != nil {
		return nil, err
	}
	path, _ := env.Parameters.String("report")
	out, err := writer.NewCSVFile(writer.CSVFileConfig[customer]{
		Path:    path,
		Columns: []string{"customer", "credit"},
		Fields: func(c customer) ([]string, error) {
			return []string{c.Name, strconv.FormatFloat(c.Credit, 'f', 2, 64)}, nil
		},
		Footer: func(w io.Writer, written int64) error {
			_, err := fmt.Fprintf(w, "# %d customers\n", written)
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	return batch.NewChunkStep("report", batch.ChunkConfig[customer, customer]{Reader: customers, Writer: out, ChunkSize: 2})
}

// createTables creates the tables, and the customers of the sample when
// there are none.
func createTables(ctx context.Context, env launcher.Env) error {
	tx, err := batch.JoinTxx(ctx, env.DB)
	if err != nil {
		return err
	}
	for _, stmt := range []string{
		`CREATE TABLE IF NOT EXISTS trade (id BIGINT PRIMARY KEY, isin TEXT NOT NULL, quantity BIGINT NOT NULL,
			price NUMERIC(10, 2) NOT NULL, customer TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS customer (name TEXT PRIMARY KEY, credit NUMERIC(12, 2) NOT NULL,
			version BIGINT NOT NULL)`,
	} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	var n int
	if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM customer`); err != nil || n > 0 {
		return err
	}
	for i := 1; i <= 4; i++ {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO customer (name, credit, version) VALUES (?, 100000, 0)`),
			fmt.Sprintf("customer%d", i)); err != nil {
			return err
		}
	}
	return nil
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }
