package launcher_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/qustavo/sqlhooks/v2"
	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
)

// statementRecorder records the statements a database/sql driver runs, with
// their arguments, while on.
type statementRecorder struct {
	mu    sync.Mutex
	on    bool
	stmts []recorded
}

type recorded struct {
	query string
	args  []any
}

func (r *statementRecorder) Before(ctx context.Context, query string, args ...any) (context.Context, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on {
		r.stmts = append(r.stmts, recorded{query, args})
	}
	return ctx, nil
}

func (r *statementRecorder) After(ctx context.Context, _ string, _ ...any) (context.Context, error) {
	return ctx, nil
}

var pgxRecorded statementRecorder

func init() {
	sql.Register("pgx-recorded", sqlhooks.Wrap(stdlib.GetDefaultDriver(), &pgxRecorded))
}

// rowsTouched sums, over a JSON plan of EXPLAIN ANALYZE, the rows each node
// produced and the rows its filters removed.
func rowsTouched(node map[string]any) float64 {
	n := 0.0
	loops, _ := node["Actual Loops"].(float64)
	for _, k := range []string{"Actual Rows", "Rows Removed by Filter", "Rows Removed by Join Filter", "Rows Removed by Index Recheck"} {
		v, _ := node[k].(float64)
		n += v * max(loops, 1)
	}
	plans, _ := node["Plans"].([]any)
	for _, p := range plans {
		if m, ok := p.(map[string]any); ok {
			n += rowsTouched(m)
		}
	}
	return n
}

// TestPlansIndependentOfHistory: with 100,000 earlier executions of a job,
// every statement a launch, a run and the status queries send to the
// PostgreSQL repository touches a handful of rows — it finds them through
// an index — so that their times do not grow with the history. Each
// statement is run again under EXPLAIN ANALYZE, in a transaction rolled
// back, with the arguments it was sent with.
func TestPlansIndependentOfHistory(t *testing.T) {
	repo, db := openCountedPostgres("pgx-recorded")(t)
	addHistory(t, db, 100_000)
	ctx := context.Background()
	// A job with little history beside the one with much.
	l, err := launcher.New(launcher.Config{Repository: repo, HeartbeatInterval: time.Hour})
	require.NoError(t, err)
	run := func(job string, p batch.JobParameters) *batch.JobExecution {
		step, err := batch.NewChunkStep("load", batch.ChunkConfig[int, int]{
			Reader: reader.FromSlice(make([]int, 30)), ChunkSize: 10,
			Writer: batch.WriterFunc[int](func(context.Context, []int) error { return nil }),
		})
		require.NoError(t, err)
		j, err := batch.NewJob(job, batch.JobConfig{Steps: []batch.Step{step}})
		require.NoError(t, err)
		e, err := l.Run(ctx, j, p)
		require.NoError(t, err)
		return e
	}
	run("rare", batch.JobParameters{"day": batch.StringParam("1")})
	_, err = db.Exec(`ANALYZE`)
	require.NoError(t, err)

	pgxRecorded.mu.Lock()
	pgxRecorded.on = true
	pgxRecorded.mu.Unlock()
	e := run("history", batch.JobParameters{"day": batch.StringParam("new")})
	run("rare", batch.JobParameters{"day": batch.StringParam("2")})
	for _, q := range []batch.ExecutionQuery{{Limit: 20}, {JobName: "history", Limit: 20}, {JobName: "rare", Limit: 20},
		{Running: true}, {InstanceID: e.InstanceID},
		// The dashboard's filters and pages.
		{Status: batch.StatusFailed, Limit: 26}, {JobName: "history", Status: batch.StatusFailed, Limit: 26},
		{BeforeID: e.ID - 50_000, Limit: 26}, {JobName: "history", BeforeID: e.ID - 50_000, Limit: 26},
		{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour), Limit: 26}} {
		_, err := l.Executions(ctx, q)
		require.NoError(t, err)
	}
	_, err = l.Summary(ctx, e.ID)
	require.NoError(t, err)
	names, err := repo.JobNames(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"history", "rare"}, names)
	pgxRecorded.mu.Lock()
	pgxRecorded.on = false
	stmts := pgxRecorded.stmts
	pgxRecorded.mu.Unlock()
	require.NotEmpty(t, stmts)

	for _, st := range stmts {
		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		var plan []struct {
			Plan map[string]any `json:"Plan"`
		}
		var out string
		err = tx.QueryRowContext(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+st.query, st.args...).Scan(&out)
		_ = tx.Rollback()
		require.NoError(t, err, st.query)
		require.NoError(t, json.Unmarshal([]byte(out), &plan))
		touched := rowsTouched(plan[0].Plan)
		require.Less(t, touched, 200.0, "%s\n%s", strings.Join(strings.Fields(st.query), " "), out)
	}
	t.Logf("%d statements, each touching fewer than 200 rows of a history of 100,000 executions", len(stmts))
}
