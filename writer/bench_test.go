package writer_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/internal/pgtest"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/postgres"
	"github.com/chunkwise/chunkwise/repository/sqlite"
	"github.com/chunkwise/chunkwise/writer"
)

type benchRow struct {
	ID     int64
	Name   string
	Amount float64
	At     time.Time
}

// BenchmarkChunkImport runs a whole chunk step — slice reader, SQL writer in
// the chunk transaction, checkpoint — and reports rows per second.
func BenchmarkChunkImport(b *testing.B) {
	type repo interface {
		repository.JobRepository
		DB() *sqlx.DB
	}
	stores := []struct {
		name string
		open func(b *testing.B) repo
	}{
		{"sqlite", func(b *testing.B) repo {
			r, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "b.db"), sqlite.Config{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = r.Close() })
			return r
		}},
		{"postgres", func(b *testing.B) repo {
			r, err := postgres.Open(context.Background(), pgtest.DSN(b), postgres.Config{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = r.Close() })
			return r
		}},
	}
	const rows = 20_000
	items := make([]benchRow, rows)
	for i := range items {
		items[i] = benchRow{ID: int64(i), Name: fmt.Sprintf("name %d", i), Amount: float64(i) / 100, At: time.Unix(int64(i), 0).UTC()}
	}
	for _, st := range stores {
		for _, chunk := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%s/chunk=%d", st.name, chunk), func(b *testing.B) {
				ctx := context.Background()
				r := st.open(b)
				if err := migrate(ctx, r); err != nil {
					b.Fatal(err)
				}
				if _, err := r.DB().Exec(`CREATE TABLE items (id BIGINT, name TEXT, amount NUMERIC(14,2), at TIMESTAMP)`); err != nil {
					b.Fatal(err)
				}
				w, err := writer.NewSQL(writer.SQLConfig[benchRow]{
					DB: r.DB(), Table: "items", Columns: []string{"id", "name", "amount", "at"},
					Values: func(x benchRow) []any { return []any{x.ID, x.Name, x.Amount, x.At} },
				})
				if err != nil {
					b.Fatal(err)
				}
				engine, err := launcher.New(launcher.Config{Repository: r})
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					step, _ := batch.NewChunkStep("load", batch.ChunkConfig[benchRow, benchRow]{
						Reader: reader.FromSlice(items), Writer: w, ChunkSize: chunk,
					})
					job, _ := batch.NewJob("load", batch.JobConfig{Steps: []batch.Step{step}})
					if _, err := engine.Run(ctx, job, batch.JobParameters{"run": batch.IntParam(int64(i))}); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

func migrate(ctx context.Context, r repository.JobRepository) error {
	return r.(interface{ Migrate(context.Context) error }).Migrate(ctx)
}
