package webhook

import (
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/storyflow/storyflow/engine"
)

// decodeAnswerFast decodes the common shapes of an answer in one pass over
// body (trimmed, starting with '{'). It returns exactly what the strict
// encoding/json decode in DecodeAnswer would, or false when unsure, and
// DecodeAnswer then takes that path, so results and error texts stay the
// same. Unsure means: any error; a key that is not exactly a field name; a
// repeated field; null inside a list of responses, messages, buttons or
// cards; a delay that is not a plain integer of at most 9 digits; an
// attribute number strconv.ParseFloat refuses; attributes nested deeper
// than maxAttributeDepth.
func decodeAnswerFast(body []byte) (*Answer, bool) {
	r := answerReader{b: body}
	a := &Answer{}
	var seen uint16
	ok := r.object(func(key []byte) bool {
		switch string(key) {
		case "responses":
			return once(&seen, 0) && (r.null() || r.responses(&a.Responses))
		case "attributes":
			return once(&seen, 1) && (r.null() || r.attributes(&a.Attributes))
		}
		return false
	})
	if !ok || r.i != len(r.b) {
		return nil, false
	}
	return a, true
}

// maxAttributeDepth bounds the nesting of attributes the fast path decodes.
const maxAttributeDepth = 100

// answerReader reads JSON from b at i.
type answerReader struct {
	b     []byte
	i     int
	depth int
}

// once marks field n of an object as seen. A repeated field is left to
// encoding/json, which merges repeats in ways not worth copying.
func once(seen *uint16, n int) bool {
	bit := uint16(1) << n
	if *seen&bit != 0 {
		return false
	}
	*seen |= bit
	return true
}

func (r *answerReader) space() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// consume skips space and then c if it comes next.
func (r *answerReader) consume(c byte) bool {
	r.space()
	if r.i < len(r.b) && r.b[r.i] == c {
		r.i++
		return true
	}
	return false
}

// literal skips space and then word if it comes next.
func (r *answerReader) literal(word string) bool {
	r.space()
	if len(r.b)-r.i >= len(word) && string(r.b[r.i:r.i+len(word)]) == word {
		r.i += len(word)
		return true
	}
	return false
}

func (r *answerReader) null() bool { return r.literal("null") }

// object reads an object, calling member with each raw key (what lies
// between its quotes, escapes not decoded) when the reader is at its value.
func (r *answerReader) object(member func(key []byte) bool) bool {
	if !r.consume('{') {
		return false
	}
	if r.consume('}') {
		return true
	}
	for {
		key, ok := r.rawString()
		if !ok || !r.consume(':') || !member(key) {
			return false
		}
		if r.consume('}') {
			return true
		}
		if !r.consume(',') {
			return false
		}
	}
}

// array reads an array, calling elem for each element.
func (r *answerReader) array(elem func() bool) bool {
	if !r.consume('[') {
		return false
	}
	if r.consume(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if r.consume(']') {
			return true
		}
		if !r.consume(',') {
			return false
		}
	}
}

// rawString reads a string and returns what lies between its quotes,
// checked against the JSON grammar but not unquoted.
func (r *answerReader) rawString() ([]byte, bool) {
	if !r.consume('"') {
		return nil, false
	}
	start := r.i
	for r.i < len(r.b) {
		c := r.b[r.i]
		switch {
		case c == '"':
			r.i++
			return r.b[start : r.i-1], true
		case c < ' ':
			return nil, false
		case c == '\\':
			if r.i+1 >= len(r.b) {
				return nil, false
			}
			switch r.b[r.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				r.i += 2
			case 'u':
				if hex4(r.b[r.i+2:]) < 0 {
					return nil, false
				}
				r.i += 6
			default:
				return nil, false
			}
		default:
			r.i++
		}
	}
	return nil, false
}

// hex4 is the value of the four hex digits that start s, or -1.
func hex4(s []byte) rune {
	if len(s) < 4 {
		return -1
	}
	var v rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		v = v<<4 | rune(c)
	}
	return v
}

// unquote decodes a raw string checked by rawString as encoding/json does:
// a lone or broken surrogate and each byte of invalid UTF-8 become U+FFFD.
func unquote(s []byte) string {
	plain := true
	for _, c := range s {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return string(s)
	}
	b := make([]byte, 0, len(s)+utf8.UTFMax)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c >= utf8.RuneSelf:
			rr, size := utf8.DecodeRune(s[i:])
			b = utf8.AppendRune(b, rr)
			i += size
		case c != '\\':
			b = append(b, c)
			i++
		case s[i+1] == 'u':
			rr := hex4(s[i+2:])
			i += 6
			if utf16.IsSurrogate(rr) {
				low := rune(-1)
				if len(s)-i >= 6 && s[i] == '\\' && s[i+1] == 'u' {
					low = hex4(s[i+2:])
				}
				if rr = utf16.DecodeRune(rr, low); rr != unicode.ReplacementChar {
					i += 6
				}
			}
			b = utf8.AppendRune(b, rr)
		default:
			b = append(b, unescape[s[i+1]])
			i += 2
		}
	}
	return string(b)
}

// unescape maps the letter of a one-letter escape to its byte.
var unescape = [256]byte{'"': '"', '\\': '\\', '/': '/', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// text reads a string into dst.
func (r *answerReader) text(dst *string) bool {
	raw, ok := r.rawString()
	*dst = unquote(raw)
	return ok
}

// int reads a plain integer of at most 9 digits (no fraction, no exponent:
// encoding/json refuses those for an int) into dst.
func (r *answerReader) int(dst *int) bool {
	r.space()
	neg := r.i < len(r.b) && r.b[r.i] == '-'
	if neg {
		r.i++
	}
	start, n := r.i, 0
	for r.i < len(r.b) && '0' <= r.b[r.i] && r.b[r.i] <= '9' {
		n = n*10 + int(r.b[r.i]-'0')
		r.i++
	}
	digits := r.i - start
	if digits == 0 || digits > 9 || digits > 1 && r.b[start] == '0' || r.i < len(r.b) && isNumberByte(r.b[r.i]) {
		return false
	}
	if neg {
		n = -n
	}
	*dst = n
	return true
}

// isNumberByte reports whether c may continue a JSON number.
func isNumberByte(c byte) bool {
	return '0' <= c && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'
}

func (r *answerReader) strings(dst *[]string) bool {
	list := []string{}
	ok := r.array(func() bool {
		var s string
		ok := r.text(&s)
		list = append(list, s)
		return ok
	})
	*dst = list
	return ok
}

func (r *answerReader) responses(dst *[]engine.Response) bool {
	list := []engine.Response{}
	ok := r.array(func() bool {
		list = append(list, engine.Response{})
		return r.response(&list[len(list)-1])
	})
	*dst = list
	return ok
}

func (r *answerReader) response(resp *engine.Response) bool {
	var seen uint16
	return r.object(func(key []byte) bool {
		switch string(key) {
		case "type":
			return once(&seen, 0) && (r.null() || r.text(&resp.Type))
		case "delay":
			return once(&seen, 1) && (r.null() || r.int(&resp.Delay))
		case "message":
			return once(&seen, 2) && (r.null() || r.text(&resp.Message))
		case "messages":
			return once(&seen, 3) && (r.null() || r.strings(&resp.Messages))
		case "imageUrl":
			return once(&seen, 4) && (r.null() || r.text(&resp.ImageURL))
		case "fileUrl":
			return once(&seen, 5) && (r.null() || r.text(&resp.FileURL))
		case "title":
			return once(&seen, 6) && (r.null() || r.text(&resp.Title))
		case "buttons":
			return once(&seen, 7) && (r.null() || r.buttons(&resp.Buttons))
		case "elements":
			return once(&seen, 8) && (r.null() || r.cards(&resp.Elements))
		}
		return false
	})
}

func (r *answerReader) buttons(dst *[]engine.Button) bool {
	list := []engine.Button{}
	ok := r.array(func() bool {
		list = append(list, engine.Button{})
		b := &list[len(list)-1]
		var seen uint16
		return r.object(func(key []byte) bool {
			switch string(key) {
			case "type":
				return once(&seen, 0) && (r.null() || r.text(&b.Type))
			case "title":
				return once(&seen, 1) && (r.null() || r.text(&b.Title))
			case "value":
				return once(&seen, 2) && (r.null() || r.text(&b.Value))
			case "height":
				return once(&seen, 3) && (r.null() || r.text(&b.Height))
			}
			return false
		})
	})
	*dst = list
	return ok
}

func (r *answerReader) cards(dst *[]engine.Card) bool {
	list := []engine.Card{}
	ok := r.array(func() bool {
		list = append(list, engine.Card{})
		c := &list[len(list)-1]
		var seen uint16
		return r.object(func(key []byte) bool {
			switch string(key) {
			case "title":
				return once(&seen, 0) && (r.null() || r.text(&c.Title))
			case "subtitle":
				return once(&seen, 1) && (r.null() || r.text(&c.Subtitle))
			case "imageUrl":
				return once(&seen, 2) && (r.null() || r.text(&c.ImageURL))
			case "buttons":
				return once(&seen, 3) && (r.null() || r.buttons(&c.Buttons))
			}
			return false
		})
	})
	*dst = list
	return ok
}

// attributes reads an object of any values; a repeated key keeps its last
// value, as with encoding/json.
func (r *answerReader) attributes(dst *map[string]any) bool {
	r.space()
	if r.i >= len(r.b) || r.b[r.i] != '{' {
		return false
	}
	v, ok := r.value()
	*dst, _ = v.(map[string]any)
	return ok
}

// value reads any JSON value as encoding/json decodes it into an any.
func (r *answerReader) value() (any, bool) {
	r.space()
	if r.i >= len(r.b) {
		return nil, false
	}
	switch c := r.b[r.i]; c {
	case '"':
		var s string
		ok := r.text(&s)
		return s, ok
	case '{', '[':
		if r.depth++; r.depth > maxAttributeDepth {
			return nil, false
		}
		v, ok := r.container(c)
		r.depth--
		return v, ok
	case 't':
		return true, r.literal("true")
	case 'f':
		return false, r.literal("false")
	case 'n':
		return nil, r.literal("null")
	}
	return r.number()
}

// container reads an array (c is '[') or an object.
func (r *answerReader) container(c byte) (any, bool) {
	if c == '[' {
		list := []any{}
		ok := r.array(func() bool {
			v, ok := r.value()
			list = append(list, v)
			return ok
		})
		return list, ok
	}
	m := map[string]any{}
	ok := r.object(func(key []byte) bool {
		v, ok := r.value()
		m[unquote(key)] = v
		return ok
	})
	return m, ok
}

// number reads a number as a float64 the way encoding/json does, or fails
// on anything strconv.ParseFloat refuses (such as 1e400).
func (r *answerReader) number() (any, bool) {
	start := r.i
	if r.i < len(r.b) && r.b[r.i] == '-' {
		r.i++
	}
	switch {
	case r.i < len(r.b) && r.b[r.i] == '0':
		r.i++
	case r.digits() == 0:
		return nil, false
	}
	if r.i < len(r.b) && r.b[r.i] == '.' {
		r.i++
		if r.digits() == 0 {
			return nil, false
		}
	}
	if r.i < len(r.b) && (r.b[r.i] == 'e' || r.b[r.i] == 'E') {
		r.i++
		if r.i < len(r.b) && (r.b[r.i] == '+' || r.b[r.i] == '-') {
			r.i++
		}
		if r.digits() == 0 {
			return nil, false
		}
	}
	f, err := strconv.ParseFloat(string(r.b[start:r.i]), 64)
	return f, err == nil
}

// digits skips decimal digits and returns how many.
func (r *answerReader) digits() int {
	start := r.i
	for r.i < len(r.b) && '0' <= r.b[r.i] && r.b[r.i] <= '9' {
		r.i++
	}
	return r.i - start
}
