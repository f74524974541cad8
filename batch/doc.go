// Package batch is what a job author writes against in chunkwise: jobs,
// steps, the item interfaces and the execution model of restartable,
// chunk-oriented batch jobs in the manner of Spring Batch.
//
// # Jobs, steps and chunks
//
// A [Job] ([NewJob]) is a named sequence of [Step]s that run in order; the
// first step that does not complete ends the execution with its status. A
// job with [Transition]s is a flow instead: each step's exit code picks the
// next step, a [Decider], a [Split] whose branches run at the same time, or
// the end. A partitioned step
// ([NewPartitionStep]) runs its partitions, each a step of its own with its
// own checkpoint, several at a time. A
// chunk step ([NewChunkStep]) is configured by a [ChunkConfig] of an
// [ItemReader], an optional [ItemProcessor] (it may be left out when the item
// types T and U are the same) and an [ItemWriter]. It repeats one chunk until
// the reader returns io.EOF:
//
//	read up to ChunkSize items → process each → write them in one call → commit
//
// A processor drops an item by returning [ErrFilter] (or an error wrapping
// it): the item counts in FilterCount and is not written; a chunk whose items
// are all filtered still commits, without calling the writer. A tasklet step
// ([NewTaskletStep]) calls one [Tasklet] for work that is not item-oriented,
// again and again while it returns [Continuable], each call its own commit.
// [ReaderFunc], [ProcessorFunc], [WriterFunc] and [TaskletFunc] adapt plain
// functions.
//
// # Running jobs
//
// Package launcher runs jobs: launcher.New with a job repository, then
// Run (to the end) or Start and Wait (in the background), Stop, Restart and
// Abandon; launcher.Main gives a batch program its whole command line.
//
// # The job repository
//
// A job repository stores what the engine must remember; repository/sqlite
// (one file, the default), repository/postgres and repository/memory
// implement it (package repository has the interface, for implementers). It
// holds three kinds of record:
//
//   - a [JobInstance]: the job's name plus its identifying parameters
//     ([JobParameters.Key]); non-identifying parameters are recorded but do
//     not make a new instance;
//   - a [JobExecution]: one attempt to run an instance, with its status,
//     exit status, heartbeat and version;
//   - a [StepExecution]: one attempt to run one step within a job execution,
//     with its counts (read, write, filter, commit, rollback) and the
//     [ExecutionContext] a restart resumes from.
//
// # Restart
//
// Launching a job with the same name and identifying parameters again
// addresses the same instance: if its last execution COMPLETED the launch
// fails with [ErrJobComplete]; if it is still running, with [ErrJobRunning];
// if it was abandoned, with [ErrJobAbandoned]; if it FAILED or STOPPED, a new
// execution of the instance is created. The run skips the steps that completed before (unless a step sets
// AllowStartIfComplete) and resumes the others from the step's last
// committed [ExecutionContext]: readers and writers that implement
// [ItemStream] are opened with it and record their position in it before
// every commit. Counts start from zero in each step execution; the item
// numbers in a [StepError] go on counting over all of them.
//
// A running execution records a heartbeat, and keeps the lease it was
// launched with ([JobExecution].Lease). One whose heartbeat is older than its
// lease is presumed crashed: the next launch marks it FAILED and restarts the
// instance. Should the presumed-dead process still be running, its next
// commit (or heartbeat) finds its execution no longer running and Run returns
// an error wrapping [ErrFenced] without writing another chunk.
//
// # The chunk transaction
//
// Each chunk's write and the save of the step execution (counts and context)
// are one transaction of the job repository. A writer, skip listener or
// tasklet whose database is the repository's joins it with [JoinTx] (or
// [JoinTxx] for sqlx), so its rows and the checkpoint commit or roll back
// together, and a restart writes every item exactly once. Joining fails
// closed: where the chunk has no transaction on that database (the memory
// repository, a second connection pool, another database) JoinTx returns an
// error wrapping [ErrNoChunkTx], never a nil transaction. A component on
// another store commits on its own, first, and the checkpoint second: after
// a crash at most one chunk is written again; each such component documents
// it.
//
// # Stopping
//
// A stop request (the stored execution set to STOPPING, by
// launcher.Launcher.Stop or the stop command) takes effect at the next chunk
// boundary: the step and the job end STOPPED, the run returns a nil error,
// and a restart goes on from there. Cancelling the context of the run
// interrupts the chunk in flight, which rolls back, and also ends the
// execution STOPPED. Components see a stop request with [StopRequested] and
// [Stopping].
//
// # Custom steps
//
// A [Step] is anything with a name and an Execute method; the engine hands
// it a [StepContext] to commit chunks with and to watch for stops. A step
// may also implement [StartPolicy] and [StepListeners]. A panic in a step or
// in any component it calls fails the step and the job with the panic value
// and stack in the exit description.
//
// # Listeners
//
// Jobs and steps take a list of [Listener] values, each implementing one or
// more of [BeforeJobListener], [AfterJobListener], [BeforeStepListener],
// [AfterStepListener], [BeforeChunkListener], [AfterChunkListener] and
// [ChunkErrorListener]; hooks are called in list order. A job calls the job
// hooks of its listeners, a step the step and chunk hooks of its own. An
// error from a before or after hook fails the job or the step; an after hook
// may change the exit status before it is saved. A value that implements
// none of the interfaces its owner calls is rejected with [ErrInvalidConfig].
//
// A chunk step also calls, item by item, the hooks of an [ItemListener], and
// wraps each call to its reader, processor and writer in its
// [Interceptor]s. [PromoteKeys] is a step listener that copies keys of the
// step's context to the job's ([JobContext]) when the step completes, for
// the steps after it.
//
// # Streams and changes
//
// The step opens, updates and closes the [ItemStream]s among its reader,
// processor, writer and listeners, and those a wrapper hides:
// ChunkConfig.ReaderStream (a wrapped reader's) and ChunkConfig.Streams.
// Update runs in the chunk's transaction, after the writer, with a copy of
// the last committed context (a reader that reads ahead, once the chunk's
// last item is read);
// [CommitAttempt] tells one attempt of a commit from the next. Writers and
// streams report what they did to their target with [ReportChanges]: the
// [Changes] are stored on the step execution with its other counts. A
// component marks an error that is the item's own fault with [Skippable]:
// the step skips that item, within its skip limit, whatever its skip
// policy.
//
// # Rejects and replays
//
// A chunk step hands every item it skips to its step context's
// [RejectRecorder] as a [Reject] — the item as JSON, the phase, the error —
// in the transaction of the chunk that counts the skip. [ReplayJob] turns
// the rejects of an execution into a job that runs those items again
// through the current processors and writers: each [Replayer] step (the
// chunk step is one) reads its rejects in place of its reader, and keeps
// the items' numbers. The launcher's Replay runs it as an instance of its
// own, identified by [ReplayOfParam].
package batch
