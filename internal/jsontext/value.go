package jsontext

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
)

const maxDepth = 64

// AppendObject appends m as a JSON object with sorted keys ({} for nil),
// as encoding/json writes it but for HTML escaping; values of types it
// does not know go through encoding/json.
func AppendObject(b []byte, m map[string]any) ([]byte, error) {
	return appendObject(b, m, 0)
}

// AppendValue appends v as JSON, like AppendObject.
func AppendValue(b []byte, v any) ([]byte, error) {
	return appendValue(b, v, 0)
}

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
		b = AppendString(b, k)
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
		return AppendString(b, x), nil
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
		if x == nil {
			return append(b, "null"...), nil
		}
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
