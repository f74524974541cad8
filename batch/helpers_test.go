package batch_test

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/memory"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

// streamReader reads a slice and keeps its position in the step's execution
// context, so that a restarted step resumes after the last committed chunk.
// It is an ItemReader[int] and an ItemStream.
type streamReader struct {
	items []int
	// block, when set, is called before item index i is read; it may block
	// or return an error.
	block func(ctx context.Context, i int) error

	mu             sync.Mutex
	pos            int
	opened, closed int
	openedAt       []int // the position restored at each Open
}

const readerKey = "test.reader.pos"

func newStreamReader(n int) *streamReader {
	items := make([]int, n)
	for i := range items {
		items[i] = i + 1
	}
	return &streamReader{items: items}
}

func (r *streamReader) Open(_ context.Context, ec batch.ExecutionContext) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, _ := ec.Int64(readerKey)
	r.pos = int(n)
	r.opened++
	r.openedAt = append(r.openedAt, r.pos)
	return nil
}

func (r *streamReader) Update(_ context.Context, ec batch.ExecutionContext) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ec.Put(readerKey, r.pos)
}

func (r *streamReader) Close(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed++
	return nil
}

func (r *streamReader) Read(ctx context.Context) (int, error) {
	r.mu.Lock()
	pos := r.pos
	r.mu.Unlock()
	if pos >= len(r.items) {
		return 0, io.EOF
	}
	if r.block != nil {
		if err := r.block(ctx, pos); err != nil {
			return 0, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pos++
	return r.items[pos], nil
}

// sliceReader returns a plain (non-stream) reader over items.
func sliceReader[T any](items ...T) batch.ReaderFunc[T] {
	i := 0
	return func(context.Context) (T, error) {
		var zero T
		if i == len(items) {
			return zero, io.EOF
		}
		i++
		return items[i-1], nil
	}
}

// recordingWriter records every chunk it is given. fail, when set, is called
// with the 1-based number of the Write call and the chunk; an error it
// returns fails the write (after the chunk was recorded as attempted).
type recordingWriter[U any] struct {
	fail func(ctx context.Context, call int, items []U) error

	mu     sync.Mutex
	calls  int
	chunks [][]U // chunks whose Write returned nil
}

func (w *recordingWriter[U]) Write(ctx context.Context, items []U) error {
	w.mu.Lock()
	w.calls++
	call := w.calls
	w.mu.Unlock()
	if w.fail != nil {
		if err := w.fail(ctx, call, items); err != nil {
			return err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.chunks = append(w.chunks, append([]U(nil), items...))
	return nil
}

func (w *recordingWriter[U]) sizes() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int
	for _, c := range w.chunks {
		out = append(out, len(c))
	}
	return out
}

func (w *recordingWriter[U]) all() []U {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []U
	for _, c := range w.chunks {
		out = append(out, c...)
	}
	return out
}

func seq(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

// launchRun launches job with params and runs the new execution.
func launchRun(t *testing.T, l *launcher.Launcher, job *batch.Job, params batch.JobParameters) (*batch.JobExecution, error) {
	t.Helper()
	return l.Run(context.Background(), job, params)
}

// mustLauncher returns a launcher with cfg.
func mustLauncher(t testing.TB, cfg launcher.Config) *launcher.Launcher {
	t.Helper()
	l, err := launcher.New(cfg)
	require.NoError(t, err)
	return l
}

// stepExecutions returns the step executions of a job execution.
func stepExecutions(t *testing.T, repo repository.JobRepository, execID int64) []*batch.StepExecution {
	t.Helper()
	ses, err := repo.StepExecutions(context.Background(), execID)
	require.NoError(t, err)
	return ses
}

// onlyStep returns the single step execution of a job execution.
func onlyStep(t *testing.T, repo repository.JobRepository, execID int64) *batch.StepExecution {
	t.Helper()
	ses := stepExecutions(t, repo, execID)
	require.Len(t, ses, 1)
	return ses[0]
}

// openSQLite opens (creating and migrating) the SQLite repository at path.
// The repository is closed at the end of the test; close it earlier to
// simulate the end of a process.
func openSQLite(t *testing.T, path string) *sqlite.Repository {
	t.Helper()
	repo, err := sqlite.Open(context.Background(), path, sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = repo.Close() })
	require.NoError(t, repo.Migrate(context.Background()))
	return repo
}

// repos runs fn once against each repository implementation that needs no
// server: memory, and SQLite on a file.
func repos(t *testing.T, fn func(t *testing.T, repo repository.JobRepository)) {
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		fn(t, memory.New())
	})
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		fn(t, openSQLite(t, filepath.Join(t.TempDir(), "batch.db")))
	})
}

// requestStop is what an operator does to stop an execution: it marks the
// stored execution STOPPING.
func requestStop(ctx context.Context, repo repository.JobRepository, execID int64) error {
	e, err := repo.JobExecution(ctx, execID)
	if err != nil {
		return err
	}
	if !e.Status.Running() {
		return fmt.Errorf("execution %d is %s", execID, e.Status)
	}
	e.Status = batch.StatusStopping
	return repo.UpdateJobExecution(ctx, e)
}

// runningID returns the id of the running execution in repo, as an operator
// would look it up; 0 if there is none.
func runningID(ctx context.Context, repo repository.JobRepository) int64 {
	es, err := repo.JobExecutions(ctx, batch.ExecutionQuery{Running: true, Limit: 1})
	if err != nil || len(es) == 0 {
		return 0
	}
	return es[0].ID
}
