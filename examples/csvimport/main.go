// Command csvimport imports a CSV file of people into the table people of its
// job repository's database, in restartable chunks.
//
//	csvimport run                          import the bundled sample (1,000 rows)
//	csvimport run input=people.csv         import a file
//	csvimport run input=people.csv chunk=500
//	csvimport run input=people.csv partitions=2   two parts of the file at once
//	csvimport run input=people.csv readahead=false   parse only between commits
//	csvimport status                       list executions
//	csvimport -db postgres://localhost/app run input=people.csv
//
// The file has the header id,name,email,amount,created_at; created_at is an
// RFC 3339 time. With the environment variable FAIL_AT=N set, the import fails
// on purpose while processing the N-th row, to show a restart: run the same
// command again without FAIL_AT and it resumes after the last committed chunk.
package main

import (
	"github.com/chunkwise/chunkwise/launcher"
)

func main() {
	var jobs launcher.Registry
	jobs.MustRegister(jobName, newJob, parameters...)
	launcher.Main(&jobs)
}
