package main

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/internal/exampletest"
)

// binary is the partitionfile program, built once for all tests: the tests
// run it as a user does, as a separate process.
var binary string

func TestMain(m *testing.M) { exampletest.Main(m, "partitionfile", &binary) }

func run(t *testing.T, b exampletest.Backend, env []string, args ...string) exampletest.Result {
	t.Helper()
	return exampletest.Run(t, binary, b.DSN, env, args...)
}

// record is a line name,credit of an input or output file.
type record struct{ name, credit string }

// readRecords reads the lines name,credit of the files, one after another.
func readRecords(t *testing.T, paths ...string) []record {
	t.Helper()
	var out []record
	for _, p := range paths {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		r := csv.NewReader(bytes.NewReader(data))
		r.FieldsPerRecord = 2
		lines, err := r.ReadAll()
		require.NoError(t, err, p)
		for _, l := range lines {
			out = append(out, record{l[0], l[1]})
		}
	}
	return out
}

// step is a row of batch_step_execution.
type step struct {
	Name    string `db:"step_name"`
	Status  string `db:"status"`
	Read    int64  `db:"read_count"`
	Written int64  `db:"write_count"`
	Exit    string `db:"exit_description"`
}

// executions returns the ids of the job executions, oldest first.
func executions(t *testing.T, db *sqlx.DB) []int64 {
	t.Helper()
	var ids []int64
	require.NoError(t, db.Select(&ids, `SELECT id FROM batch_job_execution ORDER BY id`))
	return ids
}

// steps returns the step executions of a job execution by step name.
func steps(t *testing.T, db *sqlx.DB, execution int64) map[string]step {
	t.Helper()
	var rows []step
	require.NoError(t, db.Select(&rows, db.Rebind(`SELECT step_name, status, read_count, write_count, exit_description
		FROM batch_step_execution WHERE job_execution_id = ?`), execution))
	byName := map[string]step{}
	for _, r := range rows {
		require.NotContains(t, byName, r.Name, "two executions of one step in execution %d", execution)
		byName[r.Name] = r
	}
	return byName
}

// TestSpringPartitionFile is Spring Batch's PartitionFileJobFunctionalTests
// on its data: one partition per input file, each output file has the
// customers of its input in the same order, each credit increased by 5.
func TestSpringPartitionFile(t *testing.T) {
	inputs, err := filepath.Glob("sample/*.csv")
	require.NoError(t, err)
	require.Len(t, inputs, 2, "the bundled delimited1.csv and delimited2.csv")
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			out := t.TempDir()
			r := run(t, b, nil, "run", "output="+out)
			require.Equal(t, 0, r.Code, r.Stderr)

			// The bundled sample was written out byte for byte and read from there.
			for _, in := range inputs {
				want, err := os.ReadFile(in)
				require.NoError(t, err)
				got, err := os.ReadFile(filepath.Join(out, "sample", filepath.Base(in)))
				require.NoError(t, err)
				require.Equal(t, want, got)
			}

			outputs, err := filepath.Glob(filepath.Join(out, "*.csv"))
			require.NoError(t, err)
			require.Len(t, outputs, 2, "one output file per partition")
			for i := range inputs {
				require.Equal(t, filepath.Base(inputs[i]), filepath.Base(outputs[i]))
			}
			in, got := readRecords(t, inputs...), readRecords(t, outputs...)
			require.NotEmpty(t, in)
			require.Len(t, got, len(in))
			five := big.NewRat(increase, 1)
			for i := range in {
				require.Equal(t, in[i].name, got[i].name, "record %d", i+1)
				before, ok := new(big.Rat).SetString(in[i].credit)
				require.True(t, ok, in[i].credit)
				after, ok := new(big.Rat).SetString(got[i].credit)
				require.True(t, ok, got[i].credit)
				require.Zero(t, after.Cmp(before.Add(before, five)), "%s: %s + 5 = %s", in[i].name, in[i].credit, got[i].credit)
			}
			// The exact text: credits keep their (lack of) decimals.
			content, err := os.ReadFile(outputs[1])
			require.NoError(t, err)
			require.Equal(t, "customer7,75\ncustomer8,85\n", string(content))

			ids := executions(t, b.DB)
			require.Len(t, ids, 1)
			s := run(t, b, nil, "status", strconv.FormatInt(ids[0], 10))
			require.Equal(t, 0, s.Code, s.Stderr)
			for _, out := range []string{r.Stdout, s.Stdout} {
				require.Regexp(t, `(?m)^\s*credit\s+COMPLETED\s+8\s+8\s`, out)
				require.Regexp(t, `(?m)^\s*credit:f1\s+COMPLETED\s+6\s+6\s`, out)
				require.Regexp(t, `(?m)^\s*credit:f2\s+COMPLETED\s+2\s+2\s`, out)
			}
		})
	}
}

// The generated input of the restart tests: files × lines customers,
// customerN on line N of its file, counting on from one file to the next.
const (
	genFiles = 4
	genLines = 2000
	genChunk = 50
	// failLine is where FAIL_AT stops the first run, in the third file;
	// the chunks of that file before it commit.
	failLine  = 1234
	failFile  = 3
	committed = failLine / genChunk * genChunk
)

// formatCents writes an amount of cents as a decimal with two decimals.
func formatCents(c int64) string {
	sign := ""
	if c < 0 {
		sign, c = "-", -c
	}
	return fmt.Sprintf("%s%d.%02d", sign, c/100, c%100)
}

// generate writes files input files of lines customers each to dir, named
// part1.csv, part2.csv…, and returns the lines each output file must have,
// by base name. Credits are positive and negative, with two decimals, and
// every tenth without.
func generate(t *testing.T, dir string, files, lines int) map[string][]string {
	t.Helper()
	want := map[string][]string{}
	for f := 1; f <= files; f++ {
		var in strings.Builder
		var out []string
		for l := 1; l <= lines; l++ {
			n := int64((f-1)*lines + l)
			var credit, increased string
			if n%10 == 0 {
				c := n*13%5000 - 2500
				credit, increased = strconv.FormatInt(c, 10), strconv.FormatInt(c+5, 10)
			} else {
				c := n*7919%2_000_000 - 1_000_000
				credit, increased = formatCents(c), formatCents(c+500)
			}
			fmt.Fprintf(&in, "customer%d,%s\n", n, credit)
			out = append(out, fmt.Sprintf("customer%d,%s\n", n, increased))
		}
		name := fmt.Sprintf("part%d.csv", f)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(in.String()), 0o644))
		want[name] = out
	}
	return want
}

// requireOutput checks that the output file holds exactly the first n
// lines it must have, each once, in order.
func requireOutput(t *testing.T, path string, want []string, n int64) {
	t.Helper()
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, strings.Join(want[:n], ""), string(got), "%s: want its first %d lines", path, n)
}

// TestRestartPartitions fails the job at a customer of the third of four
// files and restarts it: the completed partitions' outputs are complete,
// the failed one's holds exactly its committed chunks, and the restart
// runs only the partitions that did not complete, each from its
// checkpoint, so that every output line is there once.
//
// One partition at a time, the outcome of the first run is known: the
// first two files complete, the third fails, the fourth is not begun. All
// at once, the failure stops the other partitions at their next chunk
// boundary, wherever they are: each is checked against what its step
// execution recorded.
func TestRestartPartitions(t *testing.T) {
	failAt := fmt.Sprintf("FAIL_AT=customer%d", (failFile-1)*genLines+failLine)
	for _, concurrency := range []string{"1", "0"} {
		for name, open := range exampletest.Backends() {
			t.Run(name+"/concurrency="+concurrency, func(t *testing.T) {
				t.Parallel()
				b := open(t)
				in, out := t.TempDir(), t.TempDir()
				want := generate(t, in, genFiles, genLines)
				args := []string{"run", "input=" + filepath.Join(in, "*.csv"), "output=" + out,
					"chunk=" + strconv.Itoa(genChunk), "concurrency=" + concurrency}

				r := run(t, b, []string{failAt}, args...)
				require.Equal(t, 1, r.Code, r.Stdout+r.Stderr)
				require.Contains(t, r.Stderr, failAt)
				ids := executions(t, b.DB)
				require.Len(t, ids, 1)
				first := steps(t, b.DB, ids[0])
				require.Equal(t, "FAILED", first["credit"].Status)

				// What each partition committed in the first run.
				done := map[string]int64{}
				for f := 1; f <= genFiles; f++ {
					part, file := fmt.Sprintf("credit:f%d", f), fmt.Sprintf("part%d.csv", f)
					s, ran := first[part]
					switch {
					case f == failFile:
						require.Equal(t, "FAILED", s.Status, part)
						require.Equal(t, int64(committed), s.Written, part)
						require.Contains(t, s.Exit, failAt)
					case concurrency == "1" && f < failFile:
						require.Equal(t, "COMPLETED", s.Status, part)
					case concurrency == "1":
						// Not begun: no step execution, or one stopped at once.
						require.True(t, !ran || s.Status == "STOPPED" && s.Written == 0, "%s: %+v", part, s)
					case ran:
						require.Contains(t, []string{"COMPLETED", "STOPPED"}, s.Status, part)
						require.Zero(t, s.Written%genChunk, "%s commits whole chunks", part)
					}
					require.Equal(t, s.Read, s.Written, part)
					if s.Status == "COMPLETED" {
						require.Equal(t, int64(genLines), s.Written, part)
					}
					done[part] = s.Written
					t.Logf("first run: %s %s, %d written", part, s.Status, s.Written)
					if ran {
						requireOutput(t, filepath.Join(out, file), want[file], s.Written)
					} else {
						require.NoFileExists(t, filepath.Join(out, file))
					}
				}

				r = run(t, b, nil, args...)
				require.Equal(t, 0, r.Code, r.Stdout+r.Stderr)
				ids = executions(t, b.DB)
				require.Len(t, ids, 2)
				second := steps(t, b.DB, ids[1])
				require.Equal(t, "COMPLETED", second["credit"].Status)
				require.NotContains(t, second, "prepare", "the completed step is passed over")
				for f := 1; f <= genFiles; f++ {
					part := fmt.Sprintf("credit:f%d", f)
					s, ran := second[part]
					if first[part].Status == "COMPLETED" {
						require.False(t, ran, "%s completed in the first run and must not run again", part)
						continue
					}
					require.True(t, ran, "%s did not complete in the first run", part)
					require.Equal(t, "COMPLETED", s.Status, part)
					require.Equal(t, genLines-done[part], s.Read, "%s resumes after its committed chunks", part)
					require.Equal(t, genLines-done[part], s.Written, part)
				}
				require.Len(t, second, 1+genFiles-countCompleted(first), "credit and the partitions it ran")
				for file, lines := range want {
					requireOutput(t, filepath.Join(out, file), lines, genLines)
				}
			})
		}
	}
}

// countCompleted counts the completed partitions among steps.
func countCompleted(steps map[string]step) int {
	n := 0
	for name, s := range steps {
		if strings.HasPrefix(name, "credit:") && s.Status == "COMPLETED" {
			n++
		}
	}
	return n
}

// TestBadLine reads a file with a credit that is not a number: its
// partition fails with an error naming the file and the line, after the
// chunks before the line committed. A restart on the file unchanged fails
// at the same line and keeps them; once the line is fixed it goes on from
// there and completes.
func TestBadLine(t *testing.T) {
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			in, out := t.TempDir(), t.TempDir()
			var good, bad, fixed strings.Builder
			var wantGood, wantBad []string
			for i := 1; i <= 50; i++ {
				fmt.Fprintf(&good, "a%d,%d.5\n", i, i)
				wantGood = append(wantGood, fmt.Sprintf("a%d,%d.5\n", i, i+5))
			}
			for i := 1; i <= 30; i++ {
				line := fmt.Sprintf("b%d,%d\n", i, 10*i)
				if i == 23 {
					fmt.Fprint(&bad, "customer9,abc\n")
					line = "customer9,9.99\n"
				} else {
					fmt.Fprint(&bad, line)
				}
				fmt.Fprint(&fixed, line)
				if i == 23 {
					wantBad = append(wantBad, "customer9,14.99\n")
				} else {
					wantBad = append(wantBad, fmt.Sprintf("b%d,%d\n", i, 10*i+5))
				}
			}
			badPath := filepath.Join(in, "b.csv")
			require.NoError(t, os.WriteFile(filepath.Join(in, "a.csv"), []byte(good.String()), 0o644))
			require.NoError(t, os.WriteFile(badPath, []byte(bad.String()), 0o644))
			args := []string{"run", "input=" + filepath.Join(in, "*.csv"), "output=" + out, "chunk=10", "concurrency=1"}

			for attempt := 1; attempt <= 2; attempt++ {
				r := run(t, b, nil, args...)
				require.Equal(t, 1, r.Code, r.Stdout+r.Stderr)
				where := badPath + " line 23"
				require.Contains(t, r.Stderr, where)
				require.Contains(t, r.Stdout, where)
				ids := executions(t, b.DB)
				require.Len(t, ids, attempt)
				s := steps(t, b.DB, ids[attempt-1])
				require.Contains(t, s["credit:f2"].Exit, where)
				require.Contains(t, s["credit:f2"].Exit, `"abc"`)
				require.Equal(t, "FAILED", s["credit:f2"].Status)
				if attempt == 1 {
					require.Equal(t, "COMPLETED", s["credit:f1"].Status)
					require.Equal(t, int64(20), s["credit:f2"].Written, "the two chunks before line 23")
				} else {
					require.NotContains(t, s, "credit:f1")
					require.Zero(t, s["credit:f2"].Written)
				}
				requireOutput(t, filepath.Join(out, "a.csv"), wantGood, 50)
				requireOutput(t, filepath.Join(out, "b.csv"), wantBad, 20)
			}

			require.NoError(t, os.WriteFile(badPath, []byte(fixed.String()), 0o644))
			r := run(t, b, nil, args...)
			require.Equal(t, 0, r.Code, r.Stdout+r.Stderr)
			ids := executions(t, b.DB)
			s := steps(t, b.DB, ids[len(ids)-1])
			require.Equal(t, "COMPLETED", s["credit:f2"].Status)
			require.Equal(t, int64(10), s["credit:f2"].Read, "lines 21 to 30")
			require.NotContains(t, s, "credit:f1")
			requireOutput(t, filepath.Join(out, "a.csv"), wantGood, 50)
			requireOutput(t, filepath.Join(out, "b.csv"), wantBad, 30)
		})
	}
}

// TestOutputOverInput refuses to write the outputs over their inputs,
// before anything is written.
func TestOutputOverInput(t *testing.T) {
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			dir := t.TempDir()
			path := filepath.Join(dir, "customers.csv")
			require.NoError(t, os.WriteFile(path, []byte("customer1,10\n"), 0o644))
			r := run(t, b, nil, "run", "input="+filepath.Join(dir, "*.csv"), "output="+dir)
			require.Equal(t, 1, r.Code, r.Stdout+r.Stderr)
			require.Contains(t, r.Stderr, "would be overwritten by its output")
			content, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, "customer1,10\n", string(content))
		})
	}
}
