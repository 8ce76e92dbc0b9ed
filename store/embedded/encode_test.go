package embedded

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
)

// TestAppendChat checks the hand-written record encoder against
// json.Marshal: both decode to the same chat.
func TestAppendChat(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		chat *engine.Chat
		ok   bool
	}{
		{"full", &engine.Chat{ID: "c1", StoryID: "s", StoryVersion: 3, Node: "ask", Status: engine.StatusActive,
			UserID: "u", ExternalID: "x", Attributes: map[string]any{"a": []any{1, "<&>"}, "b": map[string]any{"c": nil}},
			UserAttributes: map[string]any{"lang": "en"}, Seq: 7, Error: "e", Waiting: true,
			CreatedAt: now.UTC(), UpdatedAt: now.In(time.FixedZone("X", -7200)), Rev: 4}, true},
		{"zero", &engine.Chat{}, true},
		{"escapes", &engine.Chat{ID: "q\"b\\s\n\r\t\x00\x1f\u2028é😀", Node: "</script>", Error: "\x7f"}, true},
		{"invalid utf-8", &engine.Chat{ID: "c", Node: "a\xff"}, false},
		{"year 10000", &engine.Chat{ID: "c", CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, ok := appendChat(make([]byte, headerLen), tt.chat)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			rec, _, err := encodeChat(tt.chat, 9) // appendChat or json.Marshal
			if err != nil {
				if !tt.ok {
					return // json.Marshal refuses it too
				}
				t.Fatal(err)
			}
			got, err := decodeChat(rec)
			if err != nil {
				t.Fatalf("decode %q: %v", rec[headerLen:], err)
			}
			cc := *tt.chat
			cc.Transcript = nil
			data, err := json.Marshal(&cc)
			if err != nil {
				t.Fatal(err)
			}
			want, err := decodeChat(append(append(make([]byte, 0, headerLen+len(data)), rec[:headerLen]...), data...))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("record %s\ndecodes to %#v\nwant       %#v", b[headerLen:], got, want)
			}
		})
	}
}

// TestAppendEntry checks the hand-written entry encoder against
// json.Marshal: both decode to the same entry.
func TestAppendEntry(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name  string
		entry engine.Entry
		ok    bool
	}{
		{"user", engine.Entry{Seq: 7, From: "user", Node: "ask", Input: &engine.Input{Text: "hi \"there\"\n<&>"}, Time: now.UTC()}, true},
		{"postback and goto", engine.Entry{Seq: 1, From: "user", Input: &engine.Input{Postback: "p", Goto: "g"}, Time: now}, true},
		{"empty input", engine.Entry{Seq: 1, From: "user", Input: &engine.Input{}}, true},
		{"bot", engine.Entry{Seq: 8, From: "bot", Node: "n", Response: &engine.Response{Type: engine.TypeText, Message: "ok", Buttons: []engine.Button{{Type: "postback", Title: "t", Value: "v"}}},
			Time: now.In(time.FixedZone("X", 5400))}, true},
		{"steps", engine.Entry{Seq: 9, From: "user", Node: "ask", Input: &engine.Input{Text: "x"}, Time: now, Steps: []engine.Step{
			{Node: "ask", Next: "check"}, {Node: "check", Next: "ok", Route: 2},
			{Node: "fail", Next: "sorry", Error: "webhook crm: \"boom\""}, {Node: "ok", End: "wait"}}}, true},
		{"step invalid utf-8", engine.Entry{From: "user", Steps: []engine.Step{{Node: "\xff"}}}, false},
		{"zero", engine.Entry{}, true},
		{"model call", engine.Entry{Seq: 9, From: "bot", Response: &engine.Response{Type: "text", Message: "hi"},
			Call: &engine.Call{Format: "anthropic", Model: "m", StopReason: "end_turn", InputTokens: 10, OutputTokens: 3}}, false},
		{"invalid utf-8", engine.Entry{From: "user", Input: &engine.Input{Text: "\xff"}}, false},
		{"year -1", engine.Entry{From: "bot", Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, ok := appendEntry(nil, &tt.entry)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			data, err := json.Marshal(&tt.entry)
			if err != nil {
				t.Fatal(err)
			}
			var got, want engine.Entry
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("decode %s: %v", b, err)
			}
			if err := json.Unmarshal(data, &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s\ndecodes to %#v\nwant       %#v", b, got, want)
			}
		})
	}
}
