package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestServeThreeProcessesOneMongo runs three servers on one FerretDB and
// puts concurrent load on shared chats: each message goes to two servers
// at once with the same messageId (and every third is retried on the
// third server afterwards), while other clients send plain messages and
// read the chats. Every messageId is answered once with one answer, no
// update is lost (the counter equals the acknowledged turns, and each
// turn's answer carries its own count), each input is once in the
// transcript, and each event is delivered once, in order per chat.
func TestServeThreeProcessesOneMongo(t *testing.T) {
	uri := mongoURI(t)
	var evMu sync.Mutex
	evSeen := map[string]int{}         // event id → deliveries
	evCounts := map[string][]float64{} // chat → counts of conversation.updated in arrival order
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			ID, Event string
			Data      struct {
				ChatID     string         `json:"chatId"`
				Attributes map[string]any `json:"attributes"`
			}
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &p); err != nil || p.ID == "" {
			t.Errorf("event receiver: %s: %v", body, err)
		}
		evMu.Lock()
		evSeen[p.ID]++
		if p.Event == "conversation.updated" && evSeen[p.ID] == 1 {
			c, _ := p.Data.Attributes["count"].(float64)
			evCounts[p.Data.ChatID] = append(evCounts[p.Data.ChatID], c)
		}
		evMu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()

	stories := storiesDir(t)
	var procs []*serveProc
	for range 3 {
		procs = append(procs, startServe(t, "--mongo", uri, "--stories", stories, "--data", t.TempDir(),
			"--allow-private-webhooks", "--log-level", "debug"))
	}
	logs := func() string {
		var b strings.Builder
		for i, p := range procs {
			fmt.Fprintf(&b, "--- logs of server %d:\n%s", i, p.logs)
		}
		return b.String()
	}
	mustCall(t, procs[0].url, "POST", "/v1/event-webhooks", map[string]any{"url": rcv.URL, "events": []string{"*"}}, 201)

	const (
		chats   = 3
		workers = 2 // per chat, each sending its messages with ids to two servers at once
		msgs    = 6 // per worker
		plain   = 4 // per chat, messages without id, one server each
	)
	ids := make([]string, chats)
	for c := range ids {
		ids[c] = mustCall(t, procs[c%3].url, "POST", "/v1/chats", map[string]any{"storyId": "counter"}, 201)["chatId"].(string)
	}

	type ack struct {
		text  string
		count float64
	}
	began := time.Now()
	var mu sync.Mutex // guards acks, retried
	acks := make([][]ack, chats)
	retried := 0
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for c := range chats {
		path := "/v1/chats/" + ids[c] + "/messages"
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range msgs {
					text := fmt.Sprintf("c%d-w%d-%d", c, w, i)
					body := map[string]any{"text": text, "messageId": "id-" + text}
					first, second := procs[(w+i)%3], procs[(w+i+1)%3]
					var a, b []byte
					var inner sync.WaitGroup
					inner.Add(2)
					go func() { defer inner.Done(); a = sendUntilAnswered(t, first.url, path, body) }()
					go func() { defer inner.Done(); b = sendUntilAnswered(t, second.url, path, body) }()
					inner.Wait()
					if a == nil || b == nil {
						return
					}
					if !bytes.Equal(a, b) {
						t.Errorf("%s: two servers gave two answers:\n%s\n%s", text, a, b)
					}
					if i%3 == 0 {
						// A late retry on the third server.
						if r := sendUntilAnswered(t, procs[(w+i+2)%3].url, path, body); r != nil && !bytes.Equal(r, a) {
							t.Errorf("%s: the retry on a third server gave another answer:\n%s\n%s", text, a, r)
						}
						mu.Lock()
						retried++
						mu.Unlock()
					}
					mu.Lock()
					acks[c] = append(acks[c], ack{text, answerCount(t, a)})
					mu.Unlock()
				}
			}()
		}
		wg.Add(1)
		go func() { // plain messages, no id: one server each
			defer wg.Done()
			for i := range plain {
				text := fmt.Sprintf("c%d-plain-%d", c, i)
				code, a, err := post(procs[(c+i)%3].url, path, map[string]any{"text": text})
				if err != nil || code != 200 {
					t.Errorf("%s: %d %s %v", text, code, a, err)
					return
				}
				mu.Lock()
				acks[c] = append(acks[c], ack{text, answerCount(t, a)})
				mu.Unlock()
			}
		}()
	}
	// Readers on every server while the turns run: GET refreshes a
	// server's cached chat in the middle of its turns.
	var readers sync.WaitGroup
	for _, p := range procs {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if code, m, err := call(p.url, "GET", "/v1/chats/"+ids[i%chats]+"?limit=1", nil); err != nil || code != 200 {
					t.Errorf("GET chat: %d %v %v", code, m, err)
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	turnTime := time.Since(began)
	if t.Failed() {
		t.Fatal(logs())
	}

	turns := 0
	for c, id := range ids {
		want := len(acks[c])
		turns += want
		counts := map[float64]string{}
		for _, a := range acks[c] {
			if prev, ok := counts[a.count]; ok {
				t.Errorf("chat %d: %s and %s both answered with count %v (a lost update)", c, prev, a.text, a.count)
			}
			counts[a.count] = a.text
		}
		for k := 1; k <= want; k++ {
			if _, ok := counts[float64(k)]; !ok {
				t.Errorf("chat %d: no answer with count %d of %d", c, k, want)
			}
		}
		for _, p := range procs {
			chat := mustCall(t, p.url, "GET", "/v1/chats/"+id, nil, 200)
			if got := chat["attributes"].(map[string]any)["count"]; got != float64(want) {
				t.Errorf("chat %d on %s: count %v after %d acknowledged turns", c, p.url, got, want)
			}
		}
		inputs := transcriptInputs(t, procs[c%3].url, id)
		for _, a := range acks[c] {
			if inputs[a.text] != 1 {
				t.Errorf("chat %d: %s is %d times in the transcript", c, a.text, inputs[a.text])
			}
		}
		if len(inputs) != want {
			t.Errorf("chat %d: %d inputs in the transcript, %d acknowledged", c, len(inputs), want)
		}
	}

	// Events: conversation.created per chat and conversation.updated per
	// turn, each delivered once, each chat's in order.
	wantEvents := chats + turns
	deadline := time.Now().Add(40 * time.Second)
	for {
		evMu.Lock()
		n := len(evSeen)
		evMu.Unlock()
		if n >= wantEvents || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	eventTime := time.Since(began) - turnTime
	time.Sleep(500 * time.Millisecond) // a duplicate would come now
	evMu.Lock()
	defer evMu.Unlock()
	if len(evSeen) != wantEvents {
		t.Errorf("%d distinct events arrived, want %d", len(evSeen), wantEvents)
	}
	for id, k := range evSeen {
		if k != 1 {
			t.Errorf("event %s arrived %d times", id, k)
		}
	}
	for c, id := range ids {
		got := evCounts[id]
		ok := len(got) == len(acks[c])
		for i := 0; ok && i < len(got); i++ {
			ok = got[i] == float64(i+1)
		}
		if !ok {
			t.Errorf("chat %d: conversation.updated counts arrived as %v, want 1…%d in order", c, got, len(acks[c]))
		}
	}
	races := strings.Count(logs(), "lost a race")
	t.Logf("%d turns acknowledged over %d chats on 3 servers in %v (%d retried on a third server), %d events (the last %v later); %d turns run again after losing a race",
		turns, chats, turnTime.Round(time.Millisecond), retried, len(evSeen), eventTime.Round(time.Millisecond), races)
	if t.Failed() {
		t.Log(logs())
	}
}

// post sends a JSON body with the token and returns the answer's bytes.
func post(base, path string, body any) (int, []byte, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest("POST", base+path, bytes.NewReader(data))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+serveToken)
	req.Header.Set("Content-Type", "application/json")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	return res.StatusCode, out, err
}

// sendUntilAnswered sends a message with an id as a client does: again
// (same id) after a 503 busy, until answered. nil after an error.
func sendUntilAnswered(t *testing.T, base, path string, body map[string]any) []byte {
	for range 5 {
		code, a, err := post(base, path, body)
		switch {
		case err == nil && code == 200:
			return a
		case err == nil && code == 503:
			t.Logf("%s: busy, sending again: %s", body["text"], a)
			continue
		}
		t.Errorf("%s on %s: %d %s %v", body["text"], base, code, a, err)
		return nil
	}
	t.Errorf("%s on %s: busy 5 times", body["text"], base)
	return nil
}

// answerCount is the count attribute of a turn's answer.
func answerCount(t *testing.T, answer []byte) float64 {
	var a struct {
		Attributes map[string]any `json:"attributes"`
	}
	if err := json.Unmarshal(answer, &a); err != nil {
		t.Errorf("answer %s: %v", answer, err)
	}
	c, _ := a.Attributes["count"].(float64)
	return c
}

// transcriptInputs counts each user text in a chat's whole transcript,
// paging through it.
func transcriptInputs(t *testing.T, base, id string) map[string]int {
	t.Helper()
	out := map[string]int{}
	after := 0.0
	for {
		chat := mustCall(t, base, "GET", fmt.Sprintf("/v1/chats/%s?after=%d&limit=50", id, int64(after)), nil, 200)
		tr, _ := chat["transcript"].([]any)
		if len(tr) == 0 {
			return out
		}
		for _, e := range tr {
			m := e.(map[string]any)
			if in, ok := m["input"].(map[string]any); ok {
				text, _ := in["text"].(string)
				out[text]++
			}
			after = m["seq"].(float64)
		}
	}
}
