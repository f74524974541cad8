package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/internal/exampletest"
	"github.com/chunkwise/chunkwise/launcher"
)

// binary is the csvimport program, built once for all tests: the tests run it
// as a user does, as a separate process.
var binary string

func TestMain(m *testing.M) { exampletest.Main(m, "csvimport", &binary) }

type (
	backend = exampletest.Backend
	result  = exampletest.Result
)

// run runs the program to its end.
func run(t *testing.T, b backend, env []string, args ...string) result {
	t.Helper()
	return exampletest.Run(t, binary, b.DSN, env, args...)
}

func command(b backend, env []string, args ...string) *exec.Cmd {
	return exampletest.Command(binary, b.DSN, env, args...)
}

// writeCSV writes n people with ids 1..n.
func writeCSV(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "people.csv")
	f, err := os.Create(path)
	require.NoError(t, err)
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "id,name,email,amount,created_at")
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(w, "%d,\"Person, %d\",p%d@example.com,%d.%02d,%s\n", i, i, i, i%10000, i%100,
			base.Add(time.Duration(i)*time.Minute).Format(time.RFC3339))
	}
	require.NoError(t, w.Flush())
	require.NoError(t, f.Close())
	return path
}

// requireExactlyOnce checks that people holds ids 1..n, each once.
func requireExactlyOnce(t *testing.T, db *sqlx.DB, n int) {
	t.Helper()
	var got struct {
		Rows     int   `db:"rows"`
		Distinct int   `db:"distinct_ids"`
		Min      int64 `db:"min_id"`
		Max      int64 `db:"max_id"`
	}
	require.NoError(t, db.Get(&got, `SELECT COUNT(*) AS rows, COUNT(DISTINCT id) AS distinct_ids,
		COALESCE(MIN(id), 0) AS min_id, COALESCE(MAX(id), 0) AS max_id FROM people`))
	require.Equal(t, n, got.Rows, "rows")
	require.Equal(t, n, got.Distinct, "distinct ids")
	require.Equal(t, int64(1), got.Min)
	require.Equal(t, int64(n), got.Max)
}

func countRows(db *sqlx.DB) int {
	var n int
	if err := db.Get(&n, `SELECT COUNT(*) FROM people`); err != nil {
		return -1
	}
	return n
}

func TestSampleImport(t *testing.T) {
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			r := run(t, b, nil, "run")
			require.Equal(t, 0, r.Code, r.Stderr)
			require.Contains(t, r.Stdout, "COMPLETED")
			requireExactlyOnce(t, b.DB, 1000)
			var name string
			require.NoError(t, b.DB.Get(&name, `SELECT name FROM people WHERE id = 97`))
			require.Equal(t, "Thompson, Frances", name, "a quoted field with a comma")

			again := run(t, b, nil, "run")
			require.Equal(t, launcher.ExitRefused, again.Code)
			require.Contains(t, again.Stderr, "already completed")
			requireExactlyOnce(t, b.DB, 1000)
		})
	}
}

// TestFailAtThenRestartPartitioned: the file in two byte ranges loaded at
// once; a row of the second fails, the first stops at a chunk boundary;
// the restart loads the rest of each, every row once.
func TestFailAtThenRestartPartitioned(t *testing.T) {
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			input := writeCSV(t, 2000)
			args := []string{"run", "input=" + input, "+chunk:int=100", "partitions=2"}
			failed := run(t, b, []string{"FAIL_AT=1234"}, args...)
			require.Equal(t, 1, failed.Code, failed.Stderr)
			require.Contains(t, failed.Stderr, "FAIL_AT=1234")
			require.Regexp(t, `import:p2\s+FAILED`, failed.Stdout)
			var max2 int64
			require.NoError(t, b.DB.Get(&max2, `SELECT COALESCE(MAX(id), 0) FROM people WHERE id > 1000`))
			require.Less(t, max2, int64(1234), "nothing of the second range past the failing row's chunk")

			done := run(t, b, nil, args...)
			require.Equal(t, 0, done.Code, done.Stderr)
			require.Contains(t, done.Stdout, "execution 2 (instance 1): COMPLETED")
			require.Regexp(t, `import:p2\s+COMPLETED`, done.Stdout)
			requireExactlyOnce(t, b.DB, 2000)
		})
	}
}

func TestFailAtThenRestart(t *testing.T) {
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			input := writeCSV(t, 2000)
			failed := run(t, b, []string{"FAIL_AT=1234"}, "run", "input="+input, "+chunk:int=100")
			require.Equal(t, 1, failed.Code, failed.Stderr)
			require.Contains(t, failed.Stderr, "item 1234")
			require.Contains(t, failed.Stdout, "FAILED")
			requireFirstRows(t, b.DB, 1200) // the 12 chunks before the failing one committed

			done := run(t, b, nil, "run", "input="+input, "+chunk:int=100")
			require.Equal(t, 0, done.Code, done.Stderr)
			require.Contains(t, done.Stdout, "execution 2 (instance 1): COMPLETED")
			require.Regexp(t, `import\s+COMPLETED\s+800\s+800`, done.Stdout, "the restart reads only what was not committed")
			requireExactlyOnce(t, b.DB, 2000)
		})
	}
}

func requireFirstRows(t *testing.T, db *sqlx.DB, n int) {
	t.Helper()
	var got struct {
		Rows int   `db:"rows"`
		Max  int64 `db:"max_id"`
	}
	require.NoError(t, db.Get(&got, `SELECT COUNT(*) AS rows, COALESCE(MAX(id), 0) AS max_id FROM people`))
	require.Equal(t, n, got.Rows)
	require.Equal(t, int64(n), got.Max)
}

func TestMalformedLineThenFixedAndRestarted(t *testing.T) {
	b := exampletest.Backends()["sqlite"](t)
	input := writeCSV(t, 1000)
	content, err := os.ReadFile(input)
	require.NoError(t, err)
	lines := strings.Split(string(content), "\n")
	good := lines[551] // row 551, line 552
	lines[551] = `551,"unterminated,p551@example.com,1.00,2026-01-01T00:00:00Z`
	require.NoError(t, os.WriteFile(input, []byte(strings.Join(lines, "\n")), 0o600))

	r := run(t, b, nil, "run", "input="+input, "chunk=100")
	require.Equal(t, 1, r.Code)
	require.Contains(t, r.Stdout, "people.csv line 552")
	require.Equal(t, 1, strings.Count(r.Stdout, "people.csv line 552"), "the failure once in the summary")
	requireFirstRows(t, b.DB, 500)

	lines[551] = good
	require.NoError(t, os.WriteFile(input, []byte(strings.Join(lines, "\n")), 0o600))
	r = run(t, b, nil, "run", "input="+input, "+chunk:int=100")
	require.Equal(t, 0, r.Code, r.Stderr)
	requireExactlyOnce(t, b.DB, 1000)
}

func TestBadValueNamesFileAndLine(t *testing.T) {
	b := exampletest.Backends()["sqlite"](t)
	input := writeCSV(t, 300)
	content, err := os.ReadFile(input)
	require.NoError(t, err)
	bad := strings.Replace(string(content), "\n150,", "\n15x,", 1)
	require.NoError(t, os.WriteFile(input, []byte(bad), 0o600))
	r := run(t, b, nil, "run", "input="+input, "+chunk:int=100")
	require.Equal(t, 1, r.Code)
	require.Contains(t, r.Stdout, `people.csv line 151: column "id"`)
	requireFirstRows(t, b.DB, 100)
}

func TestUsageErrorsWriteNothing(t *testing.T) {
	dir := t.TempDir()
	b := backend{DSN: filepath.Join(dir, "batch.db")}
	for _, args := range [][]string{
		{"run", "nosuch"},
		{"run", "chunk(int)=many"},
		{"run", "chunk=many"},
		{"run", "chunk:float=5.5"},
		{"run", "-chunk(int)=5"},
		{"run", "inptu=people.csv"},
		{"run", "-bogus"},
		{"run", "input=x", "input=y"},
		{"restart", "abc"},
		{"frobnicate"},
	} {
		r := run(t, b, nil, args...)
		require.Equal(t, 2, r.Code, "%v: %s", args, r.Stderr)
		require.Equal(t, 1, strings.Count(strings.TrimSpace(r.Stderr), "\n")+1, "one-line error for %v: %q", args, r.Stderr)
	}
	_, err := os.Stat(b.DSN)
	require.True(t, os.IsNotExist(err), "no database was created")

	bad := run(t, backend{DSN: "postgres://user:hunter2@127.0.0.1:1/x?sslmode=disable"}, nil, "status")
	require.Equal(t, 2, bad.Code)
	require.NotContains(t, bad.Stderr, "hunter2", "passwords never reach the output")
	require.Contains(t, bad.Stderr, "connection refused")

	r := run(t, backend{DSN: filepath.Join(dir, "other.db")}, nil, "restart", "999")
	require.Equal(t, 2, r.Code)
}

func TestSignalStopsAtChunkBoundaryThenRestart(t *testing.T) {
	b := exampletest.Backends()["sqlite"](t)
	const n = 200_000
	input := writeCSV(t, n)
	cmd := command(b, nil, "run", "input="+input, "+chunk:int=50")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Start())
	waitForRows(t, b.DB, 1)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	require.True(t, ok, "exit status: %v\n%s", err, stderr.String())
	require.Equal(t, 3, ee.ExitCode(), stderr.String())
	require.Contains(t, stdout.String(), "STOPPED")
	stopped := countRows(b.DB)
	require.Greater(t, stopped, 0)
	require.Less(t, stopped, n)
	require.Zero(t, stopped%50, "stopped at a chunk boundary")

	r := run(t, b, nil, "run", "input="+input, "+chunk:int=50")
	require.Equal(t, 0, r.Code, r.Stderr)
	requireExactlyOnce(t, b.DB, n)
}

func waitForRows(t *testing.T, db *sqlx.DB, min int) {
	t.Helper()
	require.Eventually(t, func() bool { return countRows(db) >= min }, 30*time.Second, 5*time.Millisecond)
}

// TestKillAndRestart kills the import with SIGKILL at random moments, and
// restarts it after the lease each time, until it completes: every row must
// be there exactly once. The same with the file in three byte ranges loaded
// at once.
func TestKillAndRestart(t *testing.T) {
	for name, open := range exampletest.Backends() {
		for _, partitions := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/partitions=%d", name, partitions), func(t *testing.T) {
				killAndRestart(t, open(t), partitions)
			})
		}
	}
}

func killAndRestart(t *testing.T, b exampletest.Backend, partitions int) {
	{
		{
			n, kills := 100_000, 4
			if testing.Short() {
				n, kills = 20_000, 2
			}
			input := writeCSV(t, n)
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
			args := []string{"-lease", "1s", "run", "input=" + input, "+chunk:int=100", fmt.Sprintf("partitions=%d", partitions)}
			killed := 0 // kills that interrupted the import
			for k := 0; k < kills; k++ {
				cmd := command(b, nil, args...)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				require.NoError(t, cmd.Start())
				before := countRows(b.DB)
				// Kill after a random delay once the run has made progress.
				waitForRows(t, b.DB, before+1)
				time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
				_ = cmd.Wait()
				t.Logf("kill %d: %d rows committed", k+1, countRows(b.DB))

				// Within the lease the dead execution still counts as
				// running, unless the import finished before the kill.
				refused := run(t, b, nil, args...)
				require.Equal(t, launcher.ExitRefused, refused.Code, refused.Stderr)
				if strings.Contains(refused.Stderr, "already completed") {
					break
				}
				require.Contains(t, refused.Stderr, "already running")
				killed++
				time.Sleep(1100 * time.Millisecond)
			}
			if killed == kills {
				r := run(t, b, nil, args...)
				require.Equal(t, 0, r.Code, r.Stderr)
			}
			requireExactlyOnce(t, b.DB, n)
			st := run(t, b, nil, "status")
			require.Equal(t, 0, st.Code)
			require.Equal(t, killed, strings.Count(st.Stdout, "FAILED"), st.Stdout)
			require.Equal(t, 1, strings.Count(st.Stdout, "COMPLETED"), st.Stdout)
		}
	}
}

// TestSecondSignalExitsAtOnce: a second SIGINT ends the process without
// waiting for the chunk in flight and without recording an end; after the
// lease a run restarts it and completes. The test holds the database's write
// lock between the signals, so that the chunk in flight cannot commit and
// the first signal's stop is certainly still waiting when the second comes.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	b := exampletest.Backends()["sqlite"](t)
	const n = 400_000
	const lease = 5 * time.Second // the stop's grace period too
	input := writeCSV(t, n)
	args := []string{"-lease", lease.String(), "run", "input=" + input, "+chunk:int=100000"}
	cmd := command(b, nil, args...)
	var stderr exampletest.Buffer
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool { return countRows(b.DB) >= 0 }, 30*time.Second, 10*time.Millisecond, "table created")
	ctx := context.Background()
	conn, err := b.DB.Conn(ctx)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "BEGIN IMMEDIATE")
	require.NoError(t, err)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "stopping execution") }, 10*time.Second, time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	err = cmd.Wait()
	_, rerr := conn.ExecContext(ctx, "ROLLBACK")
	require.NoError(t, rerr)
	require.NoError(t, conn.Close())
	ee, ok := err.(*exec.ExitError)
	require.True(t, ok, "exit status: %v\n%s", err, stderr.String())
	require.Equal(t, 130, ee.ExitCode(), stderr.String())
	require.Contains(t, stderr.String(), "exiting")
	require.Less(t, countRows(b.DB), n)

	st := run(t, b, nil, "status")
	require.Contains(t, st.Stdout, "STARTED", "no end was recorded")
	time.Sleep(lease + 200*time.Millisecond)
	r := run(t, b, nil, args...)
	require.Equal(t, 0, r.Code, r.Stderr)
	requireExactlyOnce(t, b.DB, n)
}

// TestRestartOnAnotherFileRefused: after a failure, a restart on a file
// with lines added at the top is refused, saying the input changed, and
// loses nothing committed; on the original file it completes exactly once.
func TestRestartOnAnotherFileRefused(t *testing.T) {
	b := exampletest.Backends()["sqlite"](t)
	input := writeCSV(t, 1000)
	original, err := os.ReadFile(input)
	require.NoError(t, err)
	r := run(t, b, []string{"FAIL_AT=550"}, "run", "input="+input)
	require.Equal(t, 1, r.Code)
	requireFirstRows(t, b.DB, 500)

	header, rest, _ := strings.Cut(string(original), "\n")
	extra := "9001,\"Late, 1\",l1@example.com,1.00,2026-01-01T00:00:00Z\n" +
		"9002,\"Late, 2\",l2@example.com,1.00,2026-01-01T00:00:00Z\n" +
		"9003,\"Late, 3\",l3@example.com,1.00,2026-01-01T00:00:00Z\n"
	require.NoError(t, os.WriteFile(input, []byte(header+"\n"+extra+rest), 0o600))
	r = run(t, b, nil, "run", "input="+input)
	require.Equal(t, 1, r.Code)
	require.Contains(t, r.Stdout, "input changed since the last commit")
	require.Contains(t, r.Stdout, "people.csv: restart at line 502")
	requireFirstRows(t, b.DB, 500)

	require.NoError(t, os.WriteFile(input, original, 0o600))
	r = run(t, b, nil, "run", "input="+input)
	require.Equal(t, 0, r.Code, r.Stderr)
	requireExactlyOnce(t, b.DB, 1000)
}

// TestDryRun: a dry run of the shipped program says what the import would
// do — rows read and written, or the row that would fail it — and commits
// and records nothing.
func TestDryRun(t *testing.T) {
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			// A dry run rolls back the schema step too: the table is made
			// by a real run, then emptied.
			first := run(t, b, nil, "run", "input="+writeCSV(t, 10))
			require.Equal(t, 0, first.Code, first.Stderr)
			_, err := b.DB.Exec(`DELETE FROM people`)
			require.NoError(t, err)

			dry := run(t, b, nil, "run", "-dry-run", "+chunk:int=100")
			require.Equal(t, 0, dry.Code, dry.Stderr)
			require.Contains(t, dry.Stdout, "dry run: every chunk is rolled back")
			require.Regexp(t, `import\s+COMPLETED\s+1000\s+1000\s+0\s+0\s+10\s`, dry.Stdout)
			require.Equal(t, 0, countRows(b.DB), "nothing committed")

			failing := run(t, b, []string{"FAIL_AT=500"}, "run", "-dry-run")
			require.Equal(t, launcher.ExitFailed, failing.Code)
			require.Contains(t, failing.Stdout, "FAILED")
			require.Contains(t, failing.Stdout+failing.Stderr, "FAIL_AT=500")
			require.Equal(t, 0, countRows(b.DB), "nothing committed")

			status := run(t, b, nil, "status")
			require.Equal(t, 0, status.Code, status.Stderr)
			require.Equal(t, 1, strings.Count(status.Stdout, "csvimport"), "only the real run is recorded:\n%s", status.Stdout)
			// The sample, never really run, still runs.
			real := run(t, b, nil, "run")
			require.Equal(t, 0, real.Code, real.Stderr)
			requireExactlyOnce(t, b.DB, 1000)
		})
	}
}

// TestProgressBarsInATerminal runs the import in a real terminal (tmux)
// and reads the screen: while it runs, a bar per step with the count, the
// rate, the share of the file and the ETA; at the end, each step done.
func TestProgressBarsInATerminal(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is needed (apt-get install tmux): the bars are tested in a real terminal")
	}
	input := writeCSV(t, 1_000_000)
	db := filepath.Join(t.TempDir(), "batch.db")
	session := fmt.Sprintf("chunkwise-%d", time.Now().UnixNano())
	shell := fmt.Sprintf("%s -db %s -log-level warn run input=%s chunk=1000; sleep 60", binary, db, input)
	require.NoError(t, exec.Command("tmux", "new-session", "-d", "-s", session, "-x", "150", "-y", "20", shell).Run())
	t.Cleanup(func() { _ = exec.Command("tmux", "kill-session", "-t", session).Run() })
	screen := func() string {
		out, err := exec.Command("tmux", "capture-pane", "-p", "-t", session).Output()
		require.NoError(t, err)
		return string(out)
	}
	running := regexp.MustCompile(`(?m)^import\s+\[[=>-]+\] \d+ read, [0-9.]+ items/s, \d+% of [0-9.]+ MB(, ETA [0-9.]+m?s)?`)
	var s string
	require.Eventually(t, func() bool { s = screen(); return running.MatchString(s) }, 30*time.Second, 20*time.Millisecond,
		"no running bar on the screen:\n%s", s)
	require.Eventually(t, func() bool {
		s = screen()
		return strings.Contains(s, "job csvimport, execution 1 (instance 1): COMPLETED")
	}, 60*time.Second, 50*time.Millisecond, "the run did not end:\n%s", s)
	require.Regexp(t, `(?m)^schema\s+\[=+\] done: 0 read, 0 written, took`, s)
	require.Regexp(t, `(?m)^import\s+\[=+\] done: 1000000 read, 1000000 written, took`, s)
}

// TestProgressLogLinesWithoutATerminal: with stderr not a terminal, the
// progress is log lines, and no escape code reaches it.
func TestProgressLogLinesWithoutATerminal(t *testing.T) {
	b := exampletest.Backends()["sqlite"](t)
	r := run(t, b, nil, "run", "input="+writeCSV(t, 300_000), "chunk=100", "-progress-every", "100ms", "-log-level", "info")
	require.Equal(t, 0, r.Code, r.Stderr)
	require.Regexp(t, `msg=progress execution=1 step="import: \d+ read, [0-9.]+ items/s, \d+% of`, r.Stderr)
	require.NotContains(t, r.Stderr, "\x1b[", "no escape codes")
}
