package reader_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/reader"
)

// stringFile serves a string as a file: a strings.Reader can read and seek,
// and closing it does nothing.
type stringFile struct{ *strings.Reader }

func (stringFile) Close() error { return nil }

const people = `name,city,born
Ann,"Paris, France",1984
Bob,Oslo,1990
Cid,Rome,19x1
`

type person struct {
	Name string
	City string
	Born int64
}

func ExampleNewCSV() {
	ctx := context.Background()
	r, err := reader.NewCSV(reader.CSVConfig[person]{
		Name:   "people.csv",
		Open:   func() (io.ReadSeekCloser, error) { return stringFile{strings.NewReader(people)}, nil },
		Header: true,
		Map: func(rec reader.Record) (person, error) {
			born, err := rec.Int("born")
			return person{Name: rec.Fields[0], City: rec.Fields[1], Born: born}, err
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := r.Open(ctx, batch.ExecutionContext{}); err != nil {
		log.Fatal(err)
	}
	defer r.Close(ctx)
	for {
		p, err := r.Read(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Printf("%s, %s, %d\n", p.Name, p.City, p.Born)
	}
	// Output:
	// Ann, Paris, France, 1984
	// Bob, Oslo, 1990
	// reader: csv people.csv line 4: column "born": strconv.ParseInt: parsing "19x1": invalid syntax
}

func ExampleCSV_Update() {
	ctx := context.Background()
	cfg := reader.CSVConfig[[]string]{
		Name:   "people.csv",
		Open:   func() (io.ReadSeekCloser, error) { return stringFile{strings.NewReader(people)}, nil },
		Header: true,
		Map:    func(rec reader.Record) ([]string, error) { return rec.Fields, nil },
	}

	// A first run reads one record, commits and stops.
	first, err := reader.NewCSV(cfg)
	if err != nil {
		log.Fatal(err)
	}
	ec := batch.ExecutionContext{}
	if err := first.Open(ctx, ec); err != nil {
		log.Fatal(err)
	}
	if _, err := first.Read(ctx); err != nil {
		log.Fatal(err)
	}
	if err := first.Update(ctx, ec); err != nil {
		log.Fatal(err)
	}
	if err := first.Close(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(ec["people.csv.offset"]), string(ec["people.csv.line"]))

	// A restart with the committed context seeks to that offset and goes
	// on with the second record.
	second, err := reader.NewCSV(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := second.Open(ctx, ec); err != nil {
		log.Fatal(err)
	}
	defer second.Close(ctx)
	fields, err := second.Read(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(fields)
	// Output:
	// 40 2
	// [Bob Oslo 1990]
}

func ExampleMapStruct() {
	type order struct {
		ID     int     `csv:"id"`
		Amount float64 `csv:"amount"`
		Paid   bool    `csv:"paid"`
	}
	mapOrder, err := reader.MapStruct[order]()
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	r, err := reader.NewCSV(reader.CSVConfig[order]{
		Open: func() (io.ReadSeekCloser, error) {
			return stringFile{strings.NewReader("id,paid,amount\n1,true,9.5\n2,false,12\n")}, nil
		},
		Header: true,
		Map:    mapOrder,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := r.Open(ctx, nil); err != nil {
		log.Fatal(err)
	}
	defer r.Close(ctx)
	for {
		o, err := r.Read(ctx)
		if err != nil {
			break
		}
		fmt.Printf("%+v\n", o)
	}
	// Output:
	// {ID:1 Amount:9.5 Paid:true}
	// {ID:2 Amount:12 Paid:false}
}

func ExampleFromSlice() {
	ctx := context.Background()
	r := reader.FromSlice([]string{"a", "b", "c"})
	for {
		s, err := r.Read(ctx)
		if err == io.EOF {
			break
		}
		fmt.Print(s, " ")
	}
	fmt.Println()
	// Output: a b c
}

func ExampleSlice_Progress() {
	r := reader.FromSlice([]string{"a", "b", "c", "d"})
	for range 3 {
		if _, err := r.Read(context.Background()); err != nil {
			panic(err)
		}
	}
	// A chunk step stores this with every checkpoint, for status to show.
	p := r.Progress()
	fmt.Printf("%d of %d %s\n", p.Done, p.Total, p.Unit)
	// Output: 3 of 4 items
}
