//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package webhook

import "syscall"

// idleOpen peeks at an idle connection without blocking: nothing to read
// means it is open; an end of file, an error or unexpected bytes (a TLS
// close_notify, an HTTP 408) mean the service is done with it. It uses
// Control, not Read: Read would first check the connection's read
// deadline, which the last call left behind and which has passed once the
// connection idled longer than that call's timeout.
func idleOpen(raw syscall.RawConn) bool {
	open := true
	var b [1]byte
	err := raw.Control(func(fd uintptr) {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
	})
	return open && err == nil
}
