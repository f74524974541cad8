// Command partitionfile adds 5 to the credit of every customer in a set of
// files, one partition per file, and writes each file's customers to an
// output file of the same name — Spring Batch's partition-file sample, on
// its data.
//
//	partitionfile run                                 the bundled delimited1.csv and delimited2.csv
//	partitionfile run 'input=data/*.csv' output=out   every file the glob matches, into out/
//	partitionfile run 'input=data/*.csv' chunk=500 concurrency=2
//	partitionfile status
//
// The input files have the lines name,credit, without a header; a credit
// is a decimal number ("80", "-3.50"), and the output keeps its decimals.
// The step credit is partitioned: partition credit:fN reads the N-th file of
// the glob, in the order of the names, and writes output/NAME, where NAME
// is the input's base name. Without input, the bundled sample is written to
// output/sample/ first and read from there. With FAIL_AT=NAME set, the step
// fails on purpose at the customer NAME, to show a restart: run the same
// command again without FAIL_AT and only the partitions that did not
// complete run, each from its last committed chunk.
package main

import "github.com/chunkwise/chunkwise/launcher"

func main() {
	var jobs launcher.Registry
	jobs.MustRegister(jobName, newJob, parameters...)
	launcher.Main(&jobs)
}
