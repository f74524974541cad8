package batch_test

import (
	"context"
	"io"
	"testing"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository/memory"
)

// record is a 72-byte item.
type record struct {
	ID     int64
	Name   string
	Email  string
	Amount float64
	At     int64
	Flags  uint64
	Extra  int64
}

// BenchmarkPipeline compares a chunk step on the memory repository with a
// plain loop doing the same reads, processing and writes in chunks of 1000:
// the difference is the framework's overhead per item.
func BenchmarkPipeline(b *testing.B) {
	const n = 100_000
	items := make([]record, n)
	for i := range items {
		items[i] = record{ID: int64(i), Name: "name", Email: "e@x", Amount: float64(i)}
	}
	process := func(_ context.Context, r record) (record, error) {
		r.Amount *= 1.1
		return r, nil
	}
	var sink int64
	write := func(_ context.Context, rs []record) error {
		sink += int64(len(rs))
		return nil
	}
	// The loop calls the same reader, processor and writer, through the
	// same interfaces: a real reader and writer do I/O and are not inlined.
	var (
		proc batch.ItemProcessor[record, record] = batch.ProcessorFunc[record, record](process)
		wr   batch.ItemWriter[record]            = batch.WriterFunc[record](write)
	)
	b.Run("loop", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		for i := 0; i < b.N; i++ {
			pos := 0
			var rd batch.ItemReader[record] = batch.ReaderFunc[record](func(context.Context) (record, error) {
				if pos == n {
					return record{}, io.EOF
				}
				pos++
				return items[pos-1], nil
			})
			buf := make([]record, 0, 1000)
			for {
				r, err := rd.Read(ctx)
				if err == io.EOF {
					break
				}
				if r, err = proc.Process(ctx, r); err != nil {
					b.Fatal(err)
				}
				buf = append(buf, r)
				if len(buf) == cap(buf) {
					if err := wr.Write(ctx, buf); err != nil {
						b.Fatal(err)
					}
					buf = buf[:0]
				}
			}
			if err := wr.Write(ctx, buf); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*b.N), "ns/item")
	})
	b.Run("chunkwise", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			pos := 0
			step, _ := batch.NewChunkStep("s", batch.ChunkConfig[record, record]{
				Reader: batch.ReaderFunc[record](func(context.Context) (record, error) {
					if pos == n {
						return record{}, io.EOF
					}
					pos++
					return items[pos-1], nil
				}),
				Processor: proc,
				Writer:    wr,
				ChunkSize: 1000,
			})
			job, _ := batch.NewJob("j", batch.JobConfig{Steps: []batch.Step{step}})
			engine := mustLauncher(b, launcher.Config{Repository: memory.New()})
			if _, err := engine.Run(context.Background(), job, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*b.N), "ns/item")
	})
}
