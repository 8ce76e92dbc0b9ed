//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package webhook

import "syscall"

// idleOpen peeks at an idle connection without blocking: nothing to read
// means it is open; an end of file, an error or unexpected bytes (a TLS
// close_notify, an HTTP 408) mean the service is done with it.
func idleOpen(raw syscall.RawConn) bool {
	open := true
	var b [1]byte
	err := raw.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return open && err == nil
}
