package writer_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/sqlite"
	"github.com/chunkwise/chunkwise/writer"
)

var errOdd = errors.New("odd amount")

// flakyCommits is a job repository that fails every third commit whose
// write succeeded, after the write: as a connection that breaks before
// COMMIT, it rolls the rows back but leaves the files written during the
// commit. The retry then commits.
type flakyCommits struct {
	*sqlite.Repository
	n      atomic.Int64
	failed atomic.Int64
}

func (r *flakyCommits) CommitChunk(ctx context.Context, s *batch.StepExecution, write func(ctx context.Context) error) (batch.BatchStatus, error) {
	return r.Repository.CommitChunk(ctx, s, func(ctx context.Context) error {
		if err := write(ctx); err != nil {
			return err
		}
		if r.n.Add(1)%3 == 1 {
			r.failed.Add(1)
			return fmt.Errorf("commit: %w", io.ErrUnexpectedEOF)
		}
		return nil
	})
}

// flakyListener fails every fourth skip it is told about with a transient
// error: the commit is retried after other listeners already saw some skips.
type flakyListener struct{ n, failed atomic.Int64 }

func (f *flakyListener) OnSkip(context.Context, *batch.Skip[int, int]) error {
	if f.n.Add(1)%4 == 0 {
		f.failed.Add(1)
		return fmt.Errorf("audit log: %w", io.ErrUnexpectedEOF)
	}
	return nil
}

func readRejects(t *testing.T, path string) []writer.Reject[int, int] {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []writer.Reject[int, int]
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r writer.Reject[int, int]
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		out = append(out, r)
	}
	return out
}

// TestRejectsExactlyOnce skips every multiple of 5 (in process) and of 7 (in
// write, by a CHECK constraint), fails some commits after the rejects were
// written, and fails the step once half way: the reject file and table hold
// each skip once.
func TestRejectsExactlyOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	base, err := sqlite.Open(ctx, filepath.Join(dir, "batch.db"), sqlite.Config{})
	require.NoError(t, err)
	defer base.Close()
	require.NoError(t, base.Migrate(ctx))
	_, err = base.DB().Exec(`CREATE TABLE nums (n INTEGER NOT NULL CHECK (n % 7 <> 0))`)
	require.NoError(t, err)
	repo := &flakyCommits{Repository: base}
	path := filepath.Join(dir, "rejects.jsonl")

	flaky := &flakyListener{}
	var stopAt atomic.Int64
	stopAt.Store(40)
	newJob := func() *batch.Job {
		file, err := writer.NewRejectFile[int, int](writer.RejectFileConfig{Path: path})
		require.NoError(t, err)
		table, err := writer.NewRejectTable[int, int](writer.RejectTableConfig{DB: base.DB(), Table: "rejects"})
		require.NoError(t, err)
		w, err := writer.NewSQL(writer.SQLConfig[int]{DB: base.DB(), Table: "nums", Columns: []string{"n"},
			Values: func(n int) []any { return []any{n} }})
		require.NoError(t, err)
		items := make([]int, 60)
		for i := range items {
			items[i] = i + 1
		}
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
			Reader: reader.FromSlice(items),
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, n int) (int, error) {
				if int64(n) == stopAt.Load() {
					return 0, errors.New("operator pulled the plug")
				}
				if n%5 == 0 {
					return 0, fmt.Errorf("%d: %w", n, errOdd)
				}
				return n, nil
			}),
			Writer: w, ChunkSize: 6, SkipLimit: -1,
			Skip:      batch.MatchErrors(errOdd).Or(batch.MatchFunc(func(err error) bool { return strings.Contains(err.Error(), "CHECK") })),
			Backoff:   batch.Backoff{Initial: 1, Max: 1},
			Listeners: []batch.Listener{file, table, flaky},
		})
		require.NoError(t, err)
		job, err := batch.NewJob("load", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		return job
	}
	engine, err := launcher.New(launcher.Config{Repository: repo})
	require.NoError(t, err)
	_, err = engine.Run(ctx, newJob(), nil)
	require.ErrorContains(t, err, "operator pulled the plug")

	stopAt.Store(0)
	job := newJob()
	exec, err := engine.Run(ctx, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)

	var want []string
	for n := 1; n <= 60; n++ {
		switch {
		case n%5 == 0:
			want = append(want, fmt.Sprintf("process:%d", n))
		case n%7 == 0:
			want = append(want, fmt.Sprintf("write:%d", n))
		}
	}
	var got []string
	for _, r := range readRejects(t, path) {
		got = append(got, fmt.Sprintf("%s:%d", r.Phase, *r.Input))
		if r.Phase == "write" {
			require.Equal(t, *r.Input, *r.Output)
			require.Contains(t, r.Error, "CHECK constraint failed")
		}
	}
	require.Equal(t, want, got, "the reject file holds each skip once, in order")

	var rows []struct {
		Phase string `db:"phase"`
		Input string `db:"input"`
	}
	require.NoError(t, base.DB().Select(&rows, `SELECT phase, input FROM rejects ORDER BY CAST(input AS INTEGER)`))
	got = nil
	for _, r := range rows {
		got = append(got, r.Phase+":"+r.Input)
	}
	require.Equal(t, want, got, "the reject table holds each skip once")
	var written int
	require.NoError(t, base.DB().Get(&written, `SELECT COUNT(*) FROM nums`))
	require.Equal(t, 60-len(want), written)
	require.Greater(t, repo.failed.Load(), int64(5), "commits failed after writing their rejects")
	require.Greater(t, flaky.failed.Load(), int64(2), "commits failed between listeners")
}

func TestRejectConfigValidated(t *testing.T) {
	_, err := writer.NewRejectFile[int, int](writer.RejectFileConfig{})
	require.Error(t, err)
	_, err = writer.NewRejectTable[int, int](writer.RejectTableConfig{})
	require.Error(t, err)
	repo, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "b.db"), sqlite.Config{})
	require.NoError(t, err)
	defer repo.Close()
	_, err = writer.NewRejectTable[int, int](writer.RejectTableConfig{DB: repo.DB(), Table: "x; DROP TABLE y"})
	require.ErrorContains(t, err, "invalid table name")
}
