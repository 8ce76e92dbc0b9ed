package nodes_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
	"github.com/storyflow/storyflow/webhook"
)

// benchAnswer is what the benchmark's webhook service answers.
const benchAnswer = `{"responses":[{"type":"text","message":"Welcome back, Ann! You are on the Pro plan."}],` +
	`"attributes":{"customer":"yes","plan":"pro","customer_name":"Ann","open_orders":2,"lookup_error":null}}`

// benchRequest is a chatbot request of the size the node sends.
const benchRequest = `{"chatId":"c1","messageId":"5a7fb3e1-8452-4aee-a7a9-2f0edaeb8e42","userId":"u1","externalId":"",` +
	`"node":{"id":"call","name":"call","type":"WEBHOOK","webhookId":"call","webhookName":"call"},` +
	`"userAttributes":{"default_email":"ann@example.com","default_name":"Ann"},"attributes":{"email":"ann@example.com","plan":"free"}}`

func benchServer(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, benchAnswer)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// BenchmarkWebhookNode runs a chat whose only node is a webhook node calling
// a loopback service (signed request, answer decoded, checked and merged).
// Compare with BenchmarkBareHTTPPost in the same run.
func BenchmarkWebhookNode(b *testing.B) {
	srv := benchServer(b)
	src := fmt.Sprintf("id: s\nstart: call\nnodes:\n  call: {type: webhook, webhook: {url: %q, token: s3cret}}\n", srv.URL)
	reg := nodes.NewRegistry(nodes.Options{Webhooks: webhook.NewClient(webhook.Options{AllowPrivate: true})})
	s, _, err := stories.Load("bench.yaml", []byte(src), stories.Options{Registry: reg})
	if err != nil {
		b.Fatal(err)
	}
	var r engine.Runner
	ctx := context.Background()
	ua := map[string]any{"default_name": "Ann", "default_email": "ann@example.com"}
	attrs := map[string]any{"plan": "free", "email": "ann@example.com"}
	b.ReportAllocs()
	for b.Loop() {
		c := engine.NewChat(s, "c1", "u1", "", ua, attrs)
		if _, err := r.Start(ctx, s, c); err != nil || c.Attributes["plan"] != "pro" {
			b.Fatalf("run: %v, %s %s", err, c.Status, c.Error)
		}
	}
}

// BenchmarkBareHTTPPost is the floor: the same POST and answer with a plain
// net/http client and no webhook logic.
func BenchmarkBareHTTPPost(b *testing.B) {
	srv := benchServer(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	body := []byte(benchRequest)
	b.ReportAllocs()
	for b.Loop() {
		req, err := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadAll(resp.Body); err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}
