// Package launcher runs jobs and operates them: it is the engine.
//
// A Launcher (New, with a job repository) runs a *batch.Job to its end (Run)
// or in the background (Start, Wait), and operates on executions by id, from
// this process or any other sharing the repository: Stop, Restart, Abandon,
// Executions, Summary. Each execution it starts keeps the launcher's lease
// and heartbeats until its end is saved. A panic in user code fails the step
// with a PanicError instead of ending the process.
//
// A Registry maps job names to factories; a factory returns the
// batch.JobConfig of a fresh job for each launch from an Env (the
// repository's database, the execution's parameters), and the job takes the
// name it is registered under.
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
//	import run -next day:date=2026-11-30  # a fresh instance (run.id + 1)
//	import run -dry-run input=people.csv  # every chunk rolled back, nothing recorded
//	import restart 12                # restart execution 12's instance
//	import stop 12                   # stop at the next chunk boundary
//	import abandon 12                # never restart it
//	import status [JOB|ID]           # recent executions, or one in detail
//	import rejects 12                # the items execution 12 skipped, and why
//	import replay 12                 # run them again through the job as it is now
//	import prune -older-than 90d     # delete old history (-keep-last N, -dry-run)
//	import backfill -param day -from 2026-11-01 -to 2026-11-07  # one instance per day
//	import -nats nats://q:4222 worker -slots 2  # run partitions handed out by run -nats (docs/remote.md)
//	import serve                     # fire the declared schedules, once across replicas
//	import schedules                 # the stored schedules and their next due times
//	import schedule pause nightly    # also resume, and trigger: run it now, here
//	import jobs                      # the registered jobs and their parameters
//	import migrate                   # create or upgrade the repository's tables
//
// Parameters are name=value, name:type=value, and +name=value for one that
// does not identify the instance; a job registered with batch.ParamSpec
// declarations gets them checked before it is built.
//
// Every command takes -db (BATCH_DB; an SQLite file, default batch.db, or a
// postgres:// URL) and -lease (BATCH_LEASE; default 30s), before or after
// the command. Exit codes: 0 completed, 1 failed,
// 2 usage or configuration error, 3 stopped, 4 launch refused. SIGINT and
// SIGTERM stop the running execution at the next chunk boundary; a second
// signal exits at once. A program with its own repository, logger or output
// uses Program instead of Main. docs/cli.md has the details.
package launcher
