package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chunkwise/chunkwise/internal/exampletest"
	"github.com/stretchr/testify/require"
)

var binary string

func TestMain(m *testing.M) { exampletest.Main(m, "report", &binary) }

const lease = 500 * time.Millisecond

func command(db, output string, env ...string) *exec.Cmd {
	return exampletest.Command(binary, db, env, "-lease", lease.String(), "run", "output="+output)
}

// runToEnd runs the job until it completes, waiting out the lease of an
// execution a kill left behind.
func runToEnd(t *testing.T, db, output string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		var stderr bytes.Buffer
		cmd := command(db, output)
		cmd.Stderr = &stderr
		err := cmd.Run()
		if err == nil {
			return
		}
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "%v", err)
		require.Equal(t, 4, ee.ExitCode(), "only a refusal is expected: %s", stderr.String())
		require.Contains(t, stderr.String(), "running", "refused while the killed run's lease lasts")
		time.Sleep(lease / 2)
	}
	t.Fatal("the job did not complete in a minute")
}

// TestKilledReportIsIdentical kills the job with SIGKILL at random moments
// while it writes its report, restarts it each time, and checks that the
// report it ends with is byte for byte the report of a run that was never
// killed — and that after every kill the file is a complete report of the
// rows committed so far (header, rows, footer).
func TestKilledReportIsIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	dir := t.TempDir()
	want := filepath.Join(dir, "want.csv")
	runToEnd(t, filepath.Join(dir, "want.db"), want)
	wantBytes, err := os.ReadFile(want)
	require.NoError(t, err)
	wantLines := strings.SplitAfter(string(wantBytes), "\n")
	require.Len(t, wantLines, 20_000+3) // header, rows, footer, and "" after the last line break

	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	db, got := filepath.Join(dir, "got.db"), filepath.Join(dir, "got.csv")
	kills := 0
	for kills < 5 {
		cmd := command(db, got, "REPORT_DELAY=100us")
		require.NoError(t, cmd.Start())
		// Wait until the report is under way, then a random while longer.
		for i := 0; i < 400; i++ {
			if fi, err := os.Stat(got); err == nil && fi.Size() > 100 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		kills++
		b, err := os.ReadFile(got)
		require.NoError(t, err)
		lines := strings.SplitAfter(string(b), "\n")
		require.Equal(t, wantLines[0], lines[0], "the header")
		rows := lines[1 : len(lines)-2]
		require.Equal(t, wantLines[1:1+len(rows)], rows, "after kill %d, the rows committed", kills)
		require.Regexp(t, fmt.Sprintf(`^total,%d sales,`, len(rows)), lines[len(lines)-2], "after kill %d, the footer", kills)
		t.Logf("kill %d: %d rows in the report", kills, len(rows))
		if len(rows) == 20_000 {
			break // it had finished
		}
		time.Sleep(lease) // the killed execution is presumed crashed
	}
	runToEnd(t, db, got)
	gotBytes, err := os.ReadFile(got)
	require.NoError(t, err)
	require.True(t, bytes.Equal(wantBytes, gotBytes), "the report after %d kills is the uninterrupted run's", kills)
}
