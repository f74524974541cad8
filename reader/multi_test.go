package reader_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
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
)

// multiDir writes files day-1.jsonl … day-n.jsonl (and an empty one) with
// per items each, numbered on from 1.
func multiDir(t *testing.T, n, per int) string {
	t.Helper()
	dir := t.TempDir()
	id := 0
	for f := 1; f <= n; f++ {
		var b strings.Builder
		for range per {
			id++
			fmt.Fprintf(&b, "{\"id\": %d, \"kind\": \"day-%d\"}\n", id, f)
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("day-%d.jsonl", f)), []byte(b.String()), 0o600))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "day-0.jsonl"), nil, 0o600))
	return dir
}

func jsonlFile(path string) (reader.StreamReader[jsonEvent], error) {
	return reader.NewJSONLines(reader.JSONLinesConfig[jsonEvent]{Path: path})
}

func TestMultiFile(t *testing.T) {
	t.Parallel()
	dir := multiDir(t, 4, 7)
	all := restartEverywhere(t, func() streamReader[jsonEvent] {
		r, err := reader.NewMultiFile(reader.MultiFileConfig[jsonEvent]{Glob: filepath.Join(dir, "day-*.jsonl"), Reader: jsonlFile})
		require.NoError(t, err)
		return r
	})
	require.Len(t, all, 28)
	for i, e := range all {
		require.Equal(t, i+1, e.ID, "in the order of the file names, each item once")
	}

	// A restart whose list of files changed is refused.
	r, err := reader.NewMultiFile(reader.MultiFileConfig[jsonEvent]{Glob: filepath.Join(dir, "day-*.jsonl"), Reader: jsonlFile})
	require.NoError(t, err)
	require.NoError(t, r.Open(t.Context(), nil))
	for range 10 {
		_, err := r.Read(t.Context())
		require.NoError(t, err)
	}
	ec := batch.ExecutionContext{}
	require.NoError(t, r.Update(t.Context(), ec))
	require.NoError(t, r.Close(t.Context()))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "day-10.jsonl"), []byte("{}\n"), 0o600))
	err = r.Open(t.Context(), roundTrip(t, ec))
	require.ErrorIs(t, err, reader.ErrInputChanged)
	require.ErrorContains(t, err, "reader: files files: input changed since the last commit: the stream had 5 files when it started and has 6 now")

	// Errors of a file's reader name the file.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "day-10.jsonl"), []byte("{\"id\": 1}\nnot json\n"), 0o600))
	r, err = reader.NewMultiFile(reader.MultiFileConfig[jsonEvent]{Paths: []string{filepath.Join(dir, "day-10.jsonl")}, Reader: jsonlFile})
	require.NoError(t, err)
	require.NoError(t, r.Open(t.Context(), nil))
	defer r.Close(context.Background())
	_, err = r.Read(t.Context())
	require.NoError(t, err)
	_, err = r.Read(t.Context())
	require.ErrorContains(t, err, "reader: jsonl day-10.jsonl line 2: invalid JSON")

	_, err = reader.NewMultiFile(reader.MultiFileConfig[jsonEvent]{Glob: "[", Reader: jsonlFile})
	require.ErrorContains(t, err, "syntax error in pattern")
	none, err := reader.NewMultiFile(reader.MultiFileConfig[jsonEvent]{Glob: filepath.Join(dir, "*.csv"), Reader: jsonlFile})
	require.NoError(t, err)
	require.ErrorContains(t, none.Open(t.Context(), nil), "no file matches")
}

// TestMultiFileJobRestart: a job reading gzip and plain files as one stream
// fails in the third file, and its restart reads on from there: every item
// is written once, and no file before the third is opened again.
func TestMultiFileJobRestart(t *testing.T) {
	t.Parallel()
	dir := multiDir(t, 4, 25)
	// The second file gzipped, under another name.
	second := filepath.Join(dir, "day-2.jsonl")
	data, err := os.ReadFile(second)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(second+".gz", gzipped(t, string(data)), 0o600))
	require.NoError(t, os.Remove(second))

	repo, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "batch.db"), sqlite.Config{})
	require.NoError(t, err)
	defer repo.Close()
	require.NoError(t, repo.Migrate(t.Context()))

	var written []int
	var opened []string
	failAt := atomic.Int64{}
	failAt.Store(63)
	job := func() *batch.Job {
		r, err := reader.NewMultiFile(reader.MultiFileConfig[jsonEvent]{
			Glob: filepath.Join(dir, "day-*"),
			Reader: func(path string) (reader.StreamReader[jsonEvent], error) {
				opened = append(opened, filepath.Base(path))
				return jsonlFile(path)
			},
		})
		require.NoError(t, err)
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[jsonEvent, jsonEvent]{
			Reader: r, ChunkSize: 10,
			Writer: batch.WriterFunc[jsonEvent](func(_ context.Context, items []jsonEvent) error {
				for _, it := range items {
					if int64(it.ID) == failAt.Load() {
						return errors.New("disk full")
					}
				}
				for _, it := range items {
					written = append(written, it.ID)
				}
				return nil
			}),
		})
		require.NoError(t, err)
		j, err := batch.NewJob("load", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		return j
	}
	l, err := launcher.New(launcher.Config{Repository: repo})
	require.NoError(t, err)
	exec, err := l.Run(t.Context(), job(), nil)
	require.ErrorContains(t, err, "item 61: write: chunk of items 61-70: disk full")
	require.Equal(t, batch.StatusFailed, exec.Status)
	require.Equal(t, []string{"day-0.jsonl", "day-1.jsonl", "day-2.jsonl.gz", "day-3.jsonl"}, opened)
	require.Len(t, written, 60)

	opened = nil
	failAt.Store(-1)
	exec, err = l.Run(t.Context(), job(), nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, []string{"day-3.jsonl", "day-4.jsonl"}, opened)
	require.Len(t, written, 100)
	for i, id := range written {
		require.Equal(t, i+1, id)
	}
}

func TestFromChannel(t *testing.T) {
	t.Parallel()
	ch := make(chan int, 3)
	ch <- 1
	ch <- 2
	close(ch)
	r := reader.FromChannel(ch)
	require.Equal(t, []int{1, 2}, readAll(t, r))

	blocked := reader.FromChannel(make(chan int))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := blocked.Read(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

func TestFromSeq(t *testing.T) {
	t.Parallel()
	var runs atomic.Int64
	count := func(n int) iter.Seq[int] {
		return func(yield func(int) bool) {
			runs.Add(1)
			for i := 1; i <= n; i++ {
				if !yield(i) {
					return
				}
			}
		}
	}
	all := restartEverywhere(t, func() streamReader[int] { return reader.FromSeq("count", count(20)) })
	require.Len(t, all, 20)

	// A sequence that became shorter than what was read is refused.
	r := reader.FromSeq("count", count(20))
	require.NoError(t, r.Open(t.Context(), nil))
	for range 15 {
		_, err := r.Read(t.Context())
		require.NoError(t, err)
	}
	ec := batch.ExecutionContext{}
	require.NoError(t, r.Update(t.Context(), ec))
	require.NoError(t, r.Close(t.Context()))
	err := reader.FromSeq("count", count(10)).Open(t.Context(), ec)
	require.ErrorIs(t, err, reader.ErrInputChanged)

	// Errors of a Seq2 are the values' errors; the next value follows.
	pairs := reader.FromSeq2("pairs", func(yield func(string, error) bool) {
		_ = yield("a", nil) && yield("", errors.New("bad value")) && yield("c", nil)
	})
	require.NoError(t, pairs.Open(t.Context(), nil))
	defer pairs.Close(context.Background())
	v, err := pairs.Read(t.Context())
	require.NoError(t, err)
	require.Equal(t, "a", v)
	_, err = pairs.Read(t.Context())
	require.EqualError(t, err, "reader: seq pairs: value 2: bad value")
	v, err = pairs.Read(t.Context())
	require.NoError(t, err)
	require.Equal(t, "c", v)
	_, err = pairs.Read(t.Context())
	require.Equal(t, io.EOF, err)
}
