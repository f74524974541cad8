// Package chunktx carries a chunk's SQL transaction in a context, from the
// job repository that owns it to the writers and tasklets that join it. The
// repository package exposes it to repository implementations, the batch
// package to job authors.
package chunktx

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/jmoiron/sqlx"
)

// Tx is the transaction of one chunk. It begins on first use, with the
// chunk's context, so that it lives as long as the chunk whatever context a
// writer joins it with.
type Tx struct {
	ctx  context.Context
	db   *sqlx.DB
	opts *sql.TxOptions

	mu   sync.Mutex
	conn *sqlx.Conn // the connection tx runs on, for Raw
	tx   *sqlx.Tx
}

// New returns a transaction on db that has not begun.
func New(ctx context.Context, db *sqlx.DB, opts *sql.TxOptions) *Tx {
	return &Tx{ctx: ctx, db: db, opts: opts}
}

// DB returns the database the transaction runs on.
func (c *Tx) DB() *sqlx.DB { return c.db }

// Tx returns the transaction, beginning it on first call.
func (c *Tx) Tx() (*sqlx.Tx, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tx == nil {
		conn, err := c.db.Connx(c.ctx)
		if err != nil {
			return nil, err
		}
		tx, err := conn.BeginTxx(c.ctx, c.opts)
		if err != nil {
			_ = conn.Close()
			return nil, err
		}
		c.conn, c.tx = conn, tx
	}
	return c.tx, nil
}

// Began reports whether the transaction began.
func (c *Tx) Began() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tx != nil
}

// Raw runs f with the driver's connection that the transaction runs on
// (beginning the transaction on first call), for what database/sql cannot
// say, such as pgx's CopyFrom. f must not commit, roll back or keep the
// connection.
func (c *Tx) Raw(f func(driverConn any) error) error {
	if _, err := c.Tx(); err != nil {
		return err
	}
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn == nil {
		return sql.ErrTxDone
	}
	return conn.Raw(func(driverConn any) error {
		// database/sql rolls a transaction back when its context ends,
		// keeping the connection: what f sent then would commit on its own,
		// apart from the checkpoint.
		if pc, ok := driverConn.(interface{ Conn() *pgx.Conn }); ok && (pc.Conn().IsClosed() || pc.Conn().PgConn().TxStatus() == 'I') {
			return fmt.Errorf("%w: the chunk's transaction ended (its context is done)", sql.ErrTxDone)
		}
		return f(driverConn)
	})
}

// end closes the transaction's connection, returning it to the pool.
func (c *Tx) end() {
	if c.conn != nil {
		_ = c.conn.Close()
	}
	c.conn, c.tx = nil, nil
}

// Commit commits the transaction if it began.
func (c *Tx) Commit() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tx == nil {
		return nil
	}
	err := c.tx.Commit()
	c.end()
	return err
}

// Rollback rolls the transaction back if it began.
func (c *Tx) Rollback() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tx == nil {
		return nil
	}
	err := c.tx.Rollback()
	c.end()
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

type key struct{}

// value is what a chunk's context carries: a transaction, or the reason why
// there is none.
type value struct {
	tx     *Tx
	reason string
}

// With returns ctx carrying t.
func With(ctx context.Context, t *Tx) context.Context {
	return context.WithValue(ctx, key{}, value{tx: t})
}

// Without returns ctx saying that the chunk has no SQL transaction, and why.
func Without(ctx context.Context, reason string) context.Context {
	return context.WithValue(ctx, key{}, value{reason: reason})
}

// From returns the transaction ctx carries; when it carries none, the reason
// given to Without, or "" when ctx is not a chunk's.
func From(ctx context.Context) (*Tx, string) {
	v, _ := ctx.Value(key{}).(value)
	return v.tx, v.reason
}
