package writer_test

import (
	"context"
	"fmt"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/writer"
)

func ExampleNewComposite() {
	ctx := context.Background()
	repo, cleanup := exampleRepo(
		`CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER NOT NULL)`,
		`CREATE TABLE order_log (id INTEGER NOT NULL, event TEXT NOT NULL)`,
	)
	defer cleanup()

	type order struct {
		ID    int64 `db:"id"`
		Total int64 `db:"total"`
	}
	orders := []order{{1, 30}, {2, 45}, {3, 12}}

	store, err := writer.NewSQL(writer.SQLConfig[order]{
		DB: repo.DB(), Table: "orders", Columns: []string{"id", "total"},
		Values: func(o order) []any { return []any{o.ID, o.Total} },
	})
	if err != nil {
		panic(err)
	}
	logged, err := writer.NewNamed(writer.NamedConfig[order]{
		DB: repo.DB(), Query: `INSERT INTO order_log (id, event) VALUES (:id, 'imported')`,
	})
	if err != nil {
		panic(err)
	}
	// Both tables are written in each chunk's transaction: both or neither.
	both, err := writer.NewComposite[order](store, logged)
	if err != nil {
		panic(err)
	}
	step, _ := batch.NewChunkStep("import", batch.ChunkConfig[order, order]{Reader: reader.FromSlice(orders), Writer: both, ChunkSize: 2})
	job, _ := batch.NewJob("import", batch.JobConfig{Steps: []batch.Step{step}})
	l, _ := launcher.New(launcher.Config{Repository: repo})
	if _, err := l.Run(ctx, job, nil); err != nil {
		panic(err)
	}
	var n, logs int
	_ = repo.DB().Get(&n, `SELECT COUNT(*) FROM orders`)
	_ = repo.DB().Get(&logs, `SELECT COUNT(*) FROM order_log`)
	fmt.Println(n, "orders,", logs, "log entries")
	// Output:
	// 3 orders, 3 log entries
}

func ExampleNewRoute() {
	ctx := context.Background()
	repo, cleanup := exampleRepo(
		`CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`,
	)
	defer cleanup()

	type change struct {
		Op   string // "upsert" or "delete"
		ID   int64
		Name string
	}
	changes := []change{{"upsert", 1, "Ada"}, {"upsert", 2, "Grace"}, {"delete", 1, ""}, {"upsert", 3, "Edsger"}}

	upsert, err := writer.NewUpsert(writer.UpsertConfig[change]{
		DB: repo.DB(), Table: "customers", Columns: []string{"id", "name"}, Key: []string{"id"},
		Values: func(c change) []any { return []any{c.ID, c.Name} },
	})
	if err != nil {
		panic(err)
	}
	del, err := writer.NewDelete(writer.DeleteConfig[change]{
		DB: repo.DB(), Table: "customers", Key: []string{"id"},
		Values: func(c change) []any { return []any{c.ID} },
	})
	if err != nil {
		panic(err)
	}
	// Each change goes to the writer of its operation; the writers are
	// called in the order of their first item in the chunk.
	route, err := writer.NewRoute(writer.RouteConfig[change, string]{
		Key:     func(c change) string { return c.Op },
		Writers: map[string]batch.ItemWriter[change]{"upsert": upsert, "delete": del},
	})
	if err != nil {
		panic(err)
	}
	step, _ := batch.NewChunkStep("apply", batch.ChunkConfig[change, change]{Reader: reader.FromSlice(changes), Writer: route, ChunkSize: 2})
	job, _ := batch.NewJob("apply", batch.JobConfig{Steps: []batch.Step{step}})
	l, _ := launcher.New(launcher.Config{Repository: repo})
	exec, err := l.Run(ctx, job, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(stepChanges(repo, exec))
	var names []string
	_ = repo.DB().Select(&names, `SELECT name FROM customers ORDER BY id`)
	fmt.Println(names)
	// Output:
	// 3 inserted, 1 deleted
	// [Grace Edsger]
}
