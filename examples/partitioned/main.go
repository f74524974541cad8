// Command partitioned hashes the rows of a table in partitions that run at the
// same time, each a step of its own with its own checkpoint, into another
// table of the job repository's database.
//
//	partitioned run                            1,000,000 rows, 4 partitions
//	partitioned run rows=100000 partitions=8
//	partitioned run rows=100000 concurrency=2  two partitions at a time
//	partitioned status                         list executions
//	partitioned status 1                       one execution, a line per partition
//	partitioned -db postgres://localhost/app run rows=100000
//
// The first step creates the table source with the ids 1 to rows, each with
// the payload "row-<id>", and the table target. The step load splits source
// into ranges of ids, one partition each (load:p1, load:p2, …), and writes
// the SHA-256 of each payload, applied rounds times, to target with the
// partition's name. With the environment variable FAIL_AT=ID set, the
// partition holding that id fails on purpose there, to show a restart: run
// the same command again without FAIL_AT and only the partitions that did not
// complete run, each from its last committed chunk.
//
// With -nats URL, run hands the partitions to processes started with
// "partitioned -nats URL worker", on other machines or this one (see
// examples/remote). Each chunk is recorded in target_chunks with the
// process that wrote it; the parameter table names another table than
// target, and delay makes each row wait, as for a call to another service.
// With CRASH_AT=ID set, the process that reaches that id kills itself.
package main

import "github.com/chunkwise/chunkwise/launcher"

func main() {
	var jobs launcher.Registry
	jobs.MustRegister(jobName, newJob, parameters...)
	launcher.Main(&jobs)
}
