package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/processor"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/writer"
)

const jobName = "apisync"

// customer is a record of the API and a row of the table customers.
type customer struct {
	ID    int64  `json:"id" db:"id"`
	Name  string `json:"name" db:"name"`
	Email string `json:"email" db:"email"`
	City  string `json:"city" db:"city"`
	Plan  string `json:"plan" db:"plan"`
}

const (
	// scope names the data set in the change detector's hash table.
	scope = "apisync.customers"
	// pageSize is the number of customers asked for per page. A restart
	// asks for the page it stopped in by number, so it must not change
	// between a failed execution and its restart.
	pageSize = 100
	// minSeenRatio is the floor of the delete step: when the sync saw
	// fewer than half the customers known before it, the API is taken to
	// have had an outage and nothing is deleted.
	minSeenRatio = 0.5
	// fakeAPITimeout is the default per-request timeout against the fake
	// API, whose slow page would otherwise hold the demo for the reader's
	// default 30s.
	fakeAPITimeout = time.Second
)

var parameters = []batch.ParamSpec{
	{Name: "url", Description: "the API's customers endpoint (page and per_page are added); default: the fake API on loopback"},
	{Name: "version", Type: batch.ParamInt, Description: "fake API only: 1 (default) or 2, where 60 customers changed, 24 vanished and 30 are new"},
	{Name: "outage", Type: batch.ParamBool, Description: "fake API only: serve 20 customers, as an API that lost its data would"},
	{Name: "webhook", NonIdentifying: true, Description: "URL a JSON notice of a failed execution is POSTed to"},
	{Name: "timeout", NonIdentifying: true, Description: "per-request timeout (Go duration); default 30s, 1s against the fake API"},
	{Name: "chunk", Type: batch.ParamInt, Default: "100", NonIdentifying: true, Description: "customers per transaction"},
}

func newJob(env launcher.Env) (_ batch.JobConfig, err error) {
	if env.DB == nil {
		return batch.JobConfig{}, errors.New("apisync needs a SQL job repository (SQLite or PostgreSQL)")
	}
	chunk, _ := env.Parameters.Int("chunk")
	failAt, err := failAt()
	if err != nil {
		return batch.JobConfig{}, err
	}
	var listeners []batch.Listener
	if hook, ok := env.Parameters.String("webhook"); ok {
		n, err := newFailureWebhook(hook, env.Logger)
		if err != nil {
			return batch.JobConfig{}, err
		}
		listeners = append(listeners, n)
	}
	apiURL, timeout, fake, err := source(env)
	if err != nil {
		return batch.JobConfig{}, err
	}
	if fake != nil {
		// The fake API stops after the job, and says what it served.
		listeners = append(listeners, fake)
		defer func() {
			if err != nil {
				fake.close()
			}
		}()
	}

	schema, err := batch.NewTaskletStep("schema", batch.TaskletConfig{Tasklet: batch.TaskletFunc(
		func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
			return batch.Finished, createTable(ctx, env)
		})})
	if err != nil {
		return batch.JobConfig{}, err
	}
	sync, err := syncStep(env, apiURL, timeout, int(chunk), failAt)
	if err != nil {
		return batch.JobConfig{}, err
	}
	// An outage that returns few customers must not empty the table: below
	// the floor the step fails and deletes nothing.
	sweep, err := processor.DeleteMissing(processor.DeleteMissingConfig{
		DB: env.DB, Scope: scope, Table: "customers", KeyColumn: "id", MinSeenRatio: minSeenRatio,
	})
	if err != nil {
		return batch.JobConfig{}, err
	}
	deleteMissing, err := batch.NewTaskletStep("delete-missing", batch.TaskletConfig{Tasklet: sweep})
	if err != nil {
		return batch.JobConfig{}, err
	}
	return batch.JobConfig{Steps: []batch.Step{schema, sync, deleteMissing}, Listeners: listeners}, nil
}

// source returns the URL to read and the per-request timeout: the url
// parameter's, or those of a fake API it starts (returned too, to be
// closed after the job).
func source(env launcher.Env) (string, time.Duration, *fakeServer, error) {
	var timeout time.Duration
	if s, ok := env.Parameters.String("timeout"); ok {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return "", 0, nil, fmt.Errorf("timeout=%q: want a positive Go duration such as 10s", s)
		}
		timeout = d
	}
	version, hasVersion := env.Parameters.Int("version")
	outage, hasOutage := env.Parameters.Bool("outage")
	if u, ok := env.Parameters.String("url"); ok {
		if hasVersion || hasOutage {
			return "", 0, nil, errors.New("version and outage configure the fake API: they go without url")
		}
		return u, timeout, nil, nil // the reader's default timeout when 0
	}
	if !hasVersion {
		version = 1
	}
	if version != 1 && version != 2 {
		return "", 0, nil, fmt.Errorf("version=%d: the fake API has versions 1 and 2", version)
	}
	fake, err := startFakeAPI(newFakeAPI(int(version), outage), env.Stdout)
	if err != nil {
		return "", 0, nil, err
	}
	if timeout == 0 {
		timeout = fakeAPITimeout
	}
	return fake.url, timeout, fake, nil
}

// syncStep reads the API page by page and upserts the customers that are
// new or changed; the change detector filters out the others, and marks
// every customer it sees for the delete step.
func syncStep(env launcher.Env, apiURL string, timeout time.Duration, chunk int, failAt int64) (batch.Step, error) {
	var header http.Header
	if token := os.Getenv("APISYNC_TOKEN"); token != "" {
		header = http.Header{"Authorization": {"Bearer " + token}}
	}
	in, err := reader.NewHTTP(reader.HTTPConfig[customer]{
		Name:         "customers",
		URL:          apiURL,
		Paging:       reader.PageNumberPaging,
		PageSize:     pageSize,
		ItemsField:   "data",
		TotalField:   "total",
		Header:       header,
		Timeout:      timeout,
		MaxAttempts:  4,
		RetryWaitMin: 200 * time.Millisecond,
		RetryWaitMax: 5 * time.Second,
		OnRetry: func(r reader.HTTPRetry) {
			env.Logger.Warn("api: retrying", "url", r.URL, "attempt", r.Attempt, "status", r.StatusCode, "error", r.Err, "wait", r.Wait)
		},
	})
	if err != nil {
		return nil, err
	}
	det, err := processor.NewChangeDetector(processor.ChangeDetectorConfig[customer]{
		DB:    env.DB,
		Scope: scope,
		Key:   func(c customer) string { return strconv.FormatInt(c.ID, 10) },
	})
	if err != nil {
		return nil, err
	}
	upsert, err := writer.NewUpsert(writer.UpsertConfig[customer]{
		DB:      env.DB,
		Table:   "customers",
		Columns: []string{"id", "name", "email", "city", "plan"},
		Key:     []string{"id"},
		Values:  func(c customer) []any { return []any{c.ID, c.Name, c.Email, c.City, c.Plan} },
	})
	if err != nil {
		return nil, err
	}
	// The upserts and the hashes are written in the chunk's transaction,
	// with the reader's page and index.
	out := det.Writer(upsert)
	var streams []batch.ItemStream
	if failAt > 0 {
		written := out
		streams = append(streams, written.(batch.ItemStream))
		out = batch.WriterFunc[customer](func(ctx context.Context, items []customer) error {
			if err := written.Write(ctx, items); err != nil {
				return err
			}
			for _, c := range items {
				if c.ID >= failAt {
					return fmt.Errorf("FAIL_AT=%d: failing on purpose at customer %d, after writing its chunk", failAt, c.ID)
				}
			}
			return nil
		})
	}
	return batch.NewChunkStep("sync", batch.ChunkConfig[customer, customer]{
		Reader: in, Processor: det, Writer: out, Streams: streams, ChunkSize: chunk,
	})
}

// createTable creates the table customers: in a real deployment it is the
// application's.
func createTable(ctx context.Context, env launcher.Env) error {
	tx, err := batch.JoinTxx(ctx, env.DB)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS customers (
		id    BIGINT PRIMARY KEY,
		name  TEXT NOT NULL,
		email TEXT NOT NULL,
		city  TEXT NOT NULL,
		plan  TEXT NOT NULL
	)`)
	return err
}

// failAt reads FAIL_AT: the sync fails on purpose in the chunk that writes
// the first customer whose id is that or more.
func failAt() (int64, error) {
	s := os.Getenv("FAIL_AT")
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("FAIL_AT=%q: want a customer id from 1", s)
	}
	return n, nil
}
