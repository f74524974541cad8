package processor_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/processor"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

type customer struct {
	ID   int    `json:"id" db:"id"`
	Name string `json:"name" db:"name"`
}

// upsert writes customers in the chunk's transaction.
func upsert(db *sqlx.DB, failAt *int) batch.WriterFunc[customer] {
	return func(ctx context.Context, items []customer) error {
		tx, err := batch.JoinTxx(ctx, db)
		if err != nil {
			return err
		}
		for _, c := range items {
			if c.ID == *failAt {
				return fmt.Errorf("customer %d: disk full", c.ID)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO customer (id, name) VALUES (?, ?)
				ON CONFLICT (id) DO UPDATE SET name = excluded.name`, c.ID, c.Name); err != nil {
				return err
			}
		}
		return nil
	}
}

// TestChangeDetectionAndDeleteMissing syncs three versions of a source into
// a table: the first inserts everything; the second (which fails half way
// and is restarted) writes only the changed row and deletes the vanished
// ones; the third, an outage returning two rows, is refused by the floor.
func TestChangeDetectionAndDeleteMissing(t *testing.T) {
	t.Parallel()
	repo, db, l := customerRepo(t)

	failAt := -1
	job := func(source []customer) *batch.Job {
		det, err := processor.NewChangeDetector(processor.ChangeDetectorConfig[customer]{
			DB: db, Scope: "crm.customer", Key: func(c customer) string { return strconv.Itoa(c.ID) },
		})
		require.NoError(t, err)
		sync, err := batch.NewChunkStep("sync", batch.ChunkConfig[customer, customer]{
			Reader:    reader.FromSlice(source),
			Processor: det,
			Writer:    det.Writer(upsert(db, &failAt)),
			ChunkSize: 3,
		})
		require.NoError(t, err)
		sweep, err := processor.DeleteMissing(processor.DeleteMissingConfig{
			DB: db, Scope: "crm.customer", Table: "customer", KeyColumn: "id", MinSeenRatio: 0.5,
		})
		require.NoError(t, err)
		del, err := batch.NewTaskletStep("delete-missing", batch.TaskletConfig{Tasklet: sweep})
		require.NoError(t, err)
		j, err := batch.NewJob("sync", batch.JobConfig{Steps: []batch.Step{sync, del}})
		require.NoError(t, err)
		return j
	}
	rows := func() []customer {
		var cs []customer
		require.NoError(t, db.Select(&cs, `SELECT id, name FROM customer ORDER BY id`))
		return cs
	}
	hashes := func() int {
		var n int
		require.NoError(t, db.Get(&n, `SELECT COUNT(*) FROM batch_item_hash WHERE scope = 'crm.customer'`))
		return n
	}
	steps := func(id int64) (sync, del *batch.StepExecution) {
		ses, err := repo.StepExecutions(context.Background(), id)
		require.NoError(t, err)
		return ses[0], ses[len(ses)-1]
	}

	var v1 []customer
	for i := 1; i <= 10; i++ {
		v1 = append(v1, customer{ID: i, Name: fmt.Sprintf("customer %d", i)})
	}
	exec, err := l.Run(context.Background(), job(v1), batch.JobParameters{"day": batch.StringParam("1")})
	require.NoError(t, err)
	sync, del := steps(exec.ID)
	require.Equal(t, []int64{10, 10, 0}, []int64{sync.ReadCount, sync.WriteCount, sync.FilterCount})
	require.Zero(t, del.Changes.Deleted)
	require.Equal(t, v1, rows())
	require.Equal(t, 10, hashes())

	// Day 2: customers 9 and 10 are gone, 3 changed its name. The first
	// attempt fails in the third chunk: the hashes of the chunks that did
	// not commit are not stored.
	v2 := append([]customer(nil), v1[:8]...)
	v2[2].Name = "customer three"
	v2[7].Name = "customer eight"
	failAt = 8
	day2 := batch.JobParameters{"day": batch.StringParam("2")}
	_, err = l.Run(context.Background(), job(v2), day2)
	require.ErrorContains(t, err, "customer 8: disk full")
	var stored string
	require.NoError(t, db.Get(&stored, `SELECT name FROM customer WHERE id = 8`))
	require.Equal(t, "customer 8", stored, "the failed chunk wrote nothing")
	failAt = -1
	exec, err = l.Run(context.Background(), job(v2), day2)
	require.NoError(t, err)
	sync, del = steps(exec.ID)
	require.Equal(t, []int64{2, 1, 1}, []int64{sync.ReadCount, sync.WriteCount, sync.FilterCount},
		"the restart reads the last chunk (7, 8): 7 unchanged, 8 changed")
	require.Equal(t, batch.Changes{Unchanged: 1}, sync.Changes, "the writer reported nothing; the detector the unchanged one")
	require.Equal(t, int64(2), del.Changes.Deleted)
	require.Equal(t, v2, rows())
	require.Equal(t, 8, hashes())
	first, err := l.Executions(context.Background(), batch.ExecutionQuery{JobName: "sync", Limit: 2})
	require.NoError(t, err)
	firstSync, _ := steps(first[1].ID)
	require.Equal(t, []int64{6, 1, 5}, []int64{firstSync.ReadCount, firstSync.WriteCount, firstSync.FilterCount},
		"day 2's first attempt wrote only customer 3 of its two committed chunks")
	require.Equal(t, batch.Changes{Unchanged: 5}, firstSync.Changes, "the unchanged of the rolled-back chunk do not count")

	// Day 3: the source answers with two customers. The sweep refuses.
	_, err = l.Run(context.Background(), job(v2[:2]), batch.JobParameters{"day": batch.StringParam("3")})
	require.ErrorIs(t, err, processor.ErrTooFewSeen)
	require.ErrorContains(t, err, "too few items seen to delete the others: this run saw 2 of the 8 items known, and needs at least 50% of those known")
	require.Equal(t, v2, rows(), "nothing deleted")
}

// TestChangeDetectorCountsUnchangedOnce: a chunk whose write fails on one
// item is written item by item, one commit per item; the unchanged items
// of the chunk are counted once, not once per commit.
func TestChangeDetectorCountsUnchangedOnce(t *testing.T) {
	t.Parallel()
	repo, db, l := customerRepo(t)
	errBad := errors.New("bad customer")
	run := func(day string, source []customer, bad int) *batch.StepExecution {
		det, err := processor.NewChangeDetector(processor.ChangeDetectorConfig[customer]{
			DB: db, Scope: "crm", Key: func(c customer) string { return strconv.Itoa(c.ID) },
		})
		require.NoError(t, err)
		never := -1
		inner := upsert(db, &never)
		w := batch.WriterFunc[customer](func(ctx context.Context, items []customer) error {
			for _, c := range items {
				if c.ID == bad {
					return errBad
				}
			}
			return inner(ctx, items)
		})
		step, err := batch.NewChunkStep("sync", batch.ChunkConfig[customer, customer]{
			Reader: reader.FromSlice(source), Processor: det, Writer: det.Writer(w),
			ChunkSize: 10, Skip: batch.MatchErrors(errBad),
			// Written item by item, the chunk keeps its processed items:
			// the unchanged ones are pending for every commit of the scan.
			ProcessorNonTransactional: true,
		})
		require.NoError(t, err)
		job, err := batch.NewJob("sync", batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		exec, err := l.Run(context.Background(), job, batch.JobParameters{"day": batch.StringParam(day)})
		require.NoError(t, err)
		ses, err := repo.StepExecutions(context.Background(), exec.ID)
		require.NoError(t, err)
		return ses[0]
	}
	var v1 []customer
	for i := 1; i <= 10; i++ {
		v1 = append(v1, customer{ID: i, Name: fmt.Sprintf("customer %d", i)})
	}
	run("1", v1, -1)
	v2 := append([]customer(nil), v1...)
	v2[1].Name, v2[4].Name, v2[7].Name = "two", "five", "eight"
	se := run("2", v2, 5)
	require.Equal(t, []int64{10, 2, 7, 1}, []int64{se.ReadCount, se.WriteCount, se.FilterCount, se.WriteSkipCount})
	require.Greater(t, se.CommitCount, int64(2), "the chunk was written item by item")
	require.Equal(t, int64(7), se.Changes.Unchanged)
}

// TestDeleteMissingKeepsSkippedItems: items that reached the detector are
// seen, even when a later stage or the write skips them: the sweep keeps
// their rows, which are still in the source.
func TestDeleteMissingKeepsSkippedItems(t *testing.T) {
	t.Parallel()
	for _, nonTransactional := range []bool{false, true} {
		repo, db, l := customerRepo(t)
		never := -1
		job := func(source []customer) *batch.Job {
			det, err := processor.NewChangeDetector(processor.ChangeDetectorConfig[customer]{
				DB: db, Scope: "crm.customer", Key: func(c customer) string { return strconv.Itoa(c.ID) },
			})
			require.NoError(t, err)
			valid := processor.Validate(func(c customer) error {
				if c.Name == "" {
					return errors.New("no name")
				}
				return nil
			}, processor.SkipInvalid)
			inner := upsert(db, &never)
			w := batch.WriterFunc[customer](func(ctx context.Context, items []customer) error {
				for _, c := range items {
					if c.Name == "refused" {
						return batch.Skippable(fmt.Errorf("customer %d refused", c.ID))
					}
				}
				return inner(ctx, items)
			})
			sync, err := batch.NewChunkStep("sync", batch.ChunkConfig[customer, customer]{
				Reader:                    reader.FromSlice(source),
				Processor:                 processor.Chain(batch.ItemProcessor[customer, customer](det), valid),
				Writer:                    det.Writer(w),
				Streams:                   []batch.ItemStream{det}, // the chain hides it
				ChunkSize:                 3,
				ProcessorNonTransactional: nonTransactional,
			})
			require.NoError(t, err)
			sweep, err := processor.DeleteMissing(processor.DeleteMissingConfig{
				DB: db, Scope: "crm.customer", Table: "customer", KeyColumn: "id", MinSeenRatio: 0.5,
			})
			require.NoError(t, err)
			del, err := batch.NewTaskletStep("delete-missing", batch.TaskletConfig{Tasklet: sweep})
			require.NoError(t, err)
			j, err := batch.NewJob("sync", batch.JobConfig{Steps: []batch.Step{sync, del}})
			require.NoError(t, err)
			return j
		}
		var v1 []customer
		for i := 1; i <= 6; i++ {
			v1 = append(v1, customer{ID: i, Name: fmt.Sprintf("customer %d", i)})
		}
		_, err := l.Run(context.Background(), job(v1), batch.JobParameters{"day": batch.StringParam("1")})
		require.NoError(t, err)
		v2 := append([]customer(nil), v1[:5]...)
		v2[2].Name = ""        // customer 3: skipped by the validation after the detector
		v2[3].Name = "refused" // customer 4: skipped at write
		exec, err := l.Run(context.Background(), job(v2), batch.JobParameters{"day": batch.StringParam("2")})
		require.NoError(t, err)
		ses, err := repo.StepExecutions(context.Background(), exec.ID)
		require.NoError(t, err)
		require.Equal(t, int64(1), ses[0].ProcessSkipCount)
		require.Equal(t, int64(1), ses[0].WriteSkipCount)
		require.Equal(t, int64(3), ses[0].Changes.Unchanged, "1, 2 and 5")
		require.Equal(t, int64(1), ses[1].Changes.Deleted, "customer 6 only")
		var ids []int
		require.NoError(t, db.Select(&ids, `SELECT id FROM customer ORDER BY id`))
		require.Equal(t, []int{1, 2, 3, 4, 5}, ids, "3 and 4 are still in the source: their rows stay (nonTransactional %v)", nonTransactional)
	}
}

// customerRepo opens a SQLite job repository, closed at the end of the test,
// with a table customer, and a launcher on it.
func customerRepo(t *testing.T) (*sqlite.Repository, *sqlx.DB, *launcher.Launcher) {
	t.Helper()
	repo, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "batch.db"), sqlite.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = repo.Close() })
	require.NoError(t, repo.Migrate(context.Background()))
	_, err = repo.DB().Exec(`CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`)
	require.NoError(t, err)
	l, err := launcher.New(launcher.Config{Repository: repo})
	require.NoError(t, err)
	return repo, repo.DB(), l
}
