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

func ExampleNewSQL() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	repo, err := sqlite.Open(ctx, filepath.Join(dir, "batch.db"), sqlite.Config{})
	if err != nil {
		panic(err)
	}
	defer repo.Close()
	if err := repo.Migrate(ctx); err != nil {
		panic(err)
	}
	db := repo.DB() // the repository's database: the writer joins each chunk's transaction
	if _, err := db.Exec(`CREATE TABLE squares (n INTEGER, square INTEGER)`); err != nil {
		panic(err)
	}

	w, err := writer.NewSQL(writer.SQLConfig[int]{
		DB: db, Table: "squares", Columns: []string{"n", "square"},
		Values: func(n int) []any { return []any{n, n * n} },
	})
	if err != nil {
		panic(err)
	}
	step, _ := batch.NewChunkStep("squares", batch.ChunkConfig[int, int]{
		Reader: reader.FromSlice([]int{1, 2, 3, 4, 5}), Writer: w, ChunkSize: 2,
	})
	job, _ := batch.NewJob("squares", batch.JobConfig{Steps: []batch.Step{step}})
	l, err := launcher.New(launcher.Config{Repository: repo})
	if err != nil {
		panic(err)
	}
	exec, err := l.Run(ctx, job, nil)
	fmt.Println(exec.Status, err)

	var sum int
	_ = db.Get(&sum, `SELECT SUM(square) FROM squares`)
	fmt.Println("sum of squares:", sum)
	// Output:
	// COMPLETED <nil>
	// sum of squares: 55
}
