package engine_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/storyflow/storyflow/engine"
)

// marshal is what encoding/json writes for r (without HTML escaping).
func marshal(t testing.TB, r *engine.Response) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
}

func TestResponseAppendJSON(t *testing.T) {
	btn := []engine.Button{{Type: "postback", Title: "Yes <b>", Value: "y"}, {Type: "webview", Title: "W", Value: "https://x/?a=1&b=2", Height: "tall"}}
	tests := []engine.Response{
		{},
		{Type: "text", Message: "Hi \"there\"\n\t\\ é 😀 \u2028"},
		{Type: "text", Message: "x", Delay: 1500},
		{Type: "text", Delay: -1},
		{Type: "randomText", Messages: []string{"a", "", "c"}},
		{Type: "randomText", Messages: []string{}},
		{Type: "image", ImageURL: "https://img/x.png"},
		{Type: "file", FileURL: "https://f/y.pdf"},
		{Type: "quickReplies", Title: "Pick", Buttons: btn},
		{Type: "buttons", Title: "B", Buttons: []engine.Button{}},
		{Type: "cards", Elements: []engine.Card{
			{Title: "t", Subtitle: "s", ImageURL: "i", Buttons: btn},
			{Title: "", Subtitle: "", ImageURL: "", Buttons: nil},
			{Title: "e", Buttons: []engine.Button{}},
		}},
		{Type: "cards", Elements: []engine.Card{}},
	}
	for _, r := range tests {
		got := r.AppendJSON([]byte("prefix"))
		want := marshal(t, &r)
		if !bytes.Equal(got[len("prefix"):], want) {
			t.Errorf("AppendJSON\n got %s\nwant %s", got[len("prefix"):], want)
		}
	}
}

// FuzzResponseAppendJSON: for any strings, AppendJSON decodes to what
// encoding/json's output decodes to.
func FuzzResponseAppendJSON(f *testing.F) {
	f.Add("text", "hi", "t", "v", 0)
	f.Add("cards", "bad \xff utf8", "<&>", "\u2028", 1500)
	f.Fuzz(func(t *testing.T, typ, msg, title, value string, delay int) {
		r := engine.Response{Type: typ, Message: msg, Delay: delay, Messages: []string{msg, value}, Title: title,
			Buttons:  []engine.Button{{Type: typ, Title: title, Value: value, Height: msg}},
			Elements: []engine.Card{{Title: title, Subtitle: msg, ImageURL: value, Buttons: []engine.Button{{Title: value}}}}}
		var got, want any
		if err := json.Unmarshal(r.AppendJSON(nil), &got); err != nil {
			t.Fatalf("AppendJSON wrote invalid JSON: %v: %s", err, r.AppendJSON(nil))
		}
		if err := json.Unmarshal(marshal(t, &r), &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %#v\nwant %#v", got, want)
		}
	})
}
