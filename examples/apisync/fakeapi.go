package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chunkwise/chunkwise/batch"
)

// The fake API serves GET /customers?page=P&per_page=N (N at most
// fakeMaxPerPage, default 25) as {"data": [...], "total": T, "page": P,
// "per_page": N}. Three pages misbehave on their first request, as real
// APIs do now and then.
const (
	fakeMaxPerPage      = 100
	fakeHangPage        = 3 // hangs until the client gives up
	fakeUnavailablePage = 5 // 503 Service Unavailable, Retry-After: 1
	fakeTooManyPage     = 8 // 429 Too Many Requests, Retry-After: 1
	// fakeOutageCustomers is how many customers the fake API serves in an
	// outage.
	fakeOutageCustomers = 20
)

// fakeCustomers returns the customers of the fake API at a version.
// Version 1 has customers 1 to 1200. Version 2 differs: the 60 customers
// whose id is a multiple of 20 moved to the plan "pro" with a new email,
// the 24 whose id ends in 07 or 57 are gone, and customers 1201 to 1230
// are new — 1206 customers.
func fakeCustomers(version int) []customer {
	cities := []string{"Lisbon", "Oslo", "Tallinn", "Ghent", "Porto", "Turku", "Lyon"}
	last := int64(1200)
	if version == 2 {
		last = 1230
	}
	var cs []customer
	for id := int64(1); id <= last; id++ {
		c := customer{
			ID:    id,
			Name:  fmt.Sprintf("Customer %04d", id),
			Email: fmt.Sprintf("customer%d@example.com", id),
			City:  cities[id%int64(len(cities))],
			Plan:  "basic",
		}
		if id%3 == 0 {
			c.Plan = "team"
		}
		if version == 2 {
			if id <= 1200 && id%50 == 7 {
				continue
			}
			if id%20 == 0 {
				c.Plan, c.Email = "pro", fmt.Sprintf("billing+%d@example.org", id)
			}
		}
		cs = append(cs, c)
	}
	return cs
}

// fakeAPI is the handler of the fake API. It counts the requests of every
// page.
type fakeAPI struct {
	customers []customer

	mu       sync.Mutex
	requests map[int]int    // by page
	failed   map[int]string // how the first request of a misbehaving page went
}

// newFakeAPI returns the fake API serving the customers of a version, or
// in an outage only the first fakeOutageCustomers of them.
func newFakeAPI(version int, outage bool) *fakeAPI {
	cs := fakeCustomers(version)
	if outage {
		cs = cs[:fakeOutageCustomers]
	}
	return &fakeAPI{customers: cs, requests: map[int]int{}, failed: map[int]string{}}
}

type fakePage struct {
	Data    []customer `json:"data"`
	Total   int        `json:"total"`
	Page    int        `json:"page"`
	PerPage int        `json:"per_page"`
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/customers" {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such resource"})
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "GET only"})
		return
	}
	q := r.URL.Query()
	page, err1 := queryInt(q.Get("page"), 1)
	perPage, err2 := queryInt(q.Get("per_page"), 25)
	if err1 != nil || err2 != nil || page < 1 || perPage < 1 || perPage > fakeMaxPerPage {
		writeJSON(w, http.StatusBadRequest, map[string]string{
			"error": fmt.Sprintf("want page from 1 and per_page from 1 to %d", fakeMaxPerPage)})
		return
	}

	f.mu.Lock()
	f.requests[page]++
	first := f.requests[page] == 1
	f.mu.Unlock()
	if first {
		switch page {
		case fakeHangPage:
			f.fail(page, "hung")
			select {
			case <-r.Context().Done(): // the client timed out
			case <-time.After(time.Minute):
			}
			return
		case fakeUnavailablePage:
			f.fail(page, "got 503")
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "down for maintenance"})
			return
		case fakeTooManyPage:
			f.fail(page, "got 429")
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "slow down"})
			return
		}
	}
	start := min((page-1)*perPage, len(f.customers))
	end := min(start+perPage, len(f.customers))
	writeJSON(w, http.StatusOK, fakePage{
		Data: append([]customer{}, f.customers[start:end]...), Total: len(f.customers), Page: page, PerPage: perPage,
	})
}

func (f *fakeAPI) fail(page int, how string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed[page] = how
}

// summary says how many requests the API got, and which pages were asked
// for more than once:
//
//	fake API: 15 requests for 12 pages; page 3: 2 requests, the first hung; ...
func (f *fakeAPI) summary() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	pages := make([]int, 0, len(f.requests))
	total := 0
	for p, n := range f.requests {
		pages = append(pages, p)
		total += n
	}
	slices.Sort(pages)
	var b strings.Builder
	fmt.Fprintf(&b, "fake API: %s for %s", plural(total, "request"), plural(len(pages), "page"))
	for _, p := range pages {
		if n := f.requests[p]; n > 1 {
			fmt.Fprintf(&b, "; page %d: %d requests, the first %s", p, n, f.failed[p])
		}
	}
	return b.String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

func queryInt(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	return strconv.Atoi(s)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fakeServer serves a fakeAPI on loopback for the length of a job: as a job
// listener, it stops after the job and prints the API's summary.
type fakeServer struct {
	api *fakeAPI
	srv *http.Server
	url string
	out io.Writer
}

var _ batch.AfterJobListener = (*fakeServer)(nil)

// startFakeAPI serves api on a free port of 127.0.0.1.
func startFakeAPI(api *fakeAPI, out io.Writer) (*fakeServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fake API: %w", err)
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &fakeServer{api: api, srv: srv, url: "http://" + ln.Addr().String() + "/customers", out: out}, nil
}

// AfterJob stops the server and prints what it served.
func (s *fakeServer) AfterJob(context.Context, *batch.JobExecution) error {
	s.close()
	if s.out != nil {
		fmt.Fprintln(s.out, s.api.summary())
	}
	return nil
}

func (s *fakeServer) close() { _ = s.srv.Close() }
