package reader_test

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/launcher"
	"github.com/chunkwise/chunkwise/reader"
	"github.com/chunkwise/chunkwise/repository/sqlite"
)

// httpThing is the item the test API serves: {"id": N}, N from 1.
type httpThing struct {
	ID int `json:"id"`
}

func things(from, to int) []httpThing {
	var out []httpThing
	for i := from; i <= to; i++ {
		out = append(out, httpThing{ID: i})
	}
	return out
}

// httpAPI is a paginated API on a loopback server serving items 1..n in
// one paging style, and keeping a log of the requests it got.
type httpAPI struct {
	t      *testing.T
	srv    *httptest.Server
	paging reader.HTTPPaging

	// Set before the first request.
	n          int                          // items 1..n
	total      bool                         // the body holds meta.total
	linkHeader bool                         // next links go in the Link header, not the body
	maxSize    int                          // the most items a page holds; 0: as many as asked for
	item       func(id int) json.RawMessage // item id; default {"id": id}
	// intercept, when set, may answer a request in place of the API (and
	// returns true then); attempt counts the requests for the same start,
	// from 1.
	intercept func(w http.ResponseWriter, r *http.Request, start, attempt int) bool

	mu       sync.Mutex
	starts   []int // the start (index of the page's first item) of every request
	attempts map[int]int
	requests []*http.Request
}

func newHTTPAPI(t *testing.T, paging reader.HTTPPaging, n int) *httpAPI {
	t.Helper()
	a := &httpAPI{t: t, paging: paging, n: n, attempts: map[int]int{}}
	a.srv = httptest.NewServer(a)
	t.Cleanup(a.srv.Close)
	return a
}

// config returns a reader configuration for the API, with tiny retry
// waits.
func (a *httpAPI) config() reader.HTTPConfig[httpThing] {
	cfg := reader.HTTPConfig[httpThing]{
		URL:          a.srv.URL + "/items",
		Paging:       a.paging,
		PageSize:     5,
		ItemsField:   "data",
		RetryWaitMin: time.Millisecond,
		RetryWaitMax: 5 * time.Millisecond,
	}
	if a.total {
		cfg.TotalField = "meta.total"
	}
	switch {
	case a.paging == reader.CursorPaging:
		cfg.NextField = "next_cursor"
	case a.paging == reader.NextLinkPaging && !a.linkHeader:
		cfg.NextField = "links.next"
	}
	return cfg
}

func (a *httpAPI) log() []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.starts)
}

func (a *httpAPI) resetLog() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.starts, a.requests = nil, nil
	clear(a.attempts)
}

func (a *httpAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	num := func(name string, def int) int {
		v := q.Get(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			http.Error(w, "bad "+name, http.StatusBadRequest)
			panic(http.ErrAbortHandler)
		}
		return n
	}
	limit := 5
	var start int
	switch a.paging {
	case reader.PageNumberPaging:
		limit = num("per_page", limit)
		start = (num("page", 1) - 1) * limit
	case reader.OffsetPaging:
		limit = num("limit", limit)
		start = num("offset", 0)
	case reader.CursorPaging:
		limit = num("limit", limit)
		if c := q.Get("cursor"); c != "" {
			start, _ = strconv.Atoi(strings.TrimPrefix(c, "c"))
		}
	case reader.NextLinkPaging:
		limit = num("limit", limit)
		start = num("start", 0)
	}
	a.mu.Lock()
	a.starts = append(a.starts, start)
	a.attempts[start]++
	attempt := a.attempts[start]
	a.requests = append(a.requests, r.Clone(context.Background()))
	a.mu.Unlock()
	if a.intercept != nil && a.intercept(w, r, start, attempt) {
		return
	}

	if a.maxSize > 0 {
		limit = min(limit, a.maxSize)
	}
	end := min(start+limit, a.n)
	body := map[string]any{}
	items := []json.RawMessage{}
	for id := start + 1; id <= end; id++ {
		if a.item != nil {
			items = append(items, a.item(id))
		} else {
			items = append(items, json.RawMessage(fmt.Sprintf(`{"id":%d}`, id)))
		}
	}
	body["data"] = items
	if a.total {
		body["meta"] = map[string]any{"total": a.n}
	}
	if end < a.n {
		switch a.paging {
		case reader.CursorPaging:
			body["next_cursor"] = fmt.Sprintf("c%d", end)
		case reader.NextLinkPaging:
			next := fmt.Sprintf("/items?start=%d&limit=%d", end, limit)
			if a.linkHeader {
				w.Header().Set("Link", fmt.Sprintf(`<%s&first=1>; rel="first", <%s>; rel="next"`, a.srv.URL+"/items", next))
			} else {
				body["links"] = map[string]any{"next": a.srv.URL + next}
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// openHTTP creates and opens a reader, closed at the end of the test.
func openHTTP[T any](t *testing.T, cfg reader.HTTPConfig[T]) *reader.HTTP[T] {
	t.Helper()
	r, err := reader.NewHTTP(cfg)
	require.NoError(t, err)
	require.NoError(t, r.Open(t.Context(), batch.ExecutionContext{}))
	t.Cleanup(func() { require.NoError(t, r.Close(context.Background())) })
	return r
}

var allPagings = []reader.HTTPPaging{reader.PageNumberPaging, reader.OffsetPaging, reader.CursorPaging, reader.NextLinkPaging}

func TestHTTPPagingToTheEnd(t *testing.T) {
	t.Parallel()
	for _, paging := range allPagings {
		for _, tc := range []struct {
			name       string
			n          int
			total      bool
			linkHeader bool
			want       []int // the starts of the requests
		}{
			{name: "short last page", n: 23, want: []int{0, 5, 10, 15, 20}},
			{name: "full last page", n: 20, want: []int{0, 5, 10, 15, 20}},
			{name: "total", n: 20, total: true, want: []int{0, 5, 10, 15}},
			{name: "empty", n: 0, want: []int{0}},
			{name: "link header", n: 23, linkHeader: true, want: []int{0, 5, 10, 15, 20}},
		} {
			if tc.linkHeader && paging != reader.NextLinkPaging {
				continue
			}
			t.Run(paging.String()+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				a := newHTTPAPI(t, paging, tc.n)
				a.total, a.linkHeader = tc.total, tc.linkHeader
				want := tc.want
				if tc.n == 20 && !tc.total && (paging == reader.CursorPaging || paging == reader.NextLinkPaging) {
					want = []int{0, 5, 10, 15} // the last page names no next page
				}
				r := openHTTP(t, a.config())
				require.Equal(t, things(1, tc.n), readAll(t, r))
				_, err := r.Read(t.Context())
				require.Equal(t, io.EOF, err, "io.EOF again")
				require.Equal(t, want, a.log())
				total, ok := r.Total()
				require.Equal(t, tc.total, ok)
				if tc.total {
					require.Equal(t, int64(tc.n), total)
				}
			})
		}
	}
}

func TestHTTPRequests(t *testing.T) {
	t.Parallel()
	a := newHTTPAPI(t, reader.PageNumberPaging, 7)
	var prepared int
	cfg := reader.HTTPConfig[httpThing]{
		URL:           a.srv.URL + "/items?status=open",
		PageParam:     "p",
		SizeParam:     "n",
		PageSize:      4,
		PagesFromZero: true,
		ItemsField:    "data",
		Header:        http.Header{"X-Api-Key": {"k1"}},
		Prepare: func(req *http.Request) error {
			prepared++
			req.Header.Set("Authorization", "Bearer t"+strconv.Itoa(prepared))
			return nil
		},
	}
	// The test API knows page and per_page: p and n go to the log only.
	a.intercept = func(w http.ResponseWriter, r *http.Request, _, _ int) bool {
		q := r.URL.Query()
		p, _ := strconv.Atoi(q.Get("p"))
		var items []string
		for id := p*4 + 1; id <= min(p*4+4, a.n); id++ {
			items = append(items, fmt.Sprintf(`{"id":%d}`, id))
		}
		_, _ = fmt.Fprintf(w, `{"data":[%s]}`, strings.Join(items, ","))
		return true
	}
	r := openHTTP(t, cfg)
	require.Equal(t, things(1, 7), readAll(t, r))

	a.mu.Lock()
	defer a.mu.Unlock()
	require.Len(t, a.requests, 2)
	for i, req := range a.requests {
		require.Equal(t, fmt.Sprintf("/items?n=4&p=%d&status=open", i), req.URL.String())
		require.Equal(t, "k1", req.Header.Get("X-Api-Key"))
		require.Equal(t, "Bearer t"+strconv.Itoa(i+1), req.Header.Get("Authorization"))
		require.Equal(t, "application/json", req.Header.Get("Accept"))
	}
}

func TestHTTPTotal(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A total as a string, nested; the second page says fewer items
		// are left (some were deleted meanwhile).
		switch r.URL.Query().Get("page") {
		case "1":
			_, _ = io.WriteString(w, `{"result": {"items": [{"id":1},{"id":2}], "paging": {"count": "9"}}}`)
		default:
			_, _ = io.WriteString(w, `{"result": {"items": [{"id":3},{"id":4}], "paging": {"count": 4}}}`)
		}
	}))
	t.Cleanup(srv.Close)
	r, err := reader.NewHTTP(reader.HTTPConfig[httpThing]{URL: srv.URL, PageSize: 2, ItemsField: "result.items", TotalField: "result.paging.count"})
	require.NoError(t, err)
	_, ok := r.Total()
	require.False(t, ok, "no total before Open")
	require.NoError(t, r.Open(t.Context(), batch.ExecutionContext{}))
	defer r.Close(t.Context())
	total, ok := r.Total()
	require.True(t, ok)
	require.Equal(t, int64(9), total, "known once Open returns")
	require.Equal(t, batch.Progress{Done: 0, Total: 9, Unit: "items"}, r.Progress())
	_, err = r.Read(t.Context())
	require.NoError(t, err)
	require.Equal(t, batch.Progress{Done: 1, Total: 9, Unit: "items"}, r.Progress(), "the progress of a step reading the API")
	require.Equal(t, things(2, 4), readAll(t, r))
	total, _ = r.Total()
	require.Equal(t, int64(4), total, "the last page's total")
}

func TestHTTPPageSizeAboveTheAPIs(t *testing.T) {
	t.Parallel()
	t.Run("offset with a total goes on after the short pages", func(t *testing.T) {
		t.Parallel()
		a := newHTTPAPI(t, reader.OffsetPaging, 12)
		a.total, a.maxSize = true, 3
		r := openHTTP(t, a.config())
		require.Equal(t, things(1, 12), readAll(t, r))
		require.Equal(t, []int{0, 3, 6, 9}, a.log())
	})
	t.Run("page numbers with a total fail instead of skipping items", func(t *testing.T) {
		t.Parallel()
		a := newHTTPAPI(t, reader.PageNumberPaging, 12)
		a.total, a.maxSize = true, 3
		r := openHTTP(t, a.config())
		var got []httpThing
		for range 3 {
			item, err := r.Read(t.Context())
			require.NoError(t, err)
			got = append(got, item)
		}
		require.Equal(t, things(1, 3), got)
		_, err := r.Read(t.Context())
		require.ErrorContains(t, err, "reader: http api: GET "+a.srv.URL+"/items?page=1&per_page=5: the page has 3 items where 5 were asked for, yet the total (12) says more follow")
		_, err2 := r.Read(t.Context())
		require.Equal(t, err, err2, "it ends the reader")
		require.Equal(t, []int{0}, a.log())
	})
}

func TestHTTPRetries(t *testing.T) {
	t.Parallel()
	a := newHTTPAPI(t, reader.PageNumberPaging, 7)
	a.srv.Config.SetKeepAlivesEnabled(false) // a dropped connection is a fresh one, which the transport does not retry itself
	a.intercept = func(w http.ResponseWriter, _ *http.Request, start, attempt int) bool {
		if start != 5 {
			return false
		}
		switch attempt {
		case 1:
			w.Header().Set("Retry-After", "1") // a second: capped by RetryWaitMax
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case 2:
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case 3:
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				panic(err)
			}
			_ = conn.Close()
		case 4:
			w.Header().Set("Retry-After", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case 5:
			w.Header().Set("Retry-After", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat))
			http.Error(w, "busy", http.StatusTooManyRequests)
		case 6:
			http.Error(w, "oops", http.StatusBadGateway)
		default:
			return false
		}
		return true
	}
	var retries []reader.HTTPRetry
	cfg := a.config()
	cfg.MaxAttempts = 7
	cfg.RetryWaitMin, cfg.RetryWaitMax = 100*time.Microsecond, 20*time.Millisecond
	cfg.OnRetry = func(r reader.HTTPRetry) { retries = append(retries, r) }
	r := openHTTP(t, cfg)
	require.Equal(t, things(1, 7), readAll(t, r))
	require.Equal(t, []int{0, 5, 5, 5, 5, 5, 5, 5}, a.log())

	page2 := a.srv.URL + "/items?page=2&per_page=5"
	require.Len(t, retries, 6)
	require.Error(t, retries[2].Err, "the dropped connection")
	retries[2].Err = nil
	require.Equal(t, []reader.HTTPRetry{
		{URL: page2, Attempt: 1, StatusCode: 429, Wait: 20 * time.Millisecond},   // Retry-After: 1, capped
		{URL: page2, Attempt: 2, StatusCode: 503, Wait: 200 * time.Microsecond},  // exponential
		{URL: page2, Attempt: 3, StatusCode: 0, Wait: 400 * time.Microsecond},    // exponential
		{URL: page2, Attempt: 4, StatusCode: 503, Wait: 20 * time.Millisecond},   // an HTTP date in an hour, capped
		{URL: page2, Attempt: 5, StatusCode: 429, Wait: 0},                       // an HTTP date gone by
		{URL: page2, Attempt: 6, StatusCode: 502, Wait: 3200 * time.Microsecond}, // exponential
	}, retries)
}

func TestHTTPGivesUp(t *testing.T) {
	t.Parallel()
	t.Run("status", func(t *testing.T) {
		t.Parallel()
		a := newHTTPAPI(t, reader.CursorPaging, 12)
		var down atomic.Bool
		down.Store(true)
		a.intercept = func(w http.ResponseWriter, _ *http.Request, start, _ int) bool {
			if start != 5 || !down.Load() {
				return false
			}
			w.Header().Set("Content-Type", "text/html")
			http.Error(w, "<html>\n<h1>Maintenance</h1>\n</html>", http.StatusServiceUnavailable)
			return true
		}
		cfg := a.config()
		cfg.MaxAttempts = 3
		r := openHTTP(t, cfg)
		for range 5 {
			_, err := r.Read(t.Context())
			require.NoError(t, err)
		}
		_, err := r.Read(t.Context())
		var se *reader.HTTPStatusError
		require.ErrorAs(t, err, &se)
		require.Equal(t, http.StatusServiceUnavailable, se.StatusCode)
		require.Equal(t, 3, se.Attempts)
		require.Equal(t, "reader: http api: GET "+a.srv.URL+"/items?cursor=c5&limit=5: 503 Service Unavailable (after 3 attempts): "+
			"<html> <h1>Maintenance</h1> </html>", err.Error())
		require.Equal(t, []int{0, 5, 5, 5}, a.log())

		// The reader stayed where it was: the next Read asks again.
		down.Store(false)
		require.Equal(t, things(6, 12), readAll(t, r))
	})
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		r, err := reader.NewHTTP(reader.HTTPConfig[httpThing]{URL: srv.URL, MaxAttempts: 2, RetryWaitMin: time.Millisecond})
		require.NoError(t, err)
		err = r.Open(t.Context(), batch.ExecutionContext{})
		require.ErrorIs(t, err, syscall.ECONNREFUSED)
		require.ErrorContains(t, err, "reader: http api: GET "+srv.URL+"?page=1&per_page=100: after 2 attempts: ")
		require.True(t, batch.Transient(err), "a step may retry the read")
		_, err = r.Read(t.Context())
		require.ErrorContains(t, err, "not open")
	})
}

func TestHTTPClientErrorsFailAtOnce(t *testing.T) {
	t.Parallel()
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound, http.StatusNotImplemented} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			t.Parallel()
			a := newHTTPAPI(t, reader.OffsetPaging, 12)
			a.intercept = func(w http.ResponseWriter, _ *http.Request, start, _ int) bool {
				if start != 5 {
					return false
				}
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				_, _ = io.WriteString(w, `{"error": "`+strings.Repeat("x", 300)+`"}`)
				return true
			}
			r := openHTTP(t, a.config())
			for range 5 {
				_, err := r.Read(t.Context())
				require.NoError(t, err)
			}
			_, err := r.Read(t.Context())
			var se *reader.HTTPStatusError
			require.ErrorAs(t, err, &se)
			require.Equal(t, status, se.StatusCode)
			require.Equal(t, 1, se.Attempts)
			require.Equal(t, `{"error": "`+strings.Repeat("x", 256-11)+"…", se.Body)
			require.Equal(t, fmt.Sprintf("reader: http api: GET %s/items?limit=5&offset=5: %d %s: %s",
				a.srv.URL, status, http.StatusText(status), se.Body), err.Error())
			require.Equal(t, []int{0, 5}, a.log(), "no retry")
		})
	}
}

func TestHTTPMalformedPage(t *testing.T) {
	t.Parallel()
	const page1 = `{"data":[{"id":1},{"id":2},{"id":3},{"id":4},{"id":5}]}`
	for _, tc := range []struct {
		name        string
		cfg         func(*reader.HTTPConfig[httpThing])
		first       string // the first page, which is fine; default page1
		second      string // the second page, which is not
		contentType string // of the second page; default application/json
		want        string
	}{
		{name: "HTML", contentType: "text/html; charset=utf-8", second: "<!DOCTYPE html>\n<html><body>Sign in</body></html>",
			want: `malformed page: body is not JSON (Content-Type text/html; charset=utf-8): "<!DOCTYPE html> <html><body>Sign in</body></html>"`},
		{name: "truncated", second: `{"data": [{"id": 6}`, want: `malformed page: body is not JSON (Content-Type application/json): "{\"data\": [{\"id\": 6}"`},
		{name: "empty body", second: ``, want: `malformed page: body is not JSON (Content-Type application/json): ""`},
		{name: "missing items", second: `{"items": []}`, want: `malformed page: no field "data"`},
		{name: "missing nested items", cfg: func(c *reader.HTTPConfig[httpThing]) { c.ItemsField = "result.items" },
			first:  `{"result": {"items": [{"id":1},{"id":2},{"id":3},{"id":4},{"id":5}]}}`,
			second: `{"result": {"rows": []}}`, want: `malformed page: no field "result.items"`},
		{name: "items not an array", second: `{"data": {"id": 6}}`, want: `malformed page: field "data" is an object, not an array`},
		{name: "body not an object", second: `[{"id": 6}]`, want: `malformed page: body is an array, not an object`},
		{name: "body not an array", cfg: func(c *reader.HTTPConfig[httpThing]) { c.ItemsField = "" },
			first: `[{"id":1},{"id":2},{"id":3},{"id":4},{"id":5}]`, second: `{"data": []}`,
			want: `malformed page: body is an object, not an array`},
		{name: "total", cfg: func(c *reader.HTTPConfig[httpThing]) { c.TotalField = "n" },
			second: `{"data": [], "n": "many"}`, want: `malformed page: field "n": "many" is not a count of items`},
		{name: "too large", cfg: func(c *reader.HTTPConfig[httpThing]) { c.MaxPageBytes = int64(len(page1)) },
			second: `{"data": [{"id": 6}, {"id": 7}, {"id": 8}, {"id": 9}, {"id": 10}]}`,
			want:   fmt.Sprintf(`malformed page: body larger than MaxPageBytes (%d)`, len(page1))},
		{name: "decode", cfg: func(c *reader.HTTPConfig[httpThing]) {
			c.Decode = func(resp *http.Response, body []byte) (reader.HTTPPage, error) {
				if resp.Request.URL.Query().Get("page") == "2" {
					return reader.HTTPPage{}, errors.New("no rows")
				}
				var p struct{ Data []json.RawMessage }
				err := json.Unmarshal(body, &p)
				return reader.HTTPPage{Items: p.Data}, err
			}
		}, second: `{}`, want: `malformed page: no rows`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := newHTTPAPI(t, reader.PageNumberPaging, 12)
			a.intercept = func(w http.ResponseWriter, _ *http.Request, start, _ int) bool {
				switch start {
				case 0:
					w.Header().Set("Content-Type", "application/json")
					_, _ = io.WriteString(w, cmp.Or(tc.first, page1))
				default:
					w.Header().Set("Content-Type", cmp.Or(tc.contentType, "application/json"))
					_, _ = io.WriteString(w, tc.second)
				}
				return true
			}
			cfg := a.config()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			r := openHTTP(t, cfg)
			require.Equal(t, things(1, 5), []httpThing{must(r.Read(t.Context())), must(r.Read(t.Context())),
				must(r.Read(t.Context())), must(r.Read(t.Context())), must(r.Read(t.Context()))})
			_, err := r.Read(t.Context())
			require.ErrorIs(t, err, reader.ErrMalformedPage)
			require.EqualError(t, err, "reader: http api: GET "+a.srv.URL+"/items?page=2&per_page=5: "+tc.want)
			_, err2 := r.Read(t.Context())
			require.Equal(t, err, err2, "a malformed page ends the reader")
			require.Equal(t, []int{0, 5}, a.log(), "and is not asked for again")
		})
	}
}

// must returns v, panicking on err.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestHTTPItemDecodeError(t *testing.T) {
	t.Parallel()
	a := newHTTPAPI(t, reader.NextLinkPaging, 12)
	a.item = func(id int) json.RawMessage {
		if id == 7 || id == 10 {
			return json.RawMessage(fmt.Sprintf(`{"id":"%d"}`, id))
		}
		return json.RawMessage(fmt.Sprintf(`{"id":%d}`, id))
	}
	r := openHTTP(t, a.config())
	var got []httpThing
	var errs []*reader.HTTPItemError
	for {
		item, err := r.Read(t.Context())
		if err == io.EOF {
			break
		}
		if ie := (*reader.HTTPItemError)(nil); errors.As(err, &ie) {
			errs = append(errs, ie)
			if ie.Item == 7 {
				// The restart position stays before the bad item.
				ec := batch.ExecutionContext{}
				require.NoError(t, r.Update(t.Context(), ec))
				idx, _ := ec.Int64("api.index")
				count, _ := ec.Int64("api.count")
				require.Equal(t, []int64{1, 6}, []int64{idx, count})
			}
			continue
		}
		require.NoError(t, err)
		got = append(got, item)
	}
	require.Equal(t, append(append(things(1, 6), things(8, 9)...), things(11, 12)...), got)
	require.Len(t, errs, 2)
	page2 := a.srv.URL + "/items?start=5&limit=5"
	var te *json.UnmarshalTypeError
	require.ErrorAs(t, errs[0], &te)
	require.Equal(t, page2, errs[0].URL)
	require.Equal(t, []int{1, 4}, []int{errs[0].Index, errs[1].Index})
	require.Equal(t, []int64{7, 10}, []int64{errs[0].Item, errs[1].Item})
	require.Equal(t, "reader: http api: GET "+page2+": items[1] (item 7 of the input): "+te.Error(), errs[0].Error())
}

func TestHTTPRestartAtEveryItem(t *testing.T) {
	t.Parallel()
	for _, paging := range allPagings {
		t.Run(paging.String(), func(t *testing.T) {
			t.Parallel()
			const n = 13
			a := newHTTPAPI(t, paging, n)
			a.total = paging == reader.PageNumberPaging
			for k := 0; k <= n; k++ {
				a.resetLog()
				first, err := reader.NewHTTP(a.config())
				require.NoError(t, err)
				require.NoError(t, first.Open(t.Context(), batch.ExecutionContext{}))
				var got []httpThing
				for range k {
					item, err := first.Read(t.Context())
					require.NoError(t, err)
					got = append(got, item)
				}
				ec := batch.ExecutionContext{}
				require.NoError(t, first.Update(t.Context(), ec))
				require.NoError(t, first.Close(t.Context()))
				a.resetLog()

				second, err := reader.NewHTTP(a.config())
				require.NoError(t, err)
				require.NoError(t, second.Open(t.Context(), roundTrip(t, ec)))
				got = append(got, readAll(t, second)...)
				require.Equal(t, things(1, n), got, "restart after %d items", k)

				// The restart's first request is for the page of item k+1
				// (with offsets: from item k+1), and no earlier page is
				// asked for.
				log := a.log()
				want := min(k/5*5, 10)
				if paging == reader.OffsetPaging {
					want = min(k, n)
				}
				require.Equal(t, want, log[0], "restart after %d items: requests %v", k, log)
				require.Equal(t, slices.Compact(slices.Sorted(slices.Values(log))), log, "each page once, in order")

				require.NoError(t, second.Update(t.Context(), ec))
				count, _ := ec.Int64("api.count")
				require.Equal(t, int64(n), count)
				require.NoError(t, second.Close(t.Context()))
			}
		})
	}
}

func TestHTTPRestartErrors(t *testing.T) {
	t.Parallel()
	a := newHTTPAPI(t, reader.CursorPaging, 3)
	r, err := reader.NewHTTP(a.config())
	require.NoError(t, err)
	require.ErrorContains(t, r.Open(t.Context(), batch.ExecutionContext{"api.index": json.RawMessage(`2`)}),
		`reader: http api: restore: key "api.cursor" missing (was the paging changed?)`)
	require.ErrorContains(t, r.Open(t.Context(), batch.ExecutionContext{"api.index": json.RawMessage(`"x"`)}),
		`reader: http api: restore: `)
	require.ErrorContains(t, r.Open(t.Context(), batch.ExecutionContext{
		"api.index": json.RawMessage(`4`), "api.count": json.RawMessage(`2`), "api.cursor": json.RawMessage(`""`),
	}), `invalid position: cursor "", index 4, count 2`)
	require.Empty(t, a.log())
}

func TestHTTPLoops(t *testing.T) {
	t.Parallel()
	t.Run("cursor", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, `{"items": [{"id": 1}], "next": "same"}`)
		}))
		t.Cleanup(srv.Close)
		r := openHTTP(t, reader.HTTPConfig[httpThing]{URL: srv.URL, Paging: reader.CursorPaging, ItemsField: "items", NextField: "next"})
		for range 2 {
			item, err := r.Read(t.Context())
			require.NoError(t, err)
			require.Equal(t, httpThing{ID: 1}, item)
		}
		_, err := r.Read(t.Context())
		require.EqualError(t, err, "reader: http api: GET "+srv.URL+"?cursor=same: the next cursor \"same\" is the one that fetched the page")
	})
	t.Run("next link", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", `</items?page=2>; rel="next"`)
			_, _ = io.WriteString(w, `[{"id": 1}]`)
		}))
		t.Cleanup(srv.Close)
		r := openHTTP(t, reader.HTTPConfig[httpThing]{URL: srv.URL + "/items", Paging: reader.NextLinkPaging})
		for range 2 {
			_, err := r.Read(t.Context())
			require.NoError(t, err)
		}
		_, err := r.Read(t.Context())
		require.EqualError(t, err, "reader: http api: GET "+srv.URL+"/items?page=2: the next link is the page's own URL")
	})
}

func TestHTTPLinkHeader(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var pages []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		pages = append(pages, r.URL.RequestURI())
		mu.Unlock()
		switch r.URL.Query().Get("page") {
		case "":
			// Two headers; commas and semicolons inside the targets and
			// the quoted parameters; a relative target.
			w.Header().Add("Link", `<https://elsewhere.example/x?a=1,2;b>; rel="prev"; title="a, b; c"`)
			w.Header().Add("Link", `<https://elsewhere.example/last>; rel=last, <page2?page=2&q=a,b>; title="n"; REL="last NEXT"`)
			_, _ = io.WriteString(w, `[{"id": 1}]`)
		case "2":
			w.Header().Set("Link", `<https://elsewhere.example/first>; rel="first"`)
			_, _ = io.WriteString(w, `[{"id": 2}]`)
		}
	}))
	t.Cleanup(srv.Close)
	r := openHTTP(t, reader.HTTPConfig[httpThing]{URL: srv.URL + "/v1/items", Paging: reader.NextLinkPaging})
	require.Equal(t, things(1, 2), readAll(t, r))
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"/v1/items", "/v1/page2?page=2&q=a,b"}, pages)
}

func TestHTTPDecode(t *testing.T) {
	t.Parallel()
	// An API paged by the last id seen, with a has_more flag, and items in
	// an envelope.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.Atoi(r.URL.Query().Get("starting_after"))
		var rows []string
		for id := after + 1; id <= min(after+3, 8); id++ {
			rows = append(rows, fmt.Sprintf(`{"object": "thing", "value": {"id": %d}}`, id))
		}
		_, _ = fmt.Fprintf(w, `{"rows": [%s], "has_more": %t}`, strings.Join(rows, ","), after+3 < 8)
	}))
	t.Cleanup(srv.Close)
	r := openHTTP(t, reader.HTTPConfig[httpThing]{
		URL:         srv.URL,
		Paging:      reader.CursorPaging,
		CursorParam: "starting_after",
		Decode: func(_ *http.Response, body []byte) (reader.HTTPPage, error) {
			var p struct {
				Rows []struct {
					Value json.RawMessage `json:"value"`
				} `json:"rows"`
				HasMore bool `json:"has_more"`
			}
			if err := json.Unmarshal(body, &p); err != nil {
				return reader.HTTPPage{}, err
			}
			var page reader.HTTPPage
			var last httpThing
			for _, row := range p.Rows {
				page.Items = append(page.Items, row.Value)
				if err := json.Unmarshal(row.Value, &last); err != nil {
					return reader.HTTPPage{}, err
				}
			}
			if p.HasMore {
				page.Next = strconv.Itoa(last.ID)
			}
			return page, nil
		},
	})
	require.Equal(t, things(1, 8), readAll(t, r))
}

func TestHTTPCancel(t *testing.T) {
	t.Parallel()
	t.Run("backoff", func(t *testing.T) {
		t.Parallel()
		a := newHTTPAPI(t, reader.PageNumberPaging, 12)
		a.intercept = func(w http.ResponseWriter, _ *http.Request, start, _ int) bool {
			if start == 0 {
				return false
			}
			w.Header().Set("Retry-After", "3600")
			http.Error(w, "later", http.StatusTooManyRequests)
			return true
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		cfg := a.config()
		cfg.RetryWaitMax = time.Hour
		cfg.OnRetry = func(r reader.HTTPRetry) {
			require.Equal(t, time.Hour, r.Wait)
			cancel() // during the hour's wait
		}
		r := openHTTP(t, cfg)
		for range 5 {
			_, err := r.Read(ctx)
			require.NoError(t, err)
		}
		_, err := r.Read(ctx)
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorContains(t, err, "reader: http api: GET "+a.srv.URL+"/items?page=2&per_page=5: ")
		require.Equal(t, []int{0, 5}, a.log())
	})
	t.Run("request", func(t *testing.T) {
		t.Parallel()
		a := newHTTPAPI(t, reader.OffsetPaging, 12)
		started := make(chan struct{})
		a.intercept = func(_ http.ResponseWriter, r *http.Request, start, attempt int) bool {
			if start != 5 || attempt != 1 {
				return false
			}
			close(started)
			<-r.Context().Done() // hangs until the client goes away
			return true
		}
		r := openHTTP(t, a.config())
		for range 5 {
			_, err := r.Read(t.Context())
			require.NoError(t, err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			<-started
			cancel()
		}()
		_, err := r.Read(ctx)
		require.ErrorIs(t, err, context.Canceled)
		// The reader stayed where it was.
		require.Equal(t, things(6, 12), readAll(t, r))
		require.Equal(t, []int{0, 5, 5, 10}, a.log())
	})
}

func TestHTTPTimeout(t *testing.T) {
	t.Parallel()
	a := newHTTPAPI(t, reader.PageNumberPaging, 7)
	a.intercept = func(_ http.ResponseWriter, r *http.Request, start, attempt int) bool {
		if start != 5 || attempt != 1 {
			return false
		}
		<-r.Context().Done() // never answers: only a timeout ends the attempt
		return true
	}
	var retries []reader.HTTPRetry
	cfg := a.config()
	cfg.Client = &http.Client{} // no timeout of its own
	cfg.Timeout = 100 * time.Millisecond
	cfg.OnRetry = func(r reader.HTTPRetry) { retries = append(retries, r) }
	r := openHTTP(t, cfg)
	require.Equal(t, things(1, 7), readAll(t, r))
	timedOut := slices.ContainsFunc(retries, func(r reader.HTTPRetry) bool {
		var ne interface{ Timeout() bool }
		return r.URL == a.srv.URL+"/items?page=2&per_page=5" && r.Attempt == 1 && errors.As(r.Err, &ne) && ne.Timeout()
	})
	require.True(t, timedOut, "the first attempt at page 2 timed out: %v", retries)
	require.Zero(t, cfg.Client.Timeout, "the caller's client is not changed")
}

func TestHTTPLifecycle(t *testing.T) {
	t.Parallel()
	a := newHTTPAPI(t, reader.PageNumberPaging, 3)
	r, err := reader.NewHTTP(a.config())
	require.NoError(t, err)
	_, err = r.Read(t.Context())
	require.EqualError(t, err, "reader: http api: not open")
	require.EqualError(t, r.Update(t.Context(), batch.ExecutionContext{}), "reader: http api: not open")
	require.NoError(t, r.Close(t.Context()), "closing a closed reader")
	for range 2 { // Close resets: Open reads again from the start
		require.NoError(t, r.Open(t.Context(), batch.ExecutionContext{}))
		require.ErrorContains(t, r.Open(t.Context(), batch.ExecutionContext{}), "already open")
		require.Equal(t, things(1, 3), readAll(t, r))
		require.NoError(t, r.Close(t.Context()))
	}
	require.Equal(t, []int{0, 0}, a.log())
}

func TestNewHTTPInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  reader.HTTPConfig[httpThing]
		want string
	}{
		{reader.HTTPConfig[httpThing]{}, "reader: http api: URL is required"},
		{reader.HTTPConfig[httpThing]{URL: "/items"}, `reader: http api: URL "/items" is not an absolute http or https URL`},
		{reader.HTTPConfig[httpThing]{URL: "ftp://x/items"}, `reader: http api: URL "ftp://x/items" is not an absolute http or https URL`},
		{reader.HTTPConfig[httpThing]{URL: "http://x", Paging: 9}, "reader: http api: invalid Paging 9"},
		{reader.HTTPConfig[httpThing]{Name: "orders", URL: "http://x", Paging: reader.CursorPaging}, "reader: http orders: cursor paging needs NextField or Decode"},
		{reader.HTTPConfig[httpThing]{URL: "http://x", PageSize: -1}, "reader: http api: negative PageSize -1"},
		{reader.HTTPConfig[httpThing]{URL: "http://x", Timeout: -1}, "reader: http api: negative Timeout, RetryWaitMin or RetryWaitMax"},
		{reader.HTTPConfig[httpThing]{URL: "http://x", MaxAttempts: -1}, "reader: http api: negative MaxAttempts -1"},
		{reader.HTTPConfig[httpThing]{URL: "http://x", MaxPageBytes: -1}, "reader: http api: negative MaxPageBytes -1"},
		{reader.HTTPConfig[httpThing]{URL: "http://x", RetryWaitMin: time.Minute, RetryWaitMax: time.Second},
			"reader: http api: RetryWaitMin 1m0s is above RetryWaitMax 1s"},
		{reader.HTTPConfig[httpThing]{URL: "http://x", ItemsField: "data..items"}, `reader: http api: empty name in field path "data..items"`},
	} {
		_, err := reader.NewHTTP(tc.cfg)
		require.EqualError(t, err, tc.want)
	}
}

// httpJob is a job whose chunk step reads an httpAPI and inserts the items
// into a table of the SQLite job repository, in the chunk's transaction.
func runHTTPJob(t *testing.T, path string, cfg reader.HTTPConfig[httpThing], step func(*batch.ChunkConfig[httpThing, httpThing]),
	failAt int) (*batch.JobExecution, error) {
	t.Helper()
	ctx := context.Background()
	repo, err := sqlite.Open(ctx, path, sqlite.Config{})
	require.NoError(t, err)
	defer repo.Close()
	require.NoError(t, repo.Migrate(ctx))
	_, err = repo.DB().ExecContext(ctx, `CREATE TABLE IF NOT EXISTS things (id INTEGER PRIMARY KEY)`)
	require.NoError(t, err)

	r, err := reader.NewHTTP(cfg)
	require.NoError(t, err)
	chunk := batch.ChunkConfig[httpThing, httpThing]{
		Reader:    r,
		ChunkSize: 4,
		Writer: batch.WriterFunc[httpThing](func(ctx context.Context, items []httpThing) error {
			tx, err := batch.JoinTxx(ctx, repo.DB())
			if err != nil {
				return err
			}
			for _, it := range items {
				if it.ID == failAt {
					return errors.New("disk full")
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO things (id) VALUES (?)`, it.ID); err != nil {
					return err
				}
			}
			return nil
		}),
	}
	if step != nil {
		step(&chunk)
	}
	load, err := batch.NewChunkStep("load", chunk)
	require.NoError(t, err)
	job, err := batch.NewJob("import", batch.JobConfig{Steps: []batch.Step{load}})
	require.NoError(t, err)
	l, err := launcher.New(launcher.Config{Repository: repo})
	require.NoError(t, err)
	exec, err := l.Run(ctx, job, batch.JobParameters{"source": batch.StringParam("things")})

	return exec, err
}

func thingIDs(t *testing.T, path string) []int {
	t.Helper()
	repo, err := sqlite.Open(context.Background(), path, sqlite.Config{})
	require.NoError(t, err)
	defer repo.Close()
	var ids []int
	require.NoError(t, repo.DB().Select(&ids, `SELECT id FROM things ORDER BY id`))
	return ids
}

func ints(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestHTTPRestartThroughJob(t *testing.T) {
	t.Parallel()
	for _, paging := range allPagings {
		t.Run(paging.String(), func(t *testing.T) {
			t.Parallel()
			const n = 23
			a := newHTTPAPI(t, paging, n)
			a.total = paging != reader.CursorPaging
			path := filepath.Join(t.TempDir(), "batch.db")

			// First run: the write of chunk 4 (items 13-16) fails; chunks
			// 1-3 (items 1-12) are committed.
			exec, err := runHTTPJob(t, path, a.config(), nil, 13)
			require.ErrorContains(t, err, "disk full")
			require.Equal(t, batch.StatusFailed, exec.Status)
			require.Equal(t, ints(1, 12), thingIDs(t, path))
			require.Equal(t, []int{0, 5, 10, 15}, a.log())
			a.resetLog()

			// The restart asks for the page holding item 13 (items 11-15),
			// never for pages 1 and 2, and every item is written once.
			exec, err = runHTTPJob(t, path, a.config(), nil, 0)
			require.NoError(t, err)
			require.Equal(t, batch.StatusCompleted, exec.Status)
			require.Equal(t, ints(1, n), thingIDs(t, path))
			want := []int{10, 15, 20}
			if paging == reader.OffsetPaging {
				want = []int{12, 17, 22} // from item 13 on
			}
			require.Equal(t, want, a.log())
		})
	}
}

func TestHTTPSkipBadItemInStep(t *testing.T) {
	t.Parallel()
	a := newHTTPAPI(t, reader.CursorPaging, 11)
	a.item = func(id int) json.RawMessage {
		if id == 7 {
			return json.RawMessage(`["not", "an", "object"]`)
		}
		return json.RawMessage(fmt.Sprintf(`{"id":%d}`, id))
	}
	path := filepath.Join(t.TempDir(), "batch.db")
	exec, err := runHTTPJob(t, path, a.config(), func(c *batch.ChunkConfig[httpThing, httpThing]) {
		c.Skip = batch.MatchType[*reader.HTTPItemError]()
	}, 0)
	require.NoError(t, err)
	require.Equal(t, batch.StatusCompleted, exec.Status)
	require.Equal(t, append(ints(1, 6), ints(8, 11)...), thingIDs(t, path))
}
