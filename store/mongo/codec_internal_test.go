package mongo

import (
	"reflect"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
)

// TestRevisionDocument: a revision stores the chat under the field names
// of this package's documents, and decodes back to the same chat.
func TestRevisionDocument(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c := &engine.Chat{ID: "c1", StoryID: "s", StoryVersion: 2, Node: "ask", Status: engine.StatusActive, UserID: "u",
		Attributes: map[string]any{"plan": "pro"}, UserAttributes: map[string]any{}, Seq: 1, Waiting: true,
		Task:      &engine.Task{ID: "1", Status: engine.TaskOpen, Data: map[string]any{}, CreatedAt: at, UpdatedAt: at},
		CreatedAt: at, UpdatedAt: at}
	entries := []engine.Entry{{Seq: 1, From: "user", Input: &engine.Input{Text: "hi"}, Time: at,
		Call:  &engine.Call{Format: "openai", InputTokens: 3},
		Steps: []engine.Step{{Node: "ask", End: "wait"}}}}
	raw, err := newTurn(c, 1, entries, nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range [][]string{
		{"chat", "_id"}, {"chat", "userId"}, {"chat", "storyVersion"}, {"chat", "task", "createdAt"},
		{"entries", "0", "seq"}, {"entries", "0", "call", "inputTokens"}, {"entries", "0", "steps", "0", "end"},
	} {
		if _, err := raw.LookupErr(path...); err != nil {
			t.Errorf("field %v: %v", path, err)
		}
	}
	d, _, err := decodeTurn(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := *c
	want.Rev = 1
	if got := *d.Chat; !reflect.DeepEqual(got, want) {
		t.Errorf("chat decoded as\n%+v\nwant\n%+v", got, want)
	}
	if !reflect.DeepEqual(d.Entries, entries) {
		t.Errorf("entries decoded as %+v, want %+v", d.Entries, entries)
	}
}
