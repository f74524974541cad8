// Command report imports a CSV file of sales into a table, then writes a
// report of them to a CSV file: two steps, the second writing its file
// transactionally, so that a report killed half way and restarted is byte
// for byte the report of an uninterrupted run.
//
//	report run                                  generated sales (20,000 rows)
//	report run input=sales.csv output=report.csv
//	report status
//
// The input has the header id,region,amount. With REPORT_DELAY set (a
// duration such as 1ms), the report step waits that long per row: time to
// kill it in the middle.
package main

import "github.com/chunkwise/chunkwise/launcher"

func main() {
	var jobs launcher.Registry
	jobs.MustRegister(jobName, newJob, parameters...)
	launcher.Main(&jobs)
}
