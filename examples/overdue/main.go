// Command overdue is the classic nightly job: it finds the open tasks whose
// due day has passed and marks them overdue, in restartable chunks.
//
//	overdue run                    mark what is overdue today
//	overdue run day=2026-12-01     as of that day (one job instance per day)
//	overdue status                 list executions
//	overdue -db postgres://localhost/app run day=2026-12-01
//
// It works on the table tasks (id, title, due_on, state) of its job
// repository's database, created with demo rows when missing. With the
// environment variable FAIL_AT=N set, it fails on purpose at the first task
// whose id is N or more, to show a restart: run the same command again
// without FAIL_AT and it resumes after the last committed chunk.
package main

import "github.com/chunkwise/chunkwise/launcher"

func main() {
	var jobs launcher.Registry
	jobs.MustRegister(jobName, newJob, parameters...)
	launcher.Main(&jobs)
}
