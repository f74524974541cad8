// Command riverload is the csvimport job written with River
// (github.com/riverqueue/river) on pgx, as a River user would write it: one
// job whose resumable cursor step loads the CSV in transactions of -chunk
// rows, each a CopyFrom of the rows plus the cursor saved with
// river.ResumableSetStepCursorTx. The side-by-side benchmark of csvimport
// (BenchmarkRiver) runs it alternately with the csvimport program, each as a
// whole process. It is a module of its own, so that River is no dependency
// of chunkwise.
package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

const createTable = `CREATE TABLE IF NOT EXISTS people (
	id         BIGINT NOT NULL PRIMARY KEY,
	name       TEXT NOT NULL,
	email      TEXT NOT NULL,
	amount     NUMERIC(14, 2) NOT NULL,
	created_at TIMESTAMP NOT NULL
)`

// ImportArgs are the job's arguments.
type ImportArgs struct {
	Input string `json:"input"`
	Chunk int    `json:"chunk"`
}

// Kind names the job.
func (ImportArgs) Kind() string { return "csvimport" }

// ImportWorker loads the file.
type ImportWorker struct {
	river.WorkerDefaults[ImportArgs]
	pool *pgxpool.Pool
}

// Timeout lets the load take as long as it needs.
func (*ImportWorker) Timeout(*river.Job[ImportArgs]) time.Duration { return -1 }

// Work creates the table, then loads the rows after the saved cursor.
func (w *ImportWorker) Work(ctx context.Context, job *river.Job[ImportArgs]) error {
	river.ResumableStep(ctx, "schema", nil, func(ctx context.Context) error {
		_, err := w.pool.Exec(ctx, createTable)
		return err
	})
	river.ResumableStepCursor(ctx, "load", nil, func(ctx context.Context, done int64) error {
		return load(ctx, job.Args.Input, job.Args.Chunk, done, func(rows []person, upTo int64) error {
			tx, err := w.pool.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx) //nolint:errcheck
			_, err = tx.CopyFrom(ctx, pgx.Identifier{"people"}, []string{"id", "name", "email", "amount", "created_at"},
				pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
					p := &rows[i]
					return []any{p.id, p.name, p.email, p.amount, p.created}, nil
				}))
			if err != nil {
				return err
			}
			if _, err := river.ResumableSetStepCursorTx[*riverpgxv5.Driver](ctx, tx, job, upTo); err != nil {
				return err
			}
			return tx.Commit(ctx)
		})
	})
	return nil
}

type person struct {
	id      int64
	name    string
	email   string
	amount  float64
	created time.Time
}

// load reads the file, passes over the first skip rows, and calls save with
// each chunk of parsed rows and the number of rows done after it.
func load(ctx context.Context, input string, chunk int, skip int64, save func(rows []person, done int64) error) error {
	f, err := os.Open(input)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = true
	if _, err := r.Read(); err != nil {
		return err
	}
	buf := make([]person, 0, chunk)
	var n int64
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if n++; n <= skip {
			continue
		}
		var p person
		if p.id, err = strconv.ParseInt(rec[0], 10, 64); err != nil {
			return fmt.Errorf("row %d: %w", n, err)
		}
		p.name, p.email = strings.Clone(rec[1]), strings.Clone(rec[2])
		if p.amount, err = strconv.ParseFloat(rec[3], 64); err != nil {
			return fmt.Errorf("row %d: %w", n, err)
		}
		if p.created, err = time.Parse(time.RFC3339, rec[4]); err != nil {
			return fmt.Errorf("row %d: %w", n, err)
		}
		p.created = p.created.UTC()
		if p.email == "" {
			return fmt.Errorf("row %d: empty email", n)
		}
		if buf = append(buf, p); len(buf) == chunk {
			if err := save(buf, n); err != nil {
				return err
			}
			buf = buf[:0]
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	if len(buf) > 0 {
		return save(buf, n)
	}
	return nil
}

func main() {
	dsn := flag.String("dsn", os.Getenv("DATABASE_URL"), "PostgreSQL URL")
	input := flag.String("input", "", "CSV file")
	chunk := flag.Int("chunk", 1000, "rows per transaction")
	migrateOnly := flag.Bool("migrate-only", false, "create River's tables, and nothing else")
	flag.Parse()
	if err := run(*dsn, *input, *chunk, *migrateOnly); err != nil {
		log.Fatal(err)
	}
}

func run(dsn, input string, chunk int, migrateOnly bool) error {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return err
	}
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil || migrateOnly {
		return err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &ImportWorker{pool: pool})
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		Workers: workers,
	})
	if err != nil {
		return err
	}
	events, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer cancel()
	if err := client.Start(ctx); err != nil {
		return err
	}
	defer client.Stop(ctx) //nolint:errcheck
	if _, err := client.Insert(ctx, ImportArgs{Input: input, Chunk: chunk}, &river.InsertOpts{MaxAttempts: 1}); err != nil {
		return err
	}
	ev := <-events
	if ev.Kind != river.EventKindJobCompleted {
		return errors.New("import failed: " + fmt.Sprint(ev.Job.Errors))
	}
	return nil
}
