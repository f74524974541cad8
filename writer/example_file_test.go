package writer_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/sqlite"
	"github.com/chunkwise/chunkwise/writer"
)

type invoice struct {
	Number   int    `json:"number"`
	Customer string `json:"customer"`
	Cents    int64  `json:"cents"`
}

var invoices = []invoice{
	{1001, "Acme, Inc.", 125000},
	{1002, "Globex", 9900},
	{1003, "Initech", 4250},
}

// exportInvoices runs a job that writes the invoices with w, two a chunk, on
// a SQLite job repository in dir, as ExampleNewCSVFile does.
func exportInvoices(dir string, w batch.ItemWriter[invoice]) {
	ctx := context.Background()
	repo, err := sqlite.Open(ctx, filepath.Join(dir, "batch.db"), sqlite.Config{})
	if err != nil {
		panic(err)
	}
	defer repo.Close()
	if err := repo.Migrate(ctx); err != nil {
		panic(err)
	}
	step, _ := batch.NewChunkStep("export", batch.ChunkConfig[invoice, invoice]{
		Reader: reader.FromSlice(invoices), Writer: w, ChunkSize: 2,
	})
	job, _ := batch.NewJob("export", batch.JobConfig{Steps: []batch.Step{step}})
	l, _ := launcher.New(launcher.Config{Repository: repo})
	if _, err := l.Run(ctx, job, nil); err != nil {
		panic(err)
	}
}

func ExampleNewCSVFile() {
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

	path := filepath.Join(dir, "invoices.csv")
	w, err := writer.NewCSVFile(writer.CSVFileConfig[invoice]{
		Path:    path,
		Columns: []string{"number", "customer", "cents"},
		Fields: func(in invoice) ([]string, error) {
			return []string{strconv.Itoa(in.Number), in.Customer, strconv.FormatInt(in.Cents, 10)}, nil
		},
		// Rewritten after every commit, for the invoices written so far.
		Footer: func(w io.Writer, written int64) error {
			_, err := fmt.Fprintf(w, "# %d invoices\n", written)
			return err
		},
	})
	if err != nil {
		panic(err)
	}
	step, _ := batch.NewChunkStep("export", batch.ChunkConfig[invoice, invoice]{
		Reader: reader.FromSlice(invoices), Writer: w, ChunkSize: 2,
	})
	job, _ := batch.NewJob("export", batch.JobConfig{Steps: []batch.Step{step}})
	l, _ := launcher.New(launcher.Config{Repository: repo})
	exec, err := l.Run(ctx, job, nil)
	fmt.Println(exec.Status, err)

	b, _ := os.ReadFile(path)
	fmt.Print(string(b))
	// Output:
	// COMPLETED <nil>
	// number,customer,cents
	// 1001,"Acme, Inc.",125000
	// 1002,Globex,9900
	// 1003,Initech,4250
	// # 3 invoices
}

func ExampleNewFixedWidthFile() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "invoices.txt")
	w, err := writer.NewFixedWidthFile(writer.FixedWidthFileConfig[invoice]{
		Path: path,
		Columns: []writer.FixedWidthColumn{
			{Name: "NUMBER", Width: 8, Align: writer.AlignRight, Pad: '0'},
			{Name: "CUSTOMER", Width: 12},
			{Name: "CENTS", Width: 10, Align: writer.AlignRight},
		},
		HeaderRow: true,
		Fields: func(in invoice) ([]string, error) {
			return []string{strconv.Itoa(in.Number), in.Customer, strconv.FormatInt(in.Cents, 10)}, nil
		},
		// A trailer record with the count of records.
		Footer: func(w io.Writer, written int64) error {
			_, err := fmt.Fprintf(w, "TRAILER%06d\n", written)
			return err
		},
	})
	if err != nil {
		panic(err)
	}
	exportInvoices(dir, w)

	b, _ := os.ReadFile(path)
	fmt.Print(string(b))
	// Output:
	//   NUMBERCUSTOMER         CENTS
	// 00001001Acme, Inc.      125000
	// 00001002Globex            9900
	// 00001003Initech           4250
	// TRAILER000003
}

func ExampleNewJSONLinesFile() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "invoices.jsonl")
	w, err := writer.NewJSONLinesFile(writer.JSONLinesFileConfig[invoice]{Path: path})
	if err != nil {
		panic(err)
	}
	exportInvoices(dir, w)

	b, _ := os.ReadFile(path)
	fmt.Print(string(b))
	// Output:
	// {"number":1001,"customer":"Acme, Inc.","cents":125000}
	// {"number":1002,"customer":"Globex","cents":9900}
	// {"number":1003,"customer":"Initech","cents":4250}
}

func ExampleNewJSONArrayFile() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "invoices.json")
	w, err := writer.NewJSONArrayFile(writer.JSONArrayFileConfig[invoice]{Path: path})
	if err != nil {
		panic(err)
	}
	exportInvoices(dir, w)

	b, _ := os.ReadFile(path)
	fmt.Print(string(b))
	// Output:
	// [
	// {"number":1001,"customer":"Acme, Inc.","cents":125000},
	// {"number":1002,"customer":"Globex","cents":9900},
	// {"number":1003,"customer":"Initech","cents":4250}
	// ]
}
