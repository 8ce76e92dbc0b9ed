//go:build !cgo

package embedded

// pebbleOffHeap: without cgo, pebble's memtables and block cache are on
// the Go heap.
const pebbleOffHeap = false
