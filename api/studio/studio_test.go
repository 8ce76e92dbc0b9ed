package studio_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/api"
	"github.com/storyflow/storyflow/store/embedded"
)

// TestServe checks the page and its files are served without a token,
// with their types and a content security policy, and nothing else is.
func TestServe(t *testing.T) {
	st, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := api.New(api.Config{Store: st, Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, status, ctype, body string
	}{
		{"/", "200", "text/html", `<script src="/studio/studio.js">`},
		{"/studio/studio.js", "200", "text/javascript", "dagre"},
		{"/studio/studio.css", "200", "text/css", ".node"},
		{"/studio/index.html", "200", "text/html", "<title>storyflow studio</title>"},
		{"/studio/nope.js", "404", "application/json", `"code":"not_found"`},
		{"/studio/..%2fstudio.go", "404", "application/json", `"code":"not_found"`},
		{"/v1/stories", "401", "application/json", `"code":"unauthorized"`},
	}
	for _, tt := range tests {
		res, err := srv.App().Test(httptest.NewRequest("GET", tt.path, nil))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		if got := res.Status[:3]; got != tt.status {
			t.Errorf("GET %s: %s, want %s", tt.path, res.Status, tt.status)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.ctype) {
			t.Errorf("GET %s: Content-Type %q, want %s", tt.path, ct, tt.ctype)
		}
		if !strings.Contains(string(b), tt.body) {
			t.Errorf("GET %s: body lacks %q", tt.path, tt.body)
		}
		if tt.status == "200" && !strings.Contains(res.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: no content security policy", tt.path)
		}
	}
}
