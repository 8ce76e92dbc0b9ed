package strictjson_test

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/internal/strictjson"
	"github.com/storyflow/storyflow/webhook"
)

// request is shaped like the API's request bodies.
type request struct {
	Text       string          `json:"text"`
	MessageID  string          `json:"messageId,omitempty"`
	Count      int             `json:"count"`
	Limit      *int64          `json:"limit"`
	Ratio      float64         `json:"ratio"`
	On         bool            `json:"on"`
	Attributes map[string]any  `json:"attributes"`
	Tags       []string        `json:"tags"`
	Raw        json.RawMessage `json:"raw"`
	Inner      *struct {
		Name string `json:"name"`
	} `json:"inner"`
}

// reference is the two-pass decoding Unmarshal stands for.
func reference(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if err := strictjson.CheckDuplicates(data); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return io.ErrUnexpectedEOF
	}
	return nil
}

var samples = []string{
	`{"text":"hello"}`,
	`{"text":"hello","messageId":"m-1","count":3,"limit":5,"ratio":0.5,"on":true}`,
	`{"attributes":{"a":1,"b":[1,"x",null],"c":{"d":true}},"tags":["a","b"],"raw":{"x":[1,2]}}`,
	`{"TEXT":"case","MessageId":"m"}`,
	`{"message_id":"m"}`,
	`{"text":"a","text":"b"}`,
	`{"text":"a","Text":"b"}`,
	`{"attributes":{"a":1,"a":2}}`,
	`{"text":1}`,
	`{"count":1.5}`,
	`{"count":1e3}`,
	`{"count":99999999999999999999}`,
	`{"text":null,"count":null,"attributes":null,"inner":null}`,
	`{"inner":{"name":"n"}}`,
	`{"inner":{"name":"n","x":1}}`,
	`{"unknown":1}`,
	`{"text":"a"} {}`,
	`{"text":"a"}  `,
	`[1]`,
	`"x"`,
	`{"text":"\ud800"}`,
	"{\"text\":\"\xff\"}",
	`{"text":"a\u0000b"}`,
	`{"responses":[{"type":"text","message":"Hi"}],"attributes":{"plan":"pro","x":null}}`,
	`{"responses":[{"type":"text","message":"Hi","delay":2}],"attributes":{}}`,
	`{"responses":[{"type":"text","message":"Hi","extra":1}]}`,
	`{"responses":[{"type":"buttons","title":"t","buttons":[{"type":"postback","title":"a","value":"b"}]}]}`,
	`{"id":"c","attributes":{"a":1},"transcript":[{"seq":1,"from":"user","time":"2026-01-02T03:04:05Z"}],"createdAt":"2026-01-02T03:04:05.123+01:00"}`,
	`{"createdAt":"2026-01-02 03:04:05"}`,
	`{"delay":"5"}`,
}

// check fails when Unmarshal takes data with a result the reference does
// not give: what callers use without decoding again.
func check(t *testing.T, data []byte, newV func() any) {
	t.Helper()
	fast, slow := newV(), newV()
	if err := strictjson.Unmarshal(data, fast); err != nil {
		return // callers decode again with the reference
	}
	if err := reference(data, slow); err != nil {
		t.Fatalf("%q: Unmarshal took what encoding/json refuses (%v)", data, err)
	}
	if !reflect.DeepEqual(fast, slow) {
		t.Fatalf("%q: Unmarshal gave %#v, encoding/json %#v", data, fast, slow)
	}
}

var targets = []func() any{
	func() any { return new(request) },
	func() any { return new(webhook.Answer) },
	func() any { return new(engine.Chat) },
	func() any { return new(map[string]any) },
}

func TestUnmarshalAgreesWithEncodingJSON(t *testing.T) {
	took := 0
	for _, s := range samples {
		for _, nv := range targets {
			check(t, []byte(s), nv)
			if strictjson.Unmarshal([]byte(s), nv()) == nil {
				took++
			}
		}
	}
	if took < 10 {
		t.Fatalf("Unmarshal took only %d of the samples", took)
	}
	// What it must refuse, as the reference does.
	for _, s := range []string{`{"text":"a","text":"b"}`, `{"unknown":1}`, `{"text":"a"} {}`, `{"message_id":"m"}`} {
		if err := strictjson.Unmarshal([]byte(s), new(request)); err == nil {
			t.Errorf("%s: taken", s)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, s := range samples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, nv := range targets {
			check(t, data, nv)
		}
	})
}

// A stranger's body nested past any sense is refused, not recursed into.
func TestUnmarshalDeepNesting(t *testing.T) {
	body := `{"attributes":{"a":` + strings.Repeat("[", 200000) + strings.Repeat("]", 200000) + `}}`
	if err := strictjson.Unmarshal([]byte(body), new(request)); err == nil {
		t.Fatal("200,000 nested arrays taken")
	}
}
