package processor_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/processor"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

func ExampleSequence() {
	trim := batch.ProcessorFunc[string, string](func(_ context.Context, s string) (string, error) {
		return strings.TrimSpace(s), nil
	})
	lower := batch.ProcessorFunc[string, string](func(_ context.Context, s string) (string, error) {
		return strings.ToLower(s), nil
	})
	nonEmpty := processor.Filter(func(s string) bool { return s != "" })
	p := processor.Sequence(trim, nonEmpty, lower)
	for _, in := range []string{"  Ada ", "   "} {
		out, err := p.Process(context.Background(), in)
		fmt.Printf("%q %v\n", out, err)
	}
	// Output:
	// "ada" <nil>
	// "" batch: item filtered
}

func ExampleClassify() {
	type payment struct {
		Kind   string
		Amount int
	}
	describe := func(prefix string) batch.ItemProcessor[payment, string] {
		return batch.ProcessorFunc[payment, string](func(_ context.Context, p payment) (string, error) {
			return prefix + " " + strconv.Itoa(p.Amount), nil
		})
	}
	p := processor.Classify(func(p payment) string { return p.Kind },
		map[string]batch.ItemProcessor[payment, string]{"card": describe("card"), "sepa": describe("transfer")},
		describe("other"))
	for _, in := range []payment{{"card", 10}, {"sepa", 20}, {"cash", 5}} {
		out, _ := p.Process(context.Background(), in)
		fmt.Println(out)
	}
	// Output:
	// card 10
	// transfer 20
	// other 5
}

// A sync job run twice over the same source: the second run writes only the
// item that changed.
func ExampleNewChangeDetector() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	repo, err := sqlite.Open(ctx, filepath.Join(dir, "batch.db"), sqlite.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer repo.Close()
	if err := repo.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	l, err := launcher.New(launcher.Config{Repository: repo})
	if err != nil {
		log.Fatal(err)
	}
	type product struct {
		SKU   string `json:"sku"`
		Price int    `json:"price"`
	}
	sync := func(day string, source []product) {
		det, err := processor.NewChangeDetector(processor.ChangeDetectorConfig[product]{
			DB: repo.DB(), Scope: "shop.products", Key: func(p product) string { return p.SKU },
		})
		if err != nil {
			log.Fatal(err)
		}
		write := batch.WriterFunc[product](func(ctx context.Context, items []product) error {
			fmt.Println(day, "writes", items)
			return nil
		})
		step, err := batch.NewChunkStep("sync", batch.ChunkConfig[product, product]{
			Reader: reader.FromSlice(source), Processor: det, Writer: det.Writer(write),
		})
		if err != nil {
			log.Fatal(err)
		}
		job, err := batch.NewJob("sync", batch.JobConfig{Steps: []batch.Step{step}})
		if err != nil {
			log.Fatal(err)
		}
		if _, err := l.Run(ctx, job, batch.JobParameters{"day": batch.StringParam(day)}); err != nil {
			log.Fatal(err)
		}
	}
	sync("monday", []product{{"A-1", 100}, {"B-2", 250}, {"C-3", 75}})
	sync("tuesday", []product{{"A-1", 100}, {"B-2", 199}, {"C-3", 75}})
	// Output:
	// monday writes [{A-1 100} {B-2 250} {C-3 75}]
	// tuesday writes [{B-2 199}]
}
