package engine_test

import (
	"strings"
	"testing"

	"github.com/storyflow/storyflow/engine"
)

func pb(title, value string) engine.Button {
	return engine.Button{Type: "postback", Title: title, Value: value}
}

func postbacks(n int) []engine.Button {
	bs := make([]engine.Button, n)
	for i := range bs {
		bs[i] = pb("b", "v")
	}
	return bs
}

func card() engine.Card {
	return engine.Card{Title: "t", Subtitle: "s", ImageURL: "https://x.test/i.png", Buttons: []engine.Button{pb("b", "v")}}
}

func cards(n int) []engine.Card {
	cs := make([]engine.Card, n)
	for i := range cs {
		cs[i] = card()
	}
	return cs
}

func TestResponseCheck(t *testing.T) {
	long := strings.Repeat
	nodes := func(id string) bool { return id == "menu" }
	text := func(m string) engine.Response { return engine.Response{Type: "text", Message: m} }
	btns := func(bs ...engine.Button) engine.Response {
		return engine.Response{Type: "buttons", Title: "Pick", Buttons: bs}
	}
	tests := []struct {
		name string
		r    engine.Response
		// want is the path and a part of the message of the only problem; empty: no problem.
		want, msg string
	}{
		{"text 1 char", text("a"), "", ""},
		{"text 1024 chars", text(long("a", 1024)), "", ""},
		{"text 1024 runes", text(long("é", 1024)), "", ""},
		{"text 1025 chars", text(long("a", 1025)), "message", "must be 1 to 1024 characters, got 1025"},
		{"text empty", text(""), "message", "is required"},
		{"no type", engine.Response{Message: "hi"}, "type", "is required"},
		{"unknown type", engine.Response{Type: "video"}, "type", `unknown response type "video"`},
		{"delay 99", engine.Response{Type: "text", Message: "a", Delay: 99}, "delay", "between 100 and 10000"},
		{"delay 100", engine.Response{Type: "text", Message: "a", Delay: 100}, "", ""},
		{"delay 10000", engine.Response{Type: "text", Message: "a", Delay: 10000}, "", ""},
		{"delay 10001", engine.Response{Type: "text", Message: "a", Delay: 10001}, "delay", "got 10001"},
		{"delay unset", engine.Response{Type: "text", Message: "a"}, "", ""},

		{"randomText 20", engine.Response{Type: "randomText", Messages: make20("a")}, "", ""},
		{"randomText 21", engine.Response{Type: "randomText", Messages: append(make20("a"), "b")}, "messages", "1 to 20 messages, got 21"},
		{"randomText none", engine.Response{Type: "randomText"}, "messages", "got 0"},
		{"randomText long message", engine.Response{Type: "randomText", Messages: []string{"a", long("b", 1025)}}, "messages[1]", "got 1025"},
		{"randomText empty message", engine.Response{Type: "randomText", Messages: []string{"a", ""}}, "messages[1]", "is required"},

		{"image", engine.Response{Type: "image", ImageURL: "https://x.test/a.png"}, "", ""},
		{"image 2048", engine.Response{Type: "image", ImageURL: long("u", 2048)}, "", ""},
		{"image 2049", engine.Response{Type: "image", ImageURL: long("u", 2049)}, "imageUrl", "got 2049"},
		{"image no url", engine.Response{Type: "image"}, "imageUrl", "is required"},
		{"file no url", engine.Response{Type: "file"}, "fileUrl", "is required"},

		{"quickReplies 13", engine.Response{Type: "quickReplies", Title: "t", Buttons: postbacks(13)}, "", ""},
		{"quickReplies 14", engine.Response{Type: "quickReplies", Title: "t", Buttons: postbacks(14)}, "buttons", "1 to 13 buttons, got 14"},
		{"quickReplies none", engine.Response{Type: "quickReplies", Title: "t"}, "buttons", "got 0"},
		{"quickReplies no title", engine.Response{Type: "quickReplies", Buttons: postbacks(1)}, "title", "is required"},
		{"quickReplies title 640", engine.Response{Type: "quickReplies", Title: long("t", 640), Buttons: postbacks(1)}, "", ""},
		{"quickReplies title 641", engine.Response{Type: "quickReplies", Title: long("t", 641), Buttons: postbacks(1)}, "title", "got 641"},
		{"quickReplies url button", engine.Response{Type: "quickReplies", Title: "t", Buttons: []engine.Button{{Type: "url", Title: "x", Value: "https://x.test"}}}, "buttons[0].type", `button type "url" not allowed`},
		{"quickReplies goto", engine.Response{Type: "quickReplies", Title: "t", Buttons: []engine.Button{{Type: "goto", Title: "Menu", Value: "menu"}}}, "", ""},

		{"buttons 5", engine.Response{Type: "buttons", Title: "t", Buttons: postbacks(5)}, "", ""},
		{"buttons 6", engine.Response{Type: "buttons", Title: "t", Buttons: postbacks(6)}, "buttons", "1 to 5 buttons, got 6"},
		{"button unknown type", btns(engine.Button{Type: "call", Title: "x", Value: "y"}), "buttons[0].type", `button type "call"`},
		{"postback title 20", btns(pb(long("t", 20), "v")), "", ""},
		{"postback title 21", btns(pb(long("t", 21), "v")), "buttons[0].title", "1 to 20 characters, got 21"},
		{"postback no title", btns(pb("", "v")), "buttons[0].title", "is required"},
		{"postback value 2000", btns(pb("t", long("v", 2000))), "", ""},
		{"postback value 2001", btns(pb("t", long("v", 2001))), "buttons[0].value", "got 2001"},
		{"postback no value", btns(pb("t", "")), "buttons[0].value", "is required"},
		{"goto to a node", btns(engine.Button{Type: "goto", Title: "Menu", Value: "menu"}), "", ""},
		{"goto to no node", btns(engine.Button{Type: "goto", Title: "Menu", Value: "nope"}), "buttons[0].value", `goto target "nope" names no node`},
		{"goto no value", btns(engine.Button{Type: "goto", Title: "Menu"}), "buttons[0].value", "is required"},
		{"goto title 21", btns(engine.Button{Type: "goto", Title: long("t", 21), Value: "menu"}), "buttons[0].title", "got 21"},
		{"url no title no value", btns(engine.Button{Type: "url"}), "", ""},
		{"url title 21", btns(engine.Button{Type: "url", Title: long("t", 21), Value: "https://x.test"}), "buttons[0].title", "0 to 20 characters, got 21"},
		{"url value 2048", btns(engine.Button{Type: "url", Title: "t", Value: long("u", 2048)}), "", ""},
		{"url value 2049", btns(engine.Button{Type: "url", Title: "t", Value: long("u", 2049)}), "buttons[0].value", "0 to 2048 characters, got 2049"},
		{"webview compact", btns(engine.Button{Type: "webview", Title: "t", Value: "https://x.test", Height: "compact"}), "", ""},
		{"webview tall", btns(engine.Button{Type: "webview", Title: "t", Value: "https://x.test", Height: "tall"}), "", ""},
		{"webview full", btns(engine.Button{Type: "webview", Title: "t", Value: "https://x.test", Height: "full"}), "", ""},
		{"webview default height", btns(engine.Button{Type: "webview", Title: "t", Value: "https://x.test"}), "", ""},
		{"webview bad height", btns(engine.Button{Type: "webview", Title: "t", Value: "https://x.test", Height: "huge"}), "buttons[0].height", `must be full, tall or compact, got "huge"`},
		{"webview no title", btns(engine.Button{Type: "webview", Value: "https://x.test"}), "buttons[0].title", "is required"},
		{"webview no value", btns(engine.Button{Type: "webview", Title: "t"}), "buttons[0].value", "is required"},
		{"phone", btns(engine.Button{Type: "phone", Title: "Call", Value: "+4930123456"}), "", ""},
		{"phone 3 chars", btns(engine.Button{Type: "phone", Title: "Call", Value: "+12"}), "", ""},
		{"phone 16 chars", btns(engine.Button{Type: "phone", Title: "Call", Value: "+123456789012345"}), "", ""},
		{"phone 17 chars", btns(engine.Button{Type: "phone", Title: "Call", Value: "+1234567890123456"}), "buttons[0].value", "3 to 16 characters, got 17"},
		{"phone one digit", btns(engine.Button{Type: "phone", Title: "Call", Value: "+1"}), "buttons[0].value", "3 to 16"},
		{"phone no plus", btns(engine.Button{Type: "phone", Title: "Call", Value: "4930123456"}), "buttons[0].value", `must match \+[0-9]{2,}`},
		{"phone dashes", btns(engine.Button{Type: "phone", Title: "Call", Value: "+49-30-1234"}), "buttons[0].value", `got "+49-30-1234"`},

		{"cards 10", engine.Response{Type: "cards", Elements: cards(10)}, "", ""},
		{"cards 11", engine.Response{Type: "cards", Elements: cards(11)}, "elements", "1 to 10 cards, got 11"},
		{"cards none", engine.Response{Type: "cards"}, "elements", "got 0"},
		{"card title 80", engine.Response{Type: "cards", Elements: []engine.Card{{Title: long("t", 80), Subtitle: "s", ImageURL: "u", Buttons: postbacks(1)}}}, "", ""},
		{"card title 81", engine.Response{Type: "cards", Elements: []engine.Card{{Title: long("t", 81), Subtitle: "s", ImageURL: "u", Buttons: postbacks(1)}}}, "elements[0].title", "1 to 80 characters, got 81"},
		{"card subtitle 81", engine.Response{Type: "cards", Elements: []engine.Card{{Title: "t", Subtitle: long("s", 81), ImageURL: "u", Buttons: postbacks(1)}}}, "elements[0].subtitle", "got 81"},
		{"card image 2049", engine.Response{Type: "cards", Elements: []engine.Card{{Title: "t", Subtitle: "s", ImageURL: long("u", 2049), Buttons: postbacks(1)}}}, "elements[0].imageUrl", "got 2049"},
		{"card 6 buttons", engine.Response{Type: "cards", Elements: []engine.Card{{Title: "t", Subtitle: "s", ImageURL: "u", Buttons: postbacks(6)}}}, "elements[0].buttons", "1 to 5 buttons, got 6"},
		{"card bad phone", engine.Response{Type: "cards", Elements: []engine.Card{card(), {Title: "t", Subtitle: "s", ImageURL: "u", Buttons: []engine.Button{{Type: "phone", Title: "Call", Value: "555"}}}}}, "elements[1].buttons[0].value", "must match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := tt.r.Check(nodes)
			if tt.want == "" {
				if len(ps) != 0 {
					t.Fatalf("Check = %v, want no problem", ps)
				}
				return
			}
			if len(ps) != 1 {
				t.Fatalf("Check = %v, want one problem at %s", ps, tt.want)
			}
			if ps[0].Path != tt.want || !strings.Contains(ps[0].Message, tt.msg) {
				t.Errorf("Check = %q, want %s: ...%s...", ps[0].Error(), tt.want, tt.msg)
			}
		})
	}
}

func make20(s string) []string {
	out := make([]string, 20)
	for i := range out {
		out[i] = s
	}
	return out
}

// TestResponseCheckNilGoto: without a node list any goto value is accepted
// (webhook responses are checked before the story is known).
func TestResponseCheckNilGoto(t *testing.T) {
	r := engine.Response{Type: "quickReplies", Title: "t", Buttons: []engine.Button{{Type: "goto", Title: "x", Value: "anything"}}}
	if ps := r.Check(nil); len(ps) != 0 {
		t.Errorf("Check(nil) = %v, want none", ps)
	}
}

// TestResponseCheckAllProblems: every broken limit is reported, not the first.
func TestResponseCheckAllProblems(t *testing.T) {
	r := engine.Response{Type: "buttons", Delay: 5, Title: "", Buttons: []engine.Button{
		pb("", "v"), {Type: "phone", Title: "c", Value: "x"}, {Type: "webview", Title: "w", Value: "u", Height: "big"},
	}}
	var got []string
	for _, p := range r.Check(nil) {
		got = append(got, p.Path)
	}
	want := "delay title buttons[0].title buttons[1].value buttons[2].height"
	if strings.Join(got, " ") != want {
		t.Errorf("problem paths = %v, want %s", got, want)
	}
}
