// Package strictjson finds what encoding/json lets through silently: an
// object with the same name twice (encoding/json keeps the last value, so a
// request or a webhook answer could say one thing to a checker and another
// to storyflow).
package strictjson

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// strict are encoding/json's semantics (json/v1's options on the v2
// decoder) refusing unknown fields and a name twice in an object.
var strict = json.JoinOptions(jsonv1.DefaultOptionsV1(),
	json.RejectUnknownMembers(true), jsontext.AllowDuplicateNames(false))

// Unmarshal decodes data, one JSON value, into v as encoding/json's Decoder
// with DisallowUnknownFields does, and refuses a name twice, in one pass
// (the two checks apart cost twice as much on a webhook answer). Its errors
// are terse: a caller that explains them decodes again, the slow way, into
// a zeroed v, and takes that result if it has no error (a difference
// between the two decoders then never reaches a user).
func Unmarshal(data []byte, v any) error {
	return json.Unmarshal(data, v, strict)
}

// ErrDuplicate is the error of a JSON object with a name twice.
var ErrDuplicate = errors.New("duplicate name")

var allowBadUTF8 = jsontext.AllowInvalidUTF8(true)

// CheckDuplicates returns an error wrapping ErrDuplicate that names the
// first repeated name and where it is, when data holds one. Other syntax
// errors are left to the decoder that follows (nil here).
func CheckDuplicates(data []byte) error {
	if jsontext.Value(data).IsValid(allowBadUTF8) {
		return nil
	}
	dec := jsontext.NewDecoder(bytes.NewReader(data), allowBadUTF8)
	for {
		_, err := dec.ReadToken()
		if err == nil {
			continue
		}
		var se *jsontext.SyntacticError
		if errors.As(err, &se) && errors.Is(se.Err, jsontext.ErrDuplicateName) {
			return fmt.Errorf("%w %s", ErrDuplicate, pointerName(se.JSONPointer))
		}
		return nil
	}
}

// pointerName says where a JSON pointer points: "a" or "a.b[0].c"-like.
func pointerName(p jsontext.Pointer) string {
	var b []byte
	for tok := range p.Tokens() {
		if len(b) > 0 {
			b = append(b, '.')
		}
		b = append(b, tok...)
	}
	return fmt.Sprintf("%q", b)
}
