// Package launcher starts and operates jobs.
//
// A Registry maps job names to factories; a factory builds a fresh
// *batch.Job for each launch from an Env (the repository's database, the
// execution's parameters). A Launcher runs jobs synchronously (Run) or in the
// background (Start, Wait) and operates on executions: Restart, Stop,
// Abandon, Executions, Summary.
//
// Main gives a batch program its whole command line:
//
//	func main() {
//		var jobs launcher.Registry
//		jobs.MustRegister("import", newImportJob)
//		launcher.Main(&jobs)
//	}
//
//	import run input=people.csv      # launch (or restart a failed instance)
//	import restart 12                # restart execution 12's instance
//	import stop 12                   # stop at the next chunk boundary
//	import abandon 12                # never restart it
//	import status [JOB|ID]           # recent executions, or one in detail
//	import jobs                      # the registered jobs
//
// with -db (BATCH_DB; an SQLite file, default batch.db, or a postgres:// URL)
// and -lease (BATCH_LEASE; default 30s). Exit codes: 0 completed, 1 failed,
// 2 usage or configuration error, 3 stopped. SIGINT/SIGTERM stop the running
// execution at the next chunk boundary; a second signal exits at once.
// docs/cli.md has the details.
package launcher
