package webhook_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/webhook"
)

func text(s string) engine.Response {
	return engine.Response{Type: "text", Delay: 1000, Message: s}
}

func TestWindow(t *testing.T) {
	now := time.Now()
	tr := []engine.Entry{
		{From: "bot", Response: &engine.Response{Type: "text", Message: "Hi!"}, Time: now},
		{From: "bot", Response: &engine.Response{Type: "quickReplies", Title: "Pick one"}, Time: now},
		{From: "user", Input: &engine.Input{Postback: "a"}, Time: now},
		{From: "user", Input: &engine.Input{Goto: "x"}, Time: now},
		{From: "bot", Response: &engine.Response{Type: "image", ImageURL: "u"}, Time: now},
		{From: "bot", Response: &engine.Response{Type: "cards", Elements: []engine.Card{{Title: "T", Subtitle: "S"}, {Title: "U"}}}, Time: now},
		{From: "user", Input: &engine.Input{Text: "hello"}, Time: now},
	}
	out := []engine.Response{text("one moment")}
	want := []webhook.Message{ // starts with the user: "Hi!\nPick one" is dropped
		{Role: "user", Content: "a"},
		{Role: "assistant", Content: "T: S\nU"},
		{Role: "user", Content: "hello"},
		{Role: "assistant", Content: "one moment"},
	}
	if got := webhook.Window(tr, out, 10); !reflect.DeepEqual(got, want) {
		t.Errorf("Window = %+v", got)
	}
	if got := webhook.Window(tr, out, 3); !reflect.DeepEqual(got, want[2:]) {
		t.Errorf("Window(3) = %+v", got)
	}
}
