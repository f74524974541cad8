package batch_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
)

type trade struct {
	ISIN     string
	Quantity int64
	Price    float64
	Customer string
}

var errWriteFailed = errors.New("write failed")

// TestSpringSkipSampleStep1 replays step 1 of Spring Batch's skip sample
// (spring-batch-samples, skip/data/input1.txt, skipSampleJob.xml) and checks
// the counts its SkipSampleFunctionalTests publish: nine trades, chunks of
// three, the fifth unparseable (a read skip), the sixth (customer6) failing
// the write (a write skip found by scanning its chunk). Spring's commit count
// is 4: two chunks, one item of the scanned chunk, and the step's last
// commit; the skip of the failing item is recorded with a commit of the
// scan, not in a transaction of its own.
func TestSpringSkipSampleStep1(t *testing.T) {
	input, err := os.ReadFile("../../shared/anchors/spring-batch-samples/skip/input1.txt")
	if errors.Is(err, os.ErrNotExist) {
		input = []byte("UK21341EAH45,978,98.34,customer1\nUK21341EAH46,112,18.12,customer2\nUK21341EAH47,223,12.78,customer3\n" +
			"UK21341EAH48,245,32.53,customer4\nUK21341EAH49,ERR,ERR,customer5\nUK21341EAH50,854,13.39,customer6\n" +
			"UK21341EAH51,978,98.34,customer7\nUK21341EAH52,345,48.23,customer8\nUK21341EAH53,564,32.11,customer9\n")
	} else {
		require.NoError(t, err)
	}
	path := filepath.Join(t.TempDir(), "input1.txt")
	require.NoError(t, os.WriteFile(path, input, 0o600))

	repo := openSQLite(t, filepath.Join(t.TempDir(), "batch.db"))
	db := repo.DB()
	_, err = db.Exec(`CREATE TABLE trade (isin TEXT PRIMARY KEY, quantity INTEGER, price REAL, customer TEXT)`)
	require.NoError(t, err)
	in, err := reader.NewCSV(reader.CSVConfig[trade]{Path: path, Map: func(rec reader.Record) (trade, error) {
		q, err := strconv.ParseInt(rec.Fields[1], 10, 64)
		if err != nil {
			return trade{}, fmt.Errorf("quantity %q: %w", rec.Fields[1], err)
		}
		p, err := strconv.ParseFloat(rec.Fields[2], 64)
		if err != nil {
			return trade{}, fmt.Errorf("price %q: %w", rec.Fields[2], err)
		}
		return trade{ISIN: rec.Fields[0], Quantity: q, Price: p, Customer: rec.Fields[3]}, nil
	}})
	require.NoError(t, err)
	step, err := batch.NewChunkStep("step1", batch.ChunkConfig[trade, trade]{
		Reader: in,
		Writer: batch.WriterFunc[trade](func(ctx context.Context, items []trade) error {
			tx, err := batch.JoinTxx(ctx, db)
			if err != nil {
				return err
			}
			for _, it := range items {
				if it.Customer == "customer6" {
					return fmt.Errorf("%w: customer %s", errWriteFailed, it.Customer)
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO trade VALUES (?, ?, ?, ?)`, it.ISIN, it.Quantity, it.Price, it.Customer); err != nil {
					return err
				}
			}
			return nil
		}),
		ChunkSize: 3,
		SkipLimit: 10,
		Skip:      batch.MatchType[*reader.ParseError]().Or(batch.MatchErrors(errWriteFailed)),
	})
	require.NoError(t, err)
	job, err := batch.NewJob("skipJob", batch.JobConfig{Steps: []batch.Step{step}})
	require.NoError(t, err)
	exec, err := mustLauncher(t, launcher.Config{Repository: repo}).Run(context.Background(), job, nil)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	se := onlyStep(t, repo, exec.ID)
	require.Equal(t, int64(4), se.CommitCount, "COMMIT_COUNT")
	require.Equal(t, int64(8), se.ReadCount, "READ_COUNT")
	require.Equal(t, int64(7), se.WriteCount, "WRITE_COUNT")
	require.Equal(t, int64(1), se.ReadSkipCount)
	require.Equal(t, int64(1), se.WriteSkipCount)
	var isins []string
	require.NoError(t, db.Select(&isins, `SELECT substr(isin, 11) FROM trade ORDER BY isin`))
	require.Equal(t, []string{"45", "46", "47", "48", "51", "52", "53"}, isins, "7 rows in TRADE")
}
