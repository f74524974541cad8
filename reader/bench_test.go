package reader_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/reader"
)

type benchPerson struct {
	ID        int64
	Name      string
	Email     string
	Amount    float64
	CreatedAt time.Time
}

// BenchmarkCSV reads a 100,000-row file of five typed columns, mapping every
// record to a struct, and reports bytes and rows per second.
func BenchmarkCSV(b *testing.B) {
	path := filepath.Join(b.TempDir(), "people.csv")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "id,name,email,amount,created_at")
	const rows = 100_000
	for i := 1; i <= rows; i++ {
		fmt.Fprintf(w, "%d,\"Person, %d\",p%d@example.com,%d.%02d,2026-01-02T03:04:05Z\n", i, i, i, i%10000, i%100)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	size, _ := f.Seek(0, io.SeekCurrent)
	_ = f.Close()

	mapPerson := func(rec reader.Record) (p benchPerson, err error) {
		if p.ID, err = rec.Int("id"); err != nil {
			return p, err
		}
		if p.Name, err = rec.Get("name"); err != nil {
			return p, err
		}
		if p.Email, err = rec.Get("email"); err != nil {
			return p, err
		}
		if p.Amount, err = rec.Float("amount"); err != nil {
			return p, err
		}
		p.CreatedAt, err = rec.Time("created_at", time.RFC3339)
		return p, err
	}
	// By hand: encoding/csv and the same parsing, as a loader written for
	// this file would do it.
	b.Run("by-hand", func(b *testing.B) {
		b.SetBytes(size)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			cr := csv.NewReader(bufio.NewReader(f))
			cr.ReuseRecord = true
			if _, err := cr.Read(); err != nil {
				b.Fatal(err)
			}
			n := 0
			for {
				rec, err := cr.Read()
				if err == io.EOF {
					break
				}
				if err != nil {
					b.Fatal(err)
				}
				var p benchPerson
				if p.ID, err = strconv.ParseInt(rec[0], 10, 64); err != nil {
					b.Fatal(err)
				}
				p.Name, p.Email = strings.Clone(rec[1]), strings.Clone(rec[2])
				if p.Amount, err = strconv.ParseFloat(rec[3], 64); err != nil {
					b.Fatal(err)
				}
				if p.CreatedAt, err = time.Parse(time.RFC3339, rec[4]); err != nil {
					b.Fatal(err)
				}
				n++
			}
			_ = f.Close()
			if n != rows {
				b.Fatalf("read %d rows, want %d", n, rows)
			}
		}
		b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	for _, reuse := range []bool{false, true} {
		name := "chunkwise"
		if reuse {
			name += "/ReuseRecord"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				r, err := reader.NewCSV(reader.CSVConfig[benchPerson]{Path: path, Header: true, Map: mapPerson, ReuseRecord: reuse})
				if err != nil {
					b.Fatal(err)
				}
				if err := r.Open(context.Background(), batch.ExecutionContext{}); err != nil {
					b.Fatal(err)
				}
				n := 0
				for {
					_, err := r.Read(context.Background())
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					n++
				}
				_ = r.Close(context.Background())
				if n != rows {
					b.Fatalf("read %d rows, want %d", n, rows)
				}
			}
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
