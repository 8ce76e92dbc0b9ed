// Package strictjson finds what encoding/json lets through silently: an
// object with the same name twice (encoding/json keeps the last value, so a
// request or a webhook answer could say one thing to a checker and another
// to storyflow).
package strictjson

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/go-json-experiment/json/jsontext"
)

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
