package reader_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

// exampleTask is a row of the examples' tasks table.
type exampleTask struct {
	ID    int64     `db:"id"`
	DueAt time.Time `db:"due_at"`
	State string    `db:"state"`
}

// exampleTasks creates a SQLite file in dir with five tasks, two of them
// due at the same time, one done.
func exampleTasks(dir string) *sqlx.DB {
	db, err := sqlx.Open("sqlite", sqlite.DSN(filepath.Join(dir, "tasks.db")))
	if err != nil {
		log.Fatal(err)
	}
	db.MustExec(`CREATE TABLE tasks (id INTEGER PRIMARY KEY, due_at DATETIME NOT NULL, state TEXT NOT NULL)`)
	nine := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC)
	for i, due := range []time.Time{nine.Add(time.Hour), nine, nine.Add(time.Hour), nine.Add(2 * time.Hour), nine} {
		state := "open"
		if i == 3 {
			state = "done"
		}
		db.MustExec(`INSERT INTO tasks (id, due_at, state) VALUES (?, ?, ?)`, i+1, due, state)
	}
	return db
}

// printTasks reads n tasks (all when n < 0) and prints them.
func printTasks(ctx context.Context, r batch.ItemReader[exampleTask], n int) {
	for ; n != 0; n-- {
		t, err := r.Read(ctx)
		if err == io.EOF {
			return
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("task %d due %s\n", t.ID, t.DueAt.Format("15:04"))
	}
}

func ExampleKeyset() {
	dir, err := os.MkdirTemp("", "keyset")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db := exampleTasks(dir)
	defer db.Close()

	ctx := context.Background()
	cfg := reader.KeysetConfig[exampleTask]{
		DB:       db,
		Select:   "id, due_at, state",
		From:     "tasks",
		Where:    "state = ?",
		Args:     []any{"open"},
		Key:      []string{"due_at", "id"}, // unique together, ascending
		PageSize: 2,
	}

	// A first run reads three tasks, commits (Update) and stops.
	first, err := reader.NewKeyset(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := first.Open(ctx, batch.ExecutionContext{}); err != nil {
		log.Fatal(err)
	}
	printTasks(ctx, first, 3)
	ec := batch.ExecutionContext{}
	if err := first.Update(ctx, ec); err != nil {
		log.Fatal(err)
	}
	_ = first.Close(ctx)
	fmt.Println("checkpoint:", string(ec["tasks.key"]))

	// The restart resumes after the committed key.
	second, err := reader.NewKeyset(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := second.Open(ctx, ec); err != nil {
		log.Fatal(err)
	}
	defer second.Close(ctx)
	printTasks(ctx, second, -1)
	// Output:
	// task 2 due 09:00
	// task 5 due 09:00
	// task 1 due 10:00
	// checkpoint: ["2024-05-01T10:00:00Z",1]
	// task 3 due 10:00
}

func ExampleCursor() {
	dir, err := os.MkdirTemp("", "cursor")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db := exampleTasks(dir)
	defer db.Close()

	ctx := context.Background()
	cfg := reader.CursorConfig[exampleTask]{
		Name: "tasks",
		DB:   db,
		// Ordered by a unique key, so that a restart finds the rows in the
		// same order.
		Query: `SELECT id, due_at, state FROM tasks WHERE state = ? ORDER BY due_at, id`,
		Args:  []any{"open"},
		Key:   []string{"due_at", "id"}, // checked on restart
	}

	// A first run reads two tasks, commits (Update) and stops.
	first, err := reader.NewCursor(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := first.Open(ctx, batch.ExecutionContext{}); err != nil {
		log.Fatal(err)
	}
	printTasks(ctx, first, 2)
	ec := batch.ExecutionContext{}
	if err := first.Update(ctx, ec); err != nil {
		log.Fatal(err)
	}
	_ = first.Close(ctx)
	fmt.Println("checkpoint: row", string(ec["tasks.row"]))

	// The restart runs the query again and skips the committed rows.
	second, err := reader.NewCursor(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := second.Open(ctx, ec); err != nil {
		log.Fatal(err)
	}
	defer second.Close(ctx)
	printTasks(ctx, second, -1)
	// Output:
	// task 2 due 09:00
	// task 5 due 09:00
	// checkpoint: row 2
	// task 1 due 10:00
	// task 3 due 10:00
}
