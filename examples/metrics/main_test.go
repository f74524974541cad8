package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/internal/exampletest"
)

var binary string

func TestMain(m *testing.M) { exampletest.Main(m, "metrics", &binary) }

var readTotal = regexp.MustCompile(`(?m)^chunkwise_items_total\{[^}]*operation="read"[^}]*\} (\d+)$`)

// scrape returns the items read so far, as /metrics at addr says (-1 when
// the counter is not there yet).
func scrape(t *testing.T, addr string) (int64, string) {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1, ""
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	m := readTotal.FindSubmatch(body)
	if m == nil {
		return -1, string(body)
	}
	n, err := strconv.ParseInt(string(m[1]), 10, 64)
	require.NoError(t, err)
	return n, string(body)
}

// TestMetricsMove runs the program and scrapes /metrics while the job runs,
// as Prometheus would: the item counter moves from one scrape to the next,
// the running job and step are counted, and the chunk durations are there.
func TestMetricsMove(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	cmd := exampletest.Command(binary, filepath.Join(t.TempDir(), "batch.db"), []string{"METRICS_ADDR=" + addr}, "run", "items=50000")
	var out bytes.Buffer
	cmd.Stdout = &out
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	// The program says where it serves before it runs the job.
	line, err := bufio.NewReader(stderr).ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, addr)
	go func() { _, _ = io.Copy(io.Discard, stderr) }()

	var first int64
	var body string
	require.Eventually(t, func() bool {
		first, body = scrape(t, addr)
		return first > 0
	}, 20*time.Second, 20*time.Millisecond, "no chunkwise_items_total on /metrics:\n%s", body)
	require.Regexp(t, `chunkwise_job_active\{[^}]*job="count"[^}]*\} 1`, body)
	require.Regexp(t, `chunkwise_step_active\{[^}]*job="count"[^}]*step="count"[^}]*\} 1`, body)
	require.Regexp(t, `chunkwise_chunk_duration_seconds_count\{[^}]*outcome="committed"[^}]*\} \d+`, body)
	require.NotRegexp(t, `(execution|instance)[a-z_]*="`, body, "no execution ids in metrics")

	var second int64
	require.Eventually(t, func() bool {
		second, _ = scrape(t, addr)
		return second > first
	}, 20*time.Second, 50*time.Millisecond, "the counter did not move from %d", first)

	require.NoError(t, cmd.Wait(), out.String())
	require.Regexp(t, `count\s+COMPLETED\s+50000\s+42858\s+7142`, out.String())
}
