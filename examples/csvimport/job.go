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
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/writer"
)

const jobName = "csvimport"

//go:embed sample/people.csv
var sample []byte

// person is one row of the input and of the table people.
type person struct {
	ID        int64
	Name      string
	Email     string
	Amount    float64
	CreatedAt time.Time

	row int64 // 1-based data row of the input, for FAIL_AT
}

const createTable = `CREATE TABLE IF NOT EXISTS people (
	id         BIGINT NOT NULL PRIMARY KEY,
	name       TEXT NOT NULL,
	email      TEXT NOT NULL,
	amount     NUMERIC(14, 2) NOT NULL,
	created_at TIMESTAMP NOT NULL
)`

// parameters are the parameters the job takes: the launch checks them before
// newJob sees them.
var parameters = []batch.ParamSpec{
	{Name: "input", Description: "the CSV file to import; the bundled sample when not given"},
	{Name: "chunk", Type: batch.ParamInt, Default: "100", NonIdentifying: true,
		Description: "rows per transaction, 1 to 100000"},
	{Name: "partitions", Type: batch.ParamInt, Default: "1", NonIdentifying: true,
		Description: "byte ranges of the file loaded at once, each on a connection of its own, 1 to 16 (fixed at the first run: a restart reuses them)"},
	{Name: "readahead", Type: batch.ParamBool, Default: "true", NonIdentifying: true,
		Description: "parse the next chunk of the file while this one is written and committed"},
}

func newJob(env launcher.Env) (batch.JobConfig, error) {
	if env.DB == nil {
		return batch.JobConfig{}, errors.New("csvimport needs a SQL job repository (SQLite or PostgreSQL)")
	}
	failRow, err := failAt()
	if err != nil {
		return batch.JobConfig{}, err
	}

	schema, err := batch.NewTaskletStep("schema", batch.TaskletConfig{
		Tasklet: batch.TaskletFunc(func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
			tx, err := batch.JoinTxx(ctx, env.DB)
			if err != nil {
				return batch.Finished, err
			}
			_, err = tx.ExecContext(ctx, createTable)
			return batch.Finished, err
		}),
	})
	if err != nil {
		return batch.JobConfig{}, err
	}

	chunk, _ := env.Parameters.Int("chunk")
	if chunk < 1 || chunk > 100_000 {
		return batch.JobConfig{}, fmt.Errorf("parameter chunk=%d: want 1 to 100000", chunk)
	}
	// A bad record may be fixed in the file before a restart: a change after
	// the checkpoint is accepted, one before it (another file, lines added
	// or removed) refuses the restart.
	// mapPerson keeps the values it parses, not the record's Fields: the
	// reader may reuse them (ReuseRecord), a copy less per row.
	cfg := reader.CSVConfig[person]{Header: true, Map: mapPerson, InputCheck: reader.ChangedAfterCheckpoint, ReuseRecord: true}
	if path, ok := env.Parameters.String("input"); ok {
		cfg.Path = path
	} else {
		cfg.Name = "sample/people.csv"
		cfg.Open = func() (io.ReadSeekCloser, error) { return nopCloser{bytes.NewReader(sample)}, nil }
	}
	partitions, _ := env.Parameters.Int("partitions")
	if partitions < 1 || partitions > 16 {
		return batch.JobConfig{}, fmt.Errorf("parameter partitions=%d: want 1 to 16", partitions)
	}
	readAhead, _ := env.Parameters.Bool("readahead")
	// importStep loads the rows of cfg's input (of its range, in a
	// partition) in chunks.
	importStep := func(name string, cfg reader.CSVConfig[person]) (batch.Step, error) {
		r, err := reader.NewCSV(cfg)
		if err != nil {
			return nil, err
		}
		w, err := peopleWriter(env.DB)
		if err != nil {
			return nil, err
		}
		return batch.NewChunkStep(name, batch.ChunkConfig[person, person]{
			Reader:    r,
			Processor: failAtProcessor(failRow),
			Writer:    w,
			ChunkSize: int(chunk),
			// The file is parsed on while the chunk before commits: the
			// reader shares nothing with the writer.
			ReadAhead: readAhead,
		})
	}
	var imp batch.Step
	if partitions == 1 {
		imp, err = importStep("import", cfg)
	} else {
		// The file is cut into byte ranges that start at records; each
		// partition loads one, in transactions of its own that hold its
		// checkpoint, so a restart resumes each where it stopped.
		var ranges batch.Partitioner
		if ranges, err = reader.CSVRanges(cfg, int(partitions)); err == nil {
			imp, err = batch.NewPartitionStep("import", batch.PartitionConfig{
				Partitioner: ranges,
				Step: func(name string, p batch.Partition) (batch.Step, error) {
					part := cfg
					var err error
					if part.Range, err = reader.CSVRangeOf(p); err != nil {
						return nil, err
					}
					return importStep(name, part)
				},
			})
		}
	}
	if err != nil {
		return batch.JobConfig{}, err
	}
	return batch.JobConfig{Steps: []batch.Step{schema, imp}}, nil
}

// peopleWriter writes the rows into people in the chunk's transaction: with
// COPY on PostgreSQL, the fastest way in, and a prepared multi-row INSERT
// elsewhere.
func peopleWriter(db *sqlx.DB) (batch.ItemWriter[person], error) {
	columns := []string{"id", "name", "email", "amount", "created_at"}
	values := func(p person) []any { return []any{p.ID, p.Name, p.Email, p.Amount, p.CreatedAt} }
	if db.DriverName() == "postgres" {
		return writer.NewCopy(writer.CopyConfig[person]{DB: db, Table: "people", Columns: columns, Values: values})
	}
	return writer.NewSQL(writer.SQLConfig[person]{DB: db, Table: "people", Columns: columns, Values: values})
}

// failAt reads FAIL_AT: the row whose processing fails on purpose, 0 for none.
func failAt() (int64, error) {
	s := os.Getenv("FAIL_AT")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("FAIL_AT=%q: want a row number from 1", s)
	}
	return n, nil
}

// failAtProcessor checks each row and fails on purpose at row failAt.
func failAtProcessor(failAt int64) batch.ProcessorFunc[person, person] {
	return func(_ context.Context, p person) (person, error) {
		if failAt > 0 && p.row == failAt {
			return p, fmt.Errorf("FAIL_AT=%d: failing on purpose at row %d (id %d)", failAt, p.row, p.ID)
		}
		if p.Email == "" {
			return p, fmt.Errorf("row %d (id %d): empty email", p.row, p.ID)
		}
		return p, nil
	}
}

func mapPerson(rec reader.Record) (person, error) {
	var p person
	var err error
	if p.ID, err = rec.Int("id"); err != nil {
		return p, err
	}
	if p.Name, err = rec.Get("name"); err != nil {
		return p, err
	}
	if p.Email, err = rec.Get("email"); err != nil {
		return p, err
	}
	if p.Amount, err = rec.Float("amount"); err != nil {
		return p, err
	}
	if p.CreatedAt, err = rec.Time("created_at", time.RFC3339); err != nil {
		return p, err
	}
	p.CreatedAt = p.CreatedAt.UTC()
	p.row = rec.Line - 1 // the data row: the header is line 1, and no field holds a line break
	return p, nil
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }
