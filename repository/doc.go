// Package repository is for those who implement a job repository: the
// interface the engine talks to ([JobRepository]), the chunk transaction
// handed to writers ([BeginChunk]), the launch rules every implementation
// applies ([ApplyLaunchRules]), the encoding of execution contexts, and the
// deletion of old history ([Pruner], with [PruneRequest.Selects] deciding
// each execution), the rejects kept with their chunks ([RejectStore]), and
// step executions claimed by one process at a time under a lease
// ([StepLeaser], with [Claimable] deciding each claim).
// It sits beside package batch as database/sql/driver sits beside
// database/sql: job authors do not need it.
//
// The implementations of this module are in its subpackages: postgres (for
// production), sqlite (the embedded default) and memory (tests). repotest
// holds the conformance suite each of them passes; a new implementation
// should pass it too.
package repository
