package batch

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"

	"github.com/chunkwise/chunkwise/internal/chunktx"
)

// ErrNoChunkTx: a writer, skip listener or tasklet asked to join the chunk's
// transaction on a database where the chunk has none. The error wrapping it
// says why: the job repository keeps no SQL transaction (the memory
// repository), the database handle is not the repository's, or the context
// is not a chunk's.
var ErrNoChunkTx = errors.New("batch: no chunk transaction to join")

// JoinTx returns the chunk's transaction when db is the job repository's
// database handle, beginning the transaction if no one has yet. Statements
// run on it commit or roll back together with the step's checkpoint, so a
// restart writes their effects exactly once. Call it from Write, OnSkip or a
// tasklet with the context they were given; never commit or roll back the
// transaction yourself.
//
// It fails closed: when the chunk has no transaction on db it returns an
// error wrapping [ErrNoChunkTx] that says why, never a nil transaction. A
// transaction belongs to one connection pool, so db must be the very *sql.DB
// of the repository (repo.DB().DB for the repositories of this module, or a
// handle wrapping it); a second pool opened on the same database cannot join
// and is refused. A component that does not need exactly-once commits on its
// own instead, and documents that a crash may redo its last chunk.
func JoinTx(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
	tx, err := join(ctx, db)
	if err != nil {
		return nil, err
	}
	return tx.Tx, nil
}

// JoinTxx is [JoinTx] for sqlx: db may be the repository's *sqlx.DB or any
// *sqlx.DB on the same *sql.DB. The returned transaction binds and maps as
// the repository's handle does.
func JoinTxx(ctx context.Context, db *sqlx.DB) (*sqlx.Tx, error) {
	if db == nil {
		return nil, fmt.Errorf("%w: nil database handle", ErrNoChunkTx)
	}
	return join(ctx, db.DB)
}

// JoinRaw runs f with the driver's connection that the chunk's transaction
// runs on, when db is the job repository's database handle, beginning the
// transaction if no one has yet: for what database/sql cannot express, such
// as pgx's bulk CopyFrom. With the PostgreSQL repository's default driver
// driverConn is a *stdlib.Conn of github.com/jackc/pgx/v5/stdlib, whose Conn
// method returns the *pgx.Conn; what runs on it runs inside the chunk's
// transaction and commits with the checkpoint. f must not commit or roll
// back, and must not keep the connection past its return. It refuses as
// [JoinTx] does.
func JoinRaw(ctx context.Context, db *sql.DB, f func(driverConn any) error) error {
	ct, err := chunkTx(ctx, db)
	if err != nil {
		return err
	}
	if _, err := ct.Tx(); err != nil {
		return fmt.Errorf("batch: begin chunk transaction: %w", err)
	}
	return ct.Raw(f)
}

func join(ctx context.Context, db *sql.DB) (*sqlx.Tx, error) {
	ct, err := chunkTx(ctx, db)
	if err != nil {
		return nil, err
	}
	tx, err := ct.Tx()
	if err != nil {
		return nil, fmt.Errorf("batch: begin chunk transaction: %w", err)
	}
	return tx, nil
}

// chunkTx returns the transaction of ctx's chunk that a component on db
// joins, or why there is none.
func chunkTx(ctx context.Context, db *sql.DB) (*chunktx.Tx, error) {
	ct, reason := chunktx.From(ctx)
	switch {
	case db == nil:
		return nil, fmt.Errorf("%w: nil database handle", ErrNoChunkTx)
	case ct == nil && reason != "":
		return nil, fmt.Errorf("%w: %s", ErrNoChunkTx, reason)
	case ct == nil:
		return nil, fmt.Errorf("%w: the context is not a chunk's (Write, OnSkip and tasklets are given one)", ErrNoChunkTx)
	case ct.DB().DB != db:
		return nil, fmt.Errorf("%w: the database handle is not the job repository's; a transaction cannot span two connection pools, "+
			"so build the component on the repository's handle (its DB method) or let it commit on its own", ErrNoChunkTx)
	}
	return ct, nil
}

// InChunkTx reports whether the chunk that ctx belongs to has a transaction
// that a component on db would join: whether [JoinTx] would succeed, without
// beginning the transaction. A component that can work either way asks it to
// learn which guarantee it gets.
func InChunkTx(ctx context.Context, db *sql.DB) bool {
	ct, _ := chunktx.From(ctx)
	return ct != nil && db != nil && ct.DB().DB == db
}
