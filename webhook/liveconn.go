package webhook

import (
	"errors"
	"net"
	"syscall"
)

// errStaleConn: a kept-alive connection the service closed (or wrote to)
// while it was idle. Nothing of the request was sent on it, so the call is
// sent again on a new connection, as net/http does.
var errStaleConn = errors.New("kept-alive connection closed by the service while idle")

// liveConn checks, before a request goes out on a connection that already
// carried one, that the service has not closed it while it was idle.
// fasthttp's client has no reader watching idle connections, as net/http's
// transport has; without the check, the first call after the service's
// keep-alive timeout (5 s in Node.js) would fail, or would have to be sent
// twice without knowing whether the service got it.
type liveConn struct {
	net.Conn
	raw     syscall.RawConn // nil: not checked
	used    bool            // an answer was read on it
	sending bool            // written since the last read
}

func newLiveConn(c net.Conn) net.Conn {
	lc := &liveConn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			lc.raw = raw
		}
	}
	return lc
}

func (c *liveConn) Read(p []byte) (int, error) {
	c.used, c.sending = true, false
	return c.Conn.Read(p)
}

func (c *liveConn) Write(p []byte) (int, error) {
	if c.used && !c.sending && c.raw != nil && !idleOpen(c.raw) {
		return 0, errStaleConn
	}
	c.sending = true
	return c.Conn.Write(p)
}
