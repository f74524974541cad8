package reader_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

// Regression tests of defects a review found.

// A file whose good records are followed by more than ~72 KiB of bad,
// skippable ones: the final commit's Update cannot take the input's
// identity and the step fails instead of completing with the skips.
func TestJSONLinesTrailingBadLines(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(`{"id": 1, "kind": "a"}` + "\n")
	bad := `{"id": "not a number", "kind": "` + strings.Repeat("x", 60) + `"}` + "\n"
	for range 1000 {
		b.WriteString(bad)
	}
	path := filepath.Join(t.TempDir(), "e.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))

	repo, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "batch.db"), sqlite.Config{})
	require.NoError(t, err)
	defer repo.Close()
	require.NoError(t, repo.Migrate(t.Context()))
	r, err := reader.NewJSONLines(reader.JSONLinesConfig[jsonEvent]{Path: path})
	require.NoError(t, err)
	var written []int
	step, err := batch.NewChunkStep("load", batch.ChunkConfig[jsonEvent, jsonEvent]{
		Reader: r, ChunkSize: 10,
		Skip: batch.MatchType[*reader.ParseError](), SkipLimit: 5000,
		Writer: batch.WriterFunc[jsonEvent](func(_ context.Context, items []jsonEvent) error {
			for _, it := range items {
				written = append(written, it.ID)
			}
			return nil
		}),
	})
	require.NoError(t, err)
	j, err := batch.NewJob("load", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	l, err := launcher.New(launcher.Config{Repository: repo})
	require.NoError(t, err)
	exec, err := l.Run(t.Context(), j, nil)
	require.NoError(t, err, fmt.Sprint(exec))
	require.Equal(t, []int{1}, written)
}

func TestCSVTrailingBadRecords(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("id,kind\n1,a\n")
	for range 2000 {
		b.WriteString("notanumber," + strings.Repeat("x", 60) + "\n")
	}
	path := filepath.Join(t.TempDir(), "e.csv")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))

	repo, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "batch.db"), sqlite.Config{})
	require.NoError(t, err)
	defer repo.Close()
	require.NoError(t, repo.Migrate(t.Context()))
	r, err := reader.NewCSV(reader.CSVConfig[int]{Path: path, Header: true, Map: func(rec reader.Record) (int, error) {
		v, err := rec.Int("id")
		return int(v), err
	}})
	require.NoError(t, err)
	var written []int
	step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
		Reader: r, ChunkSize: 10,
		Skip: batch.MatchType[*reader.ParseError](), SkipLimit: 5000,
		Writer: batch.WriterFunc[int](func(_ context.Context, items []int) error {
			written = append(written, items...)
			return nil
		}),
	})
	require.NoError(t, err)
	j, err := batch.NewJob("load", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	l, err := launcher.New(launcher.Config{Repository: repo})
	require.NoError(t, err)
	exec, err := l.Run(t.Context(), j, nil)
	require.NoError(t, err, fmt.Sprint(exec))
	require.Equal(t, []int{1}, written)
}

type bigEl struct {
	ID  int    `json:"id"`
	Pad string `json:"pad"`
}

// Elements of 1 KiB, one per line, checkpointed every 100 as a step with the
// default chunk size does: the error of a bad element must name its line.
func TestJSONArrayLineNumbers(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("[\n")
	for i := 1; i <= 300; i++ {
		if i > 1 {
			b.WriteString(",\n")
		}
		if i == 250 {
			fmt.Fprintf(&b, `{"id": "bad", "pad": "%s"}`, strings.Repeat("x", 1000))
			continue
		}
		fmt.Fprintf(&b, `{"id": %d, "pad": "%s"}`, i, strings.Repeat("x", 1000))
	}
	b.WriteString("\n]\n")
	path := filepath.Join(t.TempDir(), "a.json")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	r, err := reader.NewJSONArray(reader.JSONArrayConfig[bigEl]{Path: path})
	require.NoError(t, err)
	ctx := t.Context()
	require.NoError(t, r.Open(ctx, batch.ExecutionContext{}))
	defer r.Close(ctx)
	ec := batch.ExecutionContext{}
	for i := 1; i < 250; i++ {
		_, err := r.Read(ctx)
		require.NoError(t, err)
		if i%100 == 0 {
			require.NoError(t, r.Update(ctx, ec))
		}
	}
	var line int64
	_, err = ec.Get("a.json.line", &line)
	require.NoError(t, err)
	require.Equal(t, int64(200), line, "element 200 ends on line 201: 200 line breaks before it")
	_, err = r.Read(ctx)
	require.ErrorContains(t, err, "reader: json a.json line 251: element 250:")
}

func TestJSONArrayTrailingBadElements(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(`[{"id": 1, "pad": ""}`)
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, `, {"id": "bad", "pad": "%s"}`, strings.Repeat("x", 1000))
	}
	b.WriteString("]\n")
	path := filepath.Join(t.TempDir(), "a.json")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o600))
	r, err := reader.NewJSONArray(reader.JSONArrayConfig[bigEl]{Path: path})
	require.NoError(t, err)
	ctx := t.Context()
	require.NoError(t, r.Open(ctx, batch.ExecutionContext{}))
	defer r.Close(ctx)
	_, err = r.Read(ctx)
	require.NoError(t, err)
	for i := 0; i < 100; i++ {
		_, err = r.Read(ctx)
		require.Error(t, err)
	}
	_, err = r.Read(ctx)
	require.Equal(t, io.EOF, err)
	require.NoError(t, r.Update(ctx, batch.ExecutionContext{}))
}

// A file of the stream that cannot be opened (a JSON file that is not an
// array: a *ParseError, which a step may skip): the next Read must not
// panic.
func TestMultiFileFileThatCannotOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.json"), []byte(`[{"id": 1}]`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.json"), []byte(`{"id": 2}`), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "c.json"), []byte(`[{"id": 3}]`), 0o600))
	r, err := reader.NewMultiFile(reader.MultiFileConfig[bigEl]{Glob: filepath.Join(dir, "*.json"),
		Reader: func(path string) (reader.StreamReader[bigEl], error) {
			return reader.NewJSONArray(reader.JSONArrayConfig[bigEl]{Path: path})
		}})
	require.NoError(t, err)
	ctx := t.Context()
	require.NoError(t, r.Open(ctx, batch.ExecutionContext{}))
	defer r.Close(ctx)
	it, err := r.Read(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, it.ID)
	_, err = r.Read(ctx)
	var pe *reader.ParseError
	require.ErrorAs(t, err, &pe)
	require.ErrorContains(t, err, "reader: files files: file 2 of 3: reader: json b.json line 1: not a JSON array")
	var again error
	require.NotPanics(t, func() { _, again = r.Read(ctx) })
	require.Equal(t, err, again, "the stream cannot go on past a file it cannot read")
}

// A restart of a Seq whose context is cancelled during Open.
func TestSeqRestartCancelled(t *testing.T) {
	t.Parallel()
	r := reader.FromSeq("n", func(yield func(int) bool) {
		for i := range 10 {
			if !yield(i) {
				return
			}
		}
	})
	ec := batch.ExecutionContext{}
	require.NoError(t, ec.Put("n.read", 5))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- r.Open(ctx, ec) }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(2 * time.Second):
		t.Fatal("Open with a cancelled context does not return")
	}
}
