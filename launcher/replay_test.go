package launcher_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite" // for the test's own reads of the SQLite file

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/memory"
	"github.com/chunkwise/chunkwise/writer"
)

var errBadOrder = errors.New("bad order")

type order struct {
	N    int64  `json:"n"`
	Name string `json:"name"`
}

// orderJob is a job whose processor has a bug until fixed: it rejects every
// tenth order, and leaves an empty name that the table's CHECK refuses.
type orderJob struct {
	fixed    atomic.Bool
	hardFail atomic.Int64 // fails the step, not skippable, at this order
	stillBad sync.Map     // orders the fixed processor still rejects
}

func (j *orderJob) register(reg *launcher.Registry) {
	reg.MustRegister("orders", func(env launcher.Env) (batch.JobConfig, error) {
		schema, err := batch.NewTaskletStep("schema", batch.TaskletConfig{
			Tasklet: batch.TaskletFunc(func(ctx context.Context, _ *batch.StepExecution) (batch.RepeatStatus, error) {
				tx, err := batch.JoinTxx(ctx, env.DB)
				if err == nil {
					_, err = tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS orders (
						batch INTEGER NOT NULL, n INTEGER NOT NULL, name TEXT NOT NULL CHECK (name <> ''),
						PRIMARY KEY (batch, n))`)
				}
				return batch.Finished, err
			}),
		})
		if err != nil {
			return batch.JobConfig{}, err
		}
		items := make([]order, 41)
		for i := range items {
			items[i] = order{N: int64(i + 1), Name: fmt.Sprintf("order %d", i+1)}
		}
		items[6].Name = "" // order 7
		torn := false      // the last record, once
		w, err := writer.NewSQL(writer.SQLConfig[order]{DB: env.DB, Table: "orders", Columns: []string{"batch", "n", "name"},
			Values: func(o order) []any { b, _ := env.Parameters.Int("batch"); return []any{b, o.N, o.Name} }})
		if err != nil {
			return batch.JobConfig{}, err
		}
		load, err := batch.NewChunkStep("load", batch.ChunkConfig[order, order]{
			Reader: reader.FromSlice(items), ChunkSize: 2, SkipLimit: -1,
			Skip: batch.MatchErrors(errBadOrder).Or(batch.MatchFunc(func(err error) bool {
				return strings.Contains(strings.ToLower(err.Error()), "check")
			})),
			Interceptors: []batch.Interceptor{func(ctx context.Context, c batch.Call, next func(context.Context) error) error {
				err := next(ctx)
				if c.Phase == "read" && c.Item == 41 && err == nil && !torn {
					torn = true
					return fmt.Errorf("record 41 is torn: %w", errBadOrder) // a read error: no item to keep
				}
				return err
			}},
			Processor: batch.ProcessorFunc[order, order](func(_ context.Context, o order) (order, error) {
				_, still := j.stillBad.Load(o.N)
				switch {
				case o.N == j.hardFail.Load():
					return o, fmt.Errorf("order %d: the pricing service is down", o.N)
				case !j.fixed.Load() && o.N%10 == 0, still:
					return o, fmt.Errorf("order %d: %w", o.N, errBadOrder)
				case j.fixed.Load() && o.Name == "":
					o.Name = "unnamed"
				}
				return o, nil
			}),
			Writer: w,
		})
		return batch.JobConfig{Steps: []batch.Step{schema, load}}, err
	}, batch.ParamSpec{Name: "batch", Type: batch.ParamInt, Default: "1"})
}

// TestCommandReplay fixes a processor's bug and replays what it rejected,
// on SQLite and on PostgreSQL: every order lands once, a failed replay is
// restarted where it stopped, a completed one is not run again, and what a
// replay rejects in turn is replayed in turn.
func TestCommandReplay(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			var dsn, driver string
			if kind == "sqlite" {
				dsn, driver = filepath.Join(t.TempDir(), "batch.db"), "sqlite"
			} else {
				dsn, driver = pgtest.DSN(t), "postgres"
			}
			testCommandReplay(t, dsn, driver)
		})
	}
}

func testCommandReplay(t *testing.T, dsn, driver string) {
	var (
		reg launcher.Registry
		job orderJob
	)
	job.register(&reg)
	cmd := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := launcher.Program{Registry: &reg, Stdout: &stdout, Stderr: &stderr}.Run(context.Background(),
			append([]string{"-db", dsn, "-log-level", "error"}, args...))
		return code, stdout.String(), stderr.String()
	}
	db, err := sqlx.Open(driver, dsn)
	require.NoError(t, err)
	defer db.Close()
	rows := func(b int) []int64 {
		var ns []int64
		require.NoError(t, db.Select(&ns, db.Rebind("SELECT n FROM orders WHERE batch = ? ORDER BY n"), b))
		return ns
	}
	all := func(except ...int64) []int64 {
		var ns []int64
		for n := int64(1); n <= 40; n++ {
			if !slices.Contains(except, n) {
				ns = append(ns, n)
			}
		}
		return ns
	}

	// Execution 1: orders 10, 20, 30, 40 rejected by the processor, 7 by
	// the table, 41 unreadable.
	code, out, errOut := cmd("run", "orders")
	require.Equal(t, launcher.ExitCompleted, code, errOut)
	require.Regexp(t, `load\s+COMPLETED\s+40\s+35\s+0\s+6`, out)
	require.Equal(t, all(7, 10, 20, 30, 40), rows(1))
	code, out, errOut = cmd("rejects", "1")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `(?s)load\s+write\s+7\s.*load\s+process\s+10\s.*load\s+process\s+40\s.*load\s+read\s+41\s`, out)

	// Execution 2, the replay, with the bug fixed but the pricing service
	// down at order 30: the chunk of orders 7 and 10 commits, then it fails,
	// naming the order by its number in execution 1.
	job.fixed.Store(true)
	job.hardFail.Store(30)
	code, out, errOut = cmd("replay", "1")
	require.Equal(t, launcher.ExitFailed, code, out+errOut)
	require.Contains(t, out+errOut, "item 30")
	require.Contains(t, out+errOut, "pricing service is down")
	require.Equal(t, all(20, 30, 40), rows(1))
	code, out, _ = cmd("status", "2")
	require.Equal(t, 0, code)
	require.Contains(t, out, "replays the rejects of execution 1")
	require.Contains(t, out, "FAILED")
	require.NotContains(t, out, "schema", "the replay runs only the steps that skipped items")

	// Execution 3 restarts it: it resumes after its checkpoint (orders 20,
	// 30 and 40 read), and order 40 is still bad.
	job.hardFail.Store(0)
	job.stillBad.Store(int64(40), true)
	code, out, errOut = cmd("restart", "2")
	require.Equal(t, launcher.ExitCompleted, code, out+errOut)
	require.Regexp(t, `load\s+COMPLETED\s+3\s+2\s+0\s+1`, out)
	require.Equal(t, all(40), rows(1))
	code, out, errOut = cmd("rejects", "3")
	require.Equal(t, 0, code, errOut)
	require.Regexp(t, `load\s+process\s+40\s+.*order 40: bad order`, out)

	// A second replay of execution 1 is refused: it completed.
	code, _, errOut = cmd("replay", "1")
	require.Equal(t, launcher.ExitRefused, code, errOut)
	require.Contains(t, errOut, "the rejects of execution 1 were replayed by execution 3")

	// A dry run of the replay of execution 3 shows the order written, and
	// writes and records nothing.
	job.stillBad.Delete(int64(40))
	code, out, errOut = cmd("replay", "-dry-run", "3")
	require.Equal(t, launcher.ExitCompleted, code, out+errOut)
	require.Contains(t, out, "dry run")
	require.Regexp(t, `load\s+COMPLETED\s+1\s+1\s+0\s+0`, out)
	require.Equal(t, all(40), rows(1))

	// Execution 4 replays execution 3's reject: every readable order is in,
	// once.
	code, out, errOut = cmd("replay", "3")
	require.Equal(t, launcher.ExitCompleted, code, out+errOut)
	require.Contains(t, out, "execution 4")
	require.Equal(t, all(), rows(1))

	// Nothing left to replay; and in a run whose only reject is a read
	// error, nothing that can be.
	code, out, errOut = cmd("replay", "4")
	require.Equal(t, launcher.ExitCompleted, code, errOut)
	require.Equal(t, "execution 4 of job orders has no rejects: nothing to replay\n", out)
	code, _, errOut = cmd("run", "orders", "batch:int=2")
	require.Equal(t, launcher.ExitCompleted, code, errOut)
	require.Equal(t, all(), rows(2))
	code, out, errOut = cmd("replay", "5")
	require.Equal(t, launcher.ExitCompleted, code, errOut)
	require.Equal(t, "execution 5 of job orders has 1 rejects, all read errors, which have no item to run again: nothing to replay\n", out)

	code, _, errOut = cmd("replay", "99")
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut, "not found")
	code, _, errOut = cmd("replay", "1", "2")
	require.Equal(t, launcher.ExitUsage, code)
	require.Contains(t, errOut, "replay: want exactly one execution id")
}

// TestReplayPartitions replays the rejects of partitions, and of a replay
// of them, through the launcher's API: each partition's rejects are run by
// the step built for that partition.
func TestReplayPartitions(t *testing.T) {
	var (
		reg     launcher.Registry
		fixed   atomic.Int64 // multiples of 7 below it are no longer rejected
		mu      sync.Mutex
		written = map[int64]string{} // order → the step that wrote it
	)
	reg.MustRegister("parts", func(launcher.Env) (batch.JobConfig, error) {
		step, err := batch.NewPartitionStep("load", batch.PartitionConfig{
			Partitioner: batch.PartitionerFunc(func(context.Context) ([]batch.Partition, error) {
				var parts []batch.Partition
				for i := range 3 {
					p := batch.Partition{Name: fmt.Sprintf("p%d", i), Context: batch.ExecutionContext{}}
					if err := p.Context.Put("from", i*30+1); err != nil {
						return nil, err
					}
					parts = append(parts, p)
				}
				return parts, nil
			}),
			Step: func(name string, p batch.Partition) (batch.Step, error) {
				from, _ := p.Context.Int64("from")
				items := make([]order, 30)
				for i := range items {
					items[i] = order{N: from + int64(i), Name: name}
				}
				return batch.NewChunkStep(name, batch.ChunkConfig[order, order]{
					Reader: reader.FromSlice(items), ChunkSize: 4, Skip: batch.MatchErrors(errBadOrder), SkipLimit: -1,
					Processor: batch.ProcessorFunc[order, order](func(_ context.Context, o order) (order, error) {
						if o.N%7 == 0 && o.N >= fixed.Load() {
							return o, fmt.Errorf("order %d: %w", o.N, errBadOrder)
						}
						return o, nil
					}),
					Writer: batch.WriterFunc[order](func(_ context.Context, os []order) error {
						mu.Lock()
						defer mu.Unlock()
						for _, o := range os {
							if prev, dup := written[o.N]; dup {
								return fmt.Errorf("order %d written twice: by %s and by %s", o.N, prev, name)
							}
							written[o.N] = name
						}
						return nil
					}),
				})
			},
		})
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
	ctx := context.Background()
	repo := memory.New()
	l, err := launcher.New(launcher.Config{Registry: &reg, Repository: repo})
	require.NoError(t, err)

	job, err := l.Job("parts", nil)
	require.NoError(t, err)
	first, err := l.Run(ctx, job, nil)
	require.NoError(t, err)
	require.Len(t, written, 90-12)

	fixed.Store(50) // half fixed: 7 … 49 go in, 56 … 84 are rejected again
	second, err := l.Replay(ctx, first.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, second.Status)
	require.Equal(t, batch.IntParam(first.ID), second.Parameters[batch.ReplayOfParam])
	steps, err := repo.StepExecutions(ctx, second.ID)
	require.NoError(t, err)
	var names []string
	for _, s := range steps {
		names = append(names, fmt.Sprintf("%s %d/%d", s.StepName, s.WriteCount, s.ProcessSkipCount))
	}
	require.ElementsMatch(t, []string{"load:p0 4/0", "load:p1 3/1", "load:p2 0/4"}, names)
	require.Equal(t, "load:p1", written[35])

	fixed.Store(1000)
	third, err := l.Replay(ctx, second.ID)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, third.Status)
	require.Len(t, written, 90)
	require.Equal(t, "load:p2", written[84])

	_, err = l.Replay(ctx, third.ID)
	require.ErrorIs(t, err, batch.ErrNothingToReplay)
}

// TestReplayRefusals: a running execution is not replayed, and a replay
// whose step or item type changed fails with an error that names them.
func TestReplayRefusals(t *testing.T) {
	var (
		reg     launcher.Registry
		version atomic.Int64
		block   = make(chan struct{})
	)
	type renamed struct {
		N string `json:"n"` // was a number
	}
	reg.MustRegister("evolving", func(launcher.Env) (batch.JobConfig, error) {
		var (
			step batch.Step
			err  error
		)
		skip := batch.MatchErrors(errBadOrder)
		switch version.Load() {
		case 0:
			step, err = batch.NewChunkStep("load", batch.ChunkConfig[order, order]{
				Reader: reader.FromSlice([]order{{N: 1}, {N: 2}, {N: 3}}), Skip: skip,
				Processor: batch.ProcessorFunc[order, order](func(ctx context.Context, o order) (order, error) {
					if o.N == 2 {
						return o, errBadOrder
					}
					if o.N == 3 {
						<-block
					}
					return o, nil
				}),
				Writer: batch.WriterFunc[order](func(context.Context, []order) error { return nil }),
			})
		case 1:
			step, err = batch.NewChunkStep("load", batch.ChunkConfig[renamed, renamed]{
				Reader: reader.FromSlice([]renamed{}), Skip: skip,
				Writer: batch.WriterFunc[renamed](func(context.Context, []renamed) error { return nil }),
			})
		default:
			step, err = batch.NewChunkStep("import", batch.ChunkConfig[order, order]{
				Reader: reader.FromSlice([]order{}),
				Writer: batch.WriterFunc[order](func(context.Context, []order) error { return nil }),
			})
		}
		return batch.JobConfig{Steps: []batch.Step{step}}, err
	})
	ctx := context.Background()
	l, err := launcher.New(launcher.Config{Registry: &reg, Repository: memory.New()})
	require.NoError(t, err)
	job, err := l.Job("evolving", nil)
	require.NoError(t, err)
	exec, err := l.Start(ctx, job, nil)
	require.NoError(t, err)
	_, err = l.Replay(ctx, exec.ID)
	require.ErrorIs(t, err, batch.ErrJobRunning)
	close(block)
	_, err = l.Wait(ctx, exec.ID)
	require.NoError(t, err)

	version.Store(1)
	replay, err := l.Replay(ctx, exec.ID)
	require.Error(t, err)
	require.Contains(t, err.Error(), "step load")
	require.Contains(t, err.Error(), "item 2")
	require.Contains(t, err.Error(), "does not decode as a launcher_test.renamed")
	require.Equal(t, batch.StatusFailed, replay.Status)

	version.Store(2)
	_, err = l.Replay(ctx, exec.ID)
	require.ErrorContains(t, err, fmt.Sprintf("replay of execution %d: job evolving: replay step load: no step of that name in the job now", exec.ID))
}
