package embedded

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The interval mode (Options.SyncEvery > 0). Every write is committed with
// pebble.Sync, so pebble writes its batch to the WAL file (write(2)) and
// then asks for a sync before it acknowledges the write. WAL files opened
// through walFS answer that sync at once: the write is in the operating
// system by then, so it survives a kill -9 of the process. A goroutine
// syncs every WAL file written since its last sync to disk one interval
// after the first write that found it clean, and a WAL file is synced for
// real when pebble closes it. An idle store does not wake it.
// Everything else pebble writes (tables, the manifest, directories) is
// synced as pebble asks.

// walCategory is the category pebble creates its WAL files with.
const walCategory vfs.DiskWriteCategory = "pebble-wal"

type walSyncer struct {
	mu    sync.Mutex // guards files; held while syncing them
	files map[*walFile]struct{}
	// err is the first failed sync; every later write and sync of a WAL
	// file returns it (the data of a failed fsync may be lost).
	err  atomic.Pointer[error]
	kick chan struct{} // a clean file was written
	stop chan struct{}
	done chan struct{}
	// wakeups counts the goroutine's syncs (tests).
	wakeups atomic.Int64
}

func newWALSyncer(every time.Duration) *walSyncer {
	s := &walSyncer{files: map[*walFile]struct{}{}, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go s.run(every)
	return s
}

func (s *walSyncer) run(every time.Duration) {
	defer close(s.done)
	t := time.NewTimer(every)
	t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
		}
		t.Reset(every)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
		s.wakeups.Add(1)
		s.syncAll()
	}
}

// close stops the goroutine; pebble has closed (and synced) its WAL files.
func (s *walSyncer) close() {
	close(s.stop)
	<-s.done
}

// syncAll syncs every WAL file written since its last sync.
func (s *walSyncer) syncAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for f := range s.files {
		if f.dirty.Swap(false) {
			if err := f.File.SyncData(); err != nil {
				s.fail(fmt.Errorf("sync wal: %w", err))
			}
		}
	}
}

func (s *walSyncer) fail(err error) { s.err.CompareAndSwap(nil, &err) }

func (s *walSyncer) failed() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *walSyncer) track(f vfs.File) *walFile {
	w := &walFile{File: f, s: s}
	s.mu.Lock()
	s.files[w] = struct{}{}
	s.mu.Unlock()
	return w
}

// walFS opens pebble's WAL files as walFiles.
type walFS struct {
	vfs.FS
	s *walSyncer
}

func (fs walFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || category != walCategory {
		return f, err
	}
	return fs.s.track(f), nil
}

func (fs walFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, category)
	if err != nil || category != walCategory {
		return f, err
	}
	return fs.s.track(f), nil
}

// walFile is a WAL file whose syncs return once its writes are in the
// operating system; walSyncer syncs it to disk.
type walFile struct {
	vfs.File
	s     *walSyncer
	dirty atomic.Bool // written since the last sync
}

func (f *walFile) Write(p []byte) (int, error) {
	if err := f.s.failed(); err != nil {
		return 0, err
	}
	n, err := f.File.Write(p)
	if !f.dirty.Swap(true) {
		select {
		case f.s.kick <- struct{}{}:
		default: // a sync is due already
		}
	}
	return n, err
}

func (f *walFile) Sync() error     { return f.s.failed() }
func (f *walFile) SyncData() error { return f.s.failed() }
func (f *walFile) SyncTo(int64) (fullSync bool, err error) {
	return false, f.s.failed()
}

// Close syncs the file to disk and closes it.
func (f *walFile) Close() error {
	f.s.mu.Lock()
	delete(f.s.files, f)
	f.s.mu.Unlock()
	var err error
	if f.dirty.Load() {
		err = f.File.SyncData()
	}
	return errors.Join(err, f.File.Close())
}
