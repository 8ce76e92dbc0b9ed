// Package store defines storyflow's storage: the Store interface (stories
// by version, chats with optimistic concurrency, their full transcripts and
// the replies remembered for repeated message ids, webhook connections) and
// the optional Outbox interface (events written atomically with the chat
// change that caused them, event-webhook subscriptions and their
// deliveries, chat erasure). It holds the shared types and helpers, not an
// implementation: store/embedded (pebble in a local data directory, the
// default) and store/mongo (MongoDB, shared by many server processes) each
// implement both interfaces, keep their own encodings, and pass the suites
// of store/storetest (Run, RunOutbox; the embedded store also Crash: a
// kill -9 loses no acknowledged write).
package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/storyflow/storyflow/engine"
)

// ErrTranscript: a chat's new transcript entries are not numbered on from
// the stored ones (a programming error).
var ErrTranscript = errors.New("transcript entries out of sequence")

// NewEntries returns the entries of transcript with Seq above stored, and
// checks they run on from stored to seq without gaps.
func NewEntries(transcript []engine.Entry, stored, seq int64) ([]engine.Entry, error) {
	i := len(transcript)
	for i > 0 && transcript[i-1].Seq > stored {
		i--
	}
	add := transcript[i:]
	if seq < stored || int64(len(add)) != seq-stored {
		return nil, fmt.Errorf("%w: stored up to %d, chat at %d, %d new entries", ErrTranscript, stored, seq, len(add))
	}
	for k := range add {
		if add[k].Seq != stored+1+int64(k) {
			return nil, fmt.Errorf("%w: entry %d has seq %d, want %d", ErrTranscript, k, add[k].Seq, stored+1+int64(k))
		}
	}
	return add, nil
}

// Errors returned by every implementation; test with errors.Is.
var (
	// ErrNotFound: no such story, story version, chat or connection.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the chat changed since it was read (its Rev moved on).
	ErrConflict = errors.New("conflict")
	// ErrExists: a chat or connection with that id already exists.
	ErrExists = errors.New("already exists")
	// ErrFull: the store refuses writes for now (the embedded store's disk
	// is below its free-space watermark); reads still work.
	ErrFull = errors.New("storage full")
	// ErrUnavailable: the store did not answer in time (MongoDB down or
	// unreachable).
	ErrUnavailable = errors.New("store unavailable")
)

// Pinger is implemented by stores that can be checked cheaply: Ping
// returns nil when the store answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Writable is implemented by stores that may refuse writes for a while:
// Writable returns nil, or an error wrapping ErrFull. It is cheap enough
// to call before every turn.
type Writable interface {
	Writable() error
}

// InProcess is implemented by stores whose operations run in this process
// and never wait on their context (the embedded store): a caller need not
// give each operation a deadline of its own.
type InProcess interface {
	InProcess()
}

// MaxReplies bounds the replies a chat remembers for repeated message ids:
// those written by the chat's last MaxReplies updates are kept; older ones
// are forgotten (the MongoDB store drops them in batches, a few updates late).
const MaxReplies = 200

// DefaultLimit is the ListChats limit when ChatFilter.Limit is 0.
const DefaultLimit = 100

// Store is the storage interface. Implementations are safe for concurrent use.
type Store interface {
	// PutStory stores source as the story's next version (previous+1, starting
	// at 1; versions of a deleted story continue its numbering). If the
	// latest live version has identical source, nothing is written and its
	// version is returned. created is true when the id had no live story
	// before (new or deleted): the API answers 201 then, else 200.
	PutStory(ctx context.Context, id string, source []byte) (version int, created bool, err error)
	// GetStory returns one version of a story; version 0 is the latest live
	// one (ErrNotFound once deleted). A given version stays readable after
	// delete, so running chats keep their version.
	GetStory(ctx context.Context, id string, version int) (StoryRecord, error)
	// ListStories returns the latest version of each live story, by id.
	ListStories(ctx context.Context) ([]StoryRecord, error)
	// DeleteStory marks the story deleted (ErrNotFound if it is not live).
	DeleteStory(ctx context.Context, id string) error

	// CreateChat stores a new chat with Rev 1 and sets c.Rev (ErrExists on a
	// duplicate id). Its transcript entries are stored as in UpdateChat.
	CreateChat(ctx context.Context, c *engine.Chat) error
	// GetChat returns a chat (ErrNotFound) with the last
	// engine.MaxTranscript entries of its transcript.
	GetChat(ctx context.Context, id string) (*engine.Chat, error)
	// UpdateChat stores c if the stored Rev equals c.Rev, with Rev+1, and then
	// sets c.Rev; otherwise ErrConflict (or ErrNotFound). The entries of
	// c.Transcript with a Seq above the stored chat's are appended to the
	// chat's transcript in the same atomic write; they must be numbered on
	// from it up to c.Seq. When reply is not nil it is remembered in the same
	// atomic write, for GetReply. Callers running a turn for a message id
	// check GetReply before the turn and again after each ErrConflict, so a
	// repeated id runs nothing. A store whose GetReply may read an older
	// revision than its GetChat (MongoDB's cache) returns ErrConflict for a
	// reply whose message id the chat at c.Rev already remembers.
	UpdateChat(ctx context.Context, c *engine.Chat, reply *Reply) error
	// GetTranscript returns a chat's transcript entries with Seq above
	// afterSeq, in order, at most limit of them (limit <= 0: all); ErrNotFound
	// for an unknown chat.
	GetTranscript(ctx context.Context, chatID string, afterSeq int64, limit int) ([]engine.Entry, error)
	// GetReply returns the remembered answer to a chat's message id.
	GetReply(ctx context.Context, chatID, messageID string) (body []byte, ok bool, err error)
	// ListChats returns chats by id, filtered, without their transcripts.
	ListChats(ctx context.Context, f ChatFilter) ([]*engine.Chat, error)

	// CreateConnection stores a webhook connection; it sets ID (NewID) when
	// empty, CreatedAt and UpdatedAt. ErrExists on a duplicate id.
	CreateConnection(ctx context.Context, c *Connection) error
	// GetConnection returns a connection (ErrNotFound).
	GetConnection(ctx context.Context, id string) (Connection, error)
	// ListConnections returns connections by id; storyID "" means all.
	ListConnections(ctx context.Context, storyID string) ([]Connection, error)
	// UpdateConnection replaces StoryID, Name, URL, Token, Headers and Auth
	// and sets UpdatedAt; ID, CreatedAt and Error are kept (ErrNotFound).
	UpdateConnection(ctx context.Context, c *Connection) error
	// DeleteConnection removes a connection (ErrNotFound).
	DeleteConnection(ctx context.Context, id string) error
	// SetConnectionError records the connection's last error; "" clears it.
	SetConnectionError(ctx context.Context, id, msg string) error

	// Close releases the store.
	Close() error
}

// StoryRecord is one stored version of a story.
type StoryRecord struct {
	ID      string `json:"id" bson:"storyId"`
	Version int    `json:"version" bson:"version"`
	Source  []byte `json:"source" bson:"source"`
	// CreatedAt is when the story id was first stored; UpdatedAt when this
	// version was.
	CreatedAt time.Time `json:"createdAt" bson:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt" bson:"updatedAt"`
	// Deleted is set on the versions of a deleted story.
	Deleted bool `json:"deleted,omitempty" bson:"deleted,omitempty"`
}

// Reply is the answer to remember for a client message id.
type Reply struct {
	MessageID string `json:"id" bson:"id"`
	Body      []byte `json:"body" bson:"body"`
}

// ChatFilter selects chats for ListChats. Empty fields match all.
type ChatFilter struct {
	StoryID string
	Status  engine.Status
	// UserID selects one user's chats (contacts).
	UserID string
	// Limit caps the result (0: DefaultLimit).
	Limit int
	// After is a chat id: only chats with greater ids (paging).
	After string
}

// Connection is a webhook connection (ChatBot.com's Webhooks API).
type Connection struct {
	ID        string            `json:"id" bson:"_id"`
	StoryID   string            `json:"storyId" bson:"storyId"`
	Name      string            `json:"name" bson:"name"`
	URL       string            `json:"url" bson:"url"`
	Token     string            `json:"token,omitempty" bson:"token,omitempty"`
	Headers   map[string]string `json:"headers,omitempty" bson:"headers,omitempty"`
	Auth      *BasicAuth        `json:"auth,omitempty" bson:"auth,omitempty"`
	Error     string            `json:"error,omitempty" bson:"error,omitempty"`
	CreatedAt time.Time         `json:"createdAt" bson:"createdAt"`
	UpdatedAt time.Time         `json:"updatedAt" bson:"updatedAt"`

	// MaxInFlight bounds the calls in flight (0: the server's bound).
	MaxInFlight int `json:"maxInFlight,omitempty" bson:"maxInFlight,omitempty"`
}

// BasicAuth is a connection's HTTP basic auth.
type BasicAuth struct {
	Username string `json:"username" bson:"username"`
	Password string `json:"password" bson:"password"`
}

var (
	idProcess [5]byte
	idCounter atomic.Uint32
)

func init() {
	var b [9]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	copy(idProcess[:], b[:5])
	idCounter.Store(binary.BigEndian.Uint32(b[5:]))
}

// NewID returns a new 24-hex id shaped like a MongoDB ObjectID: 4 bytes of
// seconds, 5 random bytes per process, a 3-byte counter.
func NewID() string {
	var b [12]byte
	binary.BigEndian.PutUint32(b[0:4], uint32(time.Now().Unix()))
	copy(b[4:9], idProcess[:])
	n := idCounter.Add(1)
	b[9], b[10], b[11] = byte(n>>16), byte(n>>8), byte(n)
	return hex.EncodeToString(b[:])
}
