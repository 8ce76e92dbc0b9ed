package engine

import (
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
	ID             string         `json:"id" bson:"_id"`
	StoryID        string         `json:"storyId" bson:"storyId"`
	StoryVersion   int            `json:"storyVersion" bson:"storyVersion"`
	Node           string         `json:"node" bson:"node"`
	Status         Status         `json:"status" bson:"status"`
	UserID         string         `json:"userId" bson:"userId"`
	ExternalID     string         `json:"externalId,omitempty" bson:"externalId,omitempty"`
	Attributes     map[string]any `json:"attributes" bson:"attributes"`
	UserAttributes map[string]any `json:"userAttributes" bson:"userAttributes"`
	Transcript     []Entry        `json:"transcript" bson:"transcript"`
	Error          string         `json:"error,omitempty" bson:"error,omitempty"`
	// Waiting tells whether the chat waits for input at Node.
	Waiting   bool      `json:"waiting" bson:"waiting"`
	CreatedAt time.Time `json:"createdAt" bson:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt" bson:"updatedAt"`
	// Rev is the storage revision, for optimistic concurrency.
	Rev int64 `json:"rev" bson:"rev"`
}

// Entry is one line of a chat's transcript.
type Entry struct {
	From     string    `json:"from" bson:"from"` // "user" or "bot"
	Node     string    `json:"node,omitempty" bson:"node,omitempty"`
	Input    *Input    `json:"input,omitempty" bson:"input,omitempty"`
	Response *Response `json:"response,omitempty" bson:"response,omitempty"`
	Time     time.Time `json:"time" bson:"time"`
}

// MaxTranscript is how many transcript entries a chat keeps (oldest dropped).
var MaxTranscript = 1000

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
	return &Chat{
		ID: id, StoryID: s.ID, StoryVersion: s.Version, Node: s.Start, Status: StatusActive,
		UserID: userID, ExternalID: externalID, Attributes: a, UserAttributes: ua,
		CreatedAt: now, UpdatedAt: now,
	}
}
