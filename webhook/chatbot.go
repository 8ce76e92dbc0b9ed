package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// encodeChatbot writes the body of a chatbot-format call (SPEC §3):
// {chatId, messageId, userId, externalId, node, userAttributes, attributes}.
// It writes JSON directly; values of types it does not know go through
// encoding/json.
func encodeChatbot(buf *bytes.Buffer, conn *Connection, r *Request) error {
	b := buf.AvailableBuffer()
	b = append(b, `{"chatId":`...)
	b = appendString(b, r.ChatID)
	b = append(b, `,"messageId":`...)
	b = appendString(b, r.MessageID)
	b = append(b, `,"userId":`...)
	b = appendString(b, r.UserID)
	b = append(b, `,"externalId":`...)
	b = appendString(b, r.ExternalID)
	b = append(b, `,"node":{"id":`...)
	b = appendString(b, r.NodeID)
	b = append(b, `,"name":`...)
	b = appendString(b, r.NodeName)
	b = append(b, `,"type":"WEBHOOK","webhookId":`...)
	b = appendString(b, conn.ID)
	b = append(b, `,"webhookName":`...)
	b = appendString(b, conn.Name)
	b = append(b, `},"userAttributes":`...)
	var err error
	if b, err = appendObject(b, r.UserAttributes, 0); err != nil {
		return fmt.Errorf("userAttributes: %w", err)
	}
	b = append(b, `,"attributes":`...)
	if b, err = appendObject(b, r.Attributes, 0); err != nil {
		return fmt.Errorf("attributes: %w", err)
	}
	b = append(b, '}')
	buf.Write(b)
	return nil
}

const maxDepth = 64

// appendObject appends m as a JSON object with sorted keys ({} for nil).
func appendObject(b []byte, m map[string]any, depth int) ([]byte, error) {
	if depth > maxDepth {
		return b, fmt.Errorf("nested more than %d levels", maxDepth)
	}
	var arr [16]string
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	var err error
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		if b, err = appendValue(b, m[k], depth+1); err != nil {
			return b, fmt.Errorf("%s: %w", k, err)
		}
	}
	return append(b, '}'), nil
}

func appendValue(b []byte, v any, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case float64:
		return appendFloat(b, x, 64)
	case float32:
		return appendFloat(b, float64(x), 32)
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case int32:
		return strconv.AppendInt(b, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(b, x, 10), nil
	case map[string]any:
		return appendObject(b, x, depth)
	case []any:
		if depth > maxDepth {
			return b, fmt.Errorf("nested more than %d levels", maxDepth)
		}
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		var err error
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendValue(b, e, depth+1); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, j...), nil
}

// appendFloat formats like encoding/json.
func appendFloat(b []byte, f float64, bits int) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, fmt.Errorf("unsupported value %v", f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21)) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string (no HTML escaping; invalid
// UTF-8 becomes U+FFFD; U+2028 and U+2029 are escaped).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
