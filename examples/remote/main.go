// Command remote runs the partitioned example's job spread over processes,
// as it would be spread over machines: a manager that hands the partitions
// out through NATS JetStream and worker processes that run them, all of them
// the program examples/partitioned, on one job repository.
//
//	remote                                    SQLite file remote.db, an embedded NATS server, 3 workers
//	remote -kill 4s                           and SIGKILL a worker 4 s in: another takes its partition over
//	remote -db postgres://localhost/app -workers 4
//	remote -nats nats://127.0.0.1:4222        a NATS server of your own
//	remote rows=100000 partitions=8           parameters of the job
//
// It builds examples/partitioned, starts a NATS server in this process
// (JetStream, stored in a temporary directory) unless -nats names one, starts
// the workers (partitioned worker), then the manager (partitioned run with
// the parameters given, by default rows=30000 partitions=6 chunk=100
// delay=1ms), and shows what each says. When the manager ends, the workers
// are sent SIGTERM and the execution's status is shown. All of them share
// the lease -lease: a worker that dies loses its partition that long after
// its last renewal.
//
// A SQLite file serves processes on one machine; workers on several
// machines share a PostgreSQL database.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// defaultParams are the job's parameters when none are given: about ten
// seconds of work for three workers.
var defaultParams = []string{"rows=30000", "partitions=6", "chunk=100", "delay=1ms"}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("remote", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := fs.String("db", "remote.db", "the job repository: a SQLite file, or a postgres:// URL")
	natsURL := fs.String("nats", "", "a NATS server with JetStream; default: one started in this process")
	workers := fs.Int("workers", 3, "worker processes")
	slots := fs.Int("slots", 1, "partitions each worker runs at a time")
	lease := fs.Duration("lease", 5*time.Second, "the lease of the manager and the workers")
	kill := fs.Duration("kill", 0, "SIGKILL the first worker this long after the manager started; 0: never")
	program := fs.String("program", "", "the partitioned program; default: built from examples/partitioned")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: remote [flags] [param=value ...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *workers < 1 || *slots < 1 {
		fmt.Fprintln(stderr, "remote: -workers and -slots must be at least 1")
		return 2
	}
	params := fs.Args()
	if len(params) == 0 {
		params = defaultParams
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *program == "" {
		dir, err := os.MkdirTemp("", "remote")
		if err != nil {
			fmt.Fprintln(stderr, "remote:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		*program = filepath.Join(dir, "partitioned")
		fmt.Fprintln(stdout, "building examples/partitioned")
		build := exec.Command("go", "build", "-o", *program, "github.com/chunkwise/chunkwise/examples/partitioned")
		build.Stdout, build.Stderr = stderr, stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(stderr, "remote: build examples/partitioned:", err)
			return 1
		}
	}
	if *natsURL == "" {
		ns, err := startNATS()
		if err != nil {
			fmt.Fprintln(stderr, "remote:", err)
			return 1
		}
		defer ns.Shutdown()
		*natsURL = ns.ClientURL()
		fmt.Fprintf(stdout, "NATS with JetStream at %s\n", *natsURL)
	}
	common := []string{"-db", *db, "-nats", *natsURL, "-lease", lease.String()}
	out := &prefixed{w: stdout}

	var ws []*child
	for i := 1; i <= *workers; i++ {
		w, err := out.start(exec.Command(*program, append(common, "-log-level", "warn", "worker", "-slots", fmt.Sprint(*slots))...),
			fmt.Sprintf("worker %d", i))
		if err != nil {
			fmt.Fprintln(stderr, "remote:", err)
			return 1
		}
		ws = append(ws, w)
	}
	defer func() {
		// Told to stop, each hands its partitions back and exits.
		for _, w := range ws {
			_ = w.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, w := range ws {
			<-w.done
		}
	}()

	mc := exec.CommandContext(ctx, *program, append(append(common, "-log-level", "warn", "-progress", "log", "run"), params...)...)
	mc.Cancel = func() error { return mc.Process.Signal(syscall.SIGTERM) } // the manager stops the job
	fmt.Fprintf(stdout, "manager: partitioned %s\n", strings.Join(mc.Args[1:], " "))
	m, err := out.start(mc, "manager")
	if err != nil {
		fmt.Fprintln(stderr, "remote:", err)
		return 1
	}
	if *kill > 0 {
		t := time.AfterFunc(*kill, func() {
			out.line("remote", fmt.Sprintf("SIGKILL to worker 1 (pid %d): its partition goes to another worker once its lease (%s) expires",
				ws[0].cmd.Process.Pid, *lease))
			_ = ws[0].cmd.Process.Kill()
		})
		defer t.Stop()
	}
	<-m.done
	var ee *exec.ExitError
	if m.err != nil && !errors.As(m.err, &ee) {
		fmt.Fprintln(stderr, "remote: manager:", m.err)
		return 1
	}
	code := mc.ProcessState.ExitCode()
	status := exec.Command(*program, "-db", *db, "status")
	status.Stdout, status.Stderr = stdout, stderr
	_ = status.Run()
	return code
}

// startNATS starts a NATS server with JetStream on a free port, its store in
// a temporary directory.
func startNATS() (*natsserver.Server, error) {
	store, err := os.MkdirTemp("", "remote-nats")
	if err != nil {
		return nil, err
	}
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: store, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return nil, errors.New("nats server did not start")
	}
	return ns, nil
}

// prefixed writes the lines of several processes to w, each after the name
// of its process.
type prefixed struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *prefixed) line(name, text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%-9s| %s\n", name, text)
}

// child is a process started by prefixed.start.
type child struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it exited and its output was written
	err  error         // of cmd.Wait, once done
}

// start starts cmd with its stdout and stderr written to p under name.
func (p *prefixed) start(cmd *exec.Cmd, name string) (*child, error) {
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		s := bufio.NewScanner(r)
		for s.Scan() {
			p.line(name, s.Text())
		}
	}()
	go func() {
		c.err = cmd.Wait()
		_ = w.Close()
		<-copied
		close(c.done)
	}()
	return c, nil
}
