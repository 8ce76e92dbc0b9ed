//go:build cgo

package embedded

// pebbleOffHeap: with cgo, pebble allocates its memtables and block cache
// outside the Go heap.
const pebbleOffHeap = true
