package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/exampletest"
	"github.com/chunkwise/chunkwise/launcher"
)

// binary is the partitioned program, built once for all tests: the tests run
// it as a user does, as a separate process.
var binary string

func TestMain(m *testing.M) { exampletest.Main(m, "partitioned", &binary) }

type backend = exampletest.Backend

// run runs the program to its end.
func run(t *testing.T, b backend, env []string, args ...string) exampletest.Result {
	t.Helper()
	return exampletest.Run(t, binary, b.DSN, env, args...)
}

// command returns the command that runs the program, to start it.
func command(b backend, env []string, args ...string) *exec.Cmd {
	return exampletest.Command(binary, b.DSN, env, args...)
}

// The tests' runs: 20,000 rows in 4 partitions of 5,000.
const (
	testRows       = 20_000
	testPartitions = 4
	perPartition   = testRows / testPartitions
	// killRounds makes a run last about a second on two cores: long
	// enough to be killed anywhere in it.
	killRounds = 1000
	// lease is the lease of the kill tests' runs: a killed run counts as
	// crashed this long after its last heartbeat.
	lease = 600 * time.Millisecond
)

// partitionNames are the names of the test runs' partitions' steps.
var partitionNames = []string{"load:p1", "load:p2", "load:p3", "load:p4"}

// wantDigest is the digest the job must write for a payload: SHA-256 of the
// payload, then of that digest, rounds times in all, in hex.
func wantDigest(payload string, rounds int) string {
	h := sha256.Sum256([]byte(payload))
	for n := 1; n < rounds; n++ {
		h = sha256.Sum256(h[:])
	}
	return hex.EncodeToString(h[:])
}

// stepExec is a row of batch_step_execution.
type stepExec struct {
	ID        int64  `db:"id"`
	Execution int64  `db:"job_execution_id"`
	Name      string `db:"step_name"`
	Status    string `db:"status"`
	Exit      string `db:"exit_description"`
	Read      int64  `db:"read_count"`
	Written   int64  `db:"write_count"`
	Commits   int64  `db:"commit_count"`
}

// stepExecs returns the step executions the condition selects, in the order
// they were created.
func stepExecs(db *sqlx.DB, where string, args ...any) ([]stepExec, error) {
	var ss []stepExec
	err := db.Select(&ss, db.Rebind(`SELECT id, job_execution_id, step_name, status, exit_description,
		read_count, write_count, commit_count FROM batch_step_execution WHERE `+where+` ORDER BY id`), args...)
	return ss, err
}

func requireStepExecs(t *testing.T, db *sqlx.DB, where string, args ...any) []stepExec {
	t.Helper()
	ss, err := stepExecs(db, where, args...)
	require.NoError(t, err)
	return ss
}

// byName indexes step executions by name; each name must appear once.
func byName(t *testing.T, ss []stepExec) map[string]stepExec {
	t.Helper()
	m := map[string]stepExec{}
	for _, s := range ss {
		_, dup := m[s.Name]
		require.False(t, dup, "step %s twice in execution %d", s.Name, s.Execution)
		m[s.Name] = s
	}
	return m
}

// names returns the names of the step executions, in order.
func names(ss []stepExec) []string {
	var ns []string
	for _, s := range ss {
		ns = append(ns, s.Name)
	}
	return ns
}

// partitionsOf returns the names of the partitions' steps among ss, sorted.
func partitionsOf(ss []stepExec, status string) []string {
	var names []string
	for _, s := range ss {
		if strings.HasPrefix(s.Name, "load:") && (status == "" || s.Status == status) {
			names = append(names, s.Name)
		}
	}
	slices.Sort(names)
	return names
}

// committed is the number of rows the partitions have committed, in all
// executions.
func committed(db *sqlx.DB) (int64, error) {
	var n int64
	err := db.Get(&n, `SELECT COALESCE(SUM(write_count), 0) FROM batch_step_execution WHERE step_name LIKE 'load:%'`)
	return n, err
}

// jobExec is a row of batch_job_execution.
type jobExec struct {
	ID     int64  `db:"id"`
	Status string `db:"status"`
	Exit   string `db:"exit_description"`
}

func jobExecs(t *testing.T, db *sqlx.DB) []jobExec {
	t.Helper()
	var es []jobExec
	require.NoError(t, db.Select(&es, `SELECT id, status, exit_description FROM batch_job_execution ORDER BY id`))
	return es
}

// requireExactlyOnce checks that target holds the ids 1 to rows, each once.
func requireExactlyOnce(t *testing.T, db *sqlx.DB, rows int) {
	t.Helper()
	var got struct {
		Rows     int   `db:"rows"`
		Distinct int   `db:"distinct_ids"`
		Min      int64 `db:"min_id"`
		Max      int64 `db:"max_id"`
	}
	require.NoError(t, db.Get(&got, `SELECT COUNT(*) AS rows, COUNT(DISTINCT id) AS distinct_ids,
		COALESCE(MIN(id), 0) AS min_id, COALESCE(MAX(id), 0) AS max_id FROM target`))
	require.Equal(t, rows, got.Rows, "rows in target")
	require.Equal(t, rows, got.Distinct, "distinct ids in target")
	require.Equal(t, int64(1), got.Min, "smallest id")
	require.Equal(t, int64(rows), got.Max, "largest id")
}

// requireTarget checks target after a run over rows rows in testPartitions
// partitions: the ids 1 to rows once each, every id in the partition of its
// range (equal spans: with 20,000 rows p1 has 1 to 5000, …), and the
// digests of the first id and every sample-th after it, and of the last id
// of each partition, recomputed from the payload.
func requireTarget(t *testing.T, db *sqlx.DB, rows, rounds, sample int) {
	t.Helper()
	requireExactlyOnce(t, db, rows)
	var parts []struct {
		Name  string `db:"partition"`
		Min   int64  `db:"min_id"`
		Max   int64  `db:"max_id"`
		Count int64  `db:"rows"`
	}
	require.NoError(t, db.Select(&parts, `SELECT partition, MIN(id) AS min_id, MAX(id) AS max_id, COUNT(*) AS rows
		FROM target GROUP BY partition ORDER BY MIN(id)`))
	require.Len(t, parts, testPartitions)
	var lasts []any
	for i, p := range parts {
		from, below := 1+int64(rows*i/testPartitions), 1+int64(rows*(i+1)/testPartitions)
		require.Equal(t, fmt.Sprintf("p%d", i+1), p.Name)
		require.Equal(t, from, p.Min, p.Name)
		require.Equal(t, below-1, p.Max, p.Name)
		require.Equal(t, below-from, p.Count, p.Name)
		lasts = append(lasts, below-1)
	}
	var got []struct {
		ID     int64  `db:"id"`
		Digest string `db:"digest"`
	}
	require.NoError(t, db.Select(&got, db.Rebind(`SELECT id, digest FROM target
		WHERE (id - 1) % ? = 0 OR id IN (?`+strings.Repeat(", ?", len(lasts)-1)+`) ORDER BY id`),
		append([]any{sample}, lasts...)...))
	require.GreaterOrEqual(t, len(got), rows/sample)
	for _, r := range got {
		require.Equal(t, wantDigest(fmt.Sprintf("row-%d", r.ID), rounds), r.Digest, "digest of id %d", r.ID)
	}
}

// waitUntil polls cond until it holds, failing the test after a minute.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within a minute", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// startAndKill starts the program, waits until cond holds, kills it with
// SIGKILL and waits for it to be gone. cond must come true while the
// program runs: the program exiting first fails the test.
func startAndKill(t *testing.T, b backend, args []string, what string, cond func() bool) {
	t.Helper()
	cmd := command(b, nil, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	waitUntil(t, what, func() bool {
		select {
		case <-exited:
			t.Fatalf("the program exited before %s: %s\n%s", what, cmd.ProcessState, stderr.String())
		default:
		}
		return cond()
	})
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	<-exited
	require.False(t, cmd.ProcessState.Exited(), "killed, not exited: %s", cmd.ProcessState)
}

// requireCrashedThenCompleted checks the two executions of a kill test: the
// killed one FAILED as crashed, its restart COMPLETED.
func requireCrashedThenCompleted(t *testing.T, db *sqlx.DB) {
	t.Helper()
	es := jobExecs(t, db)
	require.Len(t, es, 2)
	require.Equal(t, "FAILED", es[0].Status)
	require.Contains(t, es[0].Exit, "presumed crashed")
	require.Equal(t, "COMPLETED", es[1].Status)
}

// stepLine matches a step's line in the summary: its name, status, and its
// read and write counts.
func stepLine(name, status string, read, written int64) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^\s+` + regexp.QuoteMeta(name) + `\s+` + status + `\s+` +
		strconv.FormatInt(read, 10) + `\s+` + strconv.FormatInt(written, 10) + `\s`)
}

// TestRunHashesEveryRowOnce: a run writes the digest of every row of source
// to target once, in the partition of its id; each partition's counts are
// in the repository and in the summary, and the partitioned step's are
// their sum.
func TestRunHashesEveryRowOnce(t *testing.T) {
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			const rounds = 7
			args := []string{"run", "rows=20000", "rounds=7", "chunk=500"}
			r := run(t, b, nil, args...)
			require.Equal(t, 0, r.Code, r.Stderr)
			require.Contains(t, r.Stdout, "execution 1 (instance 1): COMPLETED")
			requireTarget(t, b.DB, testRows, rounds, 1)

			steps := byName(t, requireStepExecs(t, b.DB, "job_execution_id = 1"))
			require.Len(t, steps, 2+testPartitions, "setup, load and its partitions")
			require.Equal(t, "COMPLETED", steps["setup"].Status)
			require.Equal(t, int64(testRows), steps["setup"].Written, "the rows of source inserted")
			var sum stepExec
			for _, p := range partitionNames {
				s := steps[p]
				require.Equal(t, "COMPLETED", s.Status, p)
				require.Equal(t, int64(perPartition), s.Read, p)
				require.Equal(t, int64(perPartition), s.Written, p)
				require.Equal(t, int64(perPartition/500), s.Commits, p)
				sum.Read += s.Read
				sum.Written += s.Written
				sum.Commits += s.Commits
			}
			require.Equal(t, int64(testRows), sum.Written)
			load := steps["load"]
			require.Equal(t, "COMPLETED", load.Status)
			require.Equal(t, sum.Read, load.Read, "the partitioned step's counts are the partitions' sum")
			require.Equal(t, sum.Written, load.Written)
			require.Equal(t, sum.Commits, load.Commits)

			// The summary of the run, and status of the execution, show a
			// line per partition with its counts.
			st := run(t, b, nil, "status", "1")
			require.Equal(t, 0, st.Code, st.Stderr)
			for _, out := range []string{r.Stdout, st.Stdout} {
				require.Regexp(t, stepLine("load", "COMPLETED", testRows, testRows), out)
				for _, p := range partitionNames {
					require.Regexp(t, stepLine(p, "COMPLETED", perPartition, perPartition), out)
				}
			}
			list := run(t, b, nil, "status")
			require.Equal(t, 0, list.Code, list.Stderr)
			require.Regexp(t, `(?m)^1\s+partitioned\s+COMPLETED\s`, list.Stdout)

			again := run(t, b, nil, args...)
			require.Equal(t, launcher.ExitRefused, again.Code, again.Stderr)
			require.Contains(t, again.Stderr, "already completed")
			requireExactlyOnce(t, b.DB, testRows)
		})
	}
}

// TestFailAtThenOnlyThatPartitionRuns: one partition at a time, FAIL_AT in
// the last partition fails it after the three others completed; the restart
// runs that partition alone, from its last committed chunk.
func TestFailAtThenOnlyThatPartitionRuns(t *testing.T) {
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			args := []string{"run", "rows=20000", "rounds=3", "chunk=500", "concurrency=1"}
			failed := run(t, b, []string{"FAIL_AT=17250"}, args...)
			require.Equal(t, launcher.ExitFailed, failed.Code, failed.Stderr)
			require.Contains(t, failed.Stdout, "FAIL_AT=17250: failing on purpose at id 17250")
			require.Contains(t, failed.Stdout, "partition p4")
			first := byName(t, requireStepExecs(t, b.DB, "job_execution_id = 1"))
			for _, p := range partitionNames[:3] {
				require.Equal(t, "COMPLETED", first[p].Status, p)
			}
			require.Equal(t, "FAILED", first["load:p4"].Status)
			require.Equal(t, int64(2000), first["load:p4"].Written, "15001 to 17000 committed, the chunk of 17250 rolled back")
			require.Equal(t, "FAILED", first["load"].Status)

			done := run(t, b, nil, args...)
			require.Equal(t, 0, done.Code, done.Stderr)
			require.Contains(t, done.Stdout, "execution 2 (instance 1): COMPLETED")
			second := requireStepExecs(t, b.DB, "job_execution_id = 2")
			require.Equal(t, []string{"load", "load:p4"}, names(second), "setup and the completed partitions are passed over")
			require.Regexp(t, stepLine("load:p4", "COMPLETED", 3000, 3000), done.Stdout, "the restart reads only what was not committed")
			require.Regexp(t, stepLine("load", "COMPLETED", 3000, 3000), done.Stdout)
			requireTarget(t, b.DB, testRows, 3, 97)
		})
	}
}

// TestFailAtStopsTheOtherPartitions: all partitions at once, one fails;
// the others stop at a chunk boundary, and the restart resumes each from
// its own checkpoint.
func TestFailAtStopsTheOtherPartitions(t *testing.T) {
	b := exampletest.Backends()["sqlite"](t)
	args := []string{"run", "rows=20000", "rounds=50", "chunk=250"}
	failed := run(t, b, []string{"FAIL_AT=7777"}, args...)
	require.Equal(t, launcher.ExitFailed, failed.Code, failed.Stderr)
	first := byName(t, requireStepExecs(t, b.DB, "job_execution_id = 1"))
	require.Equal(t, "FAILED", first["load:p2"].Status)
	require.Equal(t, int64(2750), first["load:p2"].Written, "5001 to 7750 committed")
	var before int64
	for _, p := range partitionNames {
		s, ran := first[p]
		if !ran {
			continue // not begun when p2 failed
		}
		before += s.Written
		require.Zero(t, s.Written%250, "%s ended at a chunk boundary", p)
		if p != "load:p2" {
			require.Contains(t, []string{"STOPPED", "COMPLETED"}, s.Status, p)
		}
		t.Logf("%s %s with %d rows committed", p, s.Status, s.Written)
	}

	done := run(t, b, nil, args...)
	require.Equal(t, 0, done.Code, done.Stderr)
	second := requireStepExecs(t, b.DB, "job_execution_id = 2")
	var after int64
	for _, s := range second {
		if strings.HasPrefix(s.Name, "load:") {
			require.Equal(t, "COMPLETED", s.Status, s.Name)
			require.NotEqual(t, "COMPLETED", first[s.Name].Status, "%s completed before and ran again", s.Name)
			after += s.Written
		}
	}
	require.Equal(t, int64(testRows), before+after, "nothing committed was done again")
	requireTarget(t, b.DB, testRows, 50, 97)
}

// TestKillMidRunThenRestart kills the program with SIGKILL once the
// partitions have committed some rows, and restarts it after the lease:
// every row once, nothing committed done again, no completed partition run
// again.
func TestKillMidRunThenRestart(t *testing.T) {
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			b := open(t)
			args := []string{"-lease", lease.String(), "run", "rows=20000", "rounds=" + strconv.Itoa(killRounds), "chunk=250"}
			// Killed once the partitions have committed some rows: from
			// their first chunk to half of the rows.
			at := 1 + rand.Int64N(testRows/2)
			startAndKill(t, b, args, fmt.Sprintf("%d committed rows", at), func() bool {
				n, err := committed(b.DB)
				return err == nil && n >= at
			})
			time.Sleep(lease + lease/4)
			r := run(t, b, nil, args...)
			require.Equal(t, 0, r.Code, r.Stderr)
			requireCrashedThenCompleted(t, b.DB)
			requireTarget(t, b.DB, testRows, killRounds, 101)

			// What the killed execution committed, read now: a COMMIT sent
			// just before the kill may land after it, but not after the
			// restart marked the execution crashed.
			before := requireStepExecs(t, b.DB, "job_execution_id = 1")
			var rowsBefore int64
			for _, s := range before {
				if strings.HasPrefix(s.Name, "load:") {
					rowsBefore += s.Written
				}
			}
			require.GreaterOrEqual(t, rowsBefore, at)
			require.Less(t, rowsBefore, int64(testRows))
			completedBefore := partitionsOf(before, "COMPLETED")
			t.Logf("killed with %d rows committed (at least %d); partitions completed: %v", rowsBefore, at, completedBefore)

			after := requireStepExecs(t, b.DB, "job_execution_id = 2")
			steps := byName(t, after)
			_, setupAgain := steps["setup"]
			require.False(t, setupAgain, "setup completed before the kill")
			for _, p := range completedBefore {
				_, again := steps[p]
				require.False(t, again, "%s completed before the kill and ran again", p)
			}
			var rowsAfter int64
			for _, p := range partitionsOf(after, "") {
				require.Equal(t, "COMPLETED", steps[p].Status, p)
				rowsAfter += steps[p].Written
			}
			require.Equal(t, int64(testRows)-rowsBefore, rowsAfter, "the restart writes only what was not committed")
			require.Equal(t, rowsAfter, steps["load"].Written, "the partitioned step's count is its partitions' sum")
		})
	}
}

// TestKillAfterSomePartitionsCompleted kills the program, two partitions at
// a time, once a partition has completed while the partitioned step has not
// recorded its end; the restart runs only the partitions that had not
// completed, and completes the partitioned step.
func TestKillAfterSomePartitionsCompleted(t *testing.T) {
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			b := open(t)
			args := []string{"-lease", lease.String(), "run", "rows=20000", "rounds=" + strconv.Itoa(killRounds),
				"chunk=250", "concurrency=2"}
			startAndKill(t, b, args, "a completed partition while load runs", func() bool {
				ss, err := stepExecs(b.DB, "job_execution_id = 1 AND step_name LIKE 'load%'")
				if err != nil {
					return false
				}
				running := false
				for _, s := range ss {
					if s.Name == "load" {
						running = s.Status == string(batch.StatusStarted)
					}
				}
				return running && len(partitionsOf(ss, "COMPLETED")) > 0
			})
			time.Sleep(lease + lease/4)
			r := run(t, b, nil, args...)
			require.Equal(t, 0, r.Code, r.Stderr)
			requireCrashedThenCompleted(t, b.DB)
			requireTarget(t, b.DB, testRows, killRounds, 101)

			// The killed execution as it ended, read once the restart has
			// marked it crashed (see TestKillMidRunThenRestart).
			before := requireStepExecs(t, b.DB, "job_execution_id = 1")
			load := byName(t, before)["load"]
			require.Equal(t, "FAILED", load.Status, "killed before load recorded its end")
			require.Contains(t, load.Exit, "presumed crashed")
			completedBefore := partitionsOf(before, "COMPLETED")
			require.NotEmpty(t, completedBefore)
			require.Less(t, len(completedBefore), testPartitions)
			t.Logf("killed with partitions %v completed, of %v started", completedBefore, partitionsOf(before, ""))

			after := requireStepExecs(t, b.DB, "job_execution_id = 2")
			steps := byName(t, after)
			require.Equal(t, "COMPLETED", steps["load"].Status)
			var rest []string
			for _, p := range partitionNames {
				if !slices.Contains(completedBefore, p) {
					rest = append(rest, p)
				}
			}
			require.Equal(t, rest, partitionsOf(after, ""), "the restart runs the partitions that had not completed, only")
			require.Equal(t, rest, partitionsOf(after, "COMPLETED"))
			// Every partition completed exactly once over both executions.
			all := requireStepExecs(t, b.DB, "step_name LIKE 'load:%' AND status = 'COMPLETED'")
			require.Equal(t, partitionNames, partitionsOf(all, "COMPLETED"))
		})
	}
}

// TestKillWhileFillingSource kills the program while the setup step fills
// source: the batches committed stay, the one in flight is gone, and the
// restart goes on after the last committed one.
func TestKillWhileFillingSource(t *testing.T) {
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			b := open(t)
			const rows = 100_000
			args := []string{"-lease", lease.String(), "run", "rows=100000", "rounds=1", "chunk=10000"}
			startAndKill(t, b, args, "rows in source", func() bool {
				ss, err := stepExecs(b.DB, "step_name = 'setup'")
				return err == nil && len(ss) == 1 && ss[0].Written > 0
			})
			time.Sleep(lease + lease/4)
			r := run(t, b, nil, args...)
			require.Equal(t, 0, r.Code, r.Stderr)
			requireCrashedThenCompleted(t, b.DB)

			// The killed execution had committed whole batches, and the
			// restart inserted the rest: the rows that source held when
			// it began (it fills from the largest id) were the ones the
			// killed execution's checkpoint counted.
			killed := byName(t, requireStepExecs(t, b.DB, "job_execution_id = 1"))["setup"]
			require.Equal(t, "FAILED", killed.Status)
			filled := killed.Written
			require.Positive(t, filled)
			require.Less(t, filled, int64(rows), "killed before the fill ended")
			require.Zero(t, filled%fillBatch, "whole batches only")
			resumed := byName(t, requireStepExecs(t, b.DB, "job_execution_id = 2"))["setup"]
			require.Equal(t, "COMPLETED", resumed.Status)
			require.Equal(t, int64(rows)-filled, resumed.Written, "the restart inserts only the rows not committed")
			// id is the primary key of both tables: as many rows as ids
			// from 1 to rows are the ids 1 to rows, each once.
			for _, table := range []string{"source", "target"} {
				var got struct {
					Rows int64 `db:"rows"`
					Min  int64 `db:"min_id"`
					Max  int64 `db:"max_id"`
				}
				require.NoError(t, b.DB.Get(&got, `SELECT COUNT(*) AS rows, MIN(id) AS min_id, MAX(id) AS max_id FROM `+table))
				require.Equal(t, int64(rows), got.Rows, table)
				require.Equal(t, int64(1), got.Min, table)
				require.Equal(t, int64(rows), got.Max, table)
			}
			var payloads []string
			require.NoError(t, b.DB.Select(&payloads, b.DB.Rebind(`SELECT payload FROM source WHERE id IN (?, ?, ?, ?) ORDER BY id`),
				1, filled, filled+1, rows))
			require.Equal(t, []string{"row-1", fmt.Sprintf("row-%d", filled), fmt.Sprintf("row-%d", filled+1), "row-100000"}, payloads)
		})
	}
}

// TestNewInstancesReuseSource: each new instance (other rows) empties
// target and uses source as far as it goes, adding the ids it lacks; a
// partition reads no id beyond rows.
func TestNewInstancesReuseSource(t *testing.T) {
	b := exampletest.Backends()["sqlite"](t)
	for i, tc := range []struct {
		rows, inserted int
	}{
		{2000, 2000}, // source created
		{1000, 0},    // source has more ids than needed
		{3000, 1000}, // source extended
	} {
		r := run(t, b, nil, "run", "rows="+strconv.Itoa(tc.rows), "rounds=3", "chunk=100")
		require.Equal(t, 0, r.Code, r.Stderr)
		exec := strconv.Itoa(i + 1)
		require.Contains(t, r.Stdout, "execution "+exec+" (instance "+exec+"): COMPLETED")
		require.Regexp(t, stepLine("setup", "COMPLETED", 0, int64(tc.inserted)), r.Stdout)
		requireTarget(t, b.DB, tc.rows, 3, 7)
	}
}

// TestParameters: a job without a SQL repository, and parameters out of
// range, are refused with errors that say why.
func TestParameters(t *testing.T) {
	params, err := batch.ParamSpecs(parameters).Apply(batch.JobParameters{})
	require.NoError(t, err)
	_, err = newJob(launcher.Env{Parameters: params})
	require.ErrorContains(t, err, "needs a SQL job repository")

	b := backend{DSN: t.TempDir() + "/batch.db"}
	for _, tc := range []struct{ arg, msg string }{
		{"rows=-1", "parameter rows=-1: want 0 to 100000000"},
		{"partitions=300", "parameter partitions=300: want 1 to 256"},
		{"chunk=many", "chunk"},
		{"table=Target;", `parameter table="Target;": want a name of lower-case letters`},
		{"table=source", `parameter table="source"`},
		{"delay=5", `parameter delay="5": want a Go duration from 0s to 1m`},
		{"delay=2m", `parameter delay="2m"`},
	} {
		r := run(t, b, nil, "run", tc.arg)
		require.Equal(t, launcher.ExitUsage, r.Code, "%s: %s", tc.arg, r.Stderr)
		require.Contains(t, r.Stderr, tc.msg, tc.arg)
	}
	r := run(t, b, []string{"FAIL_AT=x"}, "run", "rows=10")
	require.Equal(t, launcher.ExitUsage, r.Code, r.Stderr)
	require.Contains(t, r.Stderr, `FAIL_AT="x": want an id from 1`)
	r = run(t, b, []string{"CRASH_AT=0"}, "run", "rows=10")
	require.Equal(t, launcher.ExitUsage, r.Code, r.Stderr)
	require.Contains(t, r.Stderr, `CRASH_AT="0": want an id from 1`)
}
