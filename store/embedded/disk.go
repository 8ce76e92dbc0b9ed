package embedded

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/storyflow/storyflow/store"
)

// The disk watermark (the way etcd's NOSPACE alarm and Elasticsearch's
// flood stage work): below Options.MinFreeDisk free bytes on the data
// directory's filesystem, every write is refused with store.ErrFull, reads
// go on, and writing resumes by itself once space is back.
//
// Pebble exits the process when a WAL or MANIFEST write fails, so the
// store must stop writing before the disk is full: the threshold leaves
// room for the WAL the memtable may still fill (it is preallocated), a
// memtable flush and compactions (which fail without harm and run again).
// Another process can still fill the disk between two checks: for that,
// the store keeps a ballast file of MinFreeDisk/2 bytes in the data
// directory (CockroachDB's EMERGENCY_BALLAST), deleted at pebble's first
// ENOSPC (vfs.OnDiskFull, which then retries the write once) and made
// again once the disk has room for it above the watermark.

// DefaultMinFreeDisk is Options.MinFreeDisk's default: two memtables.
const DefaultMinFreeDisk = 64 << 20

// BallastName is the ballast file in the data directory.
const BallastName = "EMERGENCY_BALLAST"

const (
	// diskCheckEvery is how often the free space is read (statfs).
	diskCheckEvery = time.Second
	// writeAmp is what a written byte costs the disk before the next
	// check: once in the WAL, once in the flushed table.
	writeAmp = 2
)

// errDiskUnsupported: the disk watermark runs on Linux only.
var errDiskUnsupported = errors.New("the disk watermark is not supported on this system")

// diskGuard refuses writes below the watermark. allow is an atomic add on
// the hot path; statfs runs once per diskCheckEvery, and on the hot path
// only once the bytes written since the last check used up the headroom.
type diskGuard struct {
	dir     string
	min     int64
	ballast int64 // ballast size (0: none)
	log     *slog.Logger
	statfs  func(dir string) (int64, error) // freeBytes; tests change it

	// headroom is free-min at the last check, less writeAmp times the
	// bytes written since; below 0 writes check again.
	headroom atomic.Int64
	free     atomic.Int64 // free bytes at the last check
	full     atomic.Bool

	mu   sync.Mutex // serialises checks and ballast changes
	quit chan struct{}
	done chan struct{}
}

// newDiskGuard returns the guard of dir's filesystem; start starts it.
func newDiskGuard(dir string, min int64, log *slog.Logger) (*diskGuard, error) {
	g := &diskGuard{dir: dir, min: min, ballast: min / 2, log: log, statfs: freeBytes,
		quit: make(chan struct{}), done: make(chan struct{})}
	if _, err := freeBytes(dir); err != nil {
		return nil, fmt.Errorf("disk watermark: %w", err)
	}
	return g, nil
}

// start checks now and every diskCheckEvery. It runs once the database is
// open: opening replays and then deletes the write-ahead logs of the last
// run, which pebble preallocates, so the space before it understates what
// is free.
func (g *diskGuard) start() {
	if g == nil {
		return
	}
	g.check()
	go g.loop()
}

func (g *diskGuard) loop() {
	defer close(g.done)
	t := time.NewTicker(diskCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-g.quit:
			return
		case <-t.C:
			g.check()
		}
	}
}

func (g *diskGuard) close() {
	if g == nil {
		return
	}
	close(g.quit)
	<-g.done
}

// allow reserves room for a write of n bytes: nil, or an error wrapping
// store.ErrFull.
func (g *diskGuard) allow(n int) error {
	if g == nil {
		return nil
	}
	if g.headroom.Add(-int64(n)*writeAmp) >= 0 {
		return nil
	}
	if err := g.check(); err != nil {
		return err
	}
	g.headroom.Add(-int64(n) * writeAmp)
	return nil
}

// writable is store.Writable: the state of the last check.
func (g *diskGuard) writable() error {
	if g == nil || !g.full.Load() {
		return nil
	}
	return g.fullError(g.free.Load())
}

func (g *diskGuard) fullError(free int64) error {
	return fmt.Errorf("%w: %s free on the data directory's filesystem, under the watermark of %s (serve --min-free-disk)",
		store.ErrFull, sizeString(free), sizeString(g.min))
}

// check reads the free space, sets the state, and keeps the ballast.
func (g *diskGuard) check() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	free, err := g.statfs(g.dir)
	if err != nil {
		// Unknown: keep the last state, check again on the next write.
		g.headroom.Store(-1)
		if g.full.Load() {
			return g.fullError(g.free.Load())
		}
		return nil
	}
	if free >= g.min+g.ballast && g.ballast > 0 && !g.full.Load() {
		if made, err := g.makeBallast(); err != nil {
			g.log.Warn("store: cannot make the disk ballast file", "file", g.ballastPath(), "err", err)
			g.ballast = 0 // not on this filesystem
		} else if made {
			free -= g.ballast
		}
	}
	g.free.Store(free)
	g.headroom.Store(free - g.min)
	full := free < g.min
	if was := g.full.Swap(full); was != full {
		if full {
			g.log.Error("store: disk below the free-space watermark; refusing writes (503 storage_full) until space is freed",
				"dir", g.dir, "free", sizeString(free), "minFree", sizeString(g.min))
		} else {
			g.log.Info("store: disk space is back above the watermark; writes resume", "dir", g.dir, "free", sizeString(free))
		}
	}
	if full {
		return g.fullError(free)
	}
	return nil
}

// onDiskFull runs when pebble meets ENOSPC: it deletes the ballast (pebble
// retries the write once) and refuses writes until the next check finds
// room.
func (g *diskGuard) onDiskFull() {
	g.headroom.Store(-1)
	if !g.full.Swap(true) {
		g.log.Error("store: the disk is full; refusing writes (503 storage_full) until space is freed", "dir", g.dir)
	}
	err := os.Remove(g.ballastPath())
	switch {
	case err == nil:
		g.log.Warn("store: deleted the disk ballast file to let the database finish its writes", "file", g.ballastPath())
	case !errors.Is(err, os.ErrNotExist):
		g.log.Error("store: delete the disk ballast file", "err", err)
	}
}

func (g *diskGuard) ballastPath() string { return filepath.Join(g.dir, BallastName) }

// makeBallast makes the ballast file if it is missing or short.
func (g *diskGuard) makeBallast() (made bool, err error) {
	p := g.ballastPath()
	if fi, err := os.Stat(p); err == nil && fi.Size() >= g.ballast {
		return false, nil
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return false, err
	}
	err = allocate(f, g.ballast)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return false, err
	}
	return true, nil
}

// sizeString is n in MiB (or bytes when small).
func sizeString(n int64) string {
	if n < 1<<20 && n > -1<<20 {
		return fmt.Sprintf("%dB", n)
	}
	return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
}
