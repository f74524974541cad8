// Package exampletest runs the example programs as their users do: built
// once, then started as separate processes against a job repository given
// with -db, on SQLite files and on PostgreSQL.
package exampletest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

// Main builds the program in the test's directory, sets *binary to its
// path, runs the tests and removes the build. Call it from TestMain.
func Main(m *testing.M, name string, binary *string) {
	dir, err := os.MkdirTemp("", name+"-test")
	if err != nil {
		panic(err)
	}
	*binary = filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", *binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// Backend is a job repository a program is pointed at with -db, and a
// handle on the same database to check what the program did.
type Backend struct {
	DSN string
	DB  *sqlx.DB
}

// Backends returns a constructor of each backend: a fresh SQLite file, and
// a fresh PostgreSQL schema (skipped, or failed with
// BATCH_REQUIRE_POSTGRES=1, without a server).
func Backends() map[string]func(t *testing.T) Backend {
	return map[string]func(t *testing.T) Backend{
		"sqlite": func(t *testing.T) Backend {
			path := filepath.Join(t.TempDir(), "batch.db")
			db, err := sqlx.Open("sqlite", sqlite.DSN(path))
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			return Backend{DSN: path, DB: db}
		},
		"postgres": func(t *testing.T) Backend {
			db, dsn := pgtest.DB(t)
			return Backend{DSN: dsn, DB: db}
		},
	}
}

// Result is what a run of a program left.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// Command returns the command that runs binary on the repository dsn, with
// warnings and errors logged, env added to the environment.
func Command(binary, dsn string, env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(binary, append([]string{"-db", dsn, "-log-level", "warn"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// Run runs binary on the repository dsn to its end.
func Run(t *testing.T, binary, dsn string, env []string, args ...string) Result {
	t.Helper()
	cmd := Command(binary, dsn, env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return Result{Code: code, Stdout: stdout.String(), Stderr: stderr.String()}
}

// EnvInt returns the integer in the environment variable name, or def when
// it is not set: the size of a longer run (TORTURE_KILLS, TORTURE_ROWS).
func EnvInt(t testing.TB, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	require.NoError(t, err, name)
	return n
}

// Buffer is a bytes.Buffer that a process writes to while the test reads
// it.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
