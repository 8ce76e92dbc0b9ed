package api

import (
	"time"

	"github.com/invopop/jsonschema"

	"github.com/storyflow/storyflow/engine"
)

// TimeFormat is how the API writes every timestamp: UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// msTime is a time written in TimeFormat.
type msTime time.Time

func (t msTime) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(TimeFormat)+2)
	b = append(b, '"')
	b = time.Time(t).UTC().AppendFormat(b, TimeFormat)
	return append(b, '"'), nil
}

// JSONSchema documents msTime in /openapi.json.
func (msTime) JSONSchema() *jsonschema.Schema {
	return &jsonschema.Schema{Type: "string", Format: "date-time", Examples: []any{"2024-01-15T10:30:00.000Z"}}
}

// chatView is a chat as the API shows it: its times in TimeFormat.
type chatView struct {
	*engine.Chat
	Transcript []entryView `json:"transcript"`
	CreatedAt  msTime      `json:"createdAt"`
	UpdatedAt  msTime      `json:"updatedAt"`
}

type entryView struct {
	engine.Entry
	Time msTime `json:"time"`
}

func viewChat(c *engine.Chat) chatView {
	v := chatView{Chat: c, Transcript: make([]entryView, len(c.Transcript)), CreatedAt: msTime(c.CreatedAt), UpdatedAt: msTime(c.UpdatedAt)}
	for i, e := range c.Transcript {
		v.Transcript[i] = entryView{Entry: e, Time: msTime(e.Time)}
	}
	return v
}
