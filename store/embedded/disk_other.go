//go:build !linux

package embedded

import "os"

func freeBytes(string) (int64, error) { return 0, errDiskUnsupported }

func allocate(*os.File, int64) error { return errDiskUnsupported }
