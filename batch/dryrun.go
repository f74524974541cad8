package batch

import (
	"context"
	"errors"
)

// ErrDryRun is matched by the error of a writer or tasklet that will not
// run in a dry run because it would change something the dry run cannot
// roll back: a file, a message sent, a transaction of its own.
var ErrDryRun = errors.New("cannot take part in a dry run")

type dryRunKey struct{}

// WithDryRun returns ctx marking a dry run: every chunk's transaction is
// rolled back instead of committed. The launcher's dry runs
// (launcher.Launcher.DryRun) mark the context of everything they call.
func WithDryRun(ctx context.Context) context.Context {
	return context.WithValue(ctx, dryRunKey{}, true)
}

// IsDryRun reports whether ctx is a dry run's. A writer or tasklet whose
// effects do not go through the chunk's transaction (batch.JoinTx) checks
// it, and refuses with an error wrapping [ErrDryRun] — or does nothing, if
// doing nothing is a faithful rehearsal.
func IsDryRun(ctx context.Context) bool {
	v, _ := ctx.Value(dryRunKey{}).(bool)
	return v
}
