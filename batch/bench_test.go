package batch_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/memory"
	"github.com/chunkwise/chunkwise/repository/postgres"
	"github.com/chunkwise/chunkwise/writer"
)

// BenchmarkEngineOverhead runs 100,000 items through a chunk step on the
// memory repository with a writer that does nothing: what the engine itself
// costs per item and per chunk.
func BenchmarkEngineOverhead(b *testing.B) {
	const n = 100_000
	items := make([]int, n)
	for _, size := range []int{100, 1000} {
		b.Run(map[int]string{100: "chunk=100", 1000: "chunk=1000"}[size], func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				repo := memory.New()
				step, _ := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
					Reader: reader.FromSlice(items),
					Processor: batch.ProcessorFunc[int, int](func(_ context.Context, v int) (int, error) {
						return v + 1, nil
					}),
					Writer:    batch.WriterFunc[int](func(context.Context, []int) error { return nil }),
					ChunkSize: size,
				})
				job, _ := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
				engine := mustLauncher(b, launcher.Config{Repository: repo})
				if _, err := engine.Run(context.Background(), job, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}

// BenchmarkCPUBound: a step whose processor burns CPU (SHA-256 applied 100
// times to each item), run as one partition and as two, and with one
// processing goroutine and two (ProcessWorkers), without and with
// ReadAhead, alternated round after round; it reports the median of the
// per-round speed-ups. On two cores the goal is 1.8× for each.
func BenchmarkCPUBound(b *testing.B) {
	const (
		items  = 10_000
		rounds = 5
	)
	hash := batch.ProcessorFunc[int, [32]byte](func(_ context.Context, v int) ([32]byte, error) {
		var sum [32]byte
		binary.LittleEndian.PutUint64(sum[:], uint64(v))
		for range 100 {
			sum = sha256.Sum256(sum[:])
		}
		return sum, nil
	})
	discard := batch.WriterFunc[[32]byte](func(context.Context, [][32]byte) error { return nil })
	chunkStep := func(name string, from, to, workers int, readAhead bool) (batch.Step, error) {
		return batch.NewChunkStep(name, batch.ChunkConfig[int, [32]byte]{
			Reader: reader.FromSlice(seq(from, to)), Processor: hash, Writer: discard,
			ChunkSize: 100, ProcessWorkers: workers, ReadAhead: readAhead,
		})
	}
	run := func(step batch.Step) time.Duration {
		job, err := batch.NewJob("cpu", batch.JobConfig{Steps: []batch.Step{step}})
		if err != nil {
			b.Fatal(err)
		}
		l := mustLauncher(b, launcher.Config{Repository: memory.New()})
		start := time.Now()
		if _, err := l.Run(context.Background(), job, nil); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	partitioned := func(k int) batch.Step {
		step, err := batch.NewPartitionStep("cpu", batch.PartitionConfig{
			Partitioner: batch.PartitionerFunc(func(context.Context) ([]batch.Partition, error) {
				var parts []batch.Partition
				for i := range k {
					ec := batch.ExecutionContext{}
					if err := errors.Join(ec.Put("from", i*items/k+1), ec.Put("to", (i+1)*items/k)); err != nil {
						return nil, err
					}
					parts = append(parts, batch.Partition{Name: fmt.Sprintf("p%d", i+1), Context: ec})
				}
				return parts, nil
			}),
			Step: func(name string, p batch.Partition) (batch.Step, error) {
				from, _ := p.Context.Int64("from")
				to, _ := p.Context.Int64("to")
				return chunkStep(name, int(from), int(to), 0, false)
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		return step
	}
	workers := func(w int, readAhead bool) batch.Step {
		step, err := chunkStep("cpu", 1, items, w, readAhead)
		if err != nil {
			b.Fatal(err)
		}
		return step
	}
	for _, tt := range []struct {
		name     string
		one, two func() batch.Step
	}{
		{"partitions", func() batch.Step { return partitioned(1) }, func() batch.Step { return partitioned(2) }},
		{"workers", func() batch.Step { return workers(1, false) }, func() batch.Step { return workers(2, false) }},
		{"workers-readahead", func() batch.Step { return workers(1, true) }, func() batch.Step { return workers(2, true) }},
	} {
		b.Run(tt.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				var speedups, ones, twos []float64
				for r := range rounds {
					var one, two time.Duration
					if r%2 == 0 {
						one, two = run(tt.one()), run(tt.two())
					} else {
						two, one = run(tt.two()), run(tt.one())
					}
					ones = append(ones, float64(items)/one.Seconds())
					twos = append(twos, float64(items)/two.Seconds())
					speedups = append(speedups, one.Seconds()/two.Seconds())
				}
				b.ReportMetric(medianOf(ones), "one-items/s")
				b.ReportMetric(medianOf(twos), "two-items/s")
				b.ReportMetric(medianOf(speedups), "speedup")
			}
		})
	}
}

func medianOf(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkRepositoryCapacity: 16 partitions with chunks of 10 tiny rows,
// each chunk inserted and checkpointed in its transaction, on one
// PostgreSQL repository: how many chunk commits per second the repository
// sustains when many workers share it (goal on this machine: 3,000/s).
func BenchmarkRepositoryCapacity(b *testing.B) {
	const (
		partitions = 16
		perPart    = 5_000 // rows per partition: 500 chunks of 10
	)
	repo, err := postgres.Open(context.Background(), pgtest.DSN(b), postgres.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = repo.Close() })
	if err := repo.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	db := repo.DB()
	db.SetMaxOpenConns(partitions + 4)
	if _, err := db.Exec(`CREATE TABLE tiny (id BIGINT PRIMARY KEY, part TEXT NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	var asked atomic.Int64
	var commits []float64
	for i := 0; i < b.N; i++ {
		if _, err := db.Exec(`TRUNCATE tiny`); err != nil {
			b.Fatal(err)
		}
		step, err := batch.NewPartitionStep("load", batch.PartitionConfig{
			Partitioner: rangePartitions(partitions*perPart, partitions, &asked),
			Step: func(name string, p batch.Partition) (batch.Step, error) {
				from, _ := p.Context.Int64("from")
				to, _ := p.Context.Int64("to")
				w, err := writer.NewSQL(writer.SQLConfig[int]{DB: db, Table: "tiny", Columns: []string{"id", "part"},
					Values: func(v int) []any { return []any{v, p.Name} }})
				if err != nil {
					return nil, err
				}
				return batch.NewChunkStep(name, batch.ChunkConfig[int, int]{
					Reader: reader.FromSlice(seq(int(from), int(to))), Writer: w, ChunkSize: 10,
				})
			},
		})
		if err != nil {
			b.Fatal(err)
		}
		job, err := batch.NewJob("capacity", batch.JobConfig{Steps: []batch.Step{step}})
		if err != nil {
			b.Fatal(err)
		}
		l := mustLauncher(b, launcher.Config{Repository: repo})
		start := time.Now()
		exec, err := l.Run(context.Background(), job, batch.JobParameters{"run": batch.IntParam(int64(i))})
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		ses, err := repo.StepExecutions(context.Background(), exec.ID)
		if err != nil {
			b.Fatal(err)
		}
		var n int64
		for _, se := range ses {
			if se.StepName != "load" {
				n += se.CommitCount
			}
		}
		commits = append(commits, float64(n)/took.Seconds())
	}
	b.ReportMetric(medianOf(commits), "commits/s")
}

// BenchmarkCheckpointCost: what the job repository costs per chunk commit —
// 100,000 items in chunks of 10 (Spring Batch's shape for this measure),
// the writer doing nothing, on a PostgreSQL repository (pgx, then lib/pq)
// minus the same on the memory repository, divided by the commits —
// against the floor of a loader by hand on a pgx connection: "BEGIN;
// UPDATE progress; COMMIT" per chunk, and "UPDATE progress" alone. Rounds
// alternate the sides; medians. The goal is 1.1× the first floor.
func BenchmarkCheckpointCost(b *testing.B) {
	const (
		n      = 100_000
		chunk  = 10
		chunks = n / chunk
	)
	rounds := 3
	items := make([]int, n)
	dsn := pgtest.DSN(b)
	ctx := context.Background()
	repos := map[string]repository.JobRepository{"memory": memory.New()}
	for _, driver := range []string{postgres.DriverPgx, postgres.DriverPQ} {
		repo, err := postgres.Open(ctx, dsn, postgres.Config{Driver: driver, TablePrefix: "cost_" + driver + "_"})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = repo.Close() })
		if err := repo.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		repos[driver] = repo
	}
	run := 0
	chunkStep := func(name string) (time.Duration, error) {
		step, err := batch.NewChunkStep("s", batch.ChunkConfig[int, int]{
			Reader: reader.FromSlice(items), ChunkSize: chunk,
			Writer: batch.WriterFunc[int](func(context.Context, []int) error { return nil }),
		})
		if err != nil {
			return 0, err
		}
		job, err := batch.NewJob("cost", batch.JobConfig{Steps: []batch.Step{step}})
		if err != nil {
			return 0, err
		}
		run++
		l := mustLauncher(b, launcher.Config{Repository: repos[name]})
		start := time.Now()
		_, err = l.Run(ctx, job, batch.JobParameters{"run": batch.IntParam(int64(run))})
		return time.Since(start), err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = conn.Close(ctx) })
	if _, err := conn.Exec(ctx, `CREATE TABLE progress (job TEXT PRIMARY KEY, done BIGINT NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO progress VALUES ('cost', 0)`); err != nil {
		b.Fatal(err)
	}
	floor := func() (time.Duration, error) {
		start := time.Now()
		for i := 1; i <= chunks; i++ {
			tx, err := conn.Begin(ctx)
			if err != nil {
				return 0, err
			}
			if _, err := tx.Exec(ctx, `UPDATE progress SET done = $1 WHERE job = 'cost'`, i*chunk); err != nil {
				return 0, err
			}
			if err := tx.Commit(ctx); err != nil {
				return 0, err
			}
		}
		return time.Since(start), nil
	}
	// The same update without BEGIN and COMMIT around it: what a loader
	// by hand that writes nothing else to the database needs.
	floorAlone := func() (time.Duration, error) {
		start := time.Now()
		for i := 1; i <= chunks; i++ {
			if _, err := conn.Exec(ctx, `UPDATE progress SET done = $1 WHERE job = 'cost'`, i*chunk); err != nil {
				return 0, err
			}
		}
		return time.Since(start), nil
	}
	// The same floor through database/sql on the pgx repository's pool, with
	// a context that can end, as a chunk's transaction has: what
	// database/sql itself adds.
	sqlDB := repos[postgres.DriverPgx].(*postgres.Repository).DB()
	floorSQL := func() (time.Duration, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		start := time.Now()
		for i := 1; i <= chunks; i++ {
			tx, err := sqlDB.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
			if err != nil {
				return 0, err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE progress SET done = $1 WHERE job = 'cost'`, i*chunk); err != nil {
				return 0, err
			}
			if err := tx.Commit(); err != nil {
				return 0, err
			}
		}
		return time.Since(start), nil
	}
	perChunk := map[string][]float64{}
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			sides := []string{"floor", "floor-alone", "floor-sql", "memory", postgres.DriverPgx, postgres.DriverPQ}
			if r%2 == 1 {
				slices.Reverse(sides)
			}
			took := map[string]time.Duration{}
			for _, side := range sides {
				var err error
				switch side {
				case "floor":
					took[side], err = floor()
				case "floor-alone":
					took[side], err = floorAlone()
				case "floor-sql":
					took[side], err = floorSQL()
				default:
					took[side], err = chunkStep(side)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			ms := func(d time.Duration) float64 { return d.Seconds() * 1000 / chunks }
			perChunk["floor"] = append(perChunk["floor"], ms(took["floor"]))
			perChunk["floor-alone"] = append(perChunk["floor-alone"], ms(took["floor-alone"]))
			perChunk["floor-sql"] = append(perChunk["floor-sql"], ms(took["floor-sql"]))
			for _, d := range []string{postgres.DriverPgx, postgres.DriverPQ} {
				perChunk[d] = append(perChunk[d], ms(took[d]-took["memory"]))
			}
			perChunk["ratio"] = append(perChunk["ratio"], float64(took[postgres.DriverPgx]-took["memory"])/float64(took["floor"]))
		}
	}
	b.ReportMetric(medianOf(perChunk["floor"]), "floor-ms/chunk")
	b.ReportMetric(medianOf(perChunk["floor-alone"]), "floor-alone-ms/chunk")
	b.ReportMetric(medianOf(perChunk["floor-sql"]), "floor-sql-ms/chunk")
	b.ReportMetric(medianOf(perChunk[postgres.DriverPgx]), "pgx-ms/chunk")
	b.ReportMetric(medianOf(perChunk[postgres.DriverPQ]), "pq-ms/chunk")
	b.ReportMetric(medianOf(perChunk["ratio"]), "pgx/floor")
}
