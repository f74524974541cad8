// Package torture kills a batch program with SIGKILL at many moments of its
// run and restarts it each time, so that a test can then check that nothing
// was lost or written twice. It is the harness of the crash tests; a test
// supplies the program, a way to read its committed progress, and the
// checks.
package torture

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Config describes a torture run.
type Config struct {
	// Command returns the program's command, to be started afresh for each
	// run. Required.
	Command func() *exec.Cmd
	// Progress returns the committed progress (items written, say); it is
	// polled to choose the kill points. Required.
	Progress func() (int64, error)
	// Total is the progress of a complete run. Required.
	Total int64
	// Done reports whether the job completed (its end is recorded), so
	// that a kill that lands after that is not counted as one. Required.
	Done func() (bool, error)
	// Kills is how many times the program is killed. Kill points are spread
	// over the run: the i-th kill waits for progress in the i-th of Kills
	// equal slices of Total, then up to Jitter more.
	Kills int
	// Jitter is the most time waited after the progress is reached, drawn at
	// random, so that kills land anywhere in a chunk: reading, writing,
	// committing. Default 20ms.
	Jitter time.Duration
	// Lease is how long to wait after a kill before the next launch, so that
	// the dead execution counts as crashed. Required.
	Lease time.Duration
	// BeforeKill, when set, is called just before each kill; what it
	// returns is recorded (for example, whether a transaction is open).
	BeforeKill func() string
	// Seed seeds the random choices; zero means the environment variable
	// TORTURE_SEED, else a random seed. The seed is logged, so that a run's
	// kill points can be replayed.
	Seed uint64
}

// Result says what happened.
type Result struct {
	// Kills are the kills that interrupted a running program.
	Kills []Kill
	// Runs counts the program's starts, the last, completing one included.
	Runs int
}

// Kill is one kill.
type Kill struct {
	Progress int64  // committed progress just before the kill
	Label    string // what BeforeKill returned
}

// Run kills and restarts the program until it completes, and returns what
// happened. The program must exit 0 when it completes and, launched within
// the lease after a kill, refuse with a message containing "already running".
func Run(t testing.TB, cfg Config) Result {
	t.Helper()
	if cfg.Jitter <= 0 {
		cfg.Jitter = 20 * time.Millisecond
	}
	seed := cfg.Seed
	if s := os.Getenv("TORTURE_SEED"); seed == 0 && s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("torture: TORTURE_SEED=%q: %v", s, err)
		}
	}
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("torture: seed %d (TORTURE_SEED=%d replays these kill points), %d kills over %d", seed, seed, cfg.Kills, cfg.Total)
	rng := rand.New(rand.NewPCG(seed, 0x70727475))
	var res Result
	for i := 0; i < cfg.Kills; i++ {
		target := int64(float64(cfg.Total) * (float64(i) + rng.Float64()) / float64(cfg.Kills))
		jitter := time.Duration(rng.Int64N(int64(cfg.Jitter)))
		// Each run is killed only after a commit of its own: one whose kill
		// point the last run already passed is not killed while it starts
		// (before its execution exists).
		before, err := cfg.Progress()
		if err != nil {
			before = 0 // nothing to read yet: the first run creates the tables
		}
		if before >= cfg.Total {
			break
		}
		target = max(target, before+1)
		cmd := cfg.Command()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("torture: start: %v", err)
		}
		res.Runs++
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if waitFor(t, cfg, target, exited) {
			// The program ended before the kill point: it completed.
			if code := cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("torture: run %d exited %d before its kill point:\n%s", res.Runs, code, stderr.String())
			}
			return res
		}
		time.Sleep(jitter)
		var label string
		if cfg.BeforeKill != nil {
			label = cfg.BeforeKill()
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err = <-exited
		if cmd.ProcessState.Exited() {
			// It finished on its own between the check and the kill.
			if cmd.ProcessState.ExitCode() != 0 {
				t.Fatalf("torture: run %d: %v\n%s", res.Runs, err, stderr.String())
			}
			return res
		}
		if done, err := cfg.Done(); err != nil {
			t.Fatalf("torture: done: %v", err)
		} else if done {
			return res // the kill came after the job completed: not a kill
		}
		p, _ := cfg.Progress()
		res.Kills = append(res.Kills, Kill{Progress: p, Label: label})
		time.Sleep(cfg.Lease + cfg.Lease/4)
	}
	for attempt := 0; ; attempt++ {
		cmd := cfg.Command()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		res.Runs++
		if err := cmd.Run(); err == nil {
			return res
		}
		if !strings.Contains(stderr.String(), "already running") || attempt > 5 {
			t.Fatalf("torture: final run: exit %d\n%s", cmd.ProcessState.ExitCode(), stderr.String())
		}
		time.Sleep(cfg.Lease)
	}
}

// waitFor polls the progress until it reaches target, and reports whether
// the program exited first.
func waitFor(t testing.TB, cfg Config, target int64, exited chan error) bool {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		select {
		case err := <-exited:
			exited <- err
			return true
		default:
		}
		if p, err := cfg.Progress(); err == nil && p >= target {
			return false
		}
		if time.Now().After(deadline) {
			t.Fatalf("torture: no progress to %d within 2 minutes", target)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
