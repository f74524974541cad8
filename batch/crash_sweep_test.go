package batch_test

// A crash sweep: the chunk step is "killed" at every commit — after its
// write and before COMMIT, or just after COMMIT — once, or twice (the second
// time in the restart), or its processor fails at every call, with read,
// process and write skips, filters, no-rollback errors, reject files and
// tables, on SQLite with the rows in a table written in the chunk
// transaction. After the restarts every row, count and reject must be there
// exactly once. A "crash" here is a repository that stops answering, which
// lets the sweep cover hundreds of crash points in seconds; the SIGKILL tests
// in examples/csvimport do the same with real processes.
//
// go test runs a random sample of the cases (the seed is logged);
// BATCH_CRASH_SWEEP=full runs them all (make torture does), which takes
// minutes.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/sqlite"
	"github.com/chunkwise/chunkwise/writer"
)

// sweepCase is one case of a sweep.
type sweepCase struct {
	name string
	run  func(t *testing.T)
}

// runSweep runs the cases: all of them with BATCH_CRASH_SWEEP=full, else a
// random sample of n.
func runSweep(t *testing.T, n int, cases []sweepCase) {
	if os.Getenv("BATCH_CRASH_SWEEP") != "full" && len(cases) > n {
		seed := rand.Uint64()
		t.Logf("running %d of %d cases (seed %d; BATCH_CRASH_SWEEP=full runs all)", n, len(cases), seed)
		rng := rand.New(rand.NewPCG(seed, 1))
		rng.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
		cases = cases[:n]
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t)
		})
	}
}

var errDead = errors.New("process died")

// crashRepo simulates a process that dies at its at-th CommitChunk: either
// after the write ran but before COMMIT (after=false) or just after COMMIT
// (after=true). Everything after that fails, as for a dead process.
type crashRepo struct {
	*sqlite.Repository
	at    int64
	after bool
	n     atomic.Int64
	dead  atomic.Bool
}

func (r *crashRepo) CommitChunk(ctx context.Context, s *batch.StepExecution, write func(ctx context.Context) error) (batch.BatchStatus, error) {
	if r.dead.Load() {
		return "", errDead
	}
	k := r.n.Add(1)
	if k != r.at {
		return r.Repository.CommitChunk(ctx, s, write)
	}
	if r.after {
		_, err := r.Repository.CommitChunk(ctx, s, write)
		r.dead.Store(true)
		if err == nil {
			s.Version--
		}
		return "", errDead
	}
	return r.Repository.CommitChunk(ctx, s, func(ctx context.Context) error {
		if err := write(ctx); err != nil {
			return err
		}
		r.dead.Store(true)
		return errDead
	})
}

func (r *crashRepo) UpdateStepExecution(ctx context.Context, s *batch.StepExecution) error {
	if r.dead.Load() {
		return errDead
	}
	return r.Repository.UpdateStepExecution(ctx, s)
}

func (r *crashRepo) UpdateJobExecution(ctx context.Context, e *batch.JobExecution) error {
	if r.dead.Load() {
		return errDead
	}
	return r.Repository.UpdateJobExecution(ctx, e)
}

func (r *crashRepo) Heartbeat(ctx context.Context, id int64) (batch.BatchStatus, error) {
	if r.dead.Load() {
		return "", errDead
	}
	return r.Repository.Heartbeat(ctx, id)
}

func (r *crashRepo) StepExecutions(ctx context.Context, id int64) ([]*batch.StepExecution, error) {
	if r.dead.Load() {
		return nil, errDead
	}
	return r.Repository.StepExecutions(ctx, id)
}

func (r *crashRepo) CreateStepExecution(ctx context.Context, s *batch.StepExecution) error {
	if r.dead.Load() {
		return errDead
	}
	return r.Repository.CreateStepExecution(ctx, s)
}

var errProc = errors.New("bad amount")

type crashWorld struct {
	base      *sqlite.Repository
	rejects   string
	chunkSize int
	n         int
	bad       map[int]bool
	// procFail, when it returns an error for (value, call), fails processing.
	procFail   func(v int) error
	noRollback batch.ErrorMatcher
	csvPath    string // read from a CSV file instead of badReader
	readAhead  bool   // the step reads the next chunk while one commits
	workers    int    // ProcessWorkers
}

func newCrashWorld(t *testing.T, chunkSize int) *crashWorld {
	dir := t.TempDir()
	base, err := sqlite.Open(context.Background(), filepath.Join(dir, "batch.db"), sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = base.Close() })
	require.NoError(t, base.Migrate(context.Background()))
	_, err = base.DB().Exec(`CREATE TABLE nums (n INTEGER NOT NULL CHECK (n % 7 <> 0 OR n <= 10))`)
	require.NoError(t, err)
	return &crashWorld{base: base, rejects: filepath.Join(dir, "rejects.jsonl"), chunkSize: chunkSize, n: 50,
		bad: map[int]bool{13: true, 22: true, 23: true, 36: true, 39: true, 50: true}}
}

func (w *crashWorld) job(t *testing.T) *batch.Job {
	file, err := writer.NewRejectFile[int, int](writer.RejectFileConfig{Path: w.rejects})
	require.NoError(t, err)
	table, err := writer.NewRejectTable[int, int](writer.RejectTableConfig{DB: w.base.DB(), Table: "rejects"})
	require.NoError(t, err)
	sw, err := writer.NewSQL(writer.SQLConfig[int]{DB: w.base.DB(), Table: "nums", Columns: []string{"n"},
		Values: func(n int) []any { return []any{n} }})
	require.NoError(t, err)
	var rd batch.ItemReader[int] = &badReader{streamReader: newStreamReader(w.n), bad: w.bad}
	if w.csvPath != "" {
		if _, err := os.Stat(w.csvPath); err != nil {
			var b strings.Builder
			b.WriteString("n,x\n")
			for v := 1; v <= w.n; v++ {
				if w.bad[v] {
					fmt.Fprintf(&b, "%d,x,extra\n", v)
				} else {
					fmt.Fprintf(&b, "%d,x\n", v)
				}
			}
			require.NoError(t, os.WriteFile(w.csvPath, []byte(b.String()), 0o644))
		}
		c, err := reader.NewCSV(reader.CSVConfig[int]{Path: w.csvPath, Header: true, Map: func(r reader.Record) (int, error) {
			n, err := r.Int("n")
			return int(n), err
		}})
		require.NoError(t, err)
		rd = c
	}
	step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
		Reader: rd,
		Processor: batch.ProcessorFunc[int, int](func(_ context.Context, v int) (int, error) {
			if w.procFail != nil {
				if err := w.procFail(v); err != nil {
					return 0, err
				}
			}
			if v%5 == 0 && v > 10 {
				return 0, fmt.Errorf("%d: %w", v, errProc)
			}
			if v%11 == 0 && v > 10 {
				return 0, batch.ErrFilter
			}
			return v, nil
		}),
		Writer: sw, ChunkSize: w.chunkSize, SkipLimit: -1, Backoff: fast, ReadAhead: w.readAhead, ProcessWorkers: w.workers,
		Skip:       batch.MatchErrors(errBad, errProc).Or(checkFailed).Or(batch.MatchType[*reader.ParseError]()),
		NoRollback: w.noRollback,
		Listeners:  []batch.Listener{file, table},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("load", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	return job
}

type crashExpect struct {
	rows                                        []int
	reads, writes, filters, rskip, pskip, wskip int64
	skips                                       []string
}

func (w *crashWorld) expect() crashExpect {
	var e crashExpect
	for v := 1; v <= w.n; v++ {
		switch {
		case w.bad[v]:
			e.rskip++
			e.skips = append(e.skips, fmt.Sprintf("read:record %d", v))
			continue
		case v%5 == 0 && v > 10:
			e.pskip++
			e.skips = append(e.skips, fmt.Sprintf("process:%d", v))
		case v%11 == 0 && v > 10:
			e.filters++
		case v%7 == 0 && v > 10:
			e.wskip++
			e.skips = append(e.skips, fmt.Sprintf("write:%d", v))
		default:
			e.writes++
			e.rows = append(e.rows, v)
		}
		e.reads++
	}
	sort.Strings(e.skips)
	return e
}

func (w *crashWorld) actual(t *testing.T) (crashExpect, []string, int) {
	ctx := context.Background()
	var a crashExpect
	require.NoError(t, w.base.DB().Select(&a.rows, `SELECT n FROM nums ORDER BY n`))
	execs, err := w.base.JobExecutions(ctx, batch.ExecutionQuery{JobName: "load"})
	require.NoError(t, err)
	completed := 0
	for _, e := range execs {
		if e.Status == batch.StatusCompleted {
			completed++
		}
		ses, err := w.base.StepExecutions(ctx, e.ID)
		require.NoError(t, err)
		for _, s := range ses {
			a.reads += s.ReadCount
			a.writes += s.WriteCount
			a.filters += s.FilterCount
			a.rskip += s.ReadSkipCount
			a.pskip += s.ProcessSkipCount
			a.wskip += s.WriteSkipCount
		}
	}
	var rows []struct {
		Phase string  `db:"phase"`
		Input *string `db:"input"`
		Error string  `db:"error"`
	}
	require.NoError(t, w.base.DB().Select(&rows, `SELECT phase, input, error FROM rejects`))
	for _, r := range rows {
		a.skips = append(a.skips, rejectKey(r.Phase, r.Input, r.Error))
	}
	sort.Strings(a.skips)
	var file []string
	b, err := os.ReadFile(w.rejects)
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var r writer.Reject[int, int]
		require.NoError(t, json.Unmarshal([]byte(line), &r), line)
		var in *string
		if r.Input != nil {
			s := fmt.Sprint(*r.Input)
			in = &s
		}
		file = append(file, rejectKey(r.Phase, in, r.Error))
	}
	sort.Strings(file)
	return a, file, completed
}

func rejectKey(phase string, in *string, errText string) string {
	if phase == "read" && strings.Contains(errText, " line ") {
		var line int
		_, _ = fmt.Sscanf(errText[strings.Index(errText, " line ")+1:], "line %d", &line)
		return fmt.Sprintf("read:record %d", line-1)
	}
	if phase == "read" {
		i := strings.Index(errText, "record ")
		j := strings.Index(errText, ":")
		return "read:" + errText[i:j]
	}
	return phase + ":" + *in
}

// runUntilDone launches the job with repo; if it crashes, relaunches it on
// the base repository (after the lease) until it completes.
func (w *crashWorld) run(t *testing.T, repos ...repository.JobRepository) {
	ctx := context.Background()
	for i := 0; ; i++ {
		var repo repository.JobRepository = w.base
		if i < len(repos) {
			repo = repos[i]
		}
		engine := mustLauncher(t, launcher.Config{Repository: repo, Lease: 40 * time.Millisecond})
		job := w.job(t)
		_, err := engine.Run(ctx, job, nil)
		if err == nil || i > 0 && errors.Is(err, batch.ErrJobComplete) {
			// Done, or done before: a process that died just after saving
			// the job's end.
			return
		}
		require.Less(t, i, 6, "too many attempts: %v", err)
		time.Sleep(80 * time.Millisecond)
	}
}

func (w *crashWorld) check(t *testing.T) {
	want := w.expect()
	got, file, completed := w.actual(t)
	require.Equal(t, 1, completed)
	require.Equal(t, want.rows, got.rows, "table rows")
	require.Equal(t, []int64{want.reads, want.writes, want.filters, want.rskip, want.pskip, want.wskip},
		[]int64{got.reads, got.writes, got.filters, got.rskip, got.pskip, got.wskip}, "read, write, filter, rskip, pskip, wskip summed")
	require.Equal(t, want.skips, got.skips, "reject table")
	require.Equal(t, want.skips, file, "reject file")
}

// sweepWorkers processes the items of every other case on two goroutines.
func sweepWorkers(name string) int {
	h := 0
	for _, c := range name {
		h += int(c)
	}
	return 1 + h%2
}

func TestCrashSweep(t *testing.T) {
	var cases []sweepCase
	for _, size := range []int{1, 3, 4, 10} {
		// Count the commits of a clean run.
		w := newCrashWorld(t, size)
		counter := &crashRepo{Repository: w.base}
		w.run(t, counter)
		w.check(t)
		total := counter.n.Load()
		for _, after := range []bool{false, true} {
			for at := int64(1); at <= total; at++ {
				for _, ra := range []bool{false, true} {
					cases = append(cases, sweepCase{fmt.Sprintf("size=%d/after=%v/at=%d/readahead=%v", size, after, at, ra), func(t *testing.T) {
						w := newCrashWorld(t, size)
						w.readAhead = ra
						w.workers = sweepWorkers(t.Name())
						w.run(t, &crashRepo{Repository: w.base, at: at, after: after})
						w.check(t)
					}})
				}
			}
		}
	}
	runSweep(t, 8, cases)
}

func TestCrashPairSweep(t *testing.T) {
	var cases []sweepCase
	for _, size := range []int{3, 10} {
		w := newCrashWorld(t, size)
		counter := &crashRepo{Repository: w.base}
		w.run(t, counter)
		total := counter.n.Load()
		for at := int64(1); at <= total; at++ {
			for at2 := int64(1); at2 <= 12; at2++ {
				for _, after := range []bool{false, true} {
					ra := (at+at2)%2 == 0 // half the pairs read ahead
					cases = append(cases, sweepCase{fmt.Sprintf("size=%d/at=%d/at2=%d/after=%v/readahead=%v", size, at, at2, after, ra), func(t *testing.T) {
						w := newCrashWorld(t, size)
						w.readAhead = ra
						w.workers = sweepWorkers(t.Name())
						w.run(t, &crashRepo{Repository: w.base, at: at, after: after},
							&crashRepo{Repository: w.base, at: at2, after: !after})
						w.check(t)
					}})
				}
			}
		}
	}
	runSweep(t, 6, cases)
}

var errNR = errors.New("downstream gone")

// TestProcessorFailureSweep fails the k-th processor call of the first run
// (a plain error, or a no-rollback one), then restarts.
func TestProcessorFailureSweep(t *testing.T) {
	var cases []sweepCase
	for _, size := range []int{1, 4, 10} {
		for _, nr := range []bool{false, true} {
			for k := int64(1); k <= 90; k++ {
				ra := k%2 == 0 // half the cases read ahead
				cases = append(cases, sweepCase{fmt.Sprintf("size=%d/nr=%v/k=%d/readahead=%v", size, nr, k, ra), func(t *testing.T) {
					w := newCrashWorld(t, size)
					w.readAhead = ra
					w.workers = sweepWorkers(t.Name())
					var calls atomic.Int64
					var armed atomic.Bool
					armed.Store(true)
					w.procFail = func(v int) error {
						if armed.Load() && calls.Add(1) == k {
							armed.Store(false)
							if nr {
								return errNR
							}
							return errors.New("plain failure")
						}
						return nil
					}
					if nr {
						w.noRollback = batch.MatchErrors(errNR)
					}
					w.run(t)
					w.check(t)
				}})
			}
		}
	}
	runSweep(t, 6, cases)
}

// TestCSVCrashSweep does the same with the CSV reader, whose restart state
// is a byte offset, a line and a header, and bad lines among the records.
func TestCSVCrashSweep(t *testing.T) {
	var cases []sweepCase
	for _, size := range []int{3, 10} {
		w := newCrashWorld(t, size)
		w.csvPath = filepath.Join(t.TempDir(), "in.csv")
		counter := &crashRepo{Repository: w.base}
		w.run(t, counter)
		w.check(t)
		total := counter.n.Load()
		for _, after := range []bool{false, true} {
			for at := int64(1); at <= total; at++ {
				ra := at%2 == 0 // half the cases read ahead
				cases = append(cases, sweepCase{fmt.Sprintf("commit/size=%d/after=%v/at=%d/readahead=%v", size, after, at, ra), func(t *testing.T) {
					w := newCrashWorld(t, size)
					w.readAhead = ra
					w.workers = sweepWorkers(t.Name())
					w.csvPath = filepath.Join(t.TempDir(), "in.csv")
					w.run(t, &crashRepo{Repository: w.base, at: at, after: after}, &crashRepo{Repository: w.base, at: 3, after: !after})
					w.check(t)
				}})
			}
		}
		for k := int64(1); k <= 90; k++ {
			ra := k%2 == 1 // half the cases read ahead
			cases = append(cases, sweepCase{fmt.Sprintf("proc/size=%d/k=%d/readahead=%v", size, k, ra), func(t *testing.T) {
				w := newCrashWorld(t, size)
				w.readAhead = ra
				w.workers = sweepWorkers(t.Name())
				w.csvPath = filepath.Join(t.TempDir(), "in.csv")
				var calls atomic.Int64
				w.procFail = func(v int) error {
					if calls.Add(1) == k {
						return errNR
					}
					return nil
				}
				w.noRollback = batch.MatchErrors(errNR)
				w.run(t)
				w.check(t)
			}})
		}
	}
	runSweep(t, 6, cases)
}
