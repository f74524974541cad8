package launcher_test

import (
	"context"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/repository/postgres"
)

// The same program is the manager (it runs the job and hands its
// partitions out) and, started as a worker, runs partitions: both on one
// PostgreSQL repository and one NATS server.
func ExampleNATSQueue() {
	ctx := context.Background()
	repo, err := postgres.Open(ctx, os.Getenv("BATCH_DB"), postgres.Config{})
	if err != nil {
		panic(err)
	}
	nc, err := nats.Connect(os.Getenv("BATCH_NATS"))
	if err != nil {
		panic(err)
	}
	q, err := launcher.NewNATSQueue(ctx, launcher.NATSConfig{Conn: nc})
	if err != nil {
		panic(err)
	}
	var jobs launcher.Registry // the program's jobs, registered as usual
	l, err := launcher.New(launcher.Config{Registry: &jobs, Repository: repo,
		Remote: launcher.RemoteConfig{Dispatcher: q}})
	if err != nil {
		panic(err)
	}
	if len(os.Args) > 1 && os.Args[1] == "worker" {
		// Two partitions at a time, until the context ends; those running
		// then are handed back at a chunk boundary, for other workers.
		_ = q.Serve(ctx, l, "host-1", 2)
		return
	}
	job, err := l.Job("import", nil)
	if err != nil {
		panic(err)
	}
	_, _ = l.Run(ctx, job, nil)
}
