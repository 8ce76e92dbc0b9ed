package webhook_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/webhook"
)

var nodes = map[string]bool{"vip": true, "help": true}

func gotoOK(id string) bool { return nodes[id] }

func TestDecodeAnswer(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		want  *webhook.Answer
		error string
	}{
		{name: "empty body", body: "  ", want: &webhook.Answer{}},
		{name: "empty object", body: `{}`, want: &webhook.Answer{}},
		{name: "nulls", body: `{"responses":null,"attributes":null}`, want: &webhook.Answer{}},
		{name: "attributes only", body: `{"attributes":{"plan":"pro","n":2,"gone":null,"obj":{"a":[1]}}}`,
			want: &webhook.Answer{Attributes: map[string]any{"plan": "pro", "n": 2.0, "gone": nil, "obj": map[string]any{"a": []any{1.0}}}}},
		{name: "unknown top-level field", body: `{"responses":[],"atributes":{"x":1}}`, error: "invalid response: field atributes not recognised"},
		{name: "trailing data", body: `{} {}`, error: "response is not JSON"},
		{name: "trailing garbage", body: `{"responses":[]} x`, error: "response is not JSON"},
		{name: "responses defaulted", body: `{"responses":[
			{"type":"text","message":"hi"},
			{"type":"randomText","delay":500,"messages":["a","b"]},
			{"type":"buttons","title":"t","buttons":[{"type":"webview","title":"w","value":"https://x"},{"type":"goto","title":"VIP","value":"vip"}]},
			{"type":"file","fileUrl":"https://x/f.pdf"}]}`,
			want: &webhook.Answer{Responses: []engine.Response{
				{Type: "text", Delay: 1000, Message: "hi"},
				{Type: "randomText", Delay: 500, Messages: []string{"a", "b"}},
				{Type: "buttons", Delay: 1000, Title: "t", Buttons: []engine.Button{
					{Type: "webview", Title: "w", Value: "https://x", Height: "compact"},
					{Type: "goto", Title: "VIP", Value: "vip"}}},
				{Type: "file", Delay: 1000, FileURL: "https://x/f.pdf"},
			}}},
		{name: "not JSON", body: `{"responses":`, error: "response is not JSON"},
		{name: "a list", body: `[]`, error: "invalid response: must be a JSON object"},
		{name: "a string", body: `"hi"`, error: "invalid response: must be a JSON object"},
		{name: "responses an object", body: `{"responses":{}}`, error: "invalid response: responses: must be a list, got object"},
		{name: "responses a string", body: `{"responses":"hi"}`, error: "invalid response: responses: must be a list, got string"},
		{name: "attributes a list", body: `{"attributes":[]}`, error: "invalid response: attributes: must be an object, got array"},
		{name: "attributes a number", body: `{"attributes":3}`, error: "invalid response: attributes: must be an object, got number"},
		{name: "response a string", body: `{"responses":["hi"]}`, error: "invalid response: responses[0]: must be an object"},
		{name: "no type", body: `{"responses":[{"message":"hi"}]}`, error: "invalid response: responses[0].type: is required"},
		{name: "unknown type", body: `{"responses":[{"type":"video"}]}`, error: `invalid response: responses[0].type: unknown response type "video"`},
		{name: "message a number", body: `{"responses":[{"type":"text","message":5}]}`, error: "invalid response: responses[0].message: must be a string, got number"},
		{name: "delay a float", body: `{"responses":[{"type":"text","message":"x","delay":1.5}]}`, error: "invalid response: responses[0].delay: must be an integer, got number 1.5"},
		{name: "delay too long", body: `{"responses":[{"type":"text","message":"x","delay":20000}]}`, error: "invalid response: responses[0].delay: must be between 100 and 10000 ms, got 20000"},
		{name: "button title a list", body: `{"responses":[{"type":"quickReplies","title":"t","buttons":[{"type":"postback","title":[],"value":"v"}]}]}`,
			error: "invalid response: responses[0].buttons.title: must be a string, got array"},
		{name: "unknown field", body: `{"responses":[{"type":"text","message":"x","colour":"red"}]}`, error: "invalid response: responses[0]: field colour not recognised"},
		{name: "field of another type", body: `{"responses":[{"type":"text","message":"x","title":"t"}]}`, error: "invalid response: responses[0].title: not allowed in a text response"},
		{name: "second response bad", body: `{"responses":[{"type":"text","message":"x"},{"type":"image"}]}`, error: "invalid response: responses[1].imageUrl: is required"},
		{name: "goto to no node", body: `{"responses":[{"type":"quickReplies","title":"t","buttons":[{"type":"goto","title":"x","value":"nowhere"}]}]}`,
			error: `invalid response: responses[0].buttons[0].value: goto target "nowhere" names no node`},
		{name: "too many buttons", body: `{"responses":[{"type":"buttons","title":"t","buttons":[` + repeat(`{"type":"postback","title":"a","value":"b"}`, 6) + `]}]}`,
			error: "invalid response: responses[0].buttons: must hold 1 to 5 buttons, got 6"},
		{name: "bad phone", body: `{"responses":[{"type":"buttons","title":"t","buttons":[{"type":"phone","title":"call","value":"12345"}]}]}`,
			error: `invalid response: responses[0].buttons[0].value: must match \+[0-9]{2,}, got "12345"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webhook.DecodeAnswer([]byte(tt.body), gotoOK)
			if tt.error != "" {
				if err == nil || err.Error() != tt.error {
					t.Fatalf("error %v, want %q", err, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func repeat(s string, n int) string {
	out := s
	for range n - 1 {
		out += "," + s
	}
	return out
}

func FuzzDecodeAnswer(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `[]`, `null`, `{"responses":[{"type":"text","message":"hi"}],"attributes":{"a":null}}`,
		`{"responses":[{"type":"randomText","messages":["a","b"]}]}`,
		`{"responses":[{"type":"cards","elements":[{"title":"t","subtitle":"s","imageUrl":"u","buttons":[{"type":"goto","title":"g","value":"vip"}]}]}]}`,
		`{"responses":[{"type":"buttons","title":"t","buttons":[{"type":"webview","title":"w","value":"v","height":"tall"}]}]}`,
		`{"responses":[{"type":"quickReplies","title":"t","buttons":[{"type":"phone","title":"p","value":"+123"}]}]}`,
		`{"responses":[{"type":"text","message":"x","delay":100}],"attributes":{"x":[1,{"y":"z"}]}}`,
		`{"responses":{"type":"text"}}`, `{"attributes":"x"}`, `{"responses":[{"type":"image","imageUrl":""}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := webhook.DecodeAnswer(body, gotoOK)
		if err != nil {
			var ie *webhook.InvalidError
			if !errors.Is(err, webhook.ErrNotJSON) && !errors.As(err, &ie) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			if a != nil {
				t.Fatal("answer with an error")
			}
			return
		}
		for i := range a.Responses {
			if ps := a.Responses[i].Check(gotoOK); len(ps) > 0 {
				t.Fatalf("accepted response %d breaks §2: %v", i, ps)
			}
			if a.Responses[i].Delay == 0 {
				t.Fatalf("response %d has no delay", i)
			}
		}
	})
}
