package strictjson_test

import (
	"errors"
	"testing"

	"github.com/storyflow/storyflow/internal/strictjson"
)

func TestCheckDuplicates(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"a":1,"b":2}`, ""},
		{`{"a":{"a":1},"b":[{"a":1},{"a":2}]}`, ""},
		{`{"a":1,"a":2}`, `duplicate name "a"`},
		{`{"x":{"b":1,"b":2}}`, `duplicate name "x.b"`},
		{`{"r":[{"t":1},{"t":1,"t":2}]}`, `duplicate name "r.1.t"`},
		{"{\"a\":\"\xff\"}", ""}, // bad UTF-8 is the decoder's business
		{`{"a":`, ""},            // so is bad syntax
	} {
		err := strictjson.CheckDuplicates([]byte(tc.in))
		got := ""
		if err != nil {
			got = err.Error()
			if !errors.Is(err, strictjson.ErrDuplicate) {
				t.Errorf("%s: %v does not wrap ErrDuplicate", tc.in, err)
			}
		}
		if got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.in, got, tc.want)
		}
	}
}
