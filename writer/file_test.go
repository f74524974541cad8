package writer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/sqlite"
	"github.com/chunkwise/chunkwise/writer"
)

type order struct {
	ID       int    `json:"id"`
	Customer string `json:"customer"`
	Cents    int64  `json:"cents"`
}

// orders returns orders 1..n; some customers need quoting in CSV.
func orders(n int) []order {
	out := make([]order, n)
	for i := range out {
		id := i + 1
		c := fmt.Sprintf("Customer %d", id%9)
		if id%5 == 0 {
			c += `, "Ltd"`
		}
		out[i] = order{ID: id, Customer: c, Cents: int64(id * 137 % 10000)}
	}
	return out
}

// fileWriter is what every file writer is.
type fileWriter interface {
	batch.ItemWriter[order]
	batch.ItemStream
}

// fileFormat is one of the file writers, configured with a header and a
// footer where it has them, and the bytes it should write for some orders,
// built without the writer.
type fileFormat struct {
	name, file string
	open       func(t testing.TB, path string) fileWriter
	expect     func(items []order) []byte
}

func csvQuote(s string) string {
	if strings.ContainsAny(s, `",`) {
		return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
	}
	return s
}

var fileFormats = []fileFormat{
	{
		name: "csv", file: "orders.csv",
		open: func(t testing.TB, path string) fileWriter {
			w, err := writer.NewCSVFile(writer.CSVFileConfig[order]{
				Path: path, Columns: []string{"id", "customer", "cents"},
				Fields: func(o order) ([]string, error) {
					return []string{strconv.Itoa(o.ID), o.Customer, strconv.FormatInt(o.Cents, 10)}, nil
				},
				Header: func(w io.Writer) error {
					_, err := io.WriteString(w, "# orders\n")
					return err
				},
				Footer: func(w io.Writer, n int64) error {
					_, err := fmt.Fprintf(w, "# %d orders\n", n)
					return err
				},
			})
			require.NoError(t, err)
			return w
		},
		expect: func(items []order) []byte {
			var b strings.Builder
			b.WriteString("# orders\nid,customer,cents\n")
			for _, o := range items {
				fmt.Fprintf(&b, "%d,%s,%d\n", o.ID, csvQuote(o.Customer), o.Cents)
			}
			fmt.Fprintf(&b, "# %d orders\n", len(items))
			return []byte(b.String())
		},
	},
	{
		name: "fixed", file: "orders.txt",
		open: func(t testing.TB, path string) fileWriter {
			w, err := writer.NewFixedWidthFile(writer.FixedWidthFileConfig[order]{
				Path: path,
				Columns: []writer.FixedWidthColumn{
					{Name: "ID", Width: 6, Align: writer.AlignRight, Pad: '0'},
					{Name: "CUSTOMER", Width: 20},
					{Name: "CENTS", Width: 8, Align: writer.AlignRight},
				},
				HeaderRow: true,
				Fields: func(o order) ([]string, error) {
					return []string{strconv.Itoa(o.ID), o.Customer, strconv.FormatInt(o.Cents, 10)}, nil
				},
				Footer: func(w io.Writer, n int64) error {
					_, err := fmt.Fprintf(w, "TRAILER%09d\n", n)
					return err
				},
			})
			require.NoError(t, err)
			return w
		},
		expect: func(items []order) []byte {
			var b strings.Builder
			fmt.Fprintf(&b, "%6s%-20s%8s\n", "ID", "CUSTOMER", "CENTS")
			for _, o := range items {
				fmt.Fprintf(&b, "%06d%-20s%8d\n", o.ID, o.Customer, o.Cents)
			}
			fmt.Fprintf(&b, "TRAILER%09d\n", len(items))
			return []byte(b.String())
		},
	},
	{
		name: "jsonl", file: "orders.jsonl",
		open: func(t testing.TB, path string) fileWriter {
			w, err := writer.NewJSONLinesFile(writer.JSONLinesFileConfig[order]{Path: path})
			require.NoError(t, err)
			return w
		},
		expect: func(items []order) []byte {
			var b bytes.Buffer
			for _, o := range items {
				j, _ := json.Marshal(o)
				b.Write(j)
				b.WriteByte('\n')
			}
			return b.Bytes()
		},
	},
	{
		name: "json-array", file: "orders.json",
		open: func(t testing.TB, path string) fileWriter {
			w, err := writer.NewJSONArrayFile(writer.JSONArrayFileConfig[order]{Path: path})
			require.NoError(t, err)
			return w
		},
		expect: func(items []order) []byte {
			var b bytes.Buffer
			b.WriteString("[")
			for i, o := range items {
				if i > 0 {
					b.WriteByte(',')
				}
				j, _ := json.Marshal(o)
				b.WriteByte('\n')
				b.Write(j)
			}
			b.WriteString("\n]\n")
			return b.Bytes()
		},
	},
}

// tee writes each chunk to its writers in turn, and opens, updates and
// closes those that are streams: a step with several outputs.
type tee []batch.ItemWriter[order]

func (w tee) Write(ctx context.Context, items []order) error {
	for _, x := range w {
		if err := x.Write(ctx, items); err != nil {
			return err
		}
	}
	return nil
}

func (w tee) Open(ctx context.Context, ec batch.ExecutionContext) error {
	for _, x := range w {
		if s, ok := x.(batch.ItemStream); ok {
			if err := s.Open(ctx, ec); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w tee) Update(ctx context.Context, ec batch.ExecutionContext) error {
	for _, x := range w {
		if s, ok := x.(batch.ItemStream); ok {
			if err := s.Update(ctx, ec); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w tee) Close(ctx context.Context) error {
	var errs []error
	for _, x := range w {
		if s, ok := x.(batch.ItemStream); ok {
			errs = append(errs, s.Close(ctx))
		}
	}
	return errors.Join(errs...)
}

func openRepo(t testing.TB, path string) *sqlite.Repository {
	ctx := context.Background()
	repo, err := sqlite.Open(ctx, path, sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = repo.Close() })
	require.NoError(t, repo.Migrate(ctx))
	return repo
}

var fastBackoff = batch.Backoff{Initial: time.Millisecond, Max: time.Millisecond}

// runExport runs a job "export" of one chunk step configured by cfg (its
// Reader defaults to the orders) on repo.
func runExport(t testing.TB, repo repository.JobRepository, cfg batch.ChunkConfig[order, order]) (*batch.JobExecution, error) {
	if cfg.Backoff == (batch.Backoff{}) {
		cfg.Backoff = fastBackoff
	}
	step, err := batch.NewChunkStep("export", cfg)
	require.NoError(t, err)
	job, err := batch.NewJob("export", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	engine, err := launcher.New(launcher.Config{Repository: repo})
	require.NoError(t, err)
	return engine.Run(context.Background(), job, nil)
}

// uninterrupted writes items with the format in a job that nothing
// interrupts, and returns the file.
func uninterrupted(t *testing.T, f fileFormat, items []order, chunk int) []byte {
	dir := t.TempDir()
	repo := openRepo(t, filepath.Join(dir, "batch.db"))
	path := filepath.Join(dir, f.file)
	exec, err := runExport(t, repo, batch.ChunkConfig[order, order]{
		Reader: reader.FromSlice(items), Writer: f.open(t, path), ChunkSize: chunk,
	})
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(f.expect(items)), string(b), "the file as built without the writer")
	return b
}

// failCommit fails the at-th chunk commit after its write ran (the files
// were written and synced), as a process that dies before COMMIT; err is
// the error, and the commits after it go through.
type failCommit struct {
	*sqlite.Repository
	at  int64
	err error
	n   atomic.Int64
}

func (r *failCommit) CommitChunk(ctx context.Context, s *batch.StepExecution, write func(context.Context) error) (batch.BatchStatus, error) {
	return r.Repository.CommitChunk(ctx, s, func(ctx context.Context) error {
		if err := write(ctx); err != nil {
			return err
		}
		if r.n.Add(1) == r.at {
			return r.err
		}
		return nil
	})
}

// TestFileWritersRestart fails each writer's job half way — its processor
// or a writer after it failing at an item, or a commit failing after the
// file was written — and restarts it: the file is byte for byte the file of
// an uninterrupted run.
func TestFileWritersRestart(t *testing.T) {
	items := orders(23)
	const chunk = 4
	for _, f := range fileFormats {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			want := uninterrupted(t, f, items, chunk)
			for _, mode := range []string{"process", "writer", "commit"} {
				for _, at := range []int{1, 4, 6, 9, 17, 23} {
					t.Run(fmt.Sprintf("%s/%d", mode, at), func(t *testing.T) {
						dir := t.TempDir()
						base := openRepo(t, filepath.Join(dir, "batch.db"))
						path := filepath.Join(dir, f.file)
						var armed atomic.Bool
						armed.Store(true)
						boom := errors.New("boom")
						newCfg := func() batch.ChunkConfig[order, order] {
							cfg := batch.ChunkConfig[order, order]{Reader: reader.FromSlice(items), ChunkSize: chunk}
							fw := f.open(t, path)
							cfg.Writer = fw
							switch mode {
							case "process":
								cfg.Processor = batch.ProcessorFunc[order, order](func(_ context.Context, o order) (order, error) {
									if o.ID == at && armed.Load() {
										return o, boom
									}
									return o, nil
								})
							case "writer":
								cfg.Writer = tee{fw, batch.WriterFunc[order](func(_ context.Context, got []order) error {
									for _, o := range got {
										if o.ID == at && armed.Load() {
											return boom
										}
									}
									return nil
								})}
							}
							return cfg
						}
						var repo repository.JobRepository = base
						if mode == "commit" {
							repo = &failCommit{Repository: base, at: int64((at + chunk - 1) / chunk), err: boom}
						}
						_, err := runExport(t, repo, newCfg())
						require.ErrorIs(t, err, boom)
						armed.Store(false)
						exec, err := runExport(t, base, newCfg())
						require.NoError(t, err)
						require.Equal(t, batch.StatusCompleted, exec.Status)
						got, err := os.ReadFile(path)
						require.NoError(t, err)
						require.Equal(t, string(want), string(got))
					})
				}
			}
		})
	}
}

// flakyWriter fails every third chunk it is given with a transient error.
type flakyWriter struct{ n, failed atomic.Int64 }

func (w *flakyWriter) Write(context.Context, []order) error {
	if w.n.Add(1)%3 == 0 {
		w.failed.Add(1)
		return fmt.Errorf("downstream: %w", io.ErrUnexpectedEOF)
	}
	return nil
}

// TestFileWritersRetriedCommit retries commits after the file writer's
// Write (a writer after it fails with a transient error) and after its
// Update (the commit itself fails with one): the retried commits leave no
// duplicate.
func TestFileWritersRetriedCommit(t *testing.T) {
	items := orders(40)
	for _, f := range fileFormats {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			want := uninterrupted(t, f, items, 3)
			dir := t.TempDir()
			base := openRepo(t, filepath.Join(dir, "batch.db"))
			repo := &flakyCommits{Repository: base}
			path := filepath.Join(dir, f.file)
			flaky := &flakyWriter{}
			exec, err := runExport(t, repo, batch.ChunkConfig[order, order]{
				Reader: reader.FromSlice(items), Writer: tee{f.open(t, path), flaky}, ChunkSize: 3,
			})
			require.NoError(t, err)
			require.Equal(t, batch.StatusCompleted, exec.Status)
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
			require.Positive(t, flaky.failed.Load(), "commits failed between Write and Update")
			require.Positive(t, repo.failed.Load(), "commits failed after Update")
		})
	}
}

// TestFileWritersScanSkip has a SQL writer after the file writer refuse
// every seventh order (a CHECK constraint), which the step skips by writing
// the chunk item by item. When the refused order is the last of its chunk,
// its skip is committed without a Write: the order the file writer was
// given before the refusal must not reach the file.
func TestFileWritersScanSkip(t *testing.T) {
	items := orders(30)
	var kept []order
	for _, o := range items {
		if o.ID%7 != 0 {
			kept = append(kept, o)
		}
	}
	for _, f := range fileFormats {
		t.Run(f.name, func(t *testing.T) {
			t.Parallel()
			want := uninterrupted(t, f, kept, 7)
			dir := t.TempDir()
			repo := openRepo(t, filepath.Join(dir, "batch.db"))
			_, err := repo.DB().Exec(`CREATE TABLE orders (id INTEGER NOT NULL CHECK (id % 7 <> 0))`)
			require.NoError(t, err)
			sw, err := writer.NewSQL(writer.SQLConfig[order]{DB: repo.DB(), Table: "orders", Columns: []string{"id"},
				Values: func(o order) []any { return []any{o.ID} }})
			require.NoError(t, err)
			path := filepath.Join(dir, f.file)
			exec, err := runExport(t, repo, batch.ChunkConfig[order, order]{
				Reader: reader.FromSlice(items), Writer: tee{f.open(t, path), sw}, ChunkSize: 7,
				Skip: batch.MatchFunc(func(err error) bool { return strings.Contains(err.Error(), "CHECK") }),
			})
			require.NoError(t, err)
			steps, err := repo.StepExecutions(context.Background(), exec.ID)
			require.NoError(t, err)
			require.Equal(t, int64(4), steps[0].WriteSkipCount)
			got, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		})
	}
}

// TestFileWritersHeaderFooter checks the files of a few orders, of none, and
// a second run appending to the first's file.
func TestFileWritersHeaderFooter(t *testing.T) {
	for _, f := range fileFormats {
		t.Run(f.name, func(t *testing.T) {
			uninterrupted(t, f, orders(5), 2)
			empty := uninterrupted(t, f, nil, 2)
			if f.name == "json-array" {
				require.Equal(t, "[\n]\n", string(empty))
				var got []order
				require.NoError(t, json.Unmarshal(uninterrupted(t, f, orders(3), 2), &got))
				require.Equal(t, orders(3), got)
			}
		})
	}
	t.Run("literal", func(t *testing.T) {
		csv := uninterrupted(t, fileFormats[0], orders(5), 2)
		require.Equal(t, "# orders\nid,customer,cents\n1,Customer 1,137\n2,Customer 2,274\n3,Customer 3,411\n"+
			"4,Customer 4,548\n5,\"Customer 5, \"\"Ltd\"\"\",685\n# 5 orders\n", string(csv))
		fixed := uninterrupted(t, fileFormats[1], orders(2), 2)
		require.Equal(t, "    IDCUSTOMER               CENTS\n000001Customer 1               137\n"+
			"000002Customer 2               274\nTRAILER000000002\n", string(fixed))
	})
}

// TestFileWriterAppend runs two job instances on one file with Append: the
// header is written once, each run's footer follows its own items, and a
// restart of the second run keeps the first run's lines.
func TestFileWriterAppend(t *testing.T) {
	dir := t.TempDir()
	repo := openRepo(t, filepath.Join(dir, "batch.db"))
	path := filepath.Join(dir, "log.csv")
	newWriter := func() *writer.CSVFile[order] {
		w, err := writer.NewCSVFile(writer.CSVFileConfig[order]{
			Path: path, Append: true, Columns: []string{"id"},
			Fields: func(o order) ([]string, error) { return []string{strconv.Itoa(o.ID)}, nil },
			Footer: func(w io.Writer, n int64) error {
				_, err := fmt.Fprintf(w, "end,%d\n", n)
				return err
			},
		})
		require.NoError(t, err)
		return w
	}
	run := func(params batch.JobParameters, items []order, failAt int) error {
		step, err := batch.NewChunkStep("export", batch.ChunkConfig[order, order]{
			Reader: reader.FromSlice(items), Writer: newWriter(), ChunkSize: 2,
			Processor: batch.ProcessorFunc[order, order](func(_ context.Context, o order) (order, error) {
				if o.ID == failAt {
					return o, errors.New("boom")
				}
				return o, nil
			}),
		})
		require.NoError(t, err)
		job, err := batch.NewJob("export", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		engine, err := launcher.New(launcher.Config{Repository: repo})
		require.NoError(t, err)
		_, err = engine.Run(context.Background(), job, params)
		return err
	}
	day1 := batch.JobParameters{"day": batch.StringParam("1")}
	day2 := batch.JobParameters{"day": batch.StringParam("2")}
	require.NoError(t, run(day1, orders(3), 0))
	require.ErrorContains(t, run(day2, orders(5)[3:], 5), "boom")
	require.NoError(t, run(day2, orders(5)[3:], 0))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "id\n1\n2\n3\nend,3\n4\n5\nend,2\n", string(got))
}

// TestFixedWidthValueTooWide writes an order whose customer does not fit
// its column: the Write fails with an error naming the item and the column;
// with a skip policy for such errors the order is skipped and the others
// are written.
func TestFixedWidthValueTooWide(t *testing.T) {
	items := orders(6)
	items[3].Customer = "A customer whose name is far too long"
	f := fileFormats[1]
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprintf("skip=%v", skip), func(t *testing.T) {
			dir := t.TempDir()
			repo := openRepo(t, filepath.Join(dir, "batch.db"))
			path := filepath.Join(dir, f.file)
			cfg := batch.ChunkConfig[order, order]{Reader: reader.FromSlice(items), Writer: f.open(t, path), ChunkSize: 3}
			if skip {
				cfg.Skip = batch.MatchType[*writer.ItemError]()
			}
			exec, err := runExport(t, repo, cfg)
			got, rerr := os.ReadFile(path)
			require.NoError(t, rerr)
			if skip {
				require.NoError(t, err)
				require.Equal(t, string(f.expect(append(items[:3:3], items[4:]...))), string(got))
				steps, err := repo.StepExecutions(context.Background(), exec.ID)
				require.NoError(t, err)
				require.Equal(t, int64(1), steps[0].WriteSkipCount)
				return
			}
			require.ErrorIs(t, err, writer.ErrValueTooWide)
			var ie *writer.ItemError
			require.ErrorAs(t, err, &ie)
			require.Equal(t, 1, ie.Position, "the first item of the second chunk")
			require.Equal(t, path, ie.File)
			require.Equal(t, items[3], ie.Value)
			require.Contains(t, err.Error(), `item 1 of the chunk ({ID:4 Customer:A customer whose name is far too long Cents:548})`)
			require.Contains(t, err.Error(), `column "CUSTOMER": value "A customer whose name is far too long" is 37 characters`)
			require.Equal(t, string(f.expect(items[:3])), string(got), "the first chunk, committed")
		})
	}
}

// TestFileWriterItemErrors covers the other per-item errors: a Fields
// error, a record with the wrong number of fields, a Marshal that is not
// JSON.
func TestFileWriterItemErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	bad := errors.New("no customer")
	c, err := writer.NewCSVFile(writer.CSVFileConfig[order]{Path: filepath.Join(dir, "a.csv"), Columns: []string{"id", "customer"},
		Fields: func(o order) ([]string, error) {
			switch o.ID {
			case 2:
				return nil, bad
			case 3:
				return []string{"3"}, nil
			}
			return []string{strconv.Itoa(o.ID), o.Customer}, nil
		}})
	require.NoError(t, err)
	require.NoError(t, c.Open(ctx, batch.ExecutionContext{}))
	defer c.Close(ctx)
	err = c.Write(ctx, orders(2))
	require.ErrorIs(t, err, bad)
	require.ErrorContains(t, err, "writer: csv file "+filepath.Join(dir, "a.csv")+": item 2 of the chunk")
	err = c.Write(ctx, orders(3)[2:])
	require.ErrorContains(t, err, "item 1 of the chunk ({ID:3 Customer:Customer 3 Cents:411}): 1 fields for 2 columns")

	j, err := writer.NewJSONLinesFile(writer.JSONLinesFileConfig[order]{Path: filepath.Join(dir, "a.jsonl"),
		Marshal: func(o order) ([]byte, error) { return []byte("{oops"), nil }})
	require.NoError(t, err)
	require.NoError(t, j.Open(ctx, batch.ExecutionContext{}))
	defer j.Close(ctx)
	var ie *writer.ItemError
	require.ErrorAs(t, j.Write(ctx, orders(1)), &ie)

	// An item whose Write failed is not written by the Update after it.
	ec := batch.ExecutionContext{}
	require.NoError(t, c.Update(ctx, ec))
	b, err := os.ReadFile(filepath.Join(dir, "a.csv"))
	require.NoError(t, err)
	require.Equal(t, "id,customer\n", string(b))
}

// TestFileWriterCutsBack calls the stream methods as a step does when a
// commit fails after Update: the next Update, even with nothing to write,
// and a restart's Open make the file that of the committed checkpoint.
func TestFileWriterCutsBack(t *testing.T) {
	ctx := context.Background()
	for _, f := range fileFormats {
		t.Run(f.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), f.file)
			items := orders(5)
			w := f.open(t, path)
			committed := batch.ExecutionContext{}
			require.NoError(t, w.Open(ctx, committed))
			require.NoError(t, w.Update(ctx, committed))
			requireFile(t, path, f.expect(nil))
			attempt := committed.Clone()
			require.NoError(t, w.Write(ctx, items[:2]))
			require.NoError(t, w.Update(ctx, attempt))
			committed = attempt
			requireFile(t, path, f.expect(items[:2]))

			// A commit that fails after its Update, then one without items.
			require.NoError(t, w.Write(ctx, items[2:4]))
			require.NoError(t, w.Update(ctx, committed.Clone()))
			requireFile(t, path, f.expect(items[:4]))
			attempt = committed.Clone()
			require.NoError(t, w.Update(ctx, attempt))
			requireFile(t, path, f.expect(items[:2]))
			require.Equal(t, committed, attempt)

			// A commit that fails after its Update, then a crash.
			require.NoError(t, w.Write(ctx, items[2:]))
			require.NoError(t, w.Update(ctx, committed.Clone()))
			requireFile(t, path, f.expect(items))
			require.NoError(t, w.Close(ctx))
			w = f.open(t, path)
			require.NoError(t, w.Open(ctx, committed))
			requireFile(t, path, f.expect(items[:2]))
			require.NoError(t, w.Write(ctx, items[2:]))
			require.NoError(t, w.Update(ctx, committed))
			requireFile(t, path, f.expect(items))
			require.NoError(t, w.Close(ctx))
		})
	}
}

func requireFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
}

// TestFileWriterOpenErrors: a restart whose file is shorter than its
// checkpoint, or gone, fails Open rather than writing a file with a hole;
// invalid configurations are refused.
func TestFileWriterOpenErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "out.jsonl")
	w, err := writer.NewJSONLinesFile(writer.JSONLinesFileConfig[order]{Path: path})
	require.NoError(t, err)
	ec := batch.ExecutionContext{}
	require.NoError(t, w.Open(ctx, ec))
	require.NoError(t, w.Write(ctx, orders(3)))
	require.NoError(t, w.Update(ctx, ec))
	require.NoError(t, w.Close(ctx))
	require.Equal(t, json.RawMessage("3"), ec["writer.out.jsonl.written"])

	require.NoError(t, os.Truncate(path, 10))
	require.ErrorContains(t, w.Open(ctx, ec), "has 10 bytes, fewer than the")
	require.NoError(t, os.Remove(path))
	require.ErrorIs(t, w.Open(ctx, ec), os.ErrNotExist)
	require.ErrorContains(t, w.Update(ctx, ec), "not open")

	_, err = writer.NewCSVFile(writer.CSVFileConfig[order]{Path: path})
	require.ErrorContains(t, err, "no Fields")
	_, err = writer.NewCSVFile(writer.CSVFileConfig[order]{Fields: func(order) ([]string, error) { return nil, nil }})
	require.ErrorContains(t, err, "no Path")
	_, err = writer.NewCSVFile(writer.CSVFileConfig[order]{Path: path, Comma: '"', Fields: func(order) ([]string, error) { return nil, nil }})
	require.ErrorContains(t, err, "invalid Comma")
	fields := func(order) ([]string, error) { return nil, nil }
	for _, cols := range [][]writer.FixedWidthColumn{nil, {{Name: "a"}}, {{Width: 3}}, {{Name: "a", Width: 1, Align: 7}}} {
		_, err = writer.NewFixedWidthFile(writer.FixedWidthFileConfig[order]{Path: path, Columns: cols, Fields: fields})
		require.Error(t, err, "%+v", cols)
	}
	_, err = writer.NewFixedWidthFile(writer.FixedWidthFileConfig[order]{Path: path, HeaderRow: true, Fields: fields,
		Columns: []writer.FixedWidthColumn{{Name: "CUSTOMER", Width: 4}}})
	require.ErrorIs(t, err, writer.ErrValueTooWide)
	_, err = writer.NewJSONArrayFile(writer.JSONArrayFileConfig[order]{})
	require.ErrorContains(t, err, "no Path")
}

// The crash test: a separate process runs the export with all four
// writers and is killed with SIGKILL at random moments, then restarted,
// until the job completes.

const (
	crashDirEnv = "CHUNKWISE_FILE_CRASH_DIR"
	crashOrders = 400
	crashChunk  = 5
	crashLease  = 300 * time.Millisecond
)

// TestFileWritersKilledChild is the process that TestFileWritersKilled
// kills: it runs the export, with the four writers, to its end.
func TestFileWritersKilledChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("run by TestFileWritersKilled")
	}
	repo := openRepo(t, filepath.Join(dir, "batch.db"))
	var out tee
	for _, f := range fileFormats {
		out = append(out, f.open(t, filepath.Join(dir, f.file)))
	}
	step, err := batch.NewChunkStep("export", batch.ChunkConfig[order, order]{
		Reader: reader.FromSlice(orders(crashOrders)), Writer: out, ChunkSize: crashChunk,
		Processor: batch.ProcessorFunc[order, order](func(_ context.Context, o order) (order, error) {
			time.Sleep(50 * time.Microsecond) // so that kills land anywhere
			return o, nil
		}),
	})
	require.NoError(t, err)
	job, err := batch.NewJob("export", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	engine, err := launcher.New(launcher.Config{Repository: repo, Lease: crashLease})
	require.NoError(t, err)
	if _, err := engine.Run(context.Background(), job, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if errors.Is(err, batch.ErrJobRunning) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

// TestFileWritersKilled kills the export process with SIGKILL at random
// moments — reading, writing files, committing — and restarts it each time.
// After every kill each file is the complete file of some first orders (the
// JSON array parses); after the last run each is byte for byte the file of
// an uninterrupted run.
func TestFileWritersKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	items := orders(crashOrders)
	dir := t.TempDir()
	db, err := sqlx.Open("sqlite", sqlite.DSN(filepath.Join(dir, "batch.db")))
	require.NoError(t, err)
	defer db.Close()
	progress := func() int64 {
		var n int64
		if err := db.Get(&n, `SELECT COALESCE(SUM(write_count), 0) FROM batch_step_execution`); err != nil {
			return 0 // the first run creates the tables
		}
		return n
	}
	completed := func() bool {
		var n int
		err := db.Get(&n, `SELECT COUNT(*) FROM batch_job_execution WHERE status = 'COMPLETED'`)
		return err == nil && n > 0
	}
	command := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestFileWritersKilledChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		return cmd
	}
	// checkFiles requires every file to be the complete file of the first
	// k orders, for some k, and returns the k of each.
	checkFiles := func() []int {
		var ks []int
		for _, f := range fileFormats {
			b, err := os.ReadFile(filepath.Join(dir, f.file))
			require.NoError(t, err)
			if f.name == "json-array" {
				var got []order
				require.NoError(t, json.Unmarshal(b, &got), "the JSON array parses:\n%s", b)
			}
			k := -1
			for n := 0; n <= len(items) && k < 0; n++ {
				if bytes.Equal(b, f.expect(items[:n])) {
					k = n
				}
			}
			require.GreaterOrEqual(t, k, 0, "%s is the complete file of some first orders:\n%s", f.file, b)
			ks = append(ks, k)
		}
		return ks
	}

	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	const kills = 12
	var points []string
	for i := 0; i < kills; i++ {
		before := progress()
		target := max(before+1, int64(crashOrders*(float64(i)+rng.Float64())/kills))
		cmd := command()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		require.NoError(t, cmd.Start())
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		done := false
		deadline := time.Now().Add(time.Minute)
		for !done && progress() < target {
			select {
			case err := <-exited:
				require.NoError(t, err, "the run ended before its kill point:\n%s", stderr.String())
				done = true
			case <-time.After(time.Millisecond):
			}
			require.True(t, time.Now().Before(deadline), "no progress to %d", target)
		}
		if done {
			break
		}
		time.Sleep(time.Duration(rng.Int64N(int64(10 * time.Millisecond))))
		_ = cmd.Process.Kill()
		if err := <-exited; cmd.ProcessState.Exited() {
			// It completed between the last look and the kill.
			require.NoError(t, err, stderr.String())
			break
		}
		ks := checkFiles()
		points = append(points, fmt.Sprintf("%d%v", progress(), ks))
		time.Sleep(crashLease + crashLease/4)
	}
	t.Logf("killed at committed orders[and the orders in each file]: %s", strings.Join(points, " "))
	for attempt := 0; !completed(); attempt++ {
		cmd := command()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if err == nil {
			break
		}
		require.Equal(t, 3, cmd.ProcessState.ExitCode(), "the last run: %s", stderr.String())
		require.Less(t, attempt, 5, "still running: %s", stderr.String())
		time.Sleep(crashLease)
	}
	require.GreaterOrEqual(t, len(points), kills/2, "most kills interrupted a run")
	for _, f := range fileFormats {
		want := uninterrupted(t, f, items, crashChunk)
		got, err := os.ReadFile(filepath.Join(dir, f.file))
		require.NoError(t, err)
		require.Equal(t, string(want), string(got), f.file)
	}
}

// TestFileWritersRefuseDryRuns: the file writers and the reject file, and a
// reject table with a transaction of its own, refuse to open in a dry run
// (batch.ErrDryRun), and create no file.
func TestFileWritersRefuseDryRuns(t *testing.T) {
	dir := t.TempDir()
	fields := func(n int) ([]string, error) { return []string{strconv.Itoa(n)}, nil }
	var streams []batch.ItemStream
	add := func(s batch.ItemStream, err error) {
		require.NoError(t, err)
		streams = append(streams, s)
	}
	add(writer.NewCSVFile(writer.CSVFileConfig[int]{Path: filepath.Join(dir, "a.csv"), Columns: []string{"n"}, Fields: fields}))
	add(writer.NewFixedWidthFile(writer.FixedWidthFileConfig[int]{Path: filepath.Join(dir, "b.txt"),
		Columns: []writer.FixedWidthColumn{{Name: "n", Width: 5}}, Fields: fields}))
	add(writer.NewJSONLinesFile(writer.JSONLinesFileConfig[int]{Path: filepath.Join(dir, "c.jsonl")}))
	add(writer.NewJSONArrayFile(writer.JSONArrayFileConfig[int]{Path: filepath.Join(dir, "d.json")}))
	add(writer.NewRejectFile[int, int](writer.RejectFileConfig{Path: filepath.Join(dir, "e.jsonl")}))
	db := sqlx.MustOpen("sqlite", filepath.Join(dir, "f.db"))
	defer db.Close()
	add(writer.NewRejectTable[int, int](writer.RejectTableConfig{DB: db, OwnTransaction: true}))
	ctx := batch.WithDryRun(context.Background())
	for _, s := range streams {
		err := s.Open(ctx, batch.ExecutionContext{})
		require.ErrorIs(t, err, batch.ErrDryRun, "%T", s)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.Equal(t, "f.db", e.Name(), "no file written")
	}
}
