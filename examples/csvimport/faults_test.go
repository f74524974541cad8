package main

import (
	"bytes"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/internal/exampletest"
	"github.com/chunkwise/chunkwise/launcher"
)

// TestDatabaseConnectionsKilled terminates the import's PostgreSQL
// connections (pg_terminate_backend) again and again while it runs. Transient
// errors are retried; what cannot be retried fails the run cleanly, and the
// next run restarts it. In the end every row is there exactly once.
func TestDatabaseConnectionsKilled(t *testing.T) {
	b := exampletest.Backends()["postgres"](t)
	u, err := url.Parse(b.DSN)
	require.NoError(t, err)
	q := u.Query()
	q.Set("application_name", "csvimport-faults")
	u.RawQuery = q.Encode()
	b.DSN = u.String()
	const rows = 60_000
	input := writeCSV(t, rows)
	const lease = 800 * time.Millisecond
	args := []string{"-lease", lease.String(), "run", "input=" + input, "+chunk:int=100"}

	var terminated atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for terminated.Load() < 25 {
			select {
			case <-stop:
				return
			case <-time.After(120 * time.Millisecond):
			}
			var n int64
			if err := b.DB.Get(&n, `SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE application_name = 'csvimport-faults' AND pid <> pg_backend_pid()) AS t`); err == nil {
				terminated.Add(n)
			}
		}
	}()

	var stderrAll strings.Builder
	runs, completed := 0, false
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); {
		cmd := command(b, nil, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		runs++
		err := cmd.Run()
		stderrAll.WriteString(stderr.String())
		if err == nil {
			completed = true
			break
		}
		ee, ok := err.(*exec.ExitError)
		require.True(t, ok, "%v", err)
		refused := ee.ExitCode() == launcher.ExitRefused // as running, or completed
		switch {
		case ee.ExitCode() == 1:
			// Failed cleanly; restart it.
		case refused && strings.Contains(stderr.String(), "already running"):
			time.Sleep(lease) // its end was not recorded: wait for the lease
		case refused && strings.Contains(stderr.String(), "already completed"):
			completed = true
		case ee.ExitCode() == 2 && strings.Contains(stderr.String(), "job repository"):
			// Could not even open the repository: try again.
		default:
			t.Fatalf("run %d: exit %d\n%s", runs, ee.ExitCode(), stderr.String())
		}
		if completed {
			break
		}
	}
	close(stop)
	wg.Wait()
	require.True(t, completed, "the import completed within 3 minutes (%d runs)", runs)
	t.Logf("%d connections terminated; %d runs; %d retries logged", terminated.Load(), runs,
		strings.Count(stderrAll.String(), "retrying"))
	require.Positive(t, terminated.Load(), "connections were terminated while the import ran")
	requireExactlyOnce(t, b.DB, rows)
}
