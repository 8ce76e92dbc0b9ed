package storytest_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
	"github.com/storyflow/storyflow/storytest"
	"github.com/storyflow/storyflow/webhook"
)

// formatsStory calls a webhook of each wire format in turn.
const formatsStory = `id: formats
start: ask
nodes:
  ask:
    type: question
    responses: [{type: text, message: Ask me}]
    save: q
    next: chatbot
  chatbot:
    type: webhook
    webhook: {url: "https://hooks.example/chatbot"}
    sets: [mood]
    next: messages
  messages:
    type: webhook
    format: messages
    webhook: {url: "https://hooks.example/messages"}
    next: widget
  widget:
    type: webhook
    format: widget
    webhook: {url: "https://hooks.example/widget"}
    next: openai
  openai:
    type: webhook
    format: openai
    model: gpt-test
    webhook: {url: "https://hooks.example/openai"}
    next: anthropic
  anthropic:
    type: webhook
    format: anthropic
    model: claude-test
    max_tokens: 100
    webhook: {url: "https://hooks.example/anthropic"}
    next: down
  down:
    type: webhook
    webhook: {url: "https://hooks.example/down", retries: 1}
    next: ask
    failure: ask
`

// answers answers each format's call as a real service would.
type answers struct{}

func (answers) RoundTrip(r *http.Request) (*http.Response, error) {
	io.Copy(io.Discard, r.Body)
	status, body := 200, ""
	switch p := r.URL.Path; {
	case p == "/chatbot":
		body = `{"responses":[{"type":"text","message":"Chatbot says hi"},{"type":"randomText","messages":["Only one"]}],"attributes":{"mood":"good","gone":null}}`
	case p == "/messages":
		body = `{"content":"Messages says hi","metadata":{"topic":"greeting"}}`
	case p == "/widget":
		body = `{"output":"Widget says hi"}`
	case strings.HasSuffix(p, "/chat/completions"):
		body = `{"choices":[{"message":{"role":"assistant","content":"OpenAI says hi"},"finish_reason":"stop"}],"model":"gpt-test","usage":{"prompt_tokens":3,"completion_tokens":4}}`
	case strings.HasSuffix(p, "/v1/messages"):
		body = `{"type":"message","role":"assistant","content":[{"type":"text","text":"Anthropic says hi"}],"stop_reason":"end_turn","model":"claude-test"}`
	default:
		status, body = 502, `{"error":"bad gateway"}`
	}
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: r}, nil
}

// TestRecordFormats: a chat whose webhooks answer in every wire format is
// recorded, and the recording replays green.
func TestRecordFormats(t *testing.T) {
	client := webhook.NewClient(webhook.Options{Transport: answers{}})
	reg := nodes.NewRegistry(nodes.Options{Webhooks: client, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s, _, err := stories.Load("formats.yaml", []byte(formatsStory), stories.Options{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var r engine.Runner
	chat := engine.NewChat(s, "c1", "u1", "", map[string]any{"default_name": "Ann"}, map[string]any{"source": "test"})
	if _, err := r.Start(ctx, s, chat); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"hello there", "again"} {
		if _, err := r.Send(ctx, s, chat, engine.Input{Text: in}); err != nil {
			t.Fatal(err)
		}
	}
	if chat.Attributes["mood"] != "good" {
		t.Fatalf("attributes %v", chat.Attributes)
	}
	rec, err := storytest.Record(s, chat, chat.Transcript)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"default_name: Ann # redact", "text: hello there # redact", "source: test",
		"content: Messages says hi", "output: Widget says hi", "OpenAI says hi", "Anthropic says hi",
		"status: 502", "bad gateway", "text: Only one"} {
		if !bytes.Contains(rec, []byte(want)) {
			t.Errorf("recording lacks %q", want)
		}
	}
	// The 502 is answered twice: the connection retries once.
	if n := bytes.Count(rec, []byte("status: 502")); n != 4 {
		t.Errorf("502 answers: %d, want 4 (two calls, each retried once)", n)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "formats.yaml"), []byte(formatsStory), 0o644)
	path := filepath.Join(dir, "formats.test.yaml")
	os.WriteFile(path, rec, 0o644)
	fr := storytest.NewRunner(storytest.Options{}).RunFile(ctx, path)
	if fr.Failed() {
		var out bytes.Buffer
		fr.Write(&out, true)
		t.Fatalf("recording does not replay:\n%s\n%s", out.String(), rec)
	}
}
