//go:build unix

package stories_test

import "syscall"

// processCPU is the process's user and system CPU time so far in
// nanoseconds, or -1 when unknown.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
