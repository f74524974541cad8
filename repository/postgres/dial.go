package postgres

import (
	"context"
	"net"
	"syscall"
	"time"
)

// dialer opens the repository's connections with TCP keepalives and, where
// the system has it, a TCP user timeout: a connection whose peer stops
// acknowledging (a network that swallows packets) fails after userTimeout,
// instead of holding a commit or a heartbeat for the many minutes the kernel
// would otherwise go on retransmitting.
type dialer struct{ d net.Dialer }

func newDialer(userTimeout time.Duration) *dialer {
	return &dialer{d: net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3},
		Control: func(network, _ string, c syscall.RawConn) error {
			if network != "tcp" && network != "tcp4" && network != "tcp6" {
				return nil
			}
			return setUserTimeout(c, userTimeout)
		},
	}}
}

// Dial implements pq.Dialer.
func (d *dialer) Dial(network, address string) (net.Conn, error) {
	return d.d.Dial(network, address)
}

// DialTimeout implements pq.Dialer.
func (d *dialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	nd := d.d
	nd.Timeout = timeout
	return nd.Dial(network, address)
}

// DialContext implements pq.DialerContext.
func (d *dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return d.d.DialContext(ctx, network, address)
}
