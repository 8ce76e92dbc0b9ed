package api

import (
	"io"
	"net"
	"sync"
	"time"
)

// Lingering close, as nginx's lingering_close: a connection the server ends
// is first shut for writing, and what the client still sends (the rest of a
// body refused as too large, say) is read and dropped for a moment before
// the socket closes. Closing with unread data would reset the connection,
// and the client would lose the answer (a 413) it has not read yet.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 16 << 20
)

// lingerListener hands out connections that close lingering.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		return &lingerConn{TCPConn: tc}, nil
	}
	return c, nil
}

type lingerConn struct {
	*net.TCPConn
	once sync.Once
}

// Close shuts the connection for writing and returns; the read side is
// drained (at most lingerBytes, for at most lingerTime) and closed in the
// background.
func (c *lingerConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		if c.TCPConn.CloseWrite() != nil {
			err = c.TCPConn.Close()
			return
		}
		err = nil
		go func() {
			c.TCPConn.SetReadDeadline(time.Now().Add(lingerTime))
			io.CopyN(io.Discard, c.TCPConn, lingerBytes)
			c.TCPConn.Close()
		}()
	})
	return err
}
