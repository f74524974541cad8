package writer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/sqlite"
	"github.com/chunkwise/chunkwise/writer"
)

// exampleRepo opens a SQLite job repository in a temporary directory, with
// the tables the statements create; cleanup closes and removes it.
func exampleRepo(statements ...string) (repo *sqlite.Repository, cleanup func()) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		panic(err)
	}
	repo, err = sqlite.Open(ctx, filepath.Join(dir, "batch.db"), sqlite.Config{})
	if err != nil {
		panic(err)
	}
	if err := repo.Migrate(ctx); err != nil {
		panic(err)
	}
	for _, s := range statements {
		if _, err := repo.DB().Exec(s); err != nil {
			panic(err)
		}
	}
	return repo, func() { _ = repo.Close(); _ = os.RemoveAll(dir) }
}

// stepChanges returns what the single step of a job execution reported it
// changed.
func stepChanges(repo *sqlite.Repository, exec *batch.JobExecution) batch.Changes {
	steps, err := repo.StepExecutions(context.Background(), exec.ID)
	if err != nil {
		panic(err)
	}
	return steps[0].Changes
}

func ExampleNewUpsert() {
	ctx := context.Background()
	repo, cleanup := exampleRepo(
		`CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT NOT NULL, price INTEGER NOT NULL)`,
		`INSERT INTO products VALUES ('A1', 'anvil', 100), ('B2', 'bucket', 5)`,
	)
	defer cleanup()

	type product struct {
		SKU, Name string
		Price     int
	}
	feed := []product{{"A1", "anvil", 100}, {"B2", "bucket", 6}, {"C3", "crate", 20}}

	w, err := writer.NewUpsert(writer.UpsertConfig[product]{
		DB:            repo.DB(), // the repository's database: each chunk joins the chunk's transaction
		Table:         "products",
		Columns:       []string{"sku", "name", "price"},
		Key:           []string{"sku"},
		Values:        func(p product) []any { return []any{p.SKU, p.Name, p.Price} },
		SkipUnchanged: true, // the anvil is not rewritten
	})
	if err != nil {
		panic(err)
	}
	step, _ := batch.NewChunkStep("sync", batch.ChunkConfig[product, product]{Reader: reader.FromSlice(feed), Writer: w, ChunkSize: 2})
	job, _ := batch.NewJob("sync", batch.JobConfig{Steps: []batch.Step{step}})
	l, _ := launcher.New(launcher.Config{Repository: repo})
	exec, err := l.Run(ctx, job, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(stepChanges(repo, exec))
	// Output:
	// 1 inserted, 1 updated, 1 unchanged
}

func ExampleNewUpdate() {
	ctx := context.Background()
	repo, cleanup := exampleRepo(
		`CREATE TABLE stock (sku TEXT PRIMARY KEY, quantity INTEGER NOT NULL)`,
		`INSERT INTO stock VALUES ('A1', 3), ('B2', 0), ('C3', 7)`,
	)
	defer cleanup()

	type count struct {
		SKU      string
		Quantity int
	}
	counted := []count{{"A1", 3}, {"B2", 12}, {"C3", 6}}

	w, err := writer.NewUpdate(writer.UpdateConfig[count]{
		DB:            repo.DB(),
		Table:         "stock",
		Columns:       []string{"sku", "quantity"},
		Key:           []string{"sku"},
		Values:        func(c count) []any { return []any{c.SKU, c.Quantity} },
		SkipUnchanged: true,
	})
	if err != nil {
		panic(err)
	}
	step, _ := batch.NewChunkStep("stocktake", batch.ChunkConfig[count, count]{Reader: reader.FromSlice(counted), Writer: w, ChunkSize: 2})
	job, _ := batch.NewJob("stocktake", batch.JobConfig{Steps: []batch.Step{step}})
	l, _ := launcher.New(launcher.Config{Repository: repo})
	exec, err := l.Run(ctx, job, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(stepChanges(repo, exec))
	var total int
	_ = repo.DB().Get(&total, `SELECT SUM(quantity) FROM stock`)
	fmt.Println("in stock:", total)
	// Output:
	// 2 updated, 1 unchanged
	// in stock: 21
}

func ExampleNewDelete() {
	ctx := context.Background()
	repo, cleanup := exampleRepo(
		`CREATE TABLE sessions (id INTEGER PRIMARY KEY)`,
		`INSERT INTO sessions VALUES (1), (2), (3), (4)`,
	)
	defer cleanup()

	expired := []int64{1, 3, 9} // 9 is gone already: not an error

	w, err := writer.NewDelete(writer.DeleteConfig[int64]{
		DB:     repo.DB(),
		Table:  "sessions",
		Key:    []string{"id"},
		Values: func(id int64) []any { return []any{id} },
	})
	if err != nil {
		panic(err)
	}
	step, _ := batch.NewChunkStep("expire", batch.ChunkConfig[int64, int64]{Reader: reader.FromSlice(expired), Writer: w})
	job, _ := batch.NewJob("expire", batch.JobConfig{Steps: []batch.Step{step}})
	l, _ := launcher.New(launcher.Config{Repository: repo})
	exec, err := l.Run(ctx, job, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(stepChanges(repo, exec))
	// Output:
	// 2 deleted
}

func ExampleNewNamed() {
	ctx := context.Background()
	repo, cleanup := exampleRepo(
		`CREATE TABLE balances (account TEXT PRIMARY KEY, cents INTEGER NOT NULL)`,
		`INSERT INTO balances VALUES ('alice', 1000), ('bob', 0)`,
	)
	defer cleanup()

	type payment struct {
		Account string `db:"account"`
		Cents   int64  `db:"cents"`
	}
	payments := []payment{{"alice", -250}, {"bob", 250}, {"bob", 100}}

	// Adding to a balance is not idempotent: the chunk transaction makes it
	// exactly once, restarts included.
	w, err := writer.NewNamed(writer.NamedConfig[payment]{
		DB:       repo.DB(),
		Query:    `UPDATE balances SET cents = cents + :cents WHERE account = :account`,
		Affected: writer.AffectedUpdated,
	})
	if err != nil {
		panic(err)
	}
	step, _ := batch.NewChunkStep("post", batch.ChunkConfig[payment, payment]{Reader: reader.FromSlice(payments), Writer: w, ChunkSize: 2})
	job, _ := batch.NewJob("post", batch.JobConfig{Steps: []batch.Step{step}})
	l, _ := launcher.New(launcher.Config{Repository: repo})
	exec, err := l.Run(ctx, job, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(stepChanges(repo, exec))
	var bob int
	_ = repo.DB().Get(&bob, `SELECT cents FROM balances WHERE account = 'bob'`)
	fmt.Println("bob:", bob)
	// Output:
	// 3 updated
	// bob: 350
}
