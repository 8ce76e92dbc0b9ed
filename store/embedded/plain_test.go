package embedded

import (
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
)

// TestPlainChat checks that the cached chat equals what decoding its
// record gives, and that chats it cannot vouch for are not cached.
func TestPlainChat(t *testing.T) {
	if n := reflect.TypeFor[engine.Chat]().NumField(); n != 18 {
		t.Fatalf("engine.Chat has %d fields, not 18: check plainChat covers the new ones (Task: not plain, Earlier: not stored)", n)
	}
	now := time.Now().UTC() // with a monotonic reading
	base := func(attrs map[string]any) *engine.Chat {
		return &engine.Chat{ID: "c1", StoryID: "s", StoryVersion: 3, Node: "ask", Status: engine.StatusActive,
			UserID: "u", ExternalID: "x", Attributes: attrs, UserAttributes: map[string]any{"lang": "en"},
			Transcript: []engine.Entry{{Seq: 7, From: "user"}}, Seq: 7, Error: "e <&>", Waiting: true,
			CreatedAt: now, UpdatedAt: now.Add(time.Second), Rev: 4}
	}
	tests := []struct {
		name  string
		chat  *engine.Chat
		plain bool
	}{
		{"empty attributes", base(map[string]any{}), true},
		{"nil attributes", base(nil), true},
		{"numbers", base(map[string]any{"i": 3, "i64": int64(1) << 60, "i32": int32(-5), "f": 0.1, "z": math.Copysign(0, -1)}), true},
		{"nested", base(map[string]any{"m": map[string]any{"a": []any{1, "b", nil, true, map[string]any{}}}, "nm": map[string]any(nil), "ns": []any(nil)}), true},
		{"html", base(map[string]any{"s": "<b>&</b> \u2028"}), true},
		{"invalid utf-8 value", base(map[string]any{"s": "a\xffb"}), false},
		{"invalid utf-8 key", base(map[string]any{"a\xff": 1}), false},
		{"string slice", base(map[string]any{"l": []string{"a"}}), false},
		{"struct", base(map[string]any{"t": now}), false},
		{"NaN", base(map[string]any{"f": math.NaN()}), false},
		{"local time", func() *engine.Chat { c := base(nil); c.CreatedAt = now.In(time.FixedZone("X", 3600)); return c }(), false},
		{"invalid utf-8 error", func() *engine.Chat { c := base(nil); c.Error = "\xff"; return c }(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := plainChat(tt.chat, tt.chat.Rev+1)
			if ok != tt.plain {
				t.Fatalf("plain = %v, want %v", ok, tt.plain)
			}
			if !ok {
				return
			}
			rec, _, err := encodeChat(tt.chat, tt.chat.Rev+1)
			if err != nil {
				t.Fatal(err)
			}
			want, err := decodeChat(rec)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p, want) {
				t.Fatalf("cached chat differs from the decoded record:\n got %#v\nwant %#v", p, want)
			}
			// A copy handed out shares no map with the cache.
			cp := cloneChat(p)
			if !reflect.DeepEqual(cp, want) {
				t.Fatalf("copy differs: %#v", cp)
			}
			cp.Attributes = mutate(cp.Attributes)
			cp.UserAttributes["lang"] = "de"
			if !reflect.DeepEqual(p, want) {
				t.Fatalf("mutating a copy changed the cached chat: %#v", p)
			}
			// Nor with the chat it was made from.
			if tt.chat.Attributes != nil {
				tt.chat.Attributes["new"] = 1.0
				if _, ok := p.Attributes["new"]; ok {
					t.Fatal("cached chat shares its attributes with the written one")
				}
			}
		})
	}
}

// mutate changes m and every map and slice in it in place.
func mutate(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	for k, v := range m {
		switch v := v.(type) {
		case map[string]any:
			mutate(v)
		case []any:
			for i := range v {
				v[i] = "changed"
			}
		}
		m[k] = v
	}
	m["added"] = true
	return m
}
