package main

import (
	"testing"
	"time"

	"github.com/chunkwise/chunkwise/internal/exampletest"
	"github.com/stretchr/testify/require"
)

// binary is the overdue program, built once: the tests run it as cron does.
var binary string

func TestMain(m *testing.M) { exampletest.Main(m, "overdue", &binary) }

func run(t *testing.T, dsn string, env []string, args ...string) (int, string, string) {
	t.Helper()
	r := exampletest.Run(t, binary, dsn, env, args...)
	return r.Code, r.Stdout, r.Stderr
}

// TestFailHalfWayThenRestart marks the overdue tasks of the demo table in
// chunks of 100, failing at task 701 on the first run: the restart marks
// the rest, reading only what the first run did not commit, and every
// overdue task is updated once.
func TestFailHalfWayThenRestart(t *testing.T) {
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			dsn, db := b.DSN, b.DB
			today := "day=" + time.Now().UTC().Format(time.DateOnly)
			code, stdout, stderr := run(t, dsn, []string{"FAIL_AT=701"}, "run", today, "+chunk:int=100")
			require.Equal(t, 1, code, stderr)
			require.Contains(t, stdout, "FAILED")
			require.Contains(t, stderr, "FAIL_AT=701: failing on purpose at task 701")
			var marked int
			require.NoError(t, db.Get(&marked, `SELECT COUNT(*) FROM tasks WHERE state = 'overdue'`))
			require.Equal(t, 600, marked, "six chunks of 100 committed before the failing one")

			code, stdout, stderr = run(t, dsn, nil, "run", today, "+chunk:int=100")
			require.Equal(t, 0, code, stderr)
			require.Contains(t, stdout, "execution 2 (instance 1): COMPLETED")
			require.Regexp(t, `mark\s+COMPLETED\s+634\s+634`, stdout, "the restart reads what was not committed")
			require.Contains(t, stdout, "step mark changed: 634 updated")

			var got struct {
				Overdue int `db:"overdue"`
				Late    int `db:"late"`
			}
			require.NoError(t, db.Get(&got, db.Rebind(`SELECT
				SUM(CASE WHEN state = 'overdue' THEN 1 ELSE 0 END) AS overdue,
				SUM(CASE WHEN state = 'open' AND due_on < ? THEN 1 ELSE 0 END) AS late FROM tasks`),
				time.Now().UTC().Format(time.DateOnly)))
			require.Equal(t, 1234, got.Overdue, "every task due before today and not done")
			require.Zero(t, got.Late)

			// The next night is a new instance; nothing is due then but
			// the tasks of that one day.
			tomorrow := "day=" + time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
			code, stdout, stderr = run(t, dsn, nil, "run", tomorrow)
			require.Equal(t, 0, code, stderr)
			require.Regexp(t, `execution 3 \(instance [2-9]\): COMPLETED`, stdout)
			require.Regexp(t, `mark\s+COMPLETED\s+41\s+41`, stdout, "48 tasks due today, 7 of them done")
		})
	}
}
