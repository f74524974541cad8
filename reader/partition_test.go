package reader_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

// TestKeyRangePartitions: a table whose keys are skewed (900 rows in
// 1..900, 100 in 1,000,001..1,000,100) split four ways by min/max and by
// quantiles, then read by a partitioned step with a keyset reader per
// range: every row once either way, and quantiles split the rows evenly.
func TestKeyRangePartitions(t *testing.T) {
	t.Parallel()
	repo, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "batch.db"), sqlite.Config{})
	require.NoError(t, err)
	defer repo.Close()
	require.NoError(t, repo.Migrate(t.Context()))
	db := repo.DB()
	_, err = db.Exec(`CREATE TABLE src (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`)
	require.NoError(t, err)
	var want []int64
	tx := db.MustBegin()
	for i := int64(1); i <= 1000; i++ {
		id := i
		if i > 900 {
			id = 1_000_000 + i - 900
		}
		tx.MustExec(`INSERT INTO src (id, v) VALUES (?, 'x')`, id)
		want = append(want, id)
	}
	require.NoError(t, tx.Commit())

	type row struct {
		ID int64  `db:"id"`
		V  string `db:"v"`
	}
	l, err := launcher.New(launcher.Config{Repository: repo})
	require.NoError(t, err)
	for _, quantiles := range []bool{false, true} {
		parts, err := reader.KeyRanges(reader.KeyRangeConfig{DB: db, From: "src", Column: "id", Partitions: 4, Quantiles: quantiles})
		require.NoError(t, err)
		var mu sync.Mutex
		var got []int64
		step, err := batch.NewPartitionStep("copy", batch.PartitionConfig{
			Partitioner: parts,
			Step: func(name string, p batch.Partition) (batch.Step, error) {
				where, args, err := reader.RangeWhere("id", p)
				if err != nil {
					return nil, err
				}
				rows, err := reader.NewKeyset(reader.KeysetConfig[row]{DB: db, From: "src", Key: []string{"id"}, Where: where, Args: args, PageSize: 50})
				if err != nil {
					return nil, err
				}
				return batch.NewChunkStep(name, batch.ChunkConfig[row, row]{Reader: rows, ChunkSize: 100,
					Writer: batch.WriterFunc[row](func(_ context.Context, items []row) error {
						mu.Lock()
						defer mu.Unlock()
						for _, r := range items {
							got = append(got, r.ID)
						}
						return nil
					})})
			},
		})
		require.NoError(t, err)
		job, err := batch.NewJob("copy", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		exec, err := l.Run(t.Context(), job, batch.JobParameters{"quantiles": batch.BoolParam(quantiles)})
		require.NoError(t, err)
		slices.Sort(got)
		require.Equal(t, want, got, "every row once (quantiles %v)", quantiles)
		ses, err := repo.StepExecutions(t.Context(), exec.ID)
		require.NoError(t, err)
		counts := map[string]int64{}
		for _, se := range ses {
			counts[se.StepName] = se.ReadCount
		}
		if quantiles {
			require.Equal(t, map[string]int64{"copy": 1000, "copy:p1": 250, "copy:p2": 250, "copy:p3": 250, "copy:p4": 250}, counts)
		} else {
			require.Equal(t, int64(900), counts["copy:p1"], "min/max spans: the skew shows")
			require.Equal(t, int64(100), counts["copy:p4"])
		}
	}

	empty, err := reader.KeyRanges(reader.KeyRangeConfig{DB: db, From: "src", Column: "id", Where: "id < ?", Args: []any{0}, Partitions: 3})
	require.NoError(t, err)
	none, err := empty.Partitions(t.Context())
	require.NoError(t, err)
	require.Empty(t, none)
	_, err = reader.KeyRanges(reader.KeyRangeConfig{DB: db, From: "src", Column: "id; DROP TABLE src", Partitions: 3})
	require.ErrorContains(t, err, "invalid column")
}

func TestFilePartitions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{"b.csv", "a.csv", "c.txt"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), nil, 0o600))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "old.csv"), 0o700)) // a directory: passed over
	p, err := reader.Files(filepath.Join(dir, "*.csv"))
	require.NoError(t, err)
	parts, err := p.Partitions(t.Context())
	require.NoError(t, err)
	require.Len(t, parts, 2)
	var path string
	_, err = parts[0].Context.Get(reader.PartitionPath, &path)
	require.NoError(t, err)
	require.Equal(t, "f1", parts[0].Name)
	require.Equal(t, filepath.Join(dir, "a.csv"), path)
	none, err := reader.Files(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	_, err = none.Partitions(t.Context())
	require.ErrorContains(t, err, "no file matches")
	require.NoError(t, os.Symlink(filepath.Join(dir, "gone"), filepath.Join(dir, "d.csv")))
	_, err = p.Partitions(t.Context())
	require.ErrorContains(t, err, "d.csv", "a match that cannot be looked at is named")
}
