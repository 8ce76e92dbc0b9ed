// Package bolt is the embedded store: one bbolt file in a data directory.
//
// Every write is acknowledged only after its transaction committed and was
// fsynced. Chat writes go through a group commit: one goroutine takes every
// write waiting at that moment and commits them in one transaction and one
// fsync, so durability does not serialise all chats, and a lone writer does
// not wait for a batch timer.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/internal/window"
)

var _ store.Store = (*Store)(nil)

// FileName is the database file inside the data directory.
const FileName = "storyflow.db"

// Buckets. stories holds a sub-bucket per story id with versions as keys;
// chatmeta holds {storyId, status} per chat for listing without decoding
// whole chats; replies holds a sub-bucket per chat with MaxReplies slots;
// chats and transcripts are described in chats.go.
var (
	bucketStories     = []byte("stories")
	bucketChats       = []byte("chats")
	bucketChatMeta    = []byte("chatmeta")
	bucketReplies     = []byte("replies")
	bucketConnections = []byte("connections")
	bucketLog         = []byte("tlog")
	bucketLogIndex    = []byte("tindex")
)

// commitMode is how chat writes are committed (for benchmarks).
type commitMode int

const (
	commitGroup  commitMode = iota // own group commit (the default)
	commitBatch                    // bbolt's db.Batch
	commitSerial                   // one db.Update per write
)

// maxGroup caps the writes committed in one transaction.
const maxGroup = 512

// Store is the embedded store.
type Store struct {
	db      *bbolt.DB
	mode    commitMode
	windows *window.Cache

	mu     sync.RWMutex // guards closed and sends on writes
	closed bool
	writes chan *write
	done   chan struct{}

	commits, written, busy atomic.Int64
}

type write struct {
	fn  func(*bbolt.Tx) error
	err chan error
}

// Open opens (creating it if needed) the store in dir. It fails after a few
// seconds if another process holds the database.
func Open(dir string) (*Store, error) {
	return open(dir, commitGroup)
}

func open(dir string, mode commitMode) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 3 * time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketStories, bucketChats, bucketChatMeta, bucketReplies, bucketConnections, bucketLog, bucketLogIndex} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("create buckets in %s: %w", path, err)
	}
	s := &Store{db: db, mode: mode, writes: make(chan *write, maxGroup), done: make(chan struct{}), windows: window.New()}
	go s.commitLoop()
	return s, nil
}

// Close waits for queued writes and closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.writes)
	s.mu.Unlock()
	<-s.done
	return s.db.Close()
}

var errClosed = errors.New("store closed")

// expected tells errors a write function returns before writing anything:
// they are that write's answer and do not spoil a group.
func expected(err error) bool {
	return errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrExists) ||
		errors.Is(err, store.ErrTranscript)
}

// CommitStats counts the group commit's work since Open.
type CommitStats struct {
	// Commits is how many transactions were committed (one fsync each),
	// Writes how many writes they held.
	Commits, Writes int64
	// Busy is the time spent committing.
	Busy time.Duration
	// Of all write transactions (bbolt's counts): pages written, time
	// spent writing them and syncing (WriteTime), and preparing them
	// (SpillTime).
	Pages                int64
	WriteTime, SpillTime time.Duration
}

// CommitStats returns the group commit's counts (zero in other modes).
func (s *Store) CommitStats() CommitStats {
	tx := s.db.Stats().TxStats
	return CommitStats{Commits: s.commits.Load(), Writes: s.written.Load(), Busy: time.Duration(s.busy.Load()),
		Pages: tx.GetWrite(), WriteTime: tx.GetWriteTime(), SpillTime: tx.GetSpillTime()}
}

// commit runs fn in a durable write transaction, coalesced with concurrent
// writes. fn may run more than once and must return expected errors before
// writing anything.
func (s *Store) commit(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch s.mode {
	case commitSerial:
		return s.db.Update(fn)
	case commitBatch:
		return s.db.Batch(fn)
	}
	w := &write{fn: fn, err: make(chan error, 1)}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed
	}
	s.writes <- w
	s.mu.RUnlock()
	// Once queued, the outcome is awaited even if ctx ends: an abandoned
	// write could still commit.
	return <-w.err
}

func (s *Store) commitLoop() {
	defer close(s.done)
	group := make([]*write, 0, maxGroup)
	answers := make([]error, 0, maxGroup)
	for w := range s.writes {
		group = append(group[:0], w)
	drain:
		for len(group) < maxGroup {
			select {
			case w, ok := <-s.writes:
				if !ok {
					break drain
				}
				group = append(group, w)
			default:
				break drain
			}
		}
		answers = answers[:0]
		t0 := time.Now()
		err := s.db.Update(func(tx *bbolt.Tx) error {
			answers = answers[:0]
			for _, w := range group {
				err := w.fn(tx)
				if err != nil && !expected(err) {
					return err
				}
				answers = append(answers, err)
			}
			return nil
		})
		s.commits.Add(1)
		s.written.Add(int64(len(group)))
		s.busy.Add(int64(time.Since(t0)))
		if err == nil {
			for i, w := range group {
				w.err <- answers[i]
			}
			continue
		}
		// One write failed for real: the group rolled back; run each alone.
		for _, w := range group {
			w.err <- s.db.Update(w.fn)
		}
	}
}

func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// Stories.

func versionKey(v int) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(v))
}

func latestStory(tx *bbolt.Tx, id string) (store.StoryRecord, bool, error) {
	b := tx.Bucket(bucketStories).Bucket([]byte(id))
	if b == nil {
		return store.StoryRecord{}, false, nil
	}
	_, v := b.Cursor().Last()
	if v == nil {
		return store.StoryRecord{}, false, nil
	}
	var r store.StoryRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return r, false, fmt.Errorf("decode story %q: %w", id, err)
	}
	return r, true, nil
}

// PutStory implements store.Store.
func (s *Store) PutStory(ctx context.Context, id string, source []byte) (version int, created bool, err error) {
	if id == "" {
		return 0, false, errors.New("put story: empty id")
	}
	err = s.commit(ctx, func(tx *bbolt.Tx) error {
		last, ok, err := latestStory(tx, id)
		if err != nil {
			return err
		}
		if ok && !last.Deleted && bytes.Equal(last.Source, source) {
			version, created = last.Version, false
			return nil
		}
		t := now()
		r := store.StoryRecord{ID: id, Version: last.Version + 1, Source: source, CreatedAt: last.CreatedAt, UpdatedAt: t}
		created = !ok || last.Deleted
		if created {
			r.CreatedAt = t
		}
		b, err := tx.Bucket(bucketStories).CreateBucketIfNotExists([]byte(id))
		if err != nil {
			return err
		}
		data, err := json.Marshal(r)
		if err != nil {
			return err
		}
		version = r.Version
		return b.Put(versionKey(r.Version), data)
	})
	if err != nil {
		return 0, false, fmt.Errorf("put story %q: %w", id, err)
	}
	return version, created, nil
}

// GetStory implements store.Store.
func (s *Store) GetStory(ctx context.Context, id string, version int) (store.StoryRecord, error) {
	var r store.StoryRecord
	err := s.db.View(func(tx *bbolt.Tx) error {
		if version == 0 {
			last, ok, err := latestStory(tx, id)
			if err != nil {
				return err
			}
			if !ok || last.Deleted {
				return store.ErrNotFound
			}
			r = last
			return nil
		}
		b := tx.Bucket(bucketStories).Bucket([]byte(id))
		if b == nil {
			return store.ErrNotFound
		}
		v := b.Get(versionKey(version))
		if v == nil {
			return store.ErrNotFound
		}
		return json.Unmarshal(v, &r)
	})
	if err != nil {
		return r, fmt.Errorf("get story %q version %d: %w", id, version, err)
	}
	return r, nil
}

// ListStories implements store.Store.
func (s *Store) ListStories(ctx context.Context) ([]store.StoryRecord, error) {
	var list []store.StoryRecord
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketStories).ForEachBucket(func(k []byte) error {
			r, ok, err := latestStory(tx, string(k))
			if err != nil {
				return err
			}
			if ok && !r.Deleted {
				list = append(list, r)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list stories: %w", err)
	}
	return list, nil // bucket keys are sorted
}

// DeleteStory implements store.Store: it marks the latest version deleted.
func (s *Store) DeleteStory(ctx context.Context, id string) error {
	err := s.commit(ctx, func(tx *bbolt.Tx) error {
		last, ok, err := latestStory(tx, id)
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
		return tx.Bucket(bucketStories).Bucket([]byte(id)).Put(versionKey(last.Version), data)
	})
	if err != nil {
		return fmt.Errorf("delete story %q: %w", id, err)
	}
	return nil
}

// Connections.

func getConnection(tx *bbolt.Tx, id string) (store.Connection, error) {
	var c store.Connection
	v := tx.Bucket(bucketConnections).Get([]byte(id))
	if v == nil {
		return c, store.ErrNotFound
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("decode connection: %w", err)
	}
	return c, nil
}

func putConnection(tx *bbolt.Tx, c *store.Connection) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketConnections).Put([]byte(c.ID), data)
}

// CreateConnection implements store.Store.
func (s *Store) CreateConnection(ctx context.Context, c *store.Connection) error {
	cc := *c
	if cc.ID == "" {
		cc.ID = store.NewID()
	}
	t := now()
	cc.CreatedAt, cc.UpdatedAt = t, t
	err := s.commit(ctx, func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketConnections).Get([]byte(cc.ID)) != nil {
			return store.ErrExists
		}
		return putConnection(tx, &cc)
	})
	if err != nil {
		return fmt.Errorf("create connection: %w", err)
	}
	*c = cc
	return nil
}

// GetConnection implements store.Store.
func (s *Store) GetConnection(ctx context.Context, id string) (store.Connection, error) {
	var c store.Connection
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		c, err = getConnection(tx, id)
		return err
	})
	if err != nil {
		return c, fmt.Errorf("get connection %q: %w", id, err)
	}
	return c, nil
}

// ListConnections implements store.Store.
func (s *Store) ListConnections(ctx context.Context, storyID string) ([]store.Connection, error) {
	var list []store.Connection
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketConnections).ForEach(func(k, v []byte) error {
			var c store.Connection
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("decode connection %q: %w", k, err)
			}
			if storyID == "" || c.StoryID == storyID {
				list = append(list, c)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	return list, nil
}

// UpdateConnection implements store.Store.
func (s *Store) UpdateConnection(ctx context.Context, c *store.Connection) error {
	var updated store.Connection
	err := s.commit(ctx, func(tx *bbolt.Tx) error {
		old, err := getConnection(tx, c.ID)
		if err != nil {
			return err
		}
		updated = *c
		updated.CreatedAt, updated.Error, updated.UpdatedAt = old.CreatedAt, old.Error, now()
		return putConnection(tx, &updated)
	})
	if err != nil {
		return fmt.Errorf("update connection %q: %w", c.ID, err)
	}
	*c = updated
	return nil
}

// DeleteConnection implements store.Store.
func (s *Store) DeleteConnection(ctx context.Context, id string) error {
	err := s.commit(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketConnections)
		if b.Get([]byte(id)) == nil {
			return store.ErrNotFound
		}
		return b.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("delete connection %q: %w", id, err)
	}
	return nil
}

// SetConnectionError implements store.Store.
func (s *Store) SetConnectionError(ctx context.Context, id, msg string) error {
	err := s.commit(ctx, func(tx *bbolt.Tx) error {
		c, err := getConnection(tx, id)
		if err != nil {
			return err
		}
		c.Error = msg
		return putConnection(tx, &c)
	})
	if err != nil {
		return fmt.Errorf("set error of connection %q: %w", id, err)
	}
	return nil
}
