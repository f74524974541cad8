package batch_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/writer"
)

type failAfterStepOnce struct{ n atomic.Int64 }

func (f *failAfterStepOnce) AfterStep(context.Context, *batch.StepExecution) error {
	if f.n.Add(1) == 1 {
		return errors.New("after-step listener: audit service down")
	}
	return nil
}

// The last line of the file is malformed. The step's last chunk counts and
// reports its skip; then the step fails after that commit (an after-step
// listener; the same as a crash before the step's end is saved). The restart
// must not count or report the skip again.
func TestTrailingBadLineCountedOnce(t *testing.T) {
	dir := t.TempDir()
	repo, w := checkTable(t)
	in := filepath.Join(dir, "in.csv")
	require.NoError(t, os.WriteFile(in, []byte("n\n1\n2\n3\n4,extra\n"), 0o644))
	rejects := filepath.Join(dir, "rejects.jsonl")
	after := &failAfterStepOnce{}
	newJob := func() *batch.Job {
		c, err := reader.NewCSV(reader.CSVConfig[int]{Path: in, Header: true, Map: func(r reader.Record) (int, error) {
			n, err := r.Int("n")
			return int(n), err
		}})
		require.NoError(t, err)
		file, err := writer.NewRejectFile[int, int](writer.RejectFileConfig{Path: rejects})
		require.NoError(t, err)
		step, err := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
			Reader: c, Writer: w, ChunkSize: 10, Skip: batch.MatchType[*reader.ParseError](),
			Listeners: []batch.Listener{file, after},
		})
		require.NoError(t, err)
		job, err := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		return job
	}
	engine := mustLauncher(t, launcher.Config{Repository: repo})
	exec1, err := launchRun(t, engine, newJob(), nil)
	require.ErrorContains(t, err, "audit service down")
	exec2, err := launchRun(t, engine, newJob(), nil)
	require.NoError(t, err)
	require.Equal(t, []int{1, 2, 3}, tableRows(t, repo.DB()))
	s1, s2 := onlyStep(t, repo, exec1.ID), onlyStep(t, repo, exec2.ID)
	require.Equal(t, int64(1), s1.ReadSkipCount+s2.ReadSkipCount, "one malformed line, one skip")
	b, err := os.ReadFile(rejects)
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(string(b), "\n"), "one reject line: %s", b)
}
