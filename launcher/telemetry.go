package launcher

import (
	"context"
	"encoding/json"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/chunkwise/chunkwise/batch"
)

// instrumentation names the meter and tracer of chunkwise.
const instrumentation = "github.com/chunkwise/chunkwise"

// traceKey holds, in a job execution's context, the trace of the execution
// (W3C trace context), so that a restart links to it.
const traceKey = "batch.trace"

// telemetry holds the instruments of a launcher. Metrics carry job and step
// names and statuses only — never execution ids or parameter values, whose
// number grows without bound; spans carry the execution ids.
type telemetry struct {
	tracer     trace.Tracer
	chunkSpans bool

	jobDuration, stepDuration, chunkDuration metric.Float64Histogram
	activeJobs, activeSteps                  metric.Int64UpDownCounter
	items, retries, rollbacks                metric.Int64Counter
}

func newTelemetry(mp metric.MeterProvider, tp trace.TracerProvider, chunkSpans bool) (*telemetry, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	m := mp.Meter(instrumentation)
	t := &telemetry{tracer: tp.Tracer(instrumentation), chunkSpans: chunkSpans}
	var err error
	seconds := metric.WithExplicitBucketBoundaries(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400)
	if t.jobDuration, err = m.Float64Histogram("chunkwise.job.duration", metric.WithUnit("s"), seconds,
		metric.WithDescription("How long job executions took, by job and final status.")); err != nil {
		return nil, err
	}
	if t.stepDuration, err = m.Float64Histogram("chunkwise.step.duration", metric.WithUnit("s"), seconds,
		metric.WithDescription("How long step executions took, by job, step and final status.")); err != nil {
		return nil, err
	}
	if t.chunkDuration, err = m.Float64Histogram("chunkwise.chunk.duration", metric.WithUnit("s"), seconds,
		metric.WithDescription("How long chunks took, from the end of the one before to their commit, by job, step and outcome: committed, or rolled_back when the commit failed. A chunk that fails before its commit is not counted.")); err != nil {
		return nil, err
	}
	if t.activeJobs, err = m.Int64UpDownCounter("chunkwise.job.active", metric.WithUnit("{execution}"),
		metric.WithDescription("Job executions running in this process, by job.")); err != nil {
		return nil, err
	}
	if t.activeSteps, err = m.Int64UpDownCounter("chunkwise.step.active", metric.WithUnit("{execution}"),
		metric.WithDescription("Step executions running in this process, by job and step.")); err != nil {
		return nil, err
	}
	if t.items, err = m.Int64Counter("chunkwise.items", metric.WithUnit("{item}"),
		metric.WithDescription("Items by job, step and operation: read, write, filter, read_skip, process_skip, write_skip, in committed chunks.")); err != nil {
		return nil, err
	}
	if t.retries, err = m.Int64Counter("chunkwise.retries", metric.WithUnit("{retry}"),
		metric.WithDescription("Retries by job, step and phase: of a read (read), of an item's processing (process), of a chunk's write and commit (write).")); err != nil {
		return nil, err
	}
	if t.rollbacks, err = m.Int64Counter("chunkwise.rollbacks", metric.WithUnit("{chunk}"),
		metric.WithDescription("Chunks rolled back, by job and step: a read, process, write or commit error, retried or not.")); err != nil {
		return nil, err
	}
	return t, nil
}

// startJob starts the span of a job execution, linked to the trace of the
// execution it restarts (found in exec's context), and stores its own
// trace in exec's context for the next restart.
func (t *telemetry) startJob(ctx context.Context, exec *batch.JobExecution, name string) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{trace.WithAttributes(
		attribute.String("chunkwise.job", name),
		attribute.Int64("chunkwise.execution.id", exec.ID),
		attribute.Int64("chunkwise.instance.id", exec.InstanceID),
	)}
	var carrier propagation.MapCarrier
	if raw, ok := exec.Context[traceKey]; ok && json.Unmarshal(raw, &carrier) == nil {
		prev := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
		if prev.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: prev,
				Attributes: []attribute.KeyValue{attribute.String("chunkwise.link", "restart of")}}))
		}
	}
	ctx, span := t.tracer.Start(ctx, "job "+name, opts...)
	if span.SpanContext().IsValid() {
		carrier = propagation.MapCarrier{}
		propagation.TraceContext{}.Inject(ctx, carrier)
		_ = exec.Context.Put(traceKey, carrier)
	}
	t.activeJobs.Add(ctx, 1, metric.WithAttributes(attribute.String("job", name)))
	return ctx, span
}

// endJob ends a job execution's span and records its duration.
func (t *telemetry) endJob(ctx context.Context, span trace.Span, name string, status batch.BatchStatus, exit batch.ExitStatus, took time.Duration) {
	attrs := metric.WithAttributes(attribute.String("job", name), attribute.String("status", string(status)))
	t.jobDuration.Record(ctx, took.Seconds(), attrs)
	t.activeJobs.Add(ctx, -1, metric.WithAttributes(attribute.String("job", name)))
	endSpan(span, status, exit)
}

// startStep starts the span of a step execution.
func (t *telemetry) startStep(ctx context.Context, job, step string, id int64) (context.Context, trace.Span) {
	ctx, span := t.tracer.Start(ctx, "step "+step, trace.WithAttributes(
		attribute.String("chunkwise.job", job), attribute.String("chunkwise.step", step),
		attribute.Int64("chunkwise.step_execution.id", id)))
	t.activeSteps.Add(ctx, 1, metric.WithAttributes(attribute.String("job", job), attribute.String("step", step)))
	return ctx, span
}

// endStep ends a step execution's span and records its duration.
func (t *telemetry) endStep(ctx context.Context, span trace.Span, job, step string, status batch.BatchStatus, exit batch.ExitStatus, took time.Duration) {
	t.stepDuration.Record(ctx, took.Seconds(), metric.WithAttributes(attribute.String("job", job),
		attribute.String("step", step), attribute.String("status", string(status))))
	t.activeSteps.Add(ctx, -1, metric.WithAttributes(attribute.String("job", job), attribute.String("step", step)))
	endSpan(span, status, exit)
}

// stepMetrics holds the measurement options of one step execution's
// chunks, built once: a chunk's measurements then allocate nothing.
type stepMetrics struct {
	committed, rolledBack []metric.RecordOption
	items                 [6][]metric.AddOption // in the order of itemOps
	retries               [3][]metric.AddOption // in the order of retryPhases
	rollbacks             []metric.AddOption
}

// retryPhases are the phases chunkwise.retries counts.
var retryPhases = [3]string{"read", "process", "write"}

// itemOps are the operations chunkwise.items counts, in the order of
// itemCounts.
var itemOps = [6]string{"read", "write", "filter", "read_skip", "process_skip", "write_skip"}

// itemCounts returns s's counts of itemOps.
func itemCounts(s *batch.StepExecution) [6]int64 {
	return [6]int64{s.ReadCount, s.WriteCount, s.FilterCount, s.ReadSkipCount, s.ProcessSkipCount, s.WriteSkipCount}
}

func (t *telemetry) forStep(job, step string) *stepMetrics {
	m := &stepMetrics{}
	set := func(kv attribute.KeyValue) attribute.Set {
		return attribute.NewSet(attribute.String("job", job), attribute.String("step", step), kv)
	}
	m.committed = []metric.RecordOption{metric.WithAttributeSet(set(attribute.String("outcome", "committed")))}
	m.rolledBack = []metric.RecordOption{metric.WithAttributeSet(set(attribute.String("outcome", "rolled_back")))}
	for i, op := range itemOps {
		m.items[i] = []metric.AddOption{metric.WithAttributeSet(set(attribute.String("operation", op)))}
	}
	for i, phase := range retryPhases {
		m.retries[i] = []metric.AddOption{metric.WithAttributeSet(set(attribute.String("phase", phase)))}
	}
	m.rollbacks = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("job", job), attribute.String("step", step)))}
	return m
}

// retry counts a retry of a phase.
func (t *telemetry) retry(ctx context.Context, m *stepMetrics, phase string) {
	for i, p := range retryPhases {
		if p == phase {
			t.retries.Add(ctx, 1, m.retries[i]...)
		}
	}
}

// rolledBack counts the rollbacks of a step execution since they were
// counted last (seen), and returns them all.
func (t *telemetry) rolledBack(ctx context.Context, m *stepMetrics, s *batch.StepExecution, seen int64) int64 {
	if n := s.RollbackCount - seen; n > 0 {
		t.rollbacks.Add(ctx, n, m.rollbacks...)
	}
	return s.RollbackCount
}

// chunk records a chunk that ended — committed, or not — and, for a
// committed one, the items it counted (after less before, by itemCounts).
func (t *telemetry) chunk(ctx context.Context, m *stepMetrics, committed bool, took time.Duration, before, after [6]int64) {
	if !committed {
		t.chunkDuration.Record(ctx, took.Seconds(), m.rolledBack...)
		return
	}
	t.chunkDuration.Record(ctx, took.Seconds(), m.committed...)
	for i := range itemOps {
		if n := after[i] - before[i]; n > 0 {
			t.items.Add(ctx, n, m.items[i]...)
		}
	}
}

func endSpan(span trace.Span, status batch.BatchStatus, exit batch.ExitStatus) {
	span.SetAttributes(attribute.String("chunkwise.status", string(status)), attribute.String("chunkwise.exit_code", exit.Code))
	if status == batch.StatusFailed {
		span.SetStatus(codes.Error, exit.Description)
	}
	span.End()
}
