package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/chunkwise/chunkwise/internal/exampletest"
	"github.com/jmoiron/sqlx"
	"github.com/stretchr/testify/require"
)

// binary is the apisync program, built once: the tests run it as cron does.
var binary string

func TestMain(m *testing.M) { exampletest.Main(m, "apisync", &binary) }

func run(t *testing.T, dsn string, env []string, args ...string) (int, string, string) {
	t.Helper()
	r := exampletest.Run(t, binary, dsn, env, args...)
	return r.Code, r.Stdout, r.Stderr
}

// receiver is a webhook on loopback that keeps the notices it is sent.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	got  []map[string]any
	errs []string
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var notice map[string]any
		err := json.NewDecoder(req.Body).Decode(&notice)
		r.mu.Lock()
		defer r.mu.Unlock()
		switch {
		case req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json":
			r.errs = append(r.errs, req.Method+" "+req.Header.Get("Content-Type"))
		case err != nil:
			r.errs = append(r.errs, err.Error())
		default:
			r.got = append(r.got, notice)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) notices(t *testing.T) []map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Empty(t, r.errs, "malformed notices")
	return append([]map[string]any(nil), r.got...)
}

func requireTable(t *testing.T, db *sqlx.DB, want []customer, msg string) {
	t.Helper()
	var got []customer
	require.NoError(t, db.Select(&got, `SELECT id, name, email, city, plan FROM customers ORDER BY id`))
	require.Equal(t, want, got, msg)
}

// TestSync syncs the fake API's customers four times, as the README does:
// the first sync inserts them all; the second, against the changed data,
// fails half way and is restarted, and between them they update the changed
// customers once, insert the new ones and delete the vanished ones; the
// third, during an outage, deletes nothing. A last sync reads a fake API
// the test serves itself, through url=, and finds nothing changed. The
// pages that misbehave are asked for twice, and the webhook hears of each
// failed execution once.
func TestSync(t *testing.T) {
	v1, v2 := fakeCustomers(1), fakeCustomers(2)
	require.Len(t, v1, 1200)
	require.Len(t, v2, 1206)
	for name, open := range exampletest.Backends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			dsn, db := b.DSN, b.DB
			hook := newReceiver(t)
			webhook := "webhook=" + hook.URL

			// 1. Everything is new.
			code, stdout, stderr := run(t, dsn, nil, "run", webhook)
			require.Equal(t, 0, code, stderr)
			require.Contains(t, stdout, "execution 1 (instance 1): COMPLETED")
			require.Regexp(t, `sync\s+COMPLETED\s+1200\s+1200\s+0\s`, stdout)
			require.Contains(t, stdout, "step sync changed: 1200 inserted\n")
			require.NotContains(t, stdout, "step delete-missing changed")
			require.Contains(t, stdout, "fake API: 15 requests for 12 pages; page 3: 2 requests, the first hung; "+
				"page 5: 2 requests, the first got 503; page 8: 2 requests, the first got 429\n")
			require.Equal(t, 3, strings.Count(stderr, `msg="api: retrying"`), stderr)
			requireTable(t, db, v1, "after the first sync")
			require.Empty(t, hook.notices(t), "no notice for a completed execution")

			// 2. Version 2, failing in the seventh chunk (items 601-700,
			// customers 614-713), after its upserts: six chunks of 100
			// committed, with the 30 changed customers among them.
			code, stdout, stderr = run(t, dsn, []string{"FAIL_AT=650"}, "run", "version=2", webhook)
			require.Equal(t, 1, code, stderr)
			require.Contains(t, stdout, "execution 2 (instance 2): FAILED")
			require.Regexp(t, `sync\s+FAILED\s+600\s+30\s+570\s`, stdout)
			require.Contains(t, stdout, "step sync changed: 30 updated, 570 unchanged\n")
			require.Contains(t, stdout, "fake API: 9 requests for 7 pages; page 3: 2 requests, the first hung; "+
				"page 5: 2 requests, the first got 503\n")
			require.Contains(t, stderr, "FAIL_AT=650: failing on purpose at customer 660, after writing its chunk")
			half := make([]customer, len(v1))
			copy(half, v1)
			for i := range half {
				if half[i].ID <= 613 && half[i].ID%20 == 0 {
					half[i].Plan, half[i].Email = "pro", fmt.Sprintf("billing+%d@example.org", half[i].ID)
				}
			}
			requireTable(t, db, half, "the rolled-back chunk's upserts of 620 to 700 are undone")
			notices := hook.notices(t)
			require.Len(t, notices, 1, "one notice for the failed execution")
			require.Equal(t, "apisync", notices[0]["job"])
			require.EqualValues(t, 2, notices[0]["execution_id"])
			require.Equal(t, "FAILED", notices[0]["status"])
			require.Equal(t, "FAILED", notices[0]["exit_code"])
			require.Contains(t, notices[0]["exit_description"], "FAIL_AT=650")

			// The restart resumes at item 601: 30 changed, 30 new and 546
			// unchanged of the 606 left; then the 24 vanished ones go.
			code, stdout, stderr = run(t, dsn, nil, "run", "version=2", webhook)
			require.Equal(t, 0, code, stderr)
			require.Contains(t, stdout, "execution 3 (instance 2): COMPLETED")
			require.Contains(t, stdout, "step sync resumed at item 601")
			require.Regexp(t, `sync\s+COMPLETED\s+606\s+60\s+546\s`, stdout)
			require.Contains(t, stdout, "step sync changed: 30 inserted, 30 updated, 546 unchanged\n")
			require.Contains(t, stdout, "step delete-missing changed: 24 deleted\n")
			require.Contains(t, stdout, "fake API: 8 requests for 7 pages; page 8: 2 requests, the first got 429\n")
			requireTable(t, db, v2, "every customer of version 2 once")
			var hashes int
			require.NoError(t, db.Get(&hashes, `SELECT COUNT(*) FROM batch_item_hash WHERE scope = 'apisync.customers'`))
			require.Equal(t, 1206, hashes, "the vanished customers' hashes are forgotten")
			var spot struct {
				Updated string `db:"updated"`
				Gone    int    `db:"gone"`
				New     int    `db:"new"`
			}
			require.NoError(t, db.Get(&spot, `SELECT
				(SELECT plan || ' ' || email FROM customers WHERE id = 660) AS updated,
				(SELECT COUNT(*) FROM customers WHERE id IN (7, 657, 1157)) AS gone,
				(SELECT COUNT(*) FROM customers WHERE id > 1200) AS new`))
			require.Equal(t, "pro billing+660@example.org", spot.Updated)
			require.Zero(t, spot.Gone)
			require.Equal(t, 30, spot.New)
			require.Len(t, hook.notices(t), 1, "no notice for the completed restart")

			// 3. An outage: 20 customers, all unchanged. The floor refuses
			// the delete, and the execution fails.
			code, stdout, stderr = run(t, dsn, nil, "run", "version=2", "outage=true", webhook)
			require.Equal(t, 1, code, stderr)
			require.Regexp(t, `execution 4 \(instance \d+\): FAILED`, stdout)
			require.Regexp(t, `sync\s+COMPLETED\s+20\s+0\s+20\s`, stdout)
			require.Regexp(t, `delete-missing\s+FAILED\s`, stdout)
			require.Contains(t, stdout, "too few items seen to delete the others: this run saw 20 of the 1206 items known, and needs at least 50% of those known")
			require.Contains(t, stdout, "step sync changed: 20 unchanged\n")
			require.NotContains(t, stdout, "delete-missing changed:")
			require.Contains(t, stdout, "fake API: 1 request for 1 page\n")
			requireTable(t, db, v2, "the outage deleted nothing")
			notices = hook.notices(t)
			require.Len(t, notices, 2, "one more notice, for the outage")
			require.EqualValues(t, 4, notices[1]["execution_id"])
			require.Equal(t, "FAILED", notices[1]["status"])
			require.Contains(t, notices[1]["exit_description"], "too few items seen")

			// 4. A real API, here the fake one served by the test: every
			// customer unchanged, and each misbehaving page asked for twice.
			api := newFakeAPI(2, false)
			var authMu sync.Mutex
			auth := map[string]int{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				authMu.Lock()
				auth[r.Header.Get("Authorization")]++
				authMu.Unlock()
				api.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)
			code, stdout, stderr = run(t, dsn, []string{"APISYNC_TOKEN=s3cret"}, "run", "-next", "url="+srv.URL+"/customers", "timeout=1s", webhook)
			require.Equal(t, 0, code, stderr)
			require.Regexp(t, `execution 5 \(instance \d+\): COMPLETED`, stdout)
			require.Regexp(t, `sync\s+COMPLETED\s+1206\s+0\s+1206\s`, stdout)
			require.Contains(t, stdout, "step sync changed: 1206 unchanged\n")
			require.NotContains(t, stdout, "delete-missing changed:")
			require.NotContains(t, stdout, "fake API:")
			requireTable(t, db, v2, "nothing changed")
			api.mu.Lock()
			requests := maps.Clone(api.requests)
			api.mu.Unlock()
			want := map[int]int{}
			for p := 1; p <= 13; p++ {
				want[p] = 1
			}
			want[3], want[5], want[8] = 2, 2, 2
			require.Equal(t, want, requests)
			authMu.Lock()
			require.Equal(t, map[string]int{"Bearer s3cret": 16}, auth)
			authMu.Unlock()
			require.Len(t, hook.notices(t), 2)
		})
	}
}
