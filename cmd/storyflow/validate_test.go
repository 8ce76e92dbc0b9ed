package main_test

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		code  int
		want  []string // output lines, in order
		// partial: want lists some of the lines, not all.
		partial bool
	}{
		{
			name:  "examples",
			files: []string{examples + "support.yaml", examples + "orders.yaml", examples + "leads.yaml"},
			code:  0,
			want: []string{
				examples + "support.yaml: ok",
				examples + "orders.yaml: ok",
				examples + "leads.yaml: ok",
			},
		},
		{
			name:  "errors",
			files: []string{"testdata/bad.yaml"},
			code:  1,
			want: []string{
				`testdata/bad.yaml:9:11: node "hello" (message): next: node "nowhere" not found`,
				`testdata/bad.yaml:16:37: node "ask" (question): quickReplies response: buttons[0].title: must be 1 to 20 characters, got 26`,
				`testdata/bad.yaml:17:28: node "ask" (question): expression: unexpected token EOF`,
				`testdata/bad.yaml:18:5: node "ask" (question): field colour not recognised`,
				`testdata/bad.yaml: 4 errors`,
			},
		},
		{
			name:  "warnings only",
			files: []string{"testdata/warn.yaml"},
			code:  0,
			want: []string{
				`testdata/warn.yaml:9:3: warning: node "orphan" (end): not reachable from start`,
				`testdata/warn.yaml: ok (1 warning)`,
			},
		},
		{
			name:    "one bad file fails the run",
			files:   []string{"testdata/warn.yaml", "testdata/bad.yaml", examples + "leads.yaml"},
			code:    1,
			want:    []string{"testdata/warn.yaml: ok (1 warning)", "testdata/bad.yaml: 4 errors", examples + "leads.yaml: ok"},
			partial: true,
		},
		{
			name:  "missing file",
			files: []string{"testdata/missing.yaml"},
			code:  1,
			want: []string{
				"testdata/missing.yaml: read story: open testdata/missing.yaml: no such file or directory",
				"testdata/missing.yaml: 1 error",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, "", append([]string{"validate"}, tt.files...)...)
			if r.code != tt.code {
				t.Errorf("exit code %d, want %d", r.code, tt.code)
			}
			if !tt.partial && !slices.Equal(lines(r.stdout), tt.want) {
				t.Errorf("output:\n%s\nwant:\n%s", r.stdout, join(tt.want))
			}
			wantLines(t, r.stdout, tt.want...)
		})
	}
}

func join(ls []string) string {
	out := ""
	for _, l := range ls {
		out += l + "\n"
	}
	return out
}

func TestValidateJSON(t *testing.T) {
	// Flags may follow the files.
	r := run(t, "", "validate", "testdata/bad.yaml", "testdata/warn.yaml", "--json")
	if r.code != 1 {
		t.Fatalf("exit code %d, want 1\n%s%s", r.code, r.stdout, r.stderr)
	}
	var got struct {
		Files []struct {
			File     string `json:"file"`
			OK       bool   `json:"ok"`
			Errors   int    `json:"errors"`
			Warnings int    `json:"warnings"`
			Lints    []struct {
				File    string `json:"file"`
				Line    int    `json:"line"`
				Column  int    `json:"column"`
				Node    string `json:"node"`
				Message string `json:"message"`
				// Severity as in the API's lints (api.Lint).
				Severity string `json:"severity"`
			} `json:"lints"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, r.stdout)
	}
	// The same keys as the API's lints.
	var raw struct {
		Files []struct {
			Lints []map[string]any `json:"lints"`
		} `json:"files"`
	}
	json.Unmarshal([]byte(r.stdout), &raw)
	for _, l := range raw.Files[0].Lints {
		for k := range l {
			switch k {
			case "file", "line", "column", "node", "nodeType", "message", "severity":
			default:
				t.Errorf("lint key %q is not the API's", k)
			}
		}
	}
	if len(got.Files) != 2 {
		t.Fatalf("got %d files, want 2", len(got.Files))
	}
	bad, warn := got.Files[0], got.Files[1]
	if bad.OK || bad.Errors != 4 || len(bad.Lints) != 4 {
		t.Errorf("bad.yaml: ok=%v errors=%d lints=%d, want false 4 4", bad.OK, bad.Errors, len(bad.Lints))
	}
	if l := bad.Lints[0]; l.Line != 9 || l.Column != 11 || l.Node != "hello" || l.Message != `next: node "nowhere" not found` || l.Severity != "error" {
		t.Errorf("first lint %+v", l)
	}
	if !warn.OK || warn.Warnings != 1 || len(warn.Lints) != 1 || warn.Lints[0].Severity != "warning" || warn.Lints[0].Node != "orphan" {
		t.Errorf("warn.yaml: %+v", warn)
	}
}
