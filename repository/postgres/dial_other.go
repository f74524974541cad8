//go:build !linux

package postgres

import (
	"syscall"
	"time"
)

// setUserTimeout does nothing where TCP_USER_TIMEOUT is not known: the
// keepalives and the repository's own deadlines remain.
func setUserTimeout(syscall.RawConn, time.Duration) error { return nil }
