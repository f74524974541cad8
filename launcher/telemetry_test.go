package launcher_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/memory"
)

// TestTelemetry: the metrics and spans of a job that retries its 3rd item
// and fails at its 15th, then of its restart, which retries a write,
// through OpenTelemetry's SDK.
func TestTelemetry(t *testing.T) {
	metrics := sdkmetric.NewManualReader()
	spans := tracetest.NewSpanRecorder()
	l, err := launcher.New(launcher.Config{Repository: memory.New(),
		MeterProvider:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(metrics)),
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
		ChunkSpans:     true})
	require.NoError(t, err)
	var (
		failAt                atomic.Int64
		flakyItem, flakyWrite atomic.Bool
		errFlaky              = errors.New("flaky")
	)
	failAt.Store(15)
	flakyItem.Store(true)
	items := make([]int, 25)
	for i := range items {
		items[i] = i + 1
	}
	job := func() *batch.Job {
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
			Reader: reader.FromSlice(items), ChunkSize: 10, Retry: batch.MatchErrors(errFlaky),
			Backoff: batch.Backoff{Initial: time.Millisecond},
			Processor: batch.ProcessorFunc[int, int](func(_ context.Context, i int) (int, error) {
				switch {
				case i == 3 && flakyItem.CompareAndSwap(true, false):
					return 0, errFlaky
				case int64(i) == failAt.Load():
					return 0, errors.New("bad item")
				case i%5 == 0:
					return 0, batch.ErrFilter
				}
				return i, nil
			}),
			Writer: batch.WriterFunc[int](func(context.Context, []int) error {
				if flakyWrite.CompareAndSwap(true, false) {
					return errFlaky
				}
				return nil
			}),
		})
		require.NoError(t, err)
		j, err := batch.NewJob("telemetry", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		return j
	}
	ctx := context.Background()
	params := batch.JobParameters{"day": batch.StringParam("1")}
	first, err := l.Run(ctx, job(), params)
	require.Error(t, err)
	failAt.Store(0)
	flakyWrite.Store(true)
	second, err := l.Run(ctx, job(), params)
	require.NoError(t, err)

	var rm metricdata.ResourceMetrics
	require.NoError(t, metrics.Collect(ctx, &rm))
	sums := map[string]int64{}
	counts := map[string]uint64{}
	allowed := []string{"job", "step", "status", "outcome", "operation", "phase"}
	key := func(name string, set attribute.Set) string {
		k := name
		for _, kv := range set.ToSlice() {
			require.Contains(t, allowed, string(kv.Key), "metric %s: only names and statuses, never ids", name)
			k += " " + string(kv.Key) + "=" + kv.Value.String()
		}
		return k
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					sums[key(m.Name, p.Attributes)] += p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					counts[key(m.Name, p.Attributes)] += p.Count
				}
			}
		}
	}
	// The first run commits its first chunk (10 read, 8 written, 2
	// filtered) and fails in its second; the restart does the other 15.
	require.Equal(t, int64(25), sums["chunkwise.items job=telemetry operation=read step=load"])
	require.Equal(t, int64(20), sums["chunkwise.items job=telemetry operation=write step=load"])
	require.Equal(t, int64(5), sums["chunkwise.items job=telemetry operation=filter step=load"])
	require.Equal(t, int64(0), sums["chunkwise.job.active job=telemetry"])
	require.Equal(t, int64(0), sums["chunkwise.step.active job=telemetry step=load"])
	require.Equal(t, uint64(1), counts["chunkwise.job.duration job=telemetry status=FAILED"])
	require.Equal(t, uint64(1), counts["chunkwise.job.duration job=telemetry status=COMPLETED"])
	require.Equal(t, uint64(1), counts["chunkwise.step.duration job=telemetry status=FAILED step=load"])
	require.Equal(t, uint64(1), counts["chunkwise.step.duration job=telemetry status=COMPLETED step=load"])
	require.Equal(t, uint64(3), counts["chunkwise.chunk.duration job=telemetry outcome=committed step=load"])
	require.Equal(t, uint64(1), counts["chunkwise.chunk.duration job=telemetry outcome=rolled_back step=load"])
	require.Equal(t, int64(1), sums["chunkwise.retries job=telemetry phase=process step=load"])
	require.Equal(t, int64(1), sums["chunkwise.retries job=telemetry phase=write step=load"])
	require.Equal(t, int64(2), sums["chunkwise.rollbacks job=telemetry step=load"], "the write retried, and the chunk that failed the first run")

	ended := spans.Ended()
	named := func(name string) []sdktrace.ReadOnlySpan {
		var out []sdktrace.ReadOnlySpan
		for _, s := range ended {
			if s.Name() == name {
				out = append(out, s)
			}
		}
		return out
	}
	jobs, steps, chunks := named("job telemetry"), named("step load"), named("chunk")
	require.Len(t, jobs, 2)
	require.Len(t, steps, 2)
	require.Len(t, chunks, 4, "the first run's committed chunk, then the restart's two and its write that was retried (a chunk that fails before its commit has none)")
	byExecution := func(id int64) sdktrace.ReadOnlySpan {
		for _, s := range jobs {
			if slices.Contains(s.Attributes(), attribute.Int64("chunkwise.execution.id", id)) {
				return s
			}
		}
		t.Fatalf("no span of execution %d", id)
		return nil
	}
	one, two := byExecution(first.ID), byExecution(second.ID)
	require.Equal(t, "Error", one.Status().Code.String())
	require.Contains(t, one.Status().Description, "bad item")
	require.Len(t, two.Links(), 1, "the restart links to the execution it restarts")
	require.Equal(t, one.SpanContext().TraceID(), two.Links()[0].SpanContext.TraceID())
	for _, s := range steps {
		require.Contains(t, []any{one.SpanContext().SpanID(), two.SpanContext().SpanID()}, s.Parent().SpanID(), "a step's span is its job's child")
	}
	for _, c := range chunks {
		require.Contains(t, []any{steps[0].SpanContext().SpanID(), steps[1].SpanContext().SpanID()}, c.Parent().SpanID())
	}
}

// TestTelemetryPartitionRollbacks: a partition's rollbacks are counted once,
// under the partition, and not again under its partitioned step.
func TestTelemetryPartitionRollbacks(t *testing.T) {
	metrics := sdkmetric.NewManualReader()
	l, err := launcher.New(launcher.Config{Repository: memory.New(),
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(metrics))})
	require.NoError(t, err)
	errFlaky := errors.New("flaky")
	step, err := batch.NewPartitionStep("load", batch.PartitionConfig{
		Partitioner: batch.PartitionerFunc(func(context.Context) ([]batch.Partition, error) {
			return []batch.Partition{{Name: "a"}, {Name: "b"}}, nil
		}),
		Step: func(name string, _ batch.Partition) (batch.Step, error) {
			var failed atomic.Bool
			return batch.NewChunkStep(name, batch.ChunkConfig[int, int]{
				Reader: reader.FromSlice([]int{1, 2, 3}), Retry: batch.MatchErrors(errFlaky),
				Backoff: batch.Backoff{Initial: time.Millisecond},
				Writer: batch.WriterFunc[int](func(context.Context, []int) error {
					if failed.CompareAndSwap(false, true) {
						return errFlaky
					}
					return nil
				}),
			})
		},
	})
	require.NoError(t, err)
	job, err := batch.NewJob("parts", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	ctx := context.Background()
	exec, err := l.Run(ctx, job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)

	var rm metricdata.ResourceMetrics
	require.NoError(t, metrics.Collect(ctx, &rm))
	rollbacks := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "chunkwise.rollbacks" {
				for _, p := range d.DataPoints {
					s, _ := p.Attributes.Value("step")
					rollbacks[s.AsString()] += p.Value
				}
			}
		}
	}
	require.Equal(t, map[string]int64{"load:a": 1, "load:b": 1}, rollbacks)
}
