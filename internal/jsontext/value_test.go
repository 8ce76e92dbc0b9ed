package jsontext

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

func TestAppendValueMatchesEncodingJSON(t *testing.T) {
	values := []any{
		nil, "", "plain", `quote " backslash \ slash /`, "tab\tnew\nline\rcr", "\x00\x01\x1f\x7f",
		"<html> & 'x'", "Zoë 🙂", "bad \xff utf8", "line\u2028sep\u2029", true, false,
		0.0, 1.0, -2.5, 1e21, 1e20, 1e-7, 1e-6, 123456789.125, math.MaxFloat64, float32(0.1),
		int(-3), int64(1 << 60), int32(7), uint64(math.MaxUint64),
		map[string]any{}, map[string]any(nil), map[string]any{"n": map[string]any(nil)}, map[string]any{"b": 1.0, "a": []any{"x", nil, map[string]any{"z": false}}},
		[]any{}, []any(nil), time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), []string{"s"}, map[string]int{"n": 1},
	}
	for _, v := range values {
		got, err := appendValue(nil, v, 0)
		if err != nil {
			t.Errorf("%#v: %v", v, err)
			continue
		}
		want, _ := json.Marshal(v)
		var g, w any
		if err := json.Unmarshal(got, &g); err != nil {
			t.Errorf("%#v: wrote invalid JSON %s", v, got)
			continue
		}
		json.Unmarshal(want, &w)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%#v: got %s, encoding/json %s", v, got, want)
		}
	}
	for _, v := range []any{math.NaN(), math.Inf(1), map[string]any{"f": func() {}}} {
		if _, err := appendValue(nil, v, 0); err == nil {
			t.Errorf("%v: no error", v)
		}
	}
	deep := map[string]any{}
	for range 100 {
		deep = map[string]any{"d": deep}
	}
	if _, err := appendValue(nil, deep, 0); err == nil {
		t.Error("100 levels: no error")
	}
}
