// Command trade loads a file of trades, debits each customer's credit by the
// price of its trades, and writes a customer report — Spring Batch's trade
// sample, on its data.
//
//	trade run                                   the bundled five trades
//	trade run input=trades.csv report=customers.csv
//	trade status
//
// The input has the lines ISIN,quantity,price,customer. The tables trade and
// customer live in the job repository's database; customer is created with
// customer1 to customer4, each with a credit of 100000, when missing. With
// FAIL_AT=ISIN set the debit step fails on purpose at that trade, to show a
// restart: no customer is debited twice.
package main

import "github.com/chunkwise/chunkwise/launcher"

func main() {
	var jobs launcher.Registry
	jobs.MustRegister(jobName, newJob, parameters...)
	launcher.Main(&jobs)
}
