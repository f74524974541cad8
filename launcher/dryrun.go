package launcher

import (
	"context"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/batch"
	"github.com/chunkwise/chunkwise/repository"
	"github.com/chunkwise/chunkwise/repository/memory"
)

// DryRun returns a launcher that runs l's jobs against l's database but
// commits nothing. Each chunk's transaction on the job repository's
// database (the one writers join with batch.JoinTx) is rolled back instead
// of committed; the executions are recorded in memory only, where the dry
// run launcher's Summary and Executions find them and l's repository never
// does. Everything a dry run calls sees batch.IsDryRun: the writers of
// package writer that would change something outside the chunk's
// transaction — a file, a transaction of their own — refuse with an error
// wrapping batch.ErrDryRun, and so should writers and tasklets of one's
// own that do.
//
// A dry run starts every job as a new instance, from the start: it does not
// read the history of l's repository (but for the rejects its Replay runs),
// so it shows what a first run would do with the data as it is now. The record of each launcher DryRun returns
// starts empty: it runs an instance once, as a real repository would; call
// DryRun again for a fresh one.
func (l *Launcher) DryRun() *Launcher {
	repo := &dryRunRepository{Repository: memory.New(), db: l.env.DB}
	env := l.env
	env.Repository = repo
	return &Launcher{
		reg: l.reg,
		engine: &engine{repo: repo, lease: l.engine.lease, heartbeatInterval: l.engine.heartbeatInterval,
			stopGrace: l.engine.stopGrace, logger: l.engine.logger, tel: l.engine.tel, dryRun: true, clock: l.engine.clock},
		env:     env,
		history: l.history,
		running: map[int64]chan struct{}{},
		results: map[int64]result{},
	}
}

// dryRunRepository records executions in memory, and gives each chunk a
// transaction on the real database that it rolls back.
type dryRunRepository struct {
	*memory.Repository
	db *sqlx.DB // nil when the real repository has no SQL database
}

// SaveReject keeps nothing: a dry run's rejects are counted in its
// summary, not kept.
func (r *dryRunRepository) SaveReject(context.Context, int64, batch.Reject) error { return nil }

// DB returns the real repository's database, so that writers built on it
// join the chunks' transactions.
func (r *dryRunRepository) DB() *sqlx.DB { return r.db }

// CommitChunk implements repository.JobRepository: the chunk's writes run
// in a transaction that is rolled back; the checkpoint is saved in memory.
func (r *dryRunRepository) CommitChunk(ctx context.Context, s *batch.StepExecution, write func(ctx context.Context) error) (batch.BatchStatus, error) {
	if r.db == nil {
		return r.Repository.CommitChunk(ctx, s, write)
	}
	return r.Repository.CommitChunk(ctx, s, func(context.Context) error {
		wctx, ct := repository.BeginChunk(ctx, r.db, nil)
		defer func() { _ = ct.Rollback() }()
		return write(wctx)
	})
}
