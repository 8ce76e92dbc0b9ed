package webhook

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// decodeAnswerPlain is DecodeAnswer without decodeAnswerFast: the
// reference the fast path must match.
func decodeAnswerPlain(body []byte, gotoOK func(string) bool) (*Answer, error) {
	return decodeAnswer(body, gotoOK, false)
}

// DecodeAnswerPlain lets BenchmarkDecodeAnswerPlain measure the reference.
var DecodeAnswerPlain = decodeAnswerPlain

func fastGotoOK(id string) bool { return id == "vip" || id == "help" }

// checkFast fails t unless DecodeAnswer matches decodeAnswerPlain on body,
// and unless whatever decodeAnswerFast accepts is what encoding/json
// decodes. It reports whether the fast path took body.
func checkFast(t *testing.T, body []byte) bool {
	t.Helper()
	got, gotErr := DecodeAnswer(body, fastGotoOK)
	want, wantErr := decodeAnswerPlain(body, fastGotoOK)
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotErr, wantErr) {
		t.Fatalf("%q:\ngot  %#v, %v\nwant %#v, %v", body, got, gotErr, want, wantErr)
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return false
	}
	fast, ok := decodeAnswerFast(body)
	if !ok {
		return false
	}
	var strict Answer
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&strict); err != nil || d.InputOffset() != int64(len(body)) {
		t.Fatalf("%q: fast path accepted what encoding/json refuses (%v)", body, err)
	}
	if !reflect.DeepEqual(*fast, strict) {
		t.Fatalf("%q:\nfast %#v\njson %#v", body, *fast, strict)
	}
	return true
}

// fastSeeds are answers of every shape, taken or not by the fast path.
var fastSeeds = []struct {
	body string
	fast bool
}{
	// The seeds of FuzzDecodeAnswer.
	{``, false}, {`{}`, true}, {`[]`, false}, {`null`, false},
	{`{"responses":[{"type":"text","message":"hi"}],"attributes":{"a":null}}`, true},
	{`{"responses":[{"type":"randomText","messages":["a","b"]}]}`, true},
	{`{"responses":[{"type":"cards","elements":[{"title":"t","subtitle":"s","imageUrl":"u","buttons":[{"type":"goto","title":"g","value":"vip"}]}]}]}`, true},
	{`{"responses":[{"type":"buttons","title":"t","buttons":[{"type":"webview","title":"w","value":"v","height":"tall"}]}]}`, true},
	{`{"responses":[{"type":"quickReplies","title":"t","buttons":[{"type":"phone","title":"p","value":"+123"}]}]}`, true},
	{`{"responses":[{"type":"text","message":"x","delay":100}],"attributes":{"x":[1,{"y":"z"}]}}`, true},
	{`{"responses":{"type":"text"}}`, false}, {`{"attributes":"x"}`, false},
	{`{"responses":[{"type":"image","imageUrl":""}]}`, true},

	// Empty and null containers.
	{`{"responses":[],"attributes":{}}`, true},
	{`{"responses":null,"attributes":null}`, true},
	{`{"responses":[{"type":"randomText","messages":[]}]}`, true},
	{`{"responses":[{"type":"buttons","title":"t","buttons":[]}]}`, true},
	{`{"responses":[{"type":"text","message":null,"delay":null,"buttons":null}]}`, true},
	{`{"attributes":{"a":[],"b":{},"c":[[]],"d":[null,true,false]}}`, true},

	// Strings.
	{`{"attributes":{"s":"\"\\\/\b\f\n\r\t"}}`, true},
	{`{"attributes":{"s":"\u00e9\u20AC\ud83d\ude00"}}`, true},
	{`{"attributes":{"lone high":"\ud83d","lone low":"\ude00x","high then high":"\ud83d\ud83d","high then a":"\ud83d\u0041"}}`, true},
	{`{"attributes":{"nul":"\u0000"}}`, true},
	{"{\"attributes\":{\"bad utf8\":\"\xff\xfe\xc3\",\"surrogate in utf8\":\"\xed\xa0\x80\",\"ok\":\"Zoë 🙂\"}}", true},
	{"{\"attributes\":{\"\xff\":1,\"k\\u00e9y\":2}}", true},
	{`{"responses":[{"type":"text","message":"a\nb \u00e9"}]}`, true},
	{`{"attributes":{"s":"\'"}}`, false},
	{`{"attributes":{"s":"\x"}}`, false},
	{`{"attributes":{"s":"\u12"}}`, false},
	{"{\"attributes\":{\"s\":\"tab\there\"}}", false},
	{`{"attributes":{"s":"open}}`, false},

	// Numbers.
	{`{"attributes":{"n":[0,-0,1.5,-2e3,1E+2,3e-2,123456789012345678901234567890]}}`, true},
	{`{"attributes":{"n":1e400}}`, false},
	{`{"attributes":{"n":1e-400}}`, true},
	{`{"attributes":{"n":01}}`, false},
	{`{"attributes":{"n":-}}`, false},
	{`{"attributes":{"n":1.}}`, false},
	{`{"attributes":{"n":.5}}`, false},
	{`{"attributes":{"n":+1}}`, false},
	{`{"attributes":{"n":1e}}`, false},
	{`{"attributes":{"n":0x10}}`, false},
	{`{"attributes":{"n":Infinity}}`, false},
	{`{"responses":[{"type":"text","message":"x","delay":-0}]}`, true},
	{`{"responses":[{"type":"text","message":"x","delay":1e2}]}`, false},
	{`{"responses":[{"type":"text","message":"x","delay":1.0}]}`, false},
	{`{"responses":[{"type":"text","message":"x","delay":0100}]}`, false},
	{`{"responses":[{"type":"text","message":"x","delay":99999999999999999999}]}`, false},
	{`{"responses":[{"type":"text","message":"x","delay":"100"}]}`, false},

	// Keys.
	{`{"attributes":{"a":1,"a":2,"a":{"b":1},"a":null}}`, true},
	{`{"attributes":{"a":1},"attributes":{"b":2}}`, false},
	{`{"responses":[{"type":"text","type":"image","message":"x"}]}`, false},
	{`{"responses":[{"type":"buttons","title":"t","buttons":[{"type":"postback","title":"a","value":"b"}],"buttons":[{"type":"url"}]}]}`, false},
	{`{"responses":[{"Type":"text","message":"x"}]}`, false},
	{`{"Responses":[]}`, false},
	{`{"responses":[{"typ\u0065":"text","message":"x"}]}`, false},
	{`{"responses":[{"type":"text","message":"x","colour":"red"}]}`, false},

	// Layout.
	{" \t\r\n{ \"responses\" : [ { \"type\" : \"text\" , \"message\" : \"hi\" } ] ,\n\"attributes\" : { \"a\" : [ 1 , { } ] } } \n", true},
	{"\v{}\u00a0", true},
	{"{\v}", false},
	{`{} {}`, false}, {`{"responses":[]} x`, false}, {`{"responses":[]}}`, false},
	{`{"responses":[],}`, false}, {`{"attributes":{"a":1,}}`, false}, {`{"attributes":[1,]}`, false},
	{`{"responses":`, false}, {`{`, false}, {`{"a"`, false},
	{`{"attributes":{"t":tru,"f":fals}}`, false}, {`{"attributes":{"t":truex}}`, false},

	// Errors after a good decode.
	{`{"responses":[null]}`, false},
	{`{"responses":[{"type":"text"}]}`, true},
	{`{"responses":[{"type":"text","message":"x","title":"t"}]}`, true},
	{`{"responses":[{"type":"quickReplies","title":"t","buttons":[{"type":"goto","title":"x","value":"nowhere"}]}]}`, true},
	{`{"responses":[{"type":"text","message":"x","delay":20000}]}`, true},
	{`{"responses":[{"type":"randomText","messages":["a",null]}]}`, false},
}

func TestDecodeAnswerFast(t *testing.T) {
	for _, s := range fastSeeds {
		if fast := checkFast(t, []byte(s.body)); fast != s.fast {
			t.Errorf("%q: fast path taken %v, want %v", s.body, fast, s.fast)
		}
	}
	deep := strings.Repeat("[", maxAttributeDepth+1) + strings.Repeat("]", maxAttributeDepth+1)
	if checkFast(t, []byte(`{"attributes":{"deep":`+deep+`}}`)) {
		t.Error("fast path took attributes nested beyond maxAttributeDepth")
	}
}

func FuzzFastAnswer(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s.body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFast(t, body)
	})
}
