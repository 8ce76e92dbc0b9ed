package webhook

import (
	"github.com/storyflow/storyflow/internal/strictjson"

	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/storyflow/storyflow/engine"
)

// Answer is what a call brings back to the chat.
type Answer struct {
	// Responses are checked against SPEC §2 and ready to send (delay and
	// webview height defaulted; a randomText still holds all its messages).
	Responses []engine.Response `json:"responses"`
	// Attributes are merged into the chat; a nil value removes the key.
	Attributes map[string]any `json:"attributes"`
	// Call is what the call cost and why the model stopped (LLM formats;
	// messages when the answer has metadata), for the transcript.
	Call *engine.Call `json:"-"`
	// Form is a widget form to fill in the chat and submit (widget format).
	Form *Form `json:"-"`
}

// ErrNotJSON is an answer body that is not JSON.
var ErrNotJSON = errors.New("response is not JSON")

// InvalidError is an answer that is JSON but breaks the contract.
type InvalidError struct {
	Problems []engine.Problem
}

func (e *InvalidError) Error() string {
	if len(e.Problems) == 0 {
		return "invalid response"
	}
	return "invalid response: " + e.Problems[0].Error()
}

func invalid(path, format string, args ...any) error {
	return &InvalidError{Problems: []engine.Problem{{Path: path, Message: fmt.Sprintf(format, args...)}}}
}

// within prefixes the paths of an *InvalidError with path.
func within(path string, err error) error {
	var ie *InvalidError
	if errors.As(err, &ie) {
		for i := range ie.Problems {
			ie.Problems[i].Path = join(path, ie.Problems[i].Path)
		}
	}
	return err
}

// DecodeAnswer decodes a chatbot-format answer, {responses, attributes},
// both optional. Every response must pass SPEC §2 (gotoOK tells whether a goto
// button names a node); unknown fields are errors. An empty body is an empty
// answer.
func DecodeAnswer(body []byte, gotoOK func(string) bool) (*Answer, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return &Answer{}, nil
	}
	if body[0] != '{' {
		if !json.Valid(body) {
			return nil, ErrNotJSON
		}
		return nil, invalid("", "must be a JSON object")
	}
	// One strict pass; on an error, the encoding/json passes, and then
	// piece by piece to say exactly where the problem is.
	a := &Answer{}
	if strictjson.Unmarshal(body, a) == nil {
		return checkAnswer(a, gotoOK)
	}
	*a = Answer{}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(a); err != nil || d.InputOffset() != int64(len(body)) {
		return nil, answerProblem(body, err)
	}
	if err := strictjson.CheckDuplicates(body); err != nil {
		return nil, invalid("", "%s", err.Error())
	}
	return checkAnswer(a, gotoOK)
}

// checkAnswer checks a's responses against SPEC §2.
func checkAnswer(a *Answer, gotoOK func(string) bool) (*Answer, error) {
	for i := range a.Responses {
		if err := checkResponse(&a.Responses[i], gotoOK); err != nil {
			return nil, within(fmt.Sprintf("responses[%d]", i), err)
		}
	}
	return a, nil
}

// rawAnswer is a chatbot answer with each response kept raw.
type rawAnswer struct {
	Responses  []json.RawMessage `json:"responses"`
	Attributes map[string]any    `json:"attributes"`
}

// answerProblem finds what is wrong with an answer the fast path refused.
func answerProblem(body []byte, fast error) error {
	if !json.Valid(body) {
		return ErrNotJSON
	}
	var raw rawAnswer
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&raw); err != nil {
		return typeError("", err)
	}
	for i, rr := range raw.Responses {
		if _, err := decodeResponse(rr); err != nil {
			return within(fmt.Sprintf("responses[%d]", i), err)
		}
	}
	if fast == nil {
		return ErrNotJSON
	}
	return typeError("", fast)
}

func decodeResponse(raw json.RawMessage) (engine.Response, error) {
	var r engine.Response
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return r, invalid("", "must be an object")
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return r, typeError("", err)
	}
	return r, nil
}

// objectStart checks that body is JSON holding an object.
func objectStart(body []byte) error {
	if !json.Valid(body) {
		return ErrNotJSON
	}
	if body[0] != '{' {
		return invalid("", "must be a JSON object")
	}
	return nil
}

// responseFields are the fields each response type may set.
var responseFields = map[string]uint8{
	engine.TypeText:         fMessage,
	engine.TypeRandomText:   fMessages,
	engine.TypeImage:        fImage,
	engine.TypeFile:         fFile,
	engine.TypeQuickReplies: fTitle | fButtons,
	engine.TypeButtons:      fTitle | fButtons,
	engine.TypeCards:        fElements,
}

const (
	fMessage uint8 = 1 << iota
	fMessages
	fImage
	fFile
	fTitle
	fButtons
	fElements
)

// checkResponse checks r against SPEC §2 and defaults its delay and heights.
func checkResponse(r *engine.Response, gotoOK func(string) bool) error {
	if ps := r.Check(gotoOK); len(ps) > 0 {
		return &InvalidError{Problems: ps}
	}
	allowed := responseFields[r.Type]
	set := []struct {
		bit  uint8
		name string
		on   bool
	}{
		{fMessage, "message", r.Message != ""}, {fMessages, "messages", r.Messages != nil},
		{fImage, "imageUrl", r.ImageURL != ""}, {fFile, "fileUrl", r.FileURL != ""},
		{fTitle, "title", r.Title != ""}, {fButtons, "buttons", r.Buttons != nil},
		{fElements, "elements", r.Elements != nil},
	}
	for _, s := range set {
		if s.on && allowed&s.bit == 0 {
			return invalid(s.name, "not allowed in a %s response", r.Type)
		}
	}
	if r.Delay == 0 {
		r.Delay = engine.DefaultDelay
	}
	for i := range r.Buttons {
		defaultHeight(&r.Buttons[i])
	}
	for j := range r.Elements {
		for i := range r.Elements[j].Buttons {
			defaultHeight(&r.Elements[j].Buttons[i])
		}
	}
	return nil
}

func defaultHeight(b *engine.Button) {
	if b.Type == "webview" && b.Height == "" {
		b.Height = "compact"
	}
}

func join(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == "":
		return prefix
	}
	return prefix + "." + path
}

// typeError turns a decoding error into a problem at path.
func typeError(path string, err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		p := path
		if te.Field != "" {
			p = join(path, te.Field)
		}
		return invalid(p, "must be %s, got %s", kindName(te.Type), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return ErrNotJSON
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if f, ok := strings.CutPrefix(msg, "unknown field "); ok {
		return invalid(path, "field %s not recognised", strings.Trim(f, `"`))
	}
	return invalid(path, "%s", msg)
}

func kindName(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64, reflect.Float32:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return kindName(t.Elem())
	}
	return "another type"
}
