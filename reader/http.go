package reader

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/chunkwise/chunkwise/batch"
)

// Defaults of [HTTPConfig].
const (
	DefaultHTTPTimeout      = 30 * time.Second
	DefaultHTTPPageSize     = 100
	DefaultHTTPMaxAttempts  = 5
	DefaultHTTPRetryWaitMin = time.Second
	DefaultHTTPRetryWaitMax = 30 * time.Second
	DefaultMaxPageBytes     = 32 << 20
)

// httpSnippetBytes is how much of a body an error quotes.
const httpSnippetBytes = 256

// HTTPPaging is how an [HTTP] reader asks for the page after the one it has.
type HTTPPaging int

const (
	// PageNumberPaging asks for page 1, 2, ... (PageParam), PageSize items
	// each (SizeParam).
	PageNumberPaging HTTPPaging = iota
	// OffsetPaging asks for the items from offset 0, then from the offset
	// after the last item served (OffsetParam), PageSize at most
	// (SizeParam).
	OffsetPaging
	// CursorPaging sends, as CursorParam, the token that the previous page
	// named in its NextField.
	CursorPaging
	// NextLinkPaging follows the URL of the next page that the previous
	// page gives: its NextField, or its Link header's rel="next".
	NextLinkPaging
)

// String returns the name of the paging style.
func (p HTTPPaging) String() string {
	switch p {
	case PageNumberPaging:
		return "page number"
	case OffsetPaging:
		return "offset"
	case CursorPaging:
		return "cursor"
	case NextLinkPaging:
		return "next link"
	}
	return fmt.Sprintf("HTTPPaging(%d)", int(p))
}

// HTTPConfig configures an [HTTP] reader. URL is required, and NextField or
// Decode with CursorPaging; every other field has a usable zero value.
//
// Paths of fields in a page (ItemsField, TotalField, NextField) name a member
// of the JSON object the body holds, or of objects inside it with dots:
// "data", "meta.total", "links.next".
type HTTPConfig[T any] struct {
	// Name prefixes the reader's keys in the execution context
	// ("orders.page") and names the reader in errors. Two restartable
	// readers of one step need different names. Default "api".
	Name string

	// URL is the address of the first page, without the paging parameters,
	// which the reader sets; it may hold query parameters of its own
	// ("https://api.example.com/v1/orders?status=open"). Request URLs
	// appear in errors: credentials belong in Header or Prepare, not here.
	// Required.
	URL string

	// Paging says how the next page is asked for. Default
	// PageNumberPaging.
	Paging HTTPPaging

	// PageSize is the number of items asked for per page, sent as
	// SizeParam. With page-number and offset paging a page with fewer
	// items ends the input when the API gives no total, so PageSize must
	// not exceed the largest page the API serves. Default
	// [DefaultHTTPPageSize] (100) with page-number and offset paging; 0
	// with cursor and next-link paging, where 0 sends no size and the API's
	// own page size applies (a next link is followed as given, the size is
	// only sent with the first request).
	PageSize int

	// SizeParam is the query parameter PageSize is sent in. Default
	// "per_page" with page-number paging, "limit" otherwise.
	SizeParam string

	// PageParam is the query parameter of the page number. Default "page".
	PageParam string

	// PagesFromZero makes page numbers start at 0. Default false: the first
	// page is 1.
	PagesFromZero bool

	// OffsetParam is the query parameter of the offset. Default "offset".
	OffsetParam string

	// CursorParam is the query parameter the next-page token is sent in; it
	// is left out of the first request. Default "cursor".
	CursorParam string

	// ItemsField is the path of the array of items in the body ("data",
	// "result.items"). A page without it, or where it is not an array (null
	// counts as empty), is malformed. Default "": the body is the array.
	ItemsField string

	// TotalField is the path of the total number of items ("total",
	// "meta.total"): an integer, or a string of digits. When the API gives
	// it, [HTTP.Total] reports it, and with page-number and offset paging it
	// decides where the input ends. A page without it (or with null) has
	// no total. Default "": none.
	TotalField string

	// NextField is the path of what leads to the next page: with
	// CursorPaging the token (a string or a number) to send as CursorParam,
	// with NextLinkPaging the URL of the next page, relative to the page's
	// own. Missing, null or "" means there is no next page. Required with
	// CursorPaging unless Decode is set; default "" with NextLinkPaging,
	// where the Link header's rel="next" is followed. Ignored otherwise.
	NextField string

	// Decode, when set, takes a page apart in place of ItemsField,
	// TotalField and NextField, for APIs whose pages the paths cannot
	// describe. It is given the response (whose body is already read and
	// closed) and the body. An error it returns makes the page malformed.
	// With NextLinkPaging, the Link header is still followed when Decode's
	// Next is "". Default nil.
	Decode func(resp *http.Response, body []byte) (HTTPPage, error)

	// Client sends the requests; its Timeout is replaced by the reader's
	// (see Timeout). Default: a client of the reader's own, with the
	// settings of http.DefaultTransport.
	Client *http.Client

	// Header holds headers added to every request ("Authorization",
	// "X-Api-Key"). Default: none, except "Accept: application/json" when
	// Header sets no Accept.
	Header http.Header

	// Prepare is called with every request before it is sent, retries
	// included, to add what Header cannot: a token that expires, a
	// signature. It should set headers, not add them, as a retry reuses the
	// request. An error fails the page's request. Default nil.
	Prepare func(req *http.Request) error

	// Timeout bounds every attempt at a request, reading the body
	// included; a request that times out is retried. It is never
	// unlimited. Default: Client.Timeout when set, otherwise
	// [DefaultHTTPTimeout] (30s).
	Timeout time.Duration

	// MaxAttempts is how many times a page is asked for before its request
	// fails: attempts after a connection error, a timeout, a broken body,
	// 429 Too Many Requests or a 5xx status other than 501 Not Implemented.
	// 1 means no retry. Default [DefaultHTTPMaxAttempts] (5).
	MaxAttempts int

	// RetryWaitMin is the wait before the first retry; it doubles with
	// every retry up to RetryWaitMax. Default [DefaultHTTPRetryWaitMin]
	// (1s).
	RetryWaitMin time.Duration

	// RetryWaitMax caps the wait between two attempts, a wait asked for in
	// a Retry-After header (seconds or an HTTP date, on 429 and 503) too.
	// Default [DefaultHTTPRetryWaitMax] (30s), or RetryWaitMin when that
	// is larger.
	RetryWaitMax time.Duration

	// OnRetry is told about every retry before its wait, to log it.
	// Default nil.
	OnRetry func(HTTPRetry)

	// MaxPageBytes caps the size of a body, so that a runaway answer cannot
	// exhaust memory: a larger page is malformed. Default
	// [DefaultMaxPageBytes] (32 MiB).
	MaxPageBytes int64
}

// HTTPPage is a page taken apart by [HTTPConfig.Decode].
type HTTPPage struct {
	// Items are the page's items, in order, each decoded into the reader's
	// T as JSON. An empty page ends the input, except with cursor and
	// next-link paging, which go on while there is a next page.
	Items []json.RawMessage
	// Total is the total number of items of all pages, when HasTotal.
	Total    int64
	HasTotal bool
	// Next is the token (CursorPaging) or URL (NextLinkPaging) of the next
	// page; "" when there is none. Ignored with other paging.
	Next string
}

// HTTPRetry describes a retry to [HTTPConfig.OnRetry].
type HTTPRetry struct {
	URL        string        // the request's URL
	Attempt    int           // the attempt that failed, from 1
	StatusCode int           // its status; 0 when it got no response
	Err        error         // what went wrong when it got no response, or the body broke
	Wait       time.Duration // the wait before the next attempt
}

// ErrMalformedPage is matched by the error of a page the reader cannot take
// apart: a body that is not JSON (an HTML error page served with 200 OK), a
// missing items field, an items field that is not an array, a total or next
// field of the wrong type, a body over MaxPageBytes, an error of Decode.
var ErrMalformedPage = errors.New("malformed page")

// HTTPStatusError is the error of a request that got a status other than
// 2xx: at once for 4xx statuses other than 429, after the last attempt for
// 429 and 5xx.
type HTTPStatusError struct {
	Name       string // the reader's name, [HTTPConfig.Name]
	URL        string // the request's URL
	StatusCode int
	Status     string // "404 Not Found"
	Body       string // the start of the body
	Attempts   int    // how many times the page was asked for
}

// Error returns "reader: http NAME: GET URL: STATUS: BODY", saying how
// many attempts were made when there was more than one.
func (e *HTTPStatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "reader: http %s: GET %s: %s", e.Name, e.URL, e.Status)
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (after %d attempts)", e.Attempts)
	}
	if e.Body != "" {
		b.WriteString(": ")
		b.WriteString(e.Body)
	}
	return b.String()
}

// HTTPItemError is the error of an item that does not decode into the
// reader's T. It concerns that item only: the next Read goes on with the
// item after it.
type HTTPItemError struct {
	Name  string // the reader's name, [HTTPConfig.Name]
	URL   string // the URL of the page holding the item
	Index int    // the item's index in the page's array, from 0
	Item  int64  // the item's number in the whole input, from 1
	Err   error
}

// Error returns "reader: http NAME: GET URL: items[INDEX] (item N of the
// input): " followed by Err's message.
func (e *HTTPItemError) Error() string {
	return fmt.Sprintf("reader: http %s: GET %s: items[%d] (item %d of the input): %v", e.Name, e.URL, e.Index, e.Item, e.Err)
}

// Unwrap returns Err.
func (e *HTTPItemError) Unwrap() error { return e.Err }

// HTTP reads the items of a paginated JSON API, one page at a time: only the
// page in hand is kept in memory. Create one with [NewHTTP]; call Open before
// the first Read and Close at the end, as a step does for a
// [batch.ItemStream].
//
// The input ends at an empty page; with page-number and offset paging also
// at a page with fewer than PageSize items when the API gives no total, and
// where the total says when it does; with cursor and next-link paging when a
// page names no next page.
//
// Errors. An item that does not decode into T is an [*HTTPItemError]: it
// concerns that item, and the next Read goes on with the next one. A request
// that fails (after its retries: see [HTTPConfig.MaxAttempts]) is an
// [*HTTPStatusError], or an error naming the URL that wraps what the
// transport said; the reader stays where it was, and the next Read asks for
// the page again. A page that cannot be taken apart ([ErrMalformedPage])
// ends the reader: every later Read returns the same error. A Read whose
// ctx is done returns ctx's error, aborting a request or a wait between
// attempts, and the reader stays where it was.
//
// Restart. Update stores, under keys prefixed by the reader's name, what
// fetched the page holding the next item to read (the page number
// "NAME.page", the offset "NAME.offset", the token "NAME.cursor" or the URL
// "NAME.url"; "" is the first page), the index of that item in the page
// ("NAME.index") and the number of items before it ("NAME.count"). Open
// with such a context asks for that page directly, never for an earlier
// one, and skips the items of it already read (with offset paging it asks
// for the items from that item on). The API must serve the same items in
// the same order again; a next link or cursor must still be valid when the
// step is restarted.
//
// Open fetches the first page (or the page a restart resumes in), so that
// [HTTP.Total] is known when Open returns. An HTTP is not safe for
// concurrent use, except for Total.
type HTTP[T any] struct {
	cfg      HTTPConfig[T]
	base     *url.URL
	http     *http.Client
	ownHTTP  bool // http was made by NewHTTP: Close closes its idle connections
	client   *retryablehttp.Client
	itemPath []string
	totPath  []string
	nextPath []string
	total    atomic.Int64 // the last total an API gave; -1 when none

	// The request being sent, for the hooks of client.
	sending  string
	attempts int
	lastErr  error

	st httpState // set by Open, cleared by Close
}

var (
	_ batch.ItemReader[int] = (*HTTP[int])(nil)
	_ batch.ItemStream      = (*HTTP[int])(nil)
)

// httpRequest says which page to ask for; the field of the reader's paging
// is the one that counts.
type httpRequest struct {
	page   int64  // PageNumberPaging
	offset int64  // OffsetPaging
	cursor string // CursorPaging; "" is the first page
	url    string // NextLinkPaging; "" is the first page
}

// httpPosition is the restart state: the next item to read is item index of
// the page req fetches, and count items come before it.
type httpPosition struct {
	req   httpRequest
	index int
	count int64
}

type httpState struct {
	open  bool
	req   httpRequest       // what fetched the page in hand
	url   string            // its URL
	items []json.RawMessage // its items
	next  int               // the index of the next item to read
	base  int64             // the number of items before the page
	// after is what follows the page's items: nil when nextReq is to be
	// fetched, io.EOF at the end, or an error met when taking the page
	// apart that concerns the pages after it.
	after   error
	nextReq httpRequest
	err     error // sticky: io.EOF or an error that ends the reader
	pos     httpPosition
}

// NewHTTP returns a reader configured by cfg, or an error if cfg is
// invalid. It sends no request: [HTTP.Open] does.
func NewHTTP[T any](cfg HTTPConfig[T]) (*HTTP[T], error) {
	if cfg.Name == "" {
		cfg.Name = "api"
	}
	fail := func(format string, args ...any) (*HTTP[T], error) {
		return nil, fmt.Errorf("reader: http %s: "+format, append([]any{cfg.Name}, args...)...)
	}
	if cfg.URL == "" {
		return fail("URL is required")
	}
	base, err := url.Parse(cfg.URL)
	if err != nil {
		return fail("URL: %w", err)
	}
	if base.Scheme != "http" && base.Scheme != "https" || base.Host == "" {
		return fail("URL %q is not an absolute http or https URL", cfg.URL)
	}
	switch cfg.Paging {
	case PageNumberPaging, OffsetPaging:
		if cfg.PageSize == 0 {
			cfg.PageSize = DefaultHTTPPageSize
		}
	case CursorPaging:
		if cfg.NextField == "" && cfg.Decode == nil {
			return fail("cursor paging needs NextField or Decode")
		}
	case NextLinkPaging:
	default:
		return fail("invalid Paging %d", int(cfg.Paging))
	}
	if cfg.PageSize < 0 {
		return fail("negative PageSize %d", cfg.PageSize)
	}
	if cfg.SizeParam == "" {
		cfg.SizeParam = "limit"
		if cfg.Paging == PageNumberPaging {
			cfg.SizeParam = "per_page"
		}
	}
	if cfg.PageParam == "" {
		cfg.PageParam = "page"
	}
	if cfg.OffsetParam == "" {
		cfg.OffsetParam = "offset"
	}
	if cfg.CursorParam == "" {
		cfg.CursorParam = "cursor"
	}
	if cfg.Timeout < 0 || cfg.RetryWaitMin < 0 || cfg.RetryWaitMax < 0 {
		return fail("negative Timeout, RetryWaitMin or RetryWaitMax")
	}
	if cfg.MaxAttempts < 0 {
		return fail("negative MaxAttempts %d", cfg.MaxAttempts)
	}
	if cfg.MaxPageBytes < 0 {
		return fail("negative MaxPageBytes %d", cfg.MaxPageBytes)
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultHTTPMaxAttempts
	}
	if cfg.RetryWaitMin == 0 {
		cfg.RetryWaitMin = DefaultHTTPRetryWaitMin
	}
	if cfg.RetryWaitMax == 0 {
		cfg.RetryWaitMax = max(DefaultHTTPRetryWaitMax, cfg.RetryWaitMin)
	}
	if cfg.RetryWaitMin > cfg.RetryWaitMax {
		return fail("RetryWaitMin %v is above RetryWaitMax %v", cfg.RetryWaitMin, cfg.RetryWaitMax)
	}
	if cfg.MaxPageBytes == 0 {
		cfg.MaxPageBytes = DefaultMaxPageBytes
	}
	h := &HTTP[T]{
		cfg:      cfg,
		base:     base,
		itemPath: splitFieldPath(cfg.ItemsField),
		totPath:  splitFieldPath(cfg.TotalField),
		nextPath: splitFieldPath(cfg.NextField),
	}
	for _, p := range [][]string{h.itemPath, h.totPath, h.nextPath} {
		if slices.Contains(p, "") {
			return fail("empty name in field path %q", strings.Join(p, "."))
		}
	}
	h.total.Store(-1)

	// The reader's own copy of the client, so that its timeout can be set.
	if cfg.Client != nil {
		c := *cfg.Client
		h.http = &c
	} else {
		h.ownHTTP = true
		h.http = &http.Client{Transport: newHTTPTransport()}
	}
	switch {
	case cfg.Timeout > 0:
		h.http.Timeout = cfg.Timeout
	case h.http.Timeout <= 0:
		h.http.Timeout = DefaultHTTPTimeout
	}
	h.cfg.Timeout = h.http.Timeout

	h.client = &retryablehttp.Client{
		HTTPClient:   h.http,
		RetryWaitMin: cfg.RetryWaitMin,
		RetryWaitMax: cfg.RetryWaitMax,
		RetryMax:     cfg.MaxAttempts - 1,
		RequestLogHook: func(_ retryablehttp.Logger, _ *http.Request, retry int) {
			h.attempts = retry + 1
		},
		CheckRetry: func(ctx context.Context, resp *http.Response, err error) (bool, error) {
			h.lastErr = err
			return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
		},
		Backoff:      h.backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	if cfg.Prepare != nil {
		h.client.PrepareRetry = cfg.Prepare
	}
	return h, nil
}

// newHTTPTransport returns a transport with the settings of
// http.DefaultTransport, whose idle connections the reader may close.
func newHTTPTransport() http.RoundTripper {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	return http.DefaultTransport
}

func splitFieldPath(path string) []string {
	if path == "" {
		return nil
	}
	return strings.Split(path, ".")
}

// backoff is the wait before retry attempt+1: exponential from
// RetryWaitMin, or what Retry-After asks for, capped by RetryWaitMax.
func (h *HTTP[T]) backoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	wait := min(retryablehttp.DefaultBackoff(lo, hi, attempt, resp), hi)
	if h.cfg.OnRetry != nil {
		r := HTTPRetry{URL: h.sending, Attempt: attempt + 1, Err: h.lastErr, Wait: wait}
		if resp != nil {
			r.StatusCode = resp.StatusCode
		}
		h.cfg.OnRetry(r)
	}
	return wait
}

func (h *HTTP[T]) key(suffix string) string { return h.cfg.Name + "." + suffix }

// Total returns the total number of items of the input, as the last page
// that had one gave it (see [HTTPConfig.TotalField]), and whether there was
// one. It may be called from any goroutine, while another reads.
func (h *HTTP[T]) Total() (int64, bool) {
	n := h.total.Load()
	return n, n >= 0
}

// Progress implements batch.ProgressReader: the items returned (over all
// runs of the step), of the total the API last gave (TotalField; unknown
// without it).
func (h *HTTP[T]) Progress() batch.Progress {
	p := batch.Progress{Done: h.st.pos.count, Unit: "items"}
	if n, ok := h.Total(); ok {
		p.Total = n
	}
	return p
}

// Open fetches the page to start with. When ec holds no position of this
// reader (a first run), that is the first page. When ec holds what an
// earlier Update stored (a restart), it is the page holding the next item
// to read, whose items before it are skipped; no earlier page is fetched. A
// reader that is open must be closed before it is opened again.
func (h *HTTP[T]) Open(ctx context.Context, ec batch.ExecutionContext) error {
	if h.st.open {
		return fmt.Errorf("reader: http %s: already open", h.cfg.Name)
	}
	pos, err := h.restore(ec)
	if err != nil {
		return fmt.Errorf("reader: http %s: restore: %w", h.cfg.Name, err)
	}
	h.total.Store(-1)
	h.st = httpState{open: true, pos: pos}
	req, base, skip := pos.req, pos.count-int64(pos.index), pos.index
	if h.cfg.Paging == OffsetPaging {
		req.offset += int64(skip)
		base += int64(skip)
		skip = 0
	}
	if err := h.fetch(ctx, req, base); err != nil {
		_ = h.Close(ctx)
		return err
	}
	h.st.next = min(skip, len(h.st.items))
	return nil
}

// first returns the request of the first page.
func (h *HTTP[T]) first() httpRequest {
	if h.cfg.Paging == PageNumberPaging && !h.cfg.PagesFromZero {
		return httpRequest{page: 1}
	}
	return httpRequest{}
}

// restore reads the position stored by Update: the first page when ec
// holds none.
func (h *HTTP[T]) restore(ec batch.ExecutionContext) (httpPosition, error) {
	pos := httpPosition{req: h.first()}
	ok, err := ec.Get(h.key("index"), &pos.index)
	if !ok || err != nil {
		return pos, err
	}
	var dst any
	var suffix string
	switch h.cfg.Paging {
	case PageNumberPaging:
		suffix, dst = "page", &pos.req.page
	case OffsetPaging:
		suffix, dst = "offset", &pos.req.offset
	case CursorPaging:
		suffix, dst = "cursor", &pos.req.cursor
	case NextLinkPaging:
		suffix, dst = "url", &pos.req.url
	}
	for _, v := range []struct {
		suffix string
		dst    any
	}{{suffix, dst}, {"count", &pos.count}} {
		ok, err := ec.Get(h.key(v.suffix), v.dst)
		if err != nil {
			return pos, err
		}
		if !ok {
			return pos, fmt.Errorf("key %q missing (was the paging changed?)", h.key(v.suffix))
		}
	}
	if pos.index < 0 || pos.count < int64(pos.index) || pos.req.page < h.first().page || pos.req.offset < 0 {
		return pos, fmt.Errorf("invalid position: %s, index %d, count %d", h.describe(pos.req), pos.index, pos.count)
	}
	return pos, nil
}

// describe names a request in an error about the stored position.
func (h *HTTP[T]) describe(req httpRequest) string {
	switch h.cfg.Paging {
	case PageNumberPaging:
		return fmt.Sprintf("page %d", req.page)
	case OffsetPaging:
		return fmt.Sprintf("offset %d", req.offset)
	case CursorPaging:
		return fmt.Sprintf("cursor %q", req.cursor)
	default:
		return fmt.Sprintf("URL %q", req.url)
	}
}

// Read returns the next item, fetching the next page when the page in hand
// is read, and io.EOF after the last item. See [HTTP] for its errors.
func (h *HTTP[T]) Read(ctx context.Context) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	st := &h.st
	if !st.open {
		return zero, fmt.Errorf("reader: http %s: not open", h.cfg.Name)
	}
	for st.err == nil && st.next >= len(st.items) {
		if st.after != nil {
			st.err = st.after
			break
		}
		// The page read is dropped before the next is fetched: one page
		// at a time is in memory.
		st.base += int64(len(st.items))
		st.items, st.next = nil, 0
		if err := h.fetch(ctx, st.nextReq, st.base); err != nil {
			return zero, err
		}
	}
	if st.err != nil {
		return zero, st.err
	}
	i := st.next
	st.next++
	var item T
	if err := json.Unmarshal(st.items[i], &item); err != nil {
		return zero, &HTTPItemError{Name: h.cfg.Name, URL: st.url, Index: i, Item: st.base + int64(i) + 1, Err: err}
	}
	// The restart position moves past the item: to the next one of the
	// page, or to the first of the next page when the page is read.
	if i+1 < len(st.items) || st.after != nil {
		st.pos = httpPosition{req: st.req, index: i + 1, count: st.base + int64(i) + 1}
	} else {
		st.pos = httpPosition{req: st.nextReq, index: 0, count: st.base + int64(len(st.items))}
	}
	return item, nil
}

// fetch asks for the page of req, of which base items come before, and
// makes it the page in hand. A failed request leaves the reader as it was;
// a malformed page ends it.
func (h *HTTP[T]) fetch(ctx context.Context, req httpRequest, base int64) error {
	u := h.requestURL(req)
	resp, body, err := h.get(ctx, u)
	if err != nil {
		return err
	}
	page, err := h.decode(resp, body)
	if err != nil {
		err = fmt.Errorf("reader: http %s: GET %s: %w", h.cfg.Name, u, err)
		h.st.err = err
		return err
	}
	if page.HasTotal {
		h.total.Store(max(page.Total, 0))
	}
	st := &h.st
	st.req, st.url, st.items, st.next, st.base = req, u, page.Items, 0, base
	st.nextReq, st.after = h.following(req, u, resp, page)
	return nil
}

// requestURL returns the URL that asks for the page of req.
func (h *HTTP[T]) requestURL(req httpRequest) string {
	c := h.cfg
	if c.Paging == NextLinkPaging && req.url != "" {
		return req.url
	}
	q := h.base.Query()
	switch c.Paging {
	case PageNumberPaging:
		q.Set(c.PageParam, strconv.FormatInt(req.page, 10))
	case OffsetPaging:
		q.Set(c.OffsetParam, strconv.FormatInt(req.offset, 10))
	case CursorPaging:
		if req.cursor != "" {
			q.Set(c.CursorParam, req.cursor)
		}
	}
	if c.PageSize > 0 {
		q.Set(c.SizeParam, strconv.Itoa(c.PageSize))
	}
	u := *h.base
	u.RawQuery = q.Encode()
	return u.String()
}

// get sends the request of a page, with retries, and returns the response
// (its body read and closed) and the body.
func (h *HTTP[T]) get(ctx context.Context, u string) (*http.Response, []byte, error) {
	fail := func(err error) (*http.Response, []byte, error) {
		return nil, nil, fmt.Errorf("reader: http %s: GET %s: %w", h.cfg.Name, u, err)
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fail(err)
	}
	for k, vs := range h.cfg.Header {
		req.Header[http.CanonicalHeaderKey(k)] = append([]string(nil), vs...)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if h.cfg.Prepare != nil {
		if err := h.cfg.Prepare(req.Request); err != nil {
			return fail(fmt.Errorf("prepare: %w", err))
		}
	}
	var body []byte
	read, tooLarge := false, false
	// The body is read within the attempt, so that a body broken half way
	// is retried as a failed request is.
	req.SetResponseHandler(func(resp *http.Response) error {
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, h.cfg.MaxPageBytes+1))
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
		body, read, tooLarge = b, true, int64(len(b)) > h.cfg.MaxPageBytes
		return nil
	})
	h.sending, h.attempts, h.lastErr = u, 0, nil
	resp, err := h.client.Do(req)
	if err != nil {
		if resp != nil {
			_ = resp.Body.Close()
		}
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		if h.attempts > 1 {
			err = fmt.Errorf("after %d attempts: %w", h.attempts, err)
		}
		return fail(err)
	}
	if !read { // a status the last attempt gave up on
		body, _ = io.ReadAll(io.LimitReader(resp.Body, httpSnippetBytes+1))
		_ = resp.Body.Close()
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, nil, &HTTPStatusError{Name: h.cfg.Name, URL: u, StatusCode: resp.StatusCode, Status: resp.Status,
			Body: bodySnippet(body), Attempts: max(h.attempts, 1)}
	}
	if tooLarge {
		err := fmt.Errorf("reader: http %s: GET %s: %w: body larger than MaxPageBytes (%d)", h.cfg.Name, u, ErrMalformedPage, h.cfg.MaxPageBytes)
		h.st.err = err
		return nil, nil, err
	}
	return resp, body, nil
}

// bodySnippet returns the start of body, on one line, for an error.
func bodySnippet(body []byte) string {
	cut := len(body) > httpSnippetBytes
	if cut {
		body = body[:httpSnippetBytes]
		for len(body) > 0 && !utf8.Valid(body) && !utf8.FullRune(body[len(body)-1:]) {
			body = body[:len(body)-1]
		}
	}
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "\uFFFD")), " ")
	if cut {
		s += "…"
	}
	return s
}

// decode takes a page apart. Its errors wrap ErrMalformedPage.
func (h *HTTP[T]) decode(resp *http.Response, body []byte) (HTTPPage, error) {
	if h.cfg.Decode != nil {
		page, err := h.cfg.Decode(resp, body)
		if err != nil {
			return HTTPPage{}, fmt.Errorf("%w: %w", ErrMalformedPage, err)
		}
		return page, nil
	}
	if !json.Valid(body) {
		ct := resp.Header.Get("Content-Type")
		if ct == "" {
			ct = "none"
		}
		return HTTPPage{}, fmt.Errorf("%w: body is not JSON (Content-Type %s): %q", ErrMalformedPage, ct, bodySnippet(body))
	}
	var page HTTPPage
	if h.itemPath == nil {
		items, err := decodeHTTPItems(body)
		if err != nil {
			return HTTPPage{}, fmt.Errorf("%w: body is %s, not an array", ErrMalformedPage, jsonKindOf(body))
		}
		page.Items = items
		return page, nil
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		return HTTPPage{}, fmt.Errorf("%w: body is %s, not an object", ErrMalformedPage, jsonKindOf(body))
	}
	raw, ok := jsonLookup(doc, h.itemPath)
	if !ok {
		return HTTPPage{}, fmt.Errorf("%w: no field %q", ErrMalformedPage, h.cfg.ItemsField)
	}
	items, err := decodeHTTPItems(raw)
	if err != nil {
		return HTTPPage{}, fmt.Errorf("%w: field %q is %s, not an array", ErrMalformedPage, h.cfg.ItemsField, jsonKindOf(raw))
	}
	page.Items = items
	if raw, ok := jsonLookup(doc, h.totPath); ok && jsonKindOf(raw) != "null" {
		n, err := decodeHTTPTotal(raw)
		if err != nil {
			return HTTPPage{}, fmt.Errorf("%w: field %q: %s is not a count of items", ErrMalformedPage, h.cfg.TotalField, raw)
		}
		page.Total, page.HasTotal = n, true
	}
	if h.cfg.Paging == CursorPaging || h.cfg.Paging == NextLinkPaging {
		if raw, ok := jsonLookup(doc, h.nextPath); ok {
			switch jsonKindOf(raw) {
			case "null":
			case "a string":
				_ = json.Unmarshal(raw, &page.Next)
			case "a number":
				page.Next = string(raw)
			default:
				return HTTPPage{}, fmt.Errorf("%w: field %q is %s, not a string", ErrMalformedPage, h.cfg.NextField, jsonKindOf(raw))
			}
		}
	}
	return page, nil
}

func decodeHTTPItems(raw json.RawMessage) ([]json.RawMessage, error) {
	if jsonKindOf(raw) == "null" {
		return nil, nil
	}
	var items []json.RawMessage
	err := json.Unmarshal(raw, &items)
	return items, err
}

func decodeHTTPTotal(raw json.RawMessage) (int64, error) {
	if jsonKindOf(raw) == "a string" {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		raw = json.RawMessage(s)
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("not a count")
	}
	return n, nil
}

// jsonLookup returns the value at path in doc; false when a member on the way
// is missing, null or not an object.
func jsonLookup(doc map[string]json.RawMessage, path []string) (json.RawMessage, bool) {
	if len(path) == 0 {
		return nil, false
	}
	for i, name := range path {
		raw, ok := doc[name]
		if !ok {
			return nil, false
		}
		if i == len(path)-1 {
			return raw, true
		}
		doc = nil
		if err := json.Unmarshal(raw, &doc); err != nil || doc == nil {
			return nil, false
		}
	}
	return nil, false
}

// jsonKindOf names the kind of a valid JSON value, for errors.
func jsonKindOf(raw []byte) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "empty"
	}
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// following says what comes after the page that req fetched from u: the
// request of the next page (with after nil), or in after io.EOF or an
// error.
func (h *HTTP[T]) following(req httpRequest, u string, resp *http.Response, page HTTPPage) (next httpRequest, after error) {
	n := int64(len(page.Items))
	size := int64(h.cfg.PageSize)
	switch h.cfg.Paging {
	case PageNumberPaging:
		served := (req.page - h.first().page + 1) * size // items up to this page's end
		switch {
		case n == 0, page.HasTotal && served >= page.Total:
			return next, io.EOF
		case n < size && page.HasTotal:
			return next, fmt.Errorf("reader: http %s: GET %s: the page has %d items where %d were asked for, yet the total (%d) says more follow: "+
				"the next page number would skip items (is PageSize above the largest page the API serves?)",
				h.cfg.Name, u, n, size, page.Total)
		case n < size:
			return next, io.EOF
		}
		return httpRequest{page: req.page + 1}, nil
	case OffsetPaging:
		switch {
		case n == 0, page.HasTotal && req.offset+n >= page.Total, !page.HasTotal && n < size:
			return next, io.EOF
		}
		return httpRequest{offset: req.offset + n}, nil
	case CursorPaging:
		switch page.Next {
		case "":
			return next, io.EOF
		case req.cursor:
			return next, fmt.Errorf("reader: http %s: GET %s: the next cursor %q is the one that fetched the page", h.cfg.Name, u, page.Next)
		}
		return httpRequest{cursor: page.Next}, nil
	default:
		link := page.Next
		if link == "" {
			link = linkNext(resp.Header)
		}
		if link == "" {
			return next, io.EOF
		}
		ref, err := url.Parse(link)
		if err != nil {
			return next, fmt.Errorf("reader: http %s: GET %s: %w: next link %q: %w", h.cfg.Name, u, ErrMalformedPage, link, err)
		}
		cur, _ := url.Parse(u) // u was sent, so it parses
		abs := cur.ResolveReference(ref)
		if abs.Scheme != "http" && abs.Scheme != "https" {
			return next, fmt.Errorf("reader: http %s: GET %s: %w: next link %q is not an http or https URL", h.cfg.Name, u, ErrMalformedPage, link)
		}
		if abs.String() == u {
			return next, fmt.Errorf("reader: http %s: GET %s: the next link is the page's own URL", h.cfg.Name, u)
		}
		return httpRequest{url: abs.String()}, nil
	}
}

// linkNext returns the target of the rel="next" link of the Link headers
// (RFC 8288), or "".
func linkNext(header http.Header) string {
	for _, v := range header.Values("Link") {
		for v != "" {
			v = strings.TrimLeft(v, " \t,")
			if !strings.HasPrefix(v, "<") {
				break // malformed: the rest cannot be split reliably
			}
			end := strings.IndexByte(v, '>')
			if end < 0 {
				break
			}
			target := v[1:end]
			v = v[end+1:]
			// The parameters run to the next comma outside quotes.
			params, rest := splitLinkParams(v)
			v = rest
			for _, p := range params {
				name, val, _ := strings.Cut(p, "=")
				if !strings.EqualFold(strings.TrimSpace(name), "rel") {
					continue
				}
				val = strings.Trim(strings.TrimSpace(val), `"`)
				for _, rel := range strings.Fields(val) {
					if strings.EqualFold(rel, "next") {
						return target
					}
				}
			}
		}
	}
	return ""
}

// splitLinkParams splits the ";"-separated parameters of one link value
// off s, up to the comma that ends the value, and returns them and the rest.
func splitLinkParams(s string) (params []string, rest string) {
	quoted := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted
		case c == '\\' && quoted:
			i++
		case c == ';' && !quoted:
			params = append(params, s[start:i])
			start = i + 1
		case c == ',' && !quoted:
			return append(params, s[start:i]), s[i+1:]
		}
	}
	return append(params, s[start:]), ""
}

// Update stores the restart position in ec: what fetched the page holding
// the next item to read, the item's index in that page, and the number of
// items before it (see [HTTP]).
func (h *HTTP[T]) Update(_ context.Context, ec batch.ExecutionContext) error {
	if !h.st.open {
		return fmt.Errorf("reader: http %s: not open", h.cfg.Name)
	}
	if ec == nil {
		return fmt.Errorf("reader: http %s: Update with a nil execution context", h.cfg.Name)
	}
	pos := h.st.pos
	var err error
	switch h.cfg.Paging {
	case PageNumberPaging:
		err = ec.Put(h.key("page"), pos.req.page)
	case OffsetPaging:
		err = ec.Put(h.key("offset"), pos.req.offset)
	case CursorPaging:
		err = ec.Put(h.key("cursor"), pos.req.cursor)
	case NextLinkPaging:
		err = ec.Put(h.key("url"), pos.req.url)
	}
	err = errors.Join(err, ec.Put(h.key("index"), pos.index), ec.Put(h.key("count"), pos.count))
	if err != nil {
		return fmt.Errorf("reader: http %s: %w", h.cfg.Name, err)
	}
	return nil
}

// Close drops the page in hand, so that Open can be called again. Closing a
// reader that is not open does nothing. Total keeps its value until the
// next Open.
func (h *HTTP[T]) Close(context.Context) error {
	if !h.st.open {
		return nil
	}
	h.st = httpState{}
	if h.ownHTTP {
		h.http.CloseIdleConnections()
	}
	return nil
}
