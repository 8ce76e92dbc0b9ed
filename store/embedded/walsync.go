package embedded

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The interval mode (Options.SyncEvery > 0). Every write is committed with
// pebble.Sync, so pebble appends its batch to the WAL and asks for a sync
// before it acknowledges the write. WAL files opened through walFS keep
// what pebble writes in a buffer and answer that sync by handing the
// buffer to the operating system (one write(2)): the write is then there,
// so it survives a kill -9 of the process. pebble waits at least
// walMinSync between two syncs of a WAL, so that the writes of concurrent
// turns share one write(2) (group commit). A goroutine syncs every WAL
// file written since its last sync to disk one interval after the first
// write that found it clean, and a WAL file is synced for real when pebble
// closes it. An idle store does not wake it. Everything else pebble writes
// (tables, the manifest, directories) is synced as pebble asks.

// walMinSync is pebble's WALMinSyncInterval in the interval mode while
// other writes are in flight: a write waits at most this long for the
// writes of other turns to join it. A lone writer does not wait.
const walMinSync = 200 * time.Microsecond

// walBufferBytes bounds a WAL file's buffer: past it, a write goes to the
// operating system without waiting for a sync. pebble hands over at most
// a 32 KiB block at a time.
const walBufferBytes = 256 << 10

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
	// onFull, if set, makes room when a write of a WAL file finds the
	// disk full (the disk guard's handler; set before pebble opens).
	onFull func()
	// active, if set, tells how many chats have a turn in flight
	// (Store.SetActiveChats).
	active atomic.Pointer[func() int64]
}

// minSync is pebble's WALMinSyncInterval, asked after each sync: wait
// only while two or more chats have a turn in flight, so that a lone
// chat's turns are not held back for writes that will not come (as
// PostgreSQL's commit_delay waits only with commit_siblings active). A
// store nobody tells always waits.
func (s *walSyncer) minSync() time.Duration {
	if f := s.active.Load(); f != nil && (*f)() < 2 {
		return 0
	}
	return walMinSync
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
	buf   []byte      // written by pebble, not yet handed to the OS
	// writes counts the write(2)s of buf (tests).
	writes atomic.Int64
}

// Write buffers p; a sync (or a full buffer) hands it to the operating
// system. pebble's flush goroutine is the only caller, and Close comes
// after it has stopped.
func (f *walFile) Write(p []byte) (int, error) {
	if err := f.s.failed(); err != nil {
		return 0, err
	}
	f.buf = append(f.buf, p...)
	if len(f.buf) >= walBufferBytes {
		// p is taken either way: what fails to go out stays in the buffer
		// and the next sync reports it (a caller retrying p would write
		// it twice).
		_ = f.writeOut()
	}
	return len(p), nil
}

// writeOut hands the buffer to the operating system.
func (f *walFile) writeOut() error {
	if len(f.buf) == 0 {
		return nil
	}
	n, err := f.File.Write(f.buf)
	if errors.Is(err, syscall.ENOSPC) && f.s.onFull != nil {
		// pebble's disk-full handler (vfs.OnDiskFull) retries a write
		// once it has made room, but not a sync, and this write comes
		// from a sync: make room as it would, and retry once.
		f.s.onFull()
		var more int
		more, err = f.File.Write(f.buf[n:])
		n += more
	}
	f.writes.Add(1)
	if n > 0 && !f.dirty.Swap(true) {
		select {
		case f.s.kick <- struct{}{}:
		default: // a sync is due already
		}
	}
	// What did not go out stays for the next try (vfs.OnDiskFull retries
	// once it has made room).
	f.buf = f.buf[:copy(f.buf, f.buf[n:])]
	return err
}

func (f *walFile) Sync() error {
	if err := f.writeOut(); err != nil {
		return err
	}
	return f.s.failed()
}

func (f *walFile) SyncData() error { return f.Sync() }

func (f *walFile) SyncTo(int64) (fullSync bool, err error) {
	return false, f.Sync()
}

// Close hands over the buffer, syncs the file to disk and closes it.
func (f *walFile) Close() error {
	f.s.mu.Lock()
	delete(f.s.files, f)
	f.s.mu.Unlock()
	err := f.writeOut()
	if err == nil && f.dirty.Load() {
		err = f.File.SyncData()
	}
	return errors.Join(err, f.File.Close())
}
