package reader_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/reader"
)

type apiOrder struct {
	ID    int     `json:"id"`
	Total float64 `json:"total"`
}

// ordersAPI serves 7 orders, 3 a page, numbered pages, with a total; order
// 5 has a total that is not a number.
func ordersAPI() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, `{"error": "unauthorized"}`, http.StatusUnauthorized)
			return
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		size, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
		var items []string
		for id := (page-1)*size + 1; id <= min(page*size, 7); id++ {
			total := strconv.Itoa(id * 10)
			if id == 5 {
				total = `"n/a"`
			}
			items = append(items, fmt.Sprintf(`{"id": %d, "total": %s}`, id, total))
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"data": [%s], "meta": {"total": 7}}`, strings.Join(items, ", "))
	}))
}

func ExampleNewHTTP() {
	ctx := context.Background()
	srv := ordersAPI()
	defer srv.Close()

	r, err := reader.NewHTTP(reader.HTTPConfig[apiOrder]{
		Name:       "orders",
		URL:        srv.URL + "/v1/orders?status=open",
		Paging:     reader.PageNumberPaging, // page=1, 2, ... with per_page=PageSize
		PageSize:   3,
		ItemsField: "data",
		TotalField: "meta.total",
		Header:     http.Header{"Authorization": {"Bearer s3cret"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := r.Open(ctx, batch.ExecutionContext{}); err != nil {
		log.Fatal(err)
	}
	defer r.Close(ctx)
	total, _ := r.Total()
	fmt.Println("total:", total)
	for {
		o, err := r.Read(ctx)
		if err == io.EOF {
			break
		}
		if ie := (*reader.HTTPItemError)(nil); errors.As(err, &ie) {
			// One bad item: the next Read goes on after it.
			fmt.Println(strings.ReplaceAll(err.Error(), srv.URL, "http://api"))
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("order %d: %.2f\n", o.ID, o.Total)
	}
	// Output:
	// total: 7
	// order 1: 10.00
	// order 2: 20.00
	// order 3: 30.00
	// order 4: 40.00
	// reader: http orders: GET http://api/v1/orders?page=2&per_page=3&status=open: items[1] (item 5 of the input): json: cannot unmarshal string into Go struct field apiOrder.total of type float64
	// order 6: 60.00
	// order 7: 70.00
}

func ExampleHTTP_cursor() {
	ctx := context.Background()
	// An API that hands out a token for the next page.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("after") {
		case "":
			fmt.Fprint(w, `{"results": [{"id": 1}, {"id": 2}], "paging": {"next": "b3JkZXI6Mg"}}`)
		case "b3JkZXI6Mg":
			fmt.Fprint(w, `{"results": [{"id": 3}], "paging": {"next": null}}`)
		}
	}))
	defer srv.Close()

	r, err := reader.NewHTTP(reader.HTTPConfig[apiOrder]{
		URL:         srv.URL,
		Paging:      reader.CursorPaging,
		CursorParam: "after",
		ItemsField:  "results",
		NextField:   "paging.next",
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := r.Open(ctx, batch.ExecutionContext{}); err != nil {
		log.Fatal(err)
	}
	defer r.Close(ctx)
	for {
		o, err := r.Read(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("order", o.ID)
	}
	// Output:
	// order 1
	// order 2
	// order 3
}

func ExampleHTTP_linkHeader() {
	ctx := context.Background()
	// An API whose body is the array of items and whose Link header leads
	// to the next page, as GitHub's does.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		if page == 0 {
			page = 1
		}
		if page < 3 {
			w.Header().Set("Link", fmt.Sprintf(`<%s/orders?page=%d>; rel="next", <%s/orders?page=3>; rel="last"`,
				"http://"+r.Host, page+1, "http://"+r.Host))
		}
		fmt.Fprintf(w, `[{"id": %d}, {"id": %d}]`, 2*page-1, 2*page)
	}))
	defer srv.Close()

	r, err := reader.NewHTTP(reader.HTTPConfig[apiOrder]{
		URL:    srv.URL + "/orders",
		Paging: reader.NextLinkPaging, // ItemsField "": the body is the array
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := r.Open(ctx, batch.ExecutionContext{}); err != nil {
		log.Fatal(err)
	}
	defer r.Close(ctx)
	var ids []int
	for {
		o, err := r.Read(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		ids = append(ids, o.ID)
	}
	fmt.Println(ids)
	// Output:
	// [1 2 3 4 5 6]
}

func ExampleHTTP_Update() {
	ctx := context.Background()
	var mu sync.Mutex
	var requests []string // what the API was asked for
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.URL.RequestURI())
		mu.Unlock()
		offset, _ := strconv.Atoi(r.URL.Query().Get("offset"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		var items []json.RawMessage
		for id := offset + 1; id <= min(offset+limit, 10); id++ {
			items = append(items, json.RawMessage(fmt.Sprintf(`{"id": %d}`, id)))
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"items": items, "count": 10})
	}))
	defer srv.Close()
	cfg := reader.HTTPConfig[apiOrder]{
		Name:       "orders",
		URL:        srv.URL + "/orders",
		Paging:     reader.OffsetPaging,
		PageSize:   4,
		ItemsField: "items",
		TotalField: "count",
	}

	// A first run reads 6 orders; the step commits after them.
	first, err := reader.NewHTTP(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := first.Open(ctx, batch.ExecutionContext{}); err != nil {
		log.Fatal(err)
	}
	for range 6 {
		if _, err := first.Read(ctx); err != nil {
			log.Fatal(err)
		}
	}
	ec := batch.ExecutionContext{}
	if err := first.Update(ctx, ec); err != nil {
		log.Fatal(err)
	}
	first.Close(ctx)
	mu.Lock()
	fmt.Println("first run:", requests)
	requests = nil
	mu.Unlock()
	fmt.Printf("checkpoint: offset %s, index %s, count %s\n", ec["orders.offset"], ec["orders.index"], ec["orders.count"])

	// A restart goes on from order 7, asking for no earlier page.
	second, err := reader.NewHTTP(cfg)
	if err != nil {
		log.Fatal(err)
	}
	if err := second.Open(ctx, ec); err != nil {
		log.Fatal(err)
	}
	defer second.Close(ctx)
	for {
		o, err := second.Read(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("order", o.ID)
	}
	mu.Lock()
	fmt.Println("restart:", requests)
	mu.Unlock()
	// Output:
	// first run: [/orders?limit=4&offset=0 /orders?limit=4&offset=4]
	// checkpoint: offset 4, index 2, count 6
	// order 7
	// order 8
	// order 9
	// order 10
	// restart: [/orders?limit=4&offset=6]
}
