package engine

import (
	"fmt"
	"maps"
	"time"
)

// Status of a chat.
type Status string

// Chat statuses.
const (
	StatusActive    Status = "active"
	StatusCompleted Status = "completed"
	StatusHandoff   Status = "handoff"
	StatusFailed    Status = "failed"
)

// Chat is the state of one conversation.
type Chat struct {
	ID             string         `json:"id"`
	StoryID        string         `json:"storyId"`
	StoryVersion   int            `json:"storyVersion"`
	Node           string         `json:"node"`
	Status         Status         `json:"status"`
	UserID         string         `json:"userId"`
	ExternalID     string         `json:"externalId,omitempty"`
	Attributes     map[string]any `json:"attributes"`
	UserAttributes map[string]any `json:"userAttributes"`
	// Transcript is the chat's recent entries, oldest first: the last
	// MaxTranscript (after a turn that added more, all of that turn's).
	// The store keeps every entry (store.Store.GetTranscript).
	Transcript []Entry `json:"transcript"`
	// Seq is how many transcript entries the chat has ever had: the Seq of
	// its last entry.
	Seq   int64  `json:"seq"`
	Error string `json:"error,omitempty"`
	// Task is the chat's latest hand-off task (nil: none yet).
	Task *Task `json:"task,omitempty"`
	// Waiting tells whether the chat waits for input at Node.
	Waiting   bool      `json:"waiting"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
	// Rev is the storage revision, for optimistic concurrency.
	Rev int64 `json:"rev"`
	// Earlier, when set, reads the recent entries before Transcript's
	// first (a store's read for a turn leaves them unread, since most turns
	// need none): Transcript then holds only entries added since. Recent
	// calls it once.
	Earlier func() ([]Entry, error) `json:"-"`
}

// Recent returns the chat's recent entries (Transcript), reading the
// earlier ones first when the store left them unread (Earlier).
func (c *Chat) Recent() ([]Entry, error) {
	if c.Earlier == nil {
		return c.Transcript, nil
	}
	old, err := c.Earlier()
	if err != nil {
		return nil, fmt.Errorf("read transcript: %w", err)
	}
	c.Earlier = nil
	if len(c.Transcript) > 0 {
		old = append(old[:len(old):len(old)], c.Transcript...)
	}
	c.Transcript = old
	return c.Transcript, nil
}

// Entry is one line of a chat's transcript.
type Entry struct {
	// Seq numbers a chat's entries from 1, in order.
	Seq      int64     `json:"seq"`
	From     string    `json:"from"` // "user", "bot" or "node"
	Node     string    `json:"node,omitempty"`
	Input    *Input    `json:"input,omitempty"`
	Response *Response `json:"response,omitempty"`
	// Call is set on the first response a webhook call of an AI format
	// answered: the model, why it stopped, the tokens it used.
	Call *Call `json:"call,omitempty"`
	// Data is what a node noted about its run (From "node"): a webhook
	// node notes the connection, the HTTP status and the answer's
	// attributes, so that a chat can be replayed as a story test.
	Data map[string]any `json:"data,omitempty"`
	// Steps are the nodes run by the turn that this entry began (the user's
	// input, or a new chat's first entry).
	Steps []Step    `json:"steps,omitempty"`
	Time  time.Time `json:"time"`
}

// Call records one model call in the transcript, so that a chat's cost can
// be read later.
type Call struct {
	Format       string `json:"format"`
	Model        string `json:"model,omitempty"`
	StopReason   string `json:"stopReason,omitempty"`
	InputTokens  int64  `json:"inputTokens"`
	OutputTokens int64  `json:"outputTokens"`
	// Metadata is the answer's metadata (messages format): for logging
	// and analytics, never sent to the user.
	Metadata map[string]any `json:"metadata,omitempty"`
}

// MaxTranscript is how many recent entries Chat.Transcript keeps (older
// ones are dropped from it, not from the store): enough for a webhook
// history of 100 messages when each turn has one input and one response.
// A turn's own entries are kept even when there are more.
var MaxTranscript = 100

// transcriptRoom is how many entries a full transcript gets room for when
// it is copied to append (a window from the store has no room: it is shared).
const transcriptRoom = 16

// addEntry appends e to the transcript as the chat's next entry. A full
// transcript is copied with room for transcriptRoom more, not doubled.
func (c *Chat) addEntry(e Entry) {
	c.Seq++
	e.Seq = c.Seq
	if n := len(c.Transcript); n == cap(c.Transcript) {
		t := make([]Entry, n, n+transcriptRoom)
		copy(t, c.Transcript)
		c.Transcript = t
	}
	c.Transcript = append(c.Transcript, e)
}

// trimTranscript drops entries beyond the last MaxTranscript, but none of
// Seq from or above.
func (c *Chat) trimTranscript(from int64) {
	n := len(c.Transcript) - MaxTranscript
	for n > 0 && c.Transcript[n-1].Seq >= from {
		n--
	}
	if n > 0 {
		c.Transcript = c.Transcript[n:]
	}
}

// NewChat makes a chat for story: the story's attributes overlaid with attrs.
func NewChat(s *Story, id, userID, externalID string, userAttrs, attrs map[string]any) *Chat {
	a := maps.Clone(s.Attributes)
	if a == nil {
		a = map[string]any{}
	}
	maps.Copy(a, attrs)
	ua := maps.Clone(userAttrs)
	if ua == nil {
		ua = map[string]any{}
	}
	if userID == "" {
		userID = id
	}
	now := time.Now().UTC()
	c := &Chat{
		ID: id, StoryID: s.ID, StoryVersion: s.Version, Node: s.Start, Status: StatusActive,
		UserID: userID, ExternalID: externalID, Attributes: a, UserAttributes: ua,
		CreatedAt: now, UpdatedAt: now,
	}
	if len(attrs) > 0 {
		// Kept so that the chat can be replayed from its start (a story test).
		c.addEntry(Entry{From: "node", Data: map[string]any{"startAttributes": maps.Clone(attrs)}, Time: now})
	}
	return c
}

// Offered tells whether a goto button (or quick reply) of the chat's last
// bot turn, the bot entries since the last user entry, leads to node.
func (c *Chat) Offered(node string) (bool, error) {
	tr, err := c.Recent()
	if err != nil {
		return false, err
	}
	for i := len(tr) - 1; i >= 0; i-- {
		e := &tr[i]
		if e.From == "user" {
			return false, nil
		}
		if e.Response != nil && e.Response.offers(node) {
			return true, nil
		}
	}
	return false, nil
}
