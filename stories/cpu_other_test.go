//go:build !unix

package stories_test

// processCPU is unknown here (see cpu_unix_test.go).
func processCPU() int64 { return -1 }
