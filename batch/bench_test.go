package batch_test

import (
	"context"
	"testing"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/memory"
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
