package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jmoiron/sqlx"
	"golang.org/x/sync/errgroup"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/exampletest"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/postgres"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

// The side-by-side benchmarks of the import: chunkwise against a loader
// written by hand for the same work — read the CSV, parse and check each
// row, load it in transactions of `chunk` rows with the progress saved in
// each — alternated in one invocation, round after round, each round on a
// fresh table. They report the median rows/s of each side and the median of
// the per-round ratios (chunkwise / by hand). BENCH_ROWS (default
// 1,000,000) and BENCH_ROUNDS (default 5) set the size; make bench runs
// them.

func benchEnv(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}

// benchCSV writes the people file of n rows once per process.
var benchFiles = map[int]string{}

func benchCSV(b *testing.B, n int) string {
	if p, ok := benchFiles[n]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "csvimport-bench")
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "people.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"id", "name", "email", "amount", "created_at"})
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		_ = w.Write([]string{strconv.Itoa(i), fmt.Sprintf("Person, %d", i), fmt.Sprintf("p%d@example.com", i),
			fmt.Sprintf("%d.%02d", i%10000, i%100), base.Add(time.Duration(i) * time.Minute).Format(time.RFC3339)})
	}
	w.Flush()
	if err := errorsJoin(w.Error(), f.Close()); err != nil {
		b.Fatal(err)
	}
	benchFiles[n] = path
	return path
}

func errorsJoin(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// sideBySide runs rounds of (the other side, chunkwise), alternating which
// goes first, and reports the medians, the other side's rows/s under its
// name. Each side returns the time its load took, without the setting up of
// its tables.
func sideBySide(b *testing.B, rows, rounds int, other string, byHand, chunkwise func() (time.Duration, error)) {
	sidesBySide(b, rows, rounds, [2]string{other, "chunkwise"}, byHand, chunkwise)
}

// sidesBySide is sideBySide with both sides named: first and second.
func sidesBySide(b *testing.B, rows, rounds int, names [2]string, byHand, chunkwise func() (time.Duration, error)) {
	var hand, cw, ratio []float64
	for r := 0; r < rounds; r++ {
		sides := []func() (time.Duration, error){byHand, chunkwise}
		if r%2 == 1 {
			sides = []func() (time.Duration, error){chunkwise, byHand}
		}
		var secs [2]float64
		for i, side := range sides {
			took, err := side()
			if err != nil {
				b.Fatal(err)
			}
			secs[i] = took.Seconds()
		}
		if r%2 == 1 {
			secs[0], secs[1] = secs[1], secs[0]
		}
		hand = append(hand, float64(rows)/secs[0])
		cw = append(cw, float64(rows)/secs[1])
		ratio = append(ratio, secs[0]/secs[1])
	}
	b.ReportMetric(median(hand), names[0]+"-rows/s")
	b.ReportMetric(median(cw), names[1]+"-rows/s")
	b.ReportMetric(median(ratio), "ratio")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkImportPostgres: the import into PostgreSQL, the repository in
// the same database, through the library API, against a loader by hand
// that COPYs each chunk and updates a progress row in the same
// transaction. With driver=pgx both sides use pgx (chunkwise its default
// repository, the loader a pgx.Conn and CopyFrom: the fastest way by
// hand); with driver=pq both use lib/pq.
func BenchmarkImportPostgres(b *testing.B) {
	rows, rounds := benchEnv(b, "BENCH_ROWS", 1_000_000), benchEnv(b, "BENCH_ROUNDS", 5)
	input := benchCSV(b, rows)
	for _, c := range []struct {
		driver string
		importOptions
	}{
		{postgres.DriverPgx, importOptions{chunk: 100}}, {postgres.DriverPgx, importOptions{chunk: 1000}},
		{postgres.DriverPgx, importOptions{chunk: 10_000}},
		{postgres.DriverPgx, importOptions{chunk: 1000, noReadAhead: true}},
		{postgres.DriverPQ, importOptions{chunk: 1000}},
		{postgres.DriverPgx, importOptions{chunk: 1000, partitions: 2}}, // against the same loader by hand, sequential
	} {
		name := "driver=" + c.driver + "/" + c.name()
		b.Run(name, func(b *testing.B) {
			dsn := pgtest.DSN(b)
			db := sqlx.MustOpen("postgres", dsn)
			b.Cleanup(func() { _ = db.Close() })
			byHand := func() (time.Duration, error) { return copyByHand(db, input, c.chunk) }
			if c.driver == postgres.DriverPgx {
				byHand = func() (time.Duration, error) { return copyFromByHand(db, dsn, input, c.chunk) }
			}
			for i := 0; i < b.N; i++ {
				sideBySide(b, rows, rounds, "hand", byHand,
					func() (time.Duration, error) {
						return importWithChunkwise(dsn, db, c.driver, input, c.importOptions)
					})
			}
		})
	}
}

// BenchmarkImportPostgresByHandInParts: the loader by hand split in two
// parts on two connections at once, against the same loader sequential:
// how much faster two connections can load the file on this machine at
// all — the ceiling of chunkwise's partitions=2 against the sequential
// loader.
func BenchmarkImportPostgresByHandInParts(b *testing.B) {
	rows, rounds := benchEnv(b, "BENCH_ROWS", 1_000_000), benchEnv(b, "BENCH_ROUNDS", 5)
	input := benchCSV(b, rows)
	dsn := pgtest.DSN(b)
	db := sqlx.MustOpen("postgres", dsn)
	b.Cleanup(func() { _ = db.Close() })
	for i := 0; i < b.N; i++ {
		sidesBySide(b, rows, rounds, [2]string{"sequential", "parts"},
			func() (time.Duration, error) { return copyFromByHand(db, dsn, input, 1000) },
			func() (time.Duration, error) { return copyFromInParts(db, dsn, input, 1000, 2) })
	}
}

// BenchmarkImportSQLite: the same on the embedded default, against a
// loader by hand on the same driver with a prepared multi-row INSERT.
func BenchmarkImportSQLite(b *testing.B) {
	rows, rounds := benchEnv(b, "BENCH_ROWS", 1_000_000), benchEnv(b, "BENCH_ROUNDS", 5)
	input := benchCSV(b, rows)
	for _, o := range []importOptions{{chunk: 1000}, {chunk: 1000, noReadAhead: true}} {
		b.Run(o.name(), func(b *testing.B) {
			dir := b.TempDir()
			n := 0
			for i := 0; i < b.N; i++ {
				sideBySide(b, rows, rounds, "hand",
					func() (time.Duration, error) {
						n++
						return insertByHand(filepath.Join(dir, fmt.Sprintf("hand%d.db", n)), input, o.chunk)
					},
					func() (time.Duration, error) {
						n++
						path := filepath.Join(dir, fmt.Sprintf("cw%d.db", n))
						repo, err := sqlite.Open(context.Background(), path, sqlite.Config{})
						if err != nil {
							return 0, err
						}
						defer repo.Close()
						if err := repo.Migrate(context.Background()); err != nil {
							return 0, err
						}
						return timed(func() error { return runImport(repo, repo.DB(), input, o) })
					})
			}
		})
	}
}

// timed returns how long fn took.
func timed(fn func() error) (time.Duration, error) {
	start := time.Now()
	err := fn()
	return time.Since(start), err
}

// importWithChunkwise runs the csvimport job on a fresh schema of the
// database holding the migrated repository.
func importWithChunkwise(dsn string, db *sqlx.DB, driver, input string, o importOptions) (time.Duration, error) {
	schema := fmt.Sprintf("cw_%d", time.Now().UnixNano())
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		return 0, err
	}
	defer db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`) //nolint:errcheck
	repo, err := postgres.Open(context.Background(), pgtest.WithSearchPath(dsn, schema), postgres.Config{Driver: driver})
	if err != nil {
		return 0, err
	}
	defer repo.Close()
	if err := repo.Migrate(context.Background()); err != nil {
		return 0, err
	}
	return timed(func() error { return runImport(repo, repo.DB(), input, o) })
}

// importOptions are the job parameters a benchmark varies.
type importOptions struct {
	chunk, partitions int // partitions 0 is 1
	noReadAhead       bool
}

// name names a sub-benchmark after o: "chunk=1000", then what is not the
// program's default ("/partitions=2", "/readahead=off").
func (o importOptions) name() string {
	name := fmt.Sprintf("chunk=%d", o.chunk)
	if o.partitions > 1 {
		name += fmt.Sprintf("/partitions=%d", o.partitions)
	}
	if o.noReadAhead {
		name += "/readahead=off"
	}
	return name
}

// runImport builds the job as the program does and runs it.
func runImport(repo repository.JobRepository, db *sqlx.DB, input string, o importOptions) error {
	params := batch.JobParameters{"input": batch.StringParam(input), "chunk": batch.IntParam(int64(o.chunk)),
		"partitions": batch.IntParam(int64(max(o.partitions, 1))), "readahead": batch.BoolParam(!o.noReadAhead)}
	params, err := batch.ParamSpecs(parameters).Apply(params)
	if err != nil {
		return err
	}
	cfg, err := newJob(launcher.Env{DB: db, Repository: repo, Parameters: params})
	if err != nil {
		return err
	}
	job, err := batch.NewJob(jobName, cfg)
	if err != nil {
		return err
	}
	l, err := launcher.New(launcher.Config{Repository: repo})
	if err != nil {
		return err
	}
	_, err = l.Run(context.Background(), job, params)
	return err
}

// handPerson is a row as the loader by hand parses it.
type handPerson struct {
	id      int64
	name    string
	email   string
	amount  float64
	created time.Time
}

// readByHand reads the file and calls load with each chunk of parsed rows
// and the number of rows loaded after it.
func readByHand(input string, chunk int, load func(rows []handPerson, done int64) error) error {
	f, err := os.Open(input)
	if err != nil {
		return err
	}
	defer f.Close()
	return parseByHand(f, true, chunk, load)
}

// parseByHand is readByHand on r, whose first line is a header if header.
func parseByHand(in io.Reader, header bool, chunk int, load func(rows []handPerson, done int64) error) error {
	r := csv.NewReader(in)
	r.ReuseRecord = true
	if header {
		if _, err := r.Read(); err != nil {
			return err
		}
	}
	buf := make([]handPerson, 0, chunk)
	var done int64
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		var p handPerson
		if p.id, err = strconv.ParseInt(rec[0], 10, 64); err != nil {
			return err
		}
		p.name, p.email = strings.Clone(rec[1]), strings.Clone(rec[2])
		if p.amount, err = strconv.ParseFloat(rec[3], 64); err != nil {
			return err
		}
		if p.created, err = time.Parse(time.RFC3339, rec[4]); err != nil {
			return err
		}
		if p.email == "" {
			return fmt.Errorf("id %d: empty email", p.id)
		}
		buf = append(buf, p)
		if len(buf) == chunk {
			done += int64(len(buf))
			if err := load(buf, done); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	if len(buf) > 0 {
		return load(buf, done+int64(len(buf)))
	}
	return nil
}

// handTable creates the loader's table: the example's, named hand_people.
var handTable = strings.Replace(createTable, "IF NOT EXISTS people", "hand_people", 1)

// freshHandTables drops the loader's table, made by each load, and makes
// its progress table anew with a row at 0 for each job.
func freshHandTables(db *sqlx.DB, jobs ...string) error {
	for _, q := range []string{`DROP TABLE IF EXISTS hand_people`, `DROP TABLE IF EXISTS hand_progress`,
		`CREATE TABLE hand_progress (job TEXT PRIMARY KEY, done BIGINT NOT NULL)`} {
		if _, err := db.Exec(q); err != nil {
			return err
		}
	}
	for _, job := range jobs {
		if _, err := db.Exec(`INSERT INTO hand_progress VALUES ($1, 0)`, job); err != nil {
			return err
		}
	}
	return nil
}

// copyByHand loads the file into a fresh table with a COPY per chunk and
// the progress row updated in the same transaction.
func copyByHand(db *sqlx.DB, input string, chunk int) (time.Duration, error) {
	if err := freshHandTables(db, "import"); err != nil {
		return 0, err
	}
	return timed(func() error {
		// The table is made by the load, as the job's first step does.
		if _, err := db.Exec(handTable); err != nil {
			return err
		}
		return copyChunks(db, input, chunk)
	})
}

func copyChunks(db *sqlx.DB, input string, chunk int) error {
	return readByHand(input, chunk, func(rows []handPerson, done int64) error {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck
		st, err := tx.Prepare(`COPY hand_people (id, name, email, amount, created_at) FROM STDIN`)
		if err != nil {
			return err
		}
		for _, p := range rows {
			if _, err := st.Exec(p.id, p.name, p.email, p.amount, p.created); err != nil {
				return err
			}
		}
		if _, err := st.Exec(); err != nil {
			return err
		}
		if err := st.Close(); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE hand_progress SET done = $1 WHERE job = 'import'`, done); err != nil {
			return err
		}
		return tx.Commit()
	})
}

// copyFromByHand is copyByHand on a pgx connection, with pgx's CopyFrom.
func copyFromByHand(db *sqlx.DB, dsn, input string, chunk int) (time.Duration, error) {
	if err := freshHandTables(db, "import"); err != nil {
		return 0, err
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	return timed(func() error {
		if _, err := conn.Exec(ctx, handTable); err != nil {
			return err
		}
		return readByHand(input, chunk, func(rows []handPerson, done int64) error {
			return copyFromChunk(ctx, conn, rows, "import", done)
		})
	})
}

// copyFromChunk COPYs rows into hand_people and sets job's progress row to
// done, in one transaction.
func copyFromChunk(ctx context.Context, conn *pgx.Conn, rows []handPerson, job string, done int64) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"hand_people"}, []string{"id", "name", "email", "amount", "created_at"},
		pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
			p := &rows[i]
			return []any{p.id, p.name, p.email, p.amount, p.created}, nil
		}))
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE hand_progress SET done = $1 WHERE job = $2`, done, job); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// copyFromInParts is copyFromByHand split in parts written at once: the
// file cut into parts at line ends, each parsed on its goroutine and
// COPYed on its own pgx connection, with its own progress row — the
// partitioned load written by hand, for what two connections can reach on
// the machine at all.
func copyFromInParts(db *sqlx.DB, dsn, input string, chunk, parts int) (time.Duration, error) {
	jobs := make([]string, parts)
	for i := range jobs {
		jobs[i] = fmt.Sprintf("import-%d", i)
	}
	if err := freshHandTables(db, jobs...); err != nil {
		return 0, err
	}
	cuts, err := cutLines(input, parts)
	if err != nil {
		return 0, err
	}
	ctx := context.Background()
	conns := make([]*pgx.Conn, parts)
	for i := range conns {
		if conns[i], err = pgx.Connect(ctx, dsn); err != nil {
			return 0, err
		}
		defer conns[i].Close(ctx)
	}
	return timed(func() error {
		if _, err := db.Exec(handTable); err != nil {
			return err
		}
		var g errgroup.Group
		for i, conn := range conns {
			g.Go(func() error {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				part := io.NewSectionReader(f, cuts[i], cuts[i+1]-cuts[i])
				return parseByHand(part, i == 0, chunk, func(rows []handPerson, done int64) error {
					return copyFromChunk(ctx, conn, rows, jobs[i], done)
				})
			})
		}
		return g.Wait()
	})
}

// cutLines returns parts+1 offsets into the file: 0, the line ends nearest
// after each parts-th of its size, and its size.
func cutLines(input string, parts int) ([]int64, error) {
	f, err := os.Open(input)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	cuts := []int64{0}
	buf := make([]byte, 4096)
	for i := 1; i < parts; i++ {
		at := st.Size() * int64(i) / int64(parts)
		n, err := f.ReadAt(buf, at)
		if err != nil && err != io.EOF {
			return nil, err
		}
		nl := strings.IndexByte(string(buf[:n]), '\n')
		if nl < 0 {
			return nil, fmt.Errorf("%s: no line end after byte %d", input, at)
		}
		cuts = append(cuts, at+int64(nl)+1)
	}
	return append(cuts, st.Size()), nil
}

// insertByHand loads the file into a fresh SQLite file with a prepared
// multi-row INSERT per chunk and the progress row updated in the same
// transaction, on the driver and settings the repository uses.
func insertByHand(path, input string, chunk int) (time.Duration, error) {
	db, err := sqlx.Open("sqlite", sqlite.DSN(path))
	if err != nil {
		return 0, err
	}
	defer db.Close()
	for _, q := range []string{`CREATE TABLE progress (job TEXT PRIMARY KEY, done BIGINT NOT NULL)`,
		`INSERT INTO progress VALUES ('import', 0)`} {
		if _, err := db.Exec(q); err != nil {
			return 0, err
		}
	}
	return timed(func() error {
		if _, err := db.Exec(createTable); err != nil {
			return err
		}
		return insertChunks(db, input, chunk)
	})
}

func insertChunks(db *sqlx.DB, input string, chunk int) error {
	stmts := map[int]*sqlx.Stmt{}
	defer func() {
		for _, st := range stmts {
			_ = st.Close()
		}
	}()
	const perStmt = 6000 / 5 // rows per statement, under SQLite's parameter limit
	return readByHand(input, chunk, func(rows []handPerson, done int64) error {
		tx, err := db.Beginx()
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck
		for len(rows) > 0 {
			n := min(len(rows), perStmt)
			st, ok := stmts[n]
			if !ok {
				q := "INSERT INTO people (id, name, email, amount, created_at) VALUES " +
					strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?), ", n), ", ")
				if st, err = db.Preparex(q); err != nil {
					return err
				}
				stmts[n] = st
			}
			args := make([]any, 0, 5*n)
			for _, p := range rows[:n] {
				args = append(args, p.id, p.name, p.email, p.amount, p.created)
			}
			if _, err := tx.Stmtx(st).Exec(args...); err != nil {
				return err
			}
			rows = rows[n:]
		}
		if _, err := tx.Exec(`UPDATE progress SET done = ? WHERE job = 'import'`, done); err != nil {
			return err
		}
		return tx.Commit()
	})
}

// BenchmarkLargeInput keeps two properties of the shipped program that a
// change could lose without a test noticing: its memory does not grow with
// the input (peak RSS of an import of BENCH_LARGE_ROWS, default
// 10,000,000, against one of a tenth of that; goal ≤ 1.1×), and a restart
// near the end of a large input resumes at once (from the process's start
// to its first new commit, after a failure at 90 % of the rows; goal
// ≤ 1 s). On the embedded SQLite default.
func BenchmarkLargeInput(b *testing.B) {
	large := benchEnv(b, "BENCH_LARGE_ROWS", 10_000_000)
	small := large / 10
	for i := 0; i < b.N; i++ {
		rss := map[int]float64{}
		for _, n := range []int{small, large} {
			path := filepath.Join(b.TempDir(), "batch.db")
			cmd := exampletest.Command(binary, path, nil, "run", "input="+benchCSV(b, n), "chunk=1000")
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("import of %d rows: %v\n%s", n, err, out)
			}
			rss[n] = float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024 // KiB to MiB
		}
		b.ReportMetric(rss[small], "small-MiB")
		b.ReportMetric(rss[large], "large-MiB")
		b.ReportMetric(rss[large]/rss[small], "rss-ratio")

		// A failure at 90 %, then the restart, timed to its first commit.
		path := filepath.Join(b.TempDir(), "batch.db")
		input := benchCSV(b, large)
		failAt := fmt.Sprintf("FAIL_AT=%d", large*9/10+1)
		cmd := exampletest.Command(binary, path, []string{failAt}, "run", "input="+input, "chunk=1000")
		if out, err := cmd.CombinedOutput(); err == nil {
			b.Fatalf("the run with %s did not fail:\n%s", failAt, out)
		}
		db, err := sqlx.Open("sqlite", sqlite.DSN(path))
		if err != nil {
			b.Fatal(err)
		}
		written := func() int64 {
			var n int64
			_ = db.Get(&n, `SELECT COALESCE(SUM(write_count), 0) FROM batch_step_execution WHERE step_name = 'import'`)
			return n
		}
		before := written()
		restart := exampletest.Command(binary, path, nil, "run", "input="+input, "chunk=1000")
		start := time.Now()
		if err := restart.Start(); err != nil {
			b.Fatal(err)
		}
		for written() == before {
			if time.Since(start) > time.Minute {
				b.Fatal("no commit within a minute of the restart")
			}
			time.Sleep(2 * time.Millisecond)
		}
		firstCommit := time.Since(start)
		if err := restart.Wait(); err != nil {
			b.Fatalf("restart: %v", err)
		}
		_ = db.Close()
		b.ReportMetric(firstCommit.Seconds(), "restart-to-first-commit-s")
	}
}

// BenchmarkRiver: the shipped program against the same job written with
// River on pgx (the riverload module beside this file: a resumable cursor
// step, a CopyFrom of each chunk plus the cursor in one transaction), both
// as whole processes on a fresh schema whose tables each has created
// beforehand (a deployment migrates once), alternated. BENCH_RIVER_ROWS
// (default 100,000) rows, chunk 1000. The ratio is chunkwise's rows/s over
// River's.
func BenchmarkRiver(b *testing.B) {
	rows, rounds := benchEnv(b, "BENCH_RIVER_ROWS", 100_000), benchEnv(b, "BENCH_ROUNDS", 5)
	input := benchCSV(b, rows)
	riverload := filepath.Join(b.TempDir(), "riverload")
	build := exec.Command("go", "build", "-o", riverload, ".")
	build.Dir = "riverload"
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build riverload: %v\n%s", err, out)
	}
	server := pgtest.ServerDSN(b)
	admin := sqlx.MustOpen("postgres", server)
	b.Cleanup(func() { _ = admin.Close() })
	// fresh returns the DSN of a new schema, dropped at the end.
	fresh := func(prefix string) (string, error) {
		schema := fmt.Sprintf("%s_%d", prefix, time.Now().UnixNano())
		if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
			return "", err
		}
		b.Cleanup(func() { _, _ = admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`) })
		return pgtest.WithSearchPath(server, schema), nil
	}
	// process runs a prepared command and returns how long it took, after
	// checking that it loaded every row.
	process := func(dsn string, setup, load *exec.Cmd) (time.Duration, error) {
		if out, err := setup.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%s: %v\n%s", setup, err, out)
		}
		took, err := timed(func() error {
			if out, err := load.CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v\n%s", load, err, out)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		db, err := sqlx.Open("postgres", dsn)
		if err != nil {
			return 0, err
		}
		defer db.Close()
		var n int
		if err := db.Get(&n, `SELECT COUNT(*) FROM people`); err != nil || n != rows {
			return 0, fmt.Errorf("%d rows loaded of %d (%v)", n, rows, err)
		}
		return took, nil
	}
	for i := 0; i < b.N; i++ {
		sideBySide(b, rows, rounds, "river",
			func() (time.Duration, error) {
				dsn, err := fresh("river")
				if err != nil {
					return 0, err
				}
				return process(dsn, exec.Command(riverload, "-dsn", dsn, "-migrate-only"),
					exec.Command(riverload, "-dsn", dsn, "-input", input, "-chunk", "1000"))
			},
			func() (time.Duration, error) {
				dsn, err := fresh("cw")
				if err != nil {
					return 0, err
				}
				return process(dsn, exampletest.Command(binary, dsn, nil, "migrate"),
					exampletest.Command(binary, dsn, nil, "run", "input="+input, "chunk=1000"))
			})
	}
}
