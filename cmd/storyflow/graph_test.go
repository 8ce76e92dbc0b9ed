package main_test

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestGraph(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, out string)
	}{
		{
			name: "mermaid by default",
			args: []string{"graph", examples + "leads.yaml"},
			check: func(t *testing.T, out string) {
				if !strings.HasPrefix(out, "flowchart") {
					t.Errorf("not a mermaid flowchart:\n%s", out)
				}
				for _, s := range []string{"Score the lead", "(emit)", "-->"} {
					if !strings.Contains(out, s) {
						t.Errorf("lacks %q:\n%s", s, out)
					}
				}
			},
		},
		{
			name: "dot, flag after the file",
			args: []string{"graph", examples + "support.yaml", "--format", "dot"},
			check: func(t *testing.T, out string) {
				if !strings.HasPrefix(out, `digraph "support" {`) || !strings.HasSuffix(strings.TrimSpace(out), "}") {
					t.Errorf("not a dot digraph:\n%s", out)
				}
				for _, s := range []string{`"check_customer" -> "menu"`, `"check_customer" -> "crm_down"`, `"not_customer" -> "human"`} {
					if !strings.Contains(out, s) {
						t.Errorf("lacks edge %s:\n%s", s, out)
					}
				}
			},
		},
		{
			name: "json, flag=value form",
			args: []string{"graph", "--format=json", examples + "orders.yaml"},
			check: func(t *testing.T, out string) {
				var g map[string]any
				if err := json.Unmarshal([]byte(out), &g); err != nil {
					t.Fatalf("not JSON: %v\n%s", err, out)
				}
				if !strings.Contains(out, `"place_order"`) || !strings.Contains(out, `"emit"`) {
					t.Errorf("lacks the emit node:\n%s", out)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, "", tt.args...)
			if r.code != 0 {
				t.Fatalf("exit code %d\n%s", r.code, r.stderr)
			}
			tt.check(t, r.stdout)
		})
	}
}

func TestGraphLoadError(t *testing.T) {
	r := run(t, "", "graph", "testdata/bad.yaml")
	if r.code != 1 || !strings.Contains(r.stderr, "testdata/bad.yaml does not load") {
		t.Errorf("exit code %d, stderr:\n%s", r.code, r.stderr)
	}
}

func TestSchema(t *testing.T) {
	r := run(t, "", "schema")
	if r.code != 0 {
		t.Fatalf("exit code %d\n%s", r.code, r.stderr)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	if _, ok := s["$schema"]; !ok {
		t.Errorf("no $schema key in %v", keys(s))
	}
	for _, typ := range []string{`"question"`, `"condition"`, `"emit"`, `"handoff"`, `"quickReplies"`} {
		if !strings.Contains(r.stdout, typ) {
			t.Errorf("schema does not mention %s", typ)
		}
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
