package jsontext_test

import (
	"encoding/json"
	"testing"

	"github.com/storyflow/storyflow/internal/jsontext"
)

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\xff\xfe", "\u2028", "\x00", "🙂"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got, want string
		if err := json.Unmarshal(jsontext.AppendString(nil, s), &got); err != nil {
			t.Fatalf("%q: invalid JSON %s", s, jsontext.AppendString(nil, s))
		}
		b, _ := json.Marshal(s)
		json.Unmarshal(b, &want)
		if got != want {
			t.Fatalf("%q: got %q, want %q", s, got, want)
		}
	})
}
