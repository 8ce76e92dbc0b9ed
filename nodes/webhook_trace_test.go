package nodes_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
)

// TestWebhookTrace checks what a webhook node notes in the chat's trace:
// the answer (status, responses, small attributes; large ones by name) or
// the failure.
func TestWebhookTrace(t *testing.T) {
	big := strings.Repeat("x", 3000)
	tests := []struct {
		name   string
		status int
		body   string
		check  func(d map[string]any) string
		next   string
	}{
		{"small attributes", 200, `{"attributes":{"plan":"pro"},"responses":[{"type":"text","message":"hi"}]}`,
			func(d map[string]any) string {
				a, _ := d["attributes"].(map[string]any)
				if d["status"] != 200 || d["responses"] != 1 || a["plan"] != "pro" || d["webhook"] != "crm" {
					return fmt.Sprintf("%v", d)
				}
				return ""
			}, "ok"},
		{"large attributes by name", 200, `{"attributes":{"b":"` + big + `","a":1}}`,
			func(d map[string]any) string {
				if _, ok := d["attributes"]; ok || fmt.Sprint(d["attributeNames"]) != "[a b]" {
					return fmt.Sprintf("%v", d)
				}
				return ""
			}, "ok"},
		{"failure", 500, `{}`,
			func(d map[string]any) string {
				if d["status"] != 500 || !strings.Contains(fmt.Sprint(d["error"]), "500") {
					return fmt.Sprintf("%v", d)
				}
				return ""
			}, "down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHook(t, answers(tt.status, tt.body))
			s := whLoad(t, `id: s
start: call
webhooks:
  crm: {url: "`+h.URL+`"}
nodes:
  call: {type: webhook, webhook: crm, next: ok, failure: down}
  ok: {type: end, responses: [{type: text, message: ok}]}
  down: {type: end, responses: [{type: text, message: down}]}
`, nodes.Options{})
			c := engine.NewChat(s, "c1", "", "", nil, nil)
			r := engine.Runner{Logger: slog.New(slog.DiscardHandler)}
			if _, err := r.Start(context.Background(), s, c); err != nil {
				t.Fatal(err)
			}
			steps := c.Transcript[0].Steps
			if len(steps) != 2 || steps[0].Node != "call" || steps[0].Next != tt.next {
				t.Fatalf("steps %+v", steps)
			}
			if msg := tt.check(steps[0].Detail); msg != "" {
				t.Errorf("detail %s", msg)
			}
		})
	}
}
