package main

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/exampletest"
	"github.com/chunkwise/chunkwise/repository/postgres"
)

var binary string

func TestMain(m *testing.M) { exampletest.Main(m, "serve", &binary) }

// replica is a serve process, its output kept.
type replica struct {
	cmd *exec.Cmd
	out *exampletest.Buffer
}

// startReplicas starts n serve processes on b, firing pulse every second,
// each pulse taking work.
func startReplicas(t *testing.T, b exampletest.Backend, n int, work string) []*replica {
	var rs []*replica
	for range n {
		cmd := exampletest.Command(binary, b.DSN, []string{"PULSE_SPEC=* * * * * *", "PULSE_WORK=" + work},
			"-lease", "3s", "-log-level", "info", "serve")
		r := &replica{cmd: cmd, out: &exampletest.Buffer{}}
		cmd.Stdout, cmd.Stderr = r.out, r.out
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		rs = append(rs, r)
	}
	return rs
}

// stop sends the replicas SIGTERM and waits for them to exit 0.
func stop(t *testing.T, rs []*replica) {
	for _, r := range rs {
		if r.cmd.ProcessState != nil {
			continue
		}
		require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	}
	for _, r := range rs {
		if r.cmd.ProcessState != nil {
			continue
		}
		err := r.cmd.Wait()
		require.NoError(t, err, "%s", r.out.String())
	}
}

// pulses returns the fire times recorded, in order, and how many times
// each was.
func pulses(t *testing.T, db *sqlx.DB) ([]time.Time, map[time.Time]int) {
	var fires []time.Time
	require.NoError(t, db.Select(&fires, `SELECT fire FROM pulse ORDER BY fire`))
	counts := map[time.Time]int{}
	var distinct []time.Time
	for _, f := range fires {
		if counts[f] == 0 {
			distinct = append(distinct, f)
		}
		counts[f]++
	}
	return distinct, counts
}

// TestReplicas: three serve processes on one PostgreSQL repository, pulse
// every second for 10 s (SERVE_SECONDS; make torture: 30): every second
// from the first fire to the last runs once.
func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three processes for 10 s")
	}
	seconds := exampletest.EnvInt(t, "SERVE_SECONDS", 10)
	b := exampletest.Backends()["postgres"](t)
	rs := startReplicas(t, b, 3, "0s")
	time.Sleep(time.Duration(seconds) * time.Second)
	stop(t, rs)

	fires, counts := pulses(t, b.DB)
	require.GreaterOrEqual(t, len(fires), seconds-3, "%v", fires)
	for i, f := range fires {
		require.Equal(t, 1, counts[f], "%s ran %d times", f, counts[f])
		if i > 0 {
			require.Equal(t, time.Second, f.Sub(fires[i-1]), "no second missed between %s and %s", fires[i-1], f)
		}
	}
	r := exampletest.Run(t, binary, b.DSN, nil, "schedules")
	require.Equal(t, 0, r.Code, r.Stderr)
	require.Regexp(t, `pulse\s+pulse\s+\* \* \* \* \* \* \(with seconds\)\s+UTC`, r.Stdout)
	require.Regexp(t, `cleanup\s+cleanup\s+15 3 \* \* \*\s+Europe/Berlin\s+\d{4}-\d\d-\d\d 03:15:00 CES?T`, r.Stdout)
}

// TestReplicaKilled: the replica running a pulse (2 s of work) is
// SIGKILLed. Its execution stays STARTING or STARTED (it was killed before
// or after its run began), counted as running until its
// lease (3 s) expires, then as crashed; the other replicas go on firing,
// each fire time once, and the killed fire never commits.
func TestReplicaKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three processes and kills one")
	}
	b := exampletest.Backends()["postgres"](t)
	rs := startReplicas(t, b, 3, "2s")
	fired := regexp.MustCompile(`msg="schedule: fired".* execution=(\d+)`)
	var (
		victim *replica
		exec   int64
	)
	require.Eventually(t, func() bool {
		for _, r := range rs {
			if m := fired.FindAllStringSubmatch(r.out.String(), -1); len(m) > 0 {
				victim = r
				exec, _ = strconv.ParseInt(m[len(m)-1][1], 10, 64)
				return true
			}
		}
		return false
	}, 20*time.Second, 20*time.Millisecond)
	require.NoError(t, victim.cmd.Process.Kill())
	_ = victim.cmd.Wait()
	killedAt := time.Now()
	var others []*replica
	for _, r := range rs {
		if r != victim {
			others = append(others, r)
		}
	}
	time.Sleep(12 * time.Second)
	stop(t, others)

	fires, counts := pulses(t, b.DB)
	var after int
	for _, f := range fires {
		require.Equal(t, 1, counts[f], "%s ran %d times", f, counts[f])
		if f.After(killedAt.UTC().Add(-time.Second)) {
			after++
		}
	}
	require.GreaterOrEqual(t, after, 2, "the other replicas went on firing after the kill: %v", fires)
	repo, err := postgres.Open(context.Background(), b.DSN, postgres.Config{})
	require.NoError(t, err)
	defer repo.Close()
	e, err := repo.JobExecution(context.Background(), exec)
	require.NoError(t, err)
	// Killed before its run began (STARTING) or during it (STARTED).
	require.True(t, e.Status.Running(), "the killed run never ended: %s", e.Status)
	fire, ok := e.Parameters.Time(batch.FireTimeParam)
	require.True(t, ok)
	require.Zero(t, counts[fire.UTC()], "the killed fire committed nothing")
}

// TestMisfireAfterDowntime: every replica was down over two nights' 03:15;
// cleanup (misfire run-once) runs once when three replicas come back, for
// the latest missed 03:15 — not twice, not three times — and waits for the
// next 03:15.
func TestMisfireAfterDowntime(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve processes")
	}
	b := exampletest.Backends()["postgres"](t)
	first := startReplicas(t, b, 1, "0s")
	require.Eventually(t, func() bool { // it stores the schedules
		var n int
		return b.DB.Get(&n, `SELECT COUNT(*) FROM batch_schedule`) == nil && n == 2
	}, 20*time.Second, 20*time.Millisecond)
	stop(t, first)
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	now := time.Now().In(berlin)
	latest := time.Date(now.Year(), now.Month(), now.Day(), 3, 15, 0, 0, berlin)
	if latest.After(now) {
		latest = latest.AddDate(0, 0, -1)
	}
	down := latest.AddDate(0, 0, -1) // the due time when they went down
	_, err = b.DB.Exec(`UPDATE batch_schedule SET next_fire_at = $1 WHERE name = 'cleanup'`, down.UTC())
	require.NoError(t, err)

	rs := startReplicas(t, b, 3, "0s")
	time.Sleep(3 * time.Second)
	stop(t, rs)

	repo, err := postgres.Open(context.Background(), b.DSN, postgres.Config{})
	require.NoError(t, err)
	defer repo.Close()
	execs, err := repo.JobExecutions(context.Background(), batch.ExecutionQuery{JobName: "cleanup"})
	require.NoError(t, err)
	require.Len(t, execs, 1, "one catch-up run, never a backlog")
	fire, _ := execs[0].Parameters.Time(batch.FireTimeParam)
	require.True(t, fire.Equal(latest), "for the latest missed 03:15 (%s), not %s", latest, fire)
	require.Equal(t, batch.StatusCompleted, execs[0].Status)
	var next time.Time
	require.NoError(t, b.DB.Get(&next, `SELECT next_fire_at FROM batch_schedule WHERE name = 'cleanup'`))
	require.True(t, next.Equal(latest.AddDate(0, 0, 1)), "next %s", next.In(berlin))
}

// TestDashboard: serve -http serves the dashboard beside the scheduler: the
// schedules with their next fire times, the executions the scheduler
// started, a pause from this machine; SIGTERM stops it all, exit 0.
func TestDashboard(t *testing.T) {
	t.Parallel()
	b := exampletest.Backends()["sqlite"](t)
	cmd := exampletest.Command(binary, b.DSN, []string{"PULSE_SPEC=* * * * * *"}, "serve", "-http", "127.0.0.1:0")
	out := &exampletest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := regexp.MustCompile(`dashboard on (http://127\.0\.0\.1:\d+)/ \(actions allowed\)`)
	require.Eventually(t, func() bool { return addr.MatchString(out.String()) }, 20*time.Second, 20*time.Millisecond, "%s", out)
	url := addr.FindStringSubmatch(out.String())[1]
	get := func(path string) string {
		resp, err := http.Get(url + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
		return string(body)
	}
	// The scheduler fires pulse every second: its executions are listed.
	require.Eventually(t, func() bool { return strings.Contains(get("/?job=pulse&status=COMPLETED"), `<tr data-id=`) },
		20*time.Second, 100*time.Millisecond)
	schedules := get("/schedules")
	require.Contains(t, schedules, `data-schedule="cleanup"`)
	require.Contains(t, schedules, "Europe/Berlin")

	pause := func(host string) int {
		req, err := http.NewRequest(http.MethodPost, url+"/schedules/cleanup/pause", nil)
		require.NoError(t, err)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	// A page of another site whose name resolves to this machine (DNS
	// rebinding) is same-origin to itself: refused by the host it names.
	require.Equal(t, http.StatusForbidden, pause("attacker.example:80"))
	require.NotContains(t, get("/schedules"), "PAUSED")
	require.Equal(t, http.StatusSeeOther, pause(""))
	require.Contains(t, get("/schedules"), "PAUSED")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), "%s", out)
}
