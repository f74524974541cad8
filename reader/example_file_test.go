package reader_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/reader"
)

// drain opens r, prints every item or error it reads, and closes it.
func drain[T any](r reader.StreamReader[T], ec batch.ExecutionContext) {
	ctx := context.Background()
	if err := r.Open(ctx, ec); err != nil {
		log.Fatal(err)
	}
	defer r.Close(ctx)
	for {
		item, err := r.Read(ctx)
		if err == io.EOF {
			return
		}
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%+v\n", item)
	}
}

func ExampleNewFixedWidth() {
	const trades = `TRADES 2026-12-01
UK21341EAH4121131.11customer1
UK21341EAH4221232.11customer2
UK21341EAH43213xx.11customer3
TRAILER 3
`
	type trade struct {
		ISIN     string  `csv:"isin"`
		Quantity int     `csv:"qty"`
		Price    float64 `csv:"price"`
		Customer string  `csv:"customer"`
	}
	mapTrade, err := reader.MapStruct[trade]()
	if err != nil {
		log.Fatal(err)
	}
	r, err := reader.NewFixedWidth(reader.FixedWidthConfig[trade]{
		Name: "trades.txt",
		Open: func() (io.ReadSeekCloser, error) { return stringFile{strings.NewReader(trades)}, nil },
		Columns: []reader.Column{
			{Name: "isin", From: 1, To: 12}, {Name: "qty", From: 13, To: 15},
			{Name: "price", From: 16, To: 20}, {Name: "customer", From: 21, To: 29},
		},
		HeaderLines: 1,
		FooterLines: 1,
		Footer: func(lines []string, records int64) error {
			if lines[0] != fmt.Sprintf("TRAILER %d", records) {
				return fmt.Errorf("%q does not match the %d records", lines[0], records)
			}
			return nil
		},
		Map: mapTrade,
	})
	if err != nil {
		log.Fatal(err)
	}
	drain(r, nil)
	// Output:
	// {ISIN:UK21341EAH41 Quantity:211 Price:31.11 Customer:customer1}
	// {ISIN:UK21341EAH42 Quantity:212 Price:32.11 Customer:customer2}
	// reader: fixed-width trades.txt line 4: column "price": strconv.ParseFloat: parsing "xx.11": invalid syntax
}

type reading struct {
	Sensor string  `json:"sensor"`
	Value  float64 `json:"value"`
}

func ExampleNewJSONLines() {
	const readings = `{"sensor": "a", "value": 1.5}
{"sensor": "b", "value": "high"}

{"sensor": "c", "value": 3}
`
	r, err := reader.NewJSONLines(reader.JSONLinesConfig[reading]{
		Name: "readings.jsonl",
		Open: func() (io.ReadSeekCloser, error) { return stringFile{strings.NewReader(readings)}, nil },
	})
	if err != nil {
		log.Fatal(err)
	}
	drain(r, nil)
	// Output:
	// {Sensor:a Value:1.5}
	// reader: jsonl readings.jsonl line 2: json: cannot unmarshal string into Go struct field reading.value of type float64
	// {Sensor:c Value:3}
}

func ExampleNewJSONArray() {
	const readings = `[
  {"sensor": "a", "value": 1.5},
  {"sensor": "b", "value": 2},
  {"sensor": "c", "value": 3}
]`
	cfg := reader.JSONArrayConfig[reading]{
		Name: "readings.json",
		Open: func() (io.ReadSeekCloser, error) { return stringFile{strings.NewReader(readings)}, nil },
	}
	// Read one element, and keep the checkpoint a commit would store.
	ctx := context.Background()
	r, err := reader.NewJSONArray(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := r.Open(ctx, nil); err != nil {
		log.Fatal(err)
	}
	first, _ := r.Read(ctx)
	fmt.Printf("%+v\n", first)
	ec := batch.ExecutionContext{}
	if err := r.Update(ctx, ec); err != nil {
		log.Fatal(err)
	}
	_ = r.Close(ctx)
	fmt.Println("restart at byte", string(ec["readings.json.offset"]))

	// A restart goes on from the checkpoint.
	drain(r, ec)
	// Output:
	// {Sensor:a Value:1.5}
	// restart at byte 33
	// {Sensor:b Value:2}
	// {Sensor:c Value:3}
}

func ExampleNewMultiFile() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for day, content := range map[string]string{
		"2026-11-30": `{"sensor": "a", "value": 1}` + "\n",
		"2026-12-01": `{"sensor": "b", "value": 2}` + "\n" + `{"sensor": "c", "value": 3}` + "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, day+".jsonl"), []byte(content), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	r, err := reader.NewMultiFile(reader.MultiFileConfig[reading]{
		Glob: filepath.Join(dir, "*.jsonl"),
		Reader: func(path string) (reader.StreamReader[reading], error) {
			return reader.NewJSONLines(reader.JSONLinesConfig[reading]{Path: path})
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	drain(r, nil)
	// Output:
	// {Sensor:a Value:1}
	// {Sensor:b Value:2}
	// {Sensor:c Value:3}
}

func ExampleFromSeq() {
	// Any iterator, here the sorted keys of a map.
	stock := map[string]int{"pear": 3, "apple": 5, "fig": 1}
	r := reader.FromSeq("fruit", slices.Values(slices.Sorted(func(yield func(string) bool) {
		for k := range stock {
			if !yield(k) {
				return
			}
		}
	})))
	drain(r, batch.ExecutionContext{"fruit.read": []byte("1")}) // a restart after one item
	// Output:
	// fig
	// pear
}

func ExampleFromChannel() {
	ch := make(chan string)
	go func() {
		defer close(ch)
		for _, s := range []string{"a", "b"} {
			ch <- s
		}
	}()
	r := reader.FromChannel(ch)
	for {
		s, err := r.Read(context.Background())
		if err == io.EOF {
			break
		}
		fmt.Println(s)
	}
	// Output:
	// a
	// b
}

func ExampleFiles() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for _, name := range []string{"2026-12-02.csv", "2026-12-01.csv"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			log.Fatal(err)
		}
	}
	p, err := reader.Files(filepath.Join(dir, "*.csv"))
	if err != nil {
		log.Fatal(err)
	}
	parts, err := p.Partitions(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for _, part := range parts {
		var path string
		_, _ = part.Context.Get(reader.PartitionPath, &path)
		fmt.Println(part.Name, filepath.Base(path))
	}
	// Output:
	// f1 2026-12-01.csv
	// f2 2026-12-02.csv
}

// A CSV input cut into byte ranges for a partitioned step: each range
// starts at a record (a quoted line break does not start one), and each
// partition's reader reads its range only.
func ExampleCSVRanges() {
	const people = "id,name\n1,Ada\n2,\"Grace\nHopper\"\n3,Edsger\n4,Barbara\n5,Donald\n6,Frances\n"
	type person struct {
		ID   int64
		Name string
	}
	cfg := reader.CSVConfig[person]{
		Name:   "people.csv",
		Open:   func() (io.ReadSeekCloser, error) { return stringFile{strings.NewReader(people)}, nil },
		Header: true,
		Map: func(rec reader.Record) (person, error) {
			id, err := rec.Int("id")
			name, _ := rec.Get("name")
			return person{ID: id, Name: strings.ReplaceAll(name, "\n", " ")}, err
		},
	}
	ranges, err := reader.CSVRanges(cfg, 3)
	if err != nil {
		log.Fatal(err)
	}
	parts, err := ranges.Partitions(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range parts {
		part := cfg
		if part.Range, err = reader.CSVRangeOf(p); err != nil {
			log.Fatal(err)
		}
		r, err := reader.NewCSV(part)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: bytes %d to %d, after line %d\n", p.Name, part.Range.Start, part.Range.End, part.Range.Line)
		drain(r, batch.ExecutionContext{})
	}
	// Output:
	// p1: bytes 8 to 31, after line 1
	// {ID:1 Name:Ada}
	// {ID:2 Name:Grace Hopper}
	// p2: bytes 31 to 59, after line 4
	// {ID:3 Name:Edsger}
	// {ID:4 Name:Barbara}
	// {ID:5 Name:Donald}
	// p3: bytes 59 to 0, after line 7
	// {ID:6 Name:Frances}
}
