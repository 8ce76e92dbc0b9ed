// Package embedded is storyflow's embedded store on pebble (an LSM tree
// with a write-ahead log): one pebble database in a data directory.
//
// Every write is committed with pebble.Sync: writes to different chats
// commit in parallel and pebble's WAL shares one sync among the batches
// waiting at that moment (group commit). With Options.SyncEvery above 0
// that sync returns once the write is in the operating system, and the WAL
// goes to disk at least once per interval (walsync.go). A chat's
// compare-and-set on Rev runs under a per-chat lock (striped).
//
// Keys are a one-letter kind, a NUL, then fields separated by NUL (ids may
// not hold NUL):
//
//	s\0<story>\0<version 4 BE>   story version (JSON StoryRecord)
//	c\0<chat>                    chat record (header, then JSON; chats.go)
//	m\0<chat>                    chat meta {storyId, status} for ListChats
//	t\0<chat>\0<seq 8 BE>        transcript entry (JSON)
//	r\0<chat>\0<message id>      reply (rev 8 BE, then the answer; chats.go)
//	w\0<connection>              connection (JSON)
package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/storyflow/storyflow/store"
)

var _ store.Store = (*Store)(nil)

// stripes is the number of per-chat locks.
const stripes = 1024

// Store is the pebble store.
type Store struct {
	db     *pebble.DB
	cache  *chatCache
	syncer *walSyncer // nil: every sync goes to disk
	disk   *diskGuard // nil: no disk watermark

	mu     sync.RWMutex // guards closed; held (read) by every operation
	closed bool

	storyMu sync.Mutex // serialises story writes
	connMu  sync.Mutex // serialises connection writes
	seed    maphash.Seed
	chatMu  [stripes]sync.Mutex
	out     outbox
}

// Options configure the store. The zero value is the safest: every write
// is on disk before it is acknowledged.
type Options struct {
	// SyncEvery, above 0, acknowledges a write once it is in the operating
	// system (it survives a kill -9 of the process) and syncs the WAL to
	// disk at least once per SyncEvery; a power loss can lose the writes of
	// that window. 0 puts every write on disk before acknowledging it.
	SyncEvery time.Duration
	// CacheBytes bounds the memory of the chat cache (0: DefaultCacheBytes).
	CacheBytes int64
	// MinFreeDisk is the disk watermark (disk.go): below this many free
	// bytes on the data directory's filesystem writes fail with
	// store.ErrFull (0: DefaultMinFreeDisk; below 0: no watermark).
	MinFreeDisk int64
	// Logger logs the watermark's changes (nil: slog.Default()).
	Logger *slog.Logger
}

// blockCacheBytes bounds pebble's block cache (blocks of tables read from
// disk, their indexes and filters), beside the chat cache.
const blockCacheBytes = 32 << 20

// Open opens (creating it if needed) the store in dir. It fails if another
// process has the directory open.
func Open(dir string, o Options) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	cache := pebble.NewCache(blockCacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       16 << 20,
		Logger:             quietLogger{},
		Cache:              cache,
	}
	// Bloom filters above the last level: reading a chat's record (a point
	// read) then reads a data block only from the level that holds it. The
	// last level holds most keys and a read looks there last, for a key
	// that is mostly there: its filters would take most of the block cache
	// and save little (RocksDB's optimize_filters_for_hits).
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	opts.Levels[len(opts.Levels)-1].FilterPolicy = pebble.NoFilterPolicy
	// 16 KiB data blocks and 64 KiB index blocks: the index of a few GB of
	// chats is then a few hundred blocks, each read often enough to stay in
	// the block cache, and a point read mostly costs one data block read.
	for i := range opts.Levels {
		opts.Levels[i].BlockSize = 16 << 10
		opts.Levels[i].IndexBlockSize = 64 << 10
	}
	// Uncompressed blocks: records and entries are small JSON, and reads
	// of recent chats should not pay for decompression.
	opts.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	var syncer *walSyncer
	opts.FS = vfs.Default
	if o.SyncEvery > 0 {
		syncer = newWALSyncer(o.SyncEvery)
		opts.FS = walFS{FS: vfs.Default, s: syncer}
		opts.WALMinSyncInterval = syncer.minSync
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var disk *diskGuard
	if o.MinFreeDisk == 0 {
		o.MinFreeDisk = DefaultMinFreeDisk
	}
	if o.MinFreeDisk > 0 {
		var err error
		disk, err = newDiskGuard(dir, o.MinFreeDisk, o.Logger)
		switch {
		case errors.Is(err, errDiskUnsupported):
			o.Logger.Warn("store: no disk watermark", "err", err)
		case err != nil:
			if syncer != nil {
				syncer.close()
			}
			return nil, err
		default:
			opts.FS = vfs.OnDiskFull(opts.FS, disk.onDiskFull)
			if syncer != nil {
				syncer.onFull = disk.onDiskFull
			}
			// pebble preallocates each write-ahead log (about a memtable):
			// the space comes back when it deletes one, often just after
			// opening (the last run's logs), so check again then.
			recheck := func() { disk.check() }
			opts.EventListener = &pebble.EventListener{
				WALDeleted:   func(pebble.WALDeleteInfo) { recheck() },
				TableDeleted: func(pebble.TableDeleteInfo) { recheck() },
			}
		}
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		if syncer != nil {
			syncer.close()
		}
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	disk.start()
	return &Store{db: db, cache: newChatCache(o.CacheBytes), syncer: syncer, disk: disk, seed: maphash.MakeSeed()}, nil
}

// InProcess implements store.InProcess: no operation waits on its context.
func (s *Store) InProcess() {}

// Writable implements store.Writable: an error wrapping store.ErrFull while
// the disk is below the watermark.
func (s *Store) Writable() error { return s.disk.writable() }

// Ping implements store.Pinger: the store answers unless it is closed.
func (s *Store) Ping(context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	s.leave()
	return nil
}

// commit writes b (a write of the store), unless the disk is below the
// watermark.
func (s *Store) commit(b *pebble.Batch, o *pebble.WriteOptions) error {
	if err := s.disk.allow(b.Len()); err != nil {
		return err
	}
	return b.Commit(o)
}

// SetActiveChats tells the store how many chats have a turn in flight
// (the API's count). In the interval mode a WAL sync then waits for other
// turns' writes to join it only while two or more do.
func (s *Store) SetActiveChats(n func() int64) {
	if s.syncer != nil {
		s.syncer.active.Store(&n)
	}
}

// set writes one key, unless the disk is below the watermark.
func (s *Store) set(k, v []byte) error {
	if err := s.disk.allow(len(k) + len(v)); err != nil {
		return err
	}
	return s.db.Set(k, v, pebble.Sync)
}

// quietLogger drops pebble's info logs and keeps errors on stderr.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
	os.Exit(1)
}

var errClosed = errors.New("store closed")

// Close closes the database once operations in flight end.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.db.Close()
	s.disk.close()
	if s.syncer != nil {
		s.syncer.close()
	}
	s.cache.close()
	return err
}

// enter marks an operation in flight; leave (if ok) ends it.
func (s *Store) enter() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed
	}
	return nil
}

func (s *Store) leave() { s.mu.RUnlock() }

func (s *Store) chatLock(id string) *sync.Mutex {
	return &s.chatMu[maphash.String(s.seed, id)%stripes]
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func checkID(id string) error {
	if id == "" {
		return errors.New("empty id")
	}
	if strings.IndexByte(id, 0) >= 0 {
		return errors.New("id holds a NUL byte")
	}
	return nil
}

// key builds kind\0field\0field...
func key(kind byte, fields ...string) []byte {
	n := 1
	for _, f := range fields {
		n += 1 + len(f)
	}
	k := make([]byte, 0, n+8)
	k = append(k, kind)
	for _, f := range fields {
		k = append(k, 0)
		k = append(k, f...)
	}
	return k
}

// upper returns the least key above every key with prefix p.
func upper(p []byte) []byte {
	u := append([]byte(nil), p...)
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] < 0xff {
			u[i]++
			return u[:i+1]
		}
	}
	return nil
}

// get returns a copy of the value at k, or nil if there is none.
func get(r pebble.Reader, k []byte) ([]byte, error) {
	v, closer, err := r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, nil
}

// Stories.

func storyKey(id string, v int) []byte {
	return binary.BigEndian.AppendUint32(append(key('s', id), 0), uint32(v))
}

// latestStory returns the latest version of story id.
func (s *Store) latestStory(id string) (store.StoryRecord, bool, error) {
	var r store.StoryRecord
	prefix := append(key('s', id), 0)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper(prefix)})
	if err != nil {
		return r, false, err
	}
	defer it.Close()
	if !it.Last() {
		return r, false, it.Error()
	}
	if err := json.Unmarshal(it.Value(), &r); err != nil {
		return r, false, fmt.Errorf("decode story %q: %w", id, err)
	}
	return r, true, nil
}

// PutStory implements store.Store.
func (s *Store) PutStory(ctx context.Context, id string, source []byte) (version int, created bool, err error) {
	if err := checkID(id); err != nil {
		return 0, false, fmt.Errorf("put story: %w", err)
	}
	if err := s.enter(); err != nil {
		return 0, false, fmt.Errorf("put story %q: %w", id, err)
	}
	defer s.leave()
	s.storyMu.Lock()
	defer s.storyMu.Unlock()
	last, ok, err := s.latestStory(id)
	if err != nil {
		return 0, false, fmt.Errorf("put story %q: %w", id, err)
	}
	if ok && !last.Deleted && bytes.Equal(last.Source, source) {
		return last.Version, false, nil
	}
	t := now()
	r := store.StoryRecord{ID: id, Version: last.Version + 1, Source: source, CreatedAt: last.CreatedAt, UpdatedAt: t}
	created = !ok || last.Deleted
	if created {
		r.CreatedAt = t
	}
	data, err := json.Marshal(r)
	if err != nil {
		return 0, false, fmt.Errorf("put story %q: %w", id, err)
	}
	if err := s.set(storyKey(id, r.Version), data); err != nil {
		return 0, false, fmt.Errorf("put story %q: %w", id, err)
	}
	return r.Version, created, nil
}

// GetStory implements store.Store.
func (s *Store) GetStory(ctx context.Context, id string, version int) (store.StoryRecord, error) {
	r, err := s.getStory(id, version)
	if err != nil {
		return r, fmt.Errorf("get story %q version %d: %w", id, version, err)
	}
	return r, nil
}

func (s *Store) getStory(id string, version int) (store.StoryRecord, error) {
	var r store.StoryRecord
	if err := s.enter(); err != nil {
		return r, err
	}
	defer s.leave()
	if version == 0 {
		last, ok, err := s.latestStory(id)
		if err != nil {
			return r, err
		}
		if !ok || last.Deleted {
			return r, store.ErrNotFound
		}
		return last, nil
	}
	v, err := get(s.db, storyKey(id, version))
	if err != nil {
		return r, err
	}
	if v == nil {
		return r, store.ErrNotFound
	}
	return r, json.Unmarshal(v, &r)
}

// ListStories implements store.Store.
func (s *Store) ListStories(ctx context.Context) ([]store.StoryRecord, error) {
	list, err := s.listStories()
	if err != nil {
		return nil, fmt.Errorf("list stories: %w", err)
	}
	return list, nil
}

func (s *Store) listStories() ([]store.StoryRecord, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	prefix := []byte{'s', 0}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var list []store.StoryRecord
	// Keys sort by id then version: the last key of each id is its latest.
	var cur []byte
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) < 2+1+4 {
			return nil, fmt.Errorf("bad story key %q", k)
		}
		id := k[2 : len(k)-5]
		if cur != nil && bytes.Equal(cur, id) {
			list = list[:len(list)-1]
		}
		cur = append(cur[:0], id...)
		var r store.StoryRecord
		if err := json.Unmarshal(it.Value(), &r); err != nil {
			return nil, fmt.Errorf("decode story %q: %w", id, err)
		}
		list = append(list, r)
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	live := list[:0]
	for _, r := range list {
		if !r.Deleted {
			live = append(live, r)
		}
	}
	return live, nil
}

// DeleteStory implements store.Store: it marks the latest version deleted.
func (s *Store) DeleteStory(ctx context.Context, id string) error {
	if err := s.deleteStory(id); err != nil {
		return fmt.Errorf("delete story %q: %w", id, err)
	}
	return nil
}

func (s *Store) deleteStory(id string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.storyMu.Lock()
	defer s.storyMu.Unlock()
	last, ok, err := s.latestStory(id)
	if err != nil {
		return err
	}
	if !ok || last.Deleted {
		return store.ErrNotFound
	}
	last.Deleted = true
	data, err := json.Marshal(last)
	if err != nil {
		return err
	}
	return s.set(storyKey(id, last.Version), data)
}

// Connections.

func (s *Store) getConnection(id string) (store.Connection, error) {
	var c store.Connection
	v, err := get(s.db, key('w', id))
	if err != nil {
		return c, err
	}
	if v == nil {
		return c, store.ErrNotFound
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("decode connection: %w", err)
	}
	return c, nil
}

func (s *Store) putConnection(c *store.Connection) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.set(key('w', c.ID), data)
}

// CreateConnection implements store.Store.
func (s *Store) CreateConnection(ctx context.Context, c *store.Connection) error {
	cc := *c
	if cc.ID == "" {
		cc.ID = store.NewID()
	}
	t := now()
	cc.CreatedAt, cc.UpdatedAt = t, t
	err := s.writeConnection(cc.ID, func() error {
		if err := checkID(cc.ID); err != nil {
			return err
		}
		if _, err := s.getConnection(cc.ID); err == nil {
			return store.ErrExists
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return s.putConnection(&cc)
	})
	if err != nil {
		return fmt.Errorf("create connection: %w", err)
	}
	*c = cc
	return nil
}

// writeConnection runs fn with connection writes serialised.
func (s *Store) writeConnection(id string, fn func() error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return fn()
}

// GetConnection implements store.Store.
func (s *Store) GetConnection(ctx context.Context, id string) (store.Connection, error) {
	var c store.Connection
	err := s.enter()
	if err == nil {
		c, err = s.getConnection(id)
		s.leave()
	}
	if err != nil {
		return c, fmt.Errorf("get connection %q: %w", id, err)
	}
	return c, nil
}

// ListConnections implements store.Store.
func (s *Store) ListConnections(ctx context.Context, storyID string) ([]store.Connection, error) {
	list, err := s.listConnections(storyID)
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	return list, nil
}

func (s *Store) listConnections(storyID string) ([]store.Connection, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	prefix := []byte{'w', 0}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper(prefix)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var list []store.Connection
	for ok := it.First(); ok; ok = it.Next() {
		var c store.Connection
		if err := json.Unmarshal(it.Value(), &c); err != nil {
			return nil, fmt.Errorf("decode connection %q: %w", it.Key()[2:], err)
		}
		if storyID == "" || c.StoryID == storyID {
			list = append(list, c)
		}
	}
	return list, it.Error()
}

// UpdateConnection implements store.Store.
func (s *Store) UpdateConnection(ctx context.Context, c *store.Connection) error {
	var updated store.Connection
	err := s.writeConnection(c.ID, func() error {
		old, err := s.getConnection(c.ID)
		if err != nil {
			return err
		}
		updated = *c
		updated.CreatedAt, updated.Error, updated.UpdatedAt = old.CreatedAt, old.Error, now()
		return s.putConnection(&updated)
	})
	if err != nil {
		return fmt.Errorf("update connection %q: %w", c.ID, err)
	}
	*c = updated
	return nil
}

// DeleteConnection implements store.Store.
func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	err := s.writeConnection(id, func() error {
		if _, err := s.getConnection(id); err != nil {
			return err
		}
		b := s.db.NewBatch()
		defer b.Close()
		b.Delete(key('w', id), nil)
		return s.commit(b, pebble.Sync)
	})
	if err != nil {
		return fmt.Errorf("delete connection %q: %w", id, err)
	}
	return nil
}

// SetConnectionError implements store.Store.
func (s *Store) SetConnectionError(ctx context.Context, id, msg string) error {
	err := s.writeConnection(id, func() error {
		c, err := s.getConnection(id)
		if err != nil {
			return err
		}
		c.Error = msg
		return s.putConnection(&c)
	})
	if err != nil {
		return fmt.Errorf("set error of connection %q: %w", id, err)
	}
	return nil
}
