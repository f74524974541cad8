package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/chunkwise/chunkwise/internal/exampletest"
	"github.com/stretchr/testify/require"
)

var binary string

func TestMain(m *testing.M) { exampletest.Main(m, "trade", &binary) }

func run(t *testing.T, dsn string, env []string, args ...string) (int, string, string) {
	t.Helper()
	r := exampletest.Run(t, binary, dsn, env, args...)
	return r.Code, r.Stdout, r.Stderr
}

// TestSpringTradeFigures runs the trade job on Spring Batch's trade data,
// failing the debit step at the third trade the first time, and checks the
// figures Spring Batch's TradeJobFunctionalTests asserts: the five trades
// loaded, and each customer's credit of 100000 debited by the prices of its
// trades — once, although a chunk of debits was rolled back and redone.
func TestSpringTradeFigures(t *testing.T) {
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			dsn, db := b.DSN, b.DB
			report := filepath.Join(t.TempDir(), "customers.csv")
			code, stdout, stderr := run(t, dsn, []string{"FAIL_AT=UK21341EAH47"}, "run", "report="+report)
			require.Equal(t, 1, code, stderr)
			require.Regexp(t, `debit\s+FAILED\s+2\s+2`, stdout, "the first chunk of debits committed")

			code, stdout, stderr = run(t, dsn, nil, "run", "report="+report)
			require.Equal(t, 0, code, stderr)
			require.Regexp(t, `debit\s+COMPLETED\s+3\s+3`, stdout, "the restart debits the other three")

			var trades []trade
			require.NoError(t, db.Select(&trades, `SELECT id, isin, quantity, price, customer FROM trade ORDER BY isin`))
			require.Equal(t, []trade{
				{1, "UK21341EAH45", 978, 98.34, "customer1"},
				{2, "UK21341EAH46", 112, 18.12, "customer2"},
				{3, "UK21341EAH47", 245, 12.78, "customer2"},
				{4, "UK21341EAH48", 108, 109.25, "customer3"},
				{5, "UK21341EAH49", 854, 123.39, "customer4"},
			}, trades)
			var customers []customer
			require.NoError(t, db.Select(&customers, `SELECT name, credit FROM customer ORDER BY name`))
			want := []customer{
				{"customer1", 100000 - 98.34},
				{"customer2", 100000 - 18.12 - 12.78},
				{"customer3", 100000 - 109.25},
				{"customer4", 100000 - 123.39},
			}
			require.Len(t, customers, len(want))
			for i, c := range customers {
				require.Equal(t, want[i].Name, c.Name)
				require.InDelta(t, want[i].Credit, c.Credit, 0.001, c.Name)
			}
			content, err := os.ReadFile(report)
			require.NoError(t, err)
			require.Equal(t, "customer,credit\ncustomer1,99901.66\ncustomer2,99969.10\ncustomer3,99890.75\ncustomer4,99876.61\n# 4 customers\n",
				string(content))
		})
	}
}
