// Command metrics runs a job while serving its metrics to Prometheus: the
// launcher's OpenTelemetry metrics, through OpenTelemetry's Prometheus
// exporter, on /metrics (METRICS_ADDR, default 127.0.0.1:9464).
//
//	metrics run items=100000
//	curl -s localhost:9464/metrics | grep chunkwise_
//
// The job reads numbers, filters the multiples of 7 and writes the rest
// nowhere, ten milliseconds per chunk of 100, so that a run lasts long enough
// to watch (items, default 20,000).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
)

func newJob(env launcher.Env) (batch.JobConfig, error) {
	n, _ := env.Parameters.Int("items")
	next := int64(0)
	read := batch.ReaderFunc[int64](func(context.Context) (int64, error) {
		if next == n {
			return 0, io.EOF
		}
		next++
		return next, nil
	})
	step, err := batch.NewChunkStep("count", batch.ChunkConfig[int64, int64]{
		Reader: read, ChunkSize: 100,
		Processor: batch.ProcessorFunc[int64, int64](func(_ context.Context, i int64) (int64, error) {
			if i%7 == 0 {
				return 0, batch.ErrFilter
			}
			return i, nil
		}),
		Writer: batch.WriterFunc[int64](func(context.Context, []int64) error {
			time.Sleep(10 * time.Millisecond)
			return nil
		}),
	})
	return batch.JobConfig{Steps: []batch.Step{step}}, err
}

func main() {
	registry := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		log.Fatal(err)
	}
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer provider.Shutdown(context.Background()) //nolint:errcheck

	addr := os.Getenv("METRICS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:9464"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Print(err)
		}
	}()
	fmt.Fprintf(os.Stderr, "metrics on http://%s/metrics\n", ln.Addr())

	var jobs launcher.Registry
	jobs.MustRegister("count", newJob, batch.ParamSpec{Name: "items", Type: batch.ParamInt, Default: "20000", NonIdentifying: true})
	code := launcher.Program{Registry: &jobs, MeterProvider: provider}.Run(context.Background(), os.Args[1:])
	_ = srv.Close()
	os.Exit(code)
}
