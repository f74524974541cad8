// Command apisync syncs the customers of a paginated JSON API into the table
// customers: new records are inserted, changed ones updated, unchanged ones
// left alone, and records that vanished from the API deleted — unless the
// API returned so few that it looks like an outage.
//
//	apisync run                          sync from the built-in fake API
//	apisync run version=2                the fake API's data, changed
//	apisync run version=2 outage=true    the fake API returning 20 records
//	apisync run -next url=https://api.example.com/v1/customers
//	apisync status
//
// Without url it serves a fake API on loopback from its own process: 1,200
// customers, 100 a page, where page 3 hangs once, page 5 answers 503 once
// and page 8 answers 429 once, so that the reader's retries show. With
// webhook=URL a failed execution is reported to that URL. With the
// environment variable FAIL_AT=N set, the sync fails on purpose, after
// writing, in the chunk that writes the first customer whose id is N or
// more: run the same command again without FAIL_AT and it resumes after the
// last committed chunk.
package main

import "github.com/chunkwise/chunkwise/launcher"

func main() {
	var jobs launcher.Registry
	jobs.MustRegister(jobName, newJob, parameters...)
	launcher.Main(&jobs)
}
