package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// eventSink is a receiver of event webhooks on loopback. While hold is
// set it keeps requests waiting (and answers nothing).
type eventSink struct {
	mu      sync.Mutex
	hold    bool
	release chan struct{}
	// ids of (chat, count) keys, and every id seen with how often.
	byKey map[string]string
	seen  map[string]int
	dup   []string
	after int // 2xx answers given
}

func newEventSink() *eventSink {
	return &eventSink{release: make(chan struct{}), byKey: map[string]string{}, seen: map[string]int{}}
}

func (s *eventSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var p struct {
		ID, Event string
		Data      struct {
			ChatID     string         `json:"chatId"`
			Attributes map[string]any `json:"attributes"`
		}
	}
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, "bad json", 400)
		return
	}
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold {
		select {
		case <-s.release:
		case <-r.Context().Done():
		}
		return
	}
	key := fmt.Sprintf("%s %s %v", p.Event, p.Data.ChatID, p.Data.Attributes["count"])
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.byKey[key]; ok && id != p.ID {
		s.dup = append(s.dup, key+": "+id+" and "+p.ID)
	}
	s.byKey[key] = p.ID
	s.seen[p.ID]++
	s.after++
}

// TestServeEventsSurviveKill9: turns run while the receiver takes nothing,
// the server is killed with SIGKILL with their events queued, and after the
// restart every acknowledged turn's event arrives, a duplicate only ever
// under the same id.
func TestServeEventsSurviveKill9(t *testing.T) {
	sink := newEventSink()
	sink.hold = true
	rcv := httptest.NewServer(sink)
	defer rcv.Close()
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"--data", data, "--stories", storiesDir(t), "--allow-private-webhooks"}
	srv := startServe(t, args...)
	mustCall(t, srv.url, "POST", "/v1/event-webhooks", map[string]any{"url": rcv.URL, "events": []string{"conversation.created", "conversation.updated"}}, 201)

	const chats, turns = 4, 25
	want := map[string]bool{}
	for c := 0; c < chats; c++ {
		id := mustCall(t, srv.url, "POST", "/v1/chats", map[string]any{"storyId": "counter"}, 201)["chatId"].(string)
		want[fmt.Sprintf("conversation.created %s <nil>", id)] = true
		for i := 0; i < turns; i++ {
			a := mustCall(t, srv.url, "POST", "/v1/chats/"+id+"/messages", map[string]any{"text": fmt.Sprintf("m%d", i)}, 200)
			want[fmt.Sprintf("conversation.updated %s %v", id, a["attributes"].(map[string]any)["count"])] = true
		}
	}
	srv.kill()
	sink.mu.Lock()
	sink.hold = false
	sink.mu.Unlock()
	close(sink.release)
	if sink.after != 0 {
		t.Fatalf("%d events were accepted before the kill", sink.after)
	}

	srv = startServe(t, args...)
	deadline := time.Now().Add(60 * time.Second)
	for {
		sink.mu.Lock()
		missing := 0
		for k := range want {
			if _, ok := sink.byKey[k]; !ok {
				missing++
			}
		}
		sink.mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events never arrived after the restart\n%s", missing, len(want), srv.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.dup) > 0 {
		t.Errorf("one event arrived under two ids: %v", sink.dup)
	}
	if len(sink.byKey) != len(want) {
		t.Errorf("%d distinct events arrived, want %d", len(sink.byKey), len(want))
	}
	t.Logf("%d events queued at kill -9 all arrived after the restart (%d requests)", len(want), sink.after)
}

// TestServeEventsTwoProcessesOneMongo: two servers share one FerretDB and
// a subscription; turns go to both; every event arrives once (normal
// operation: no crash, so no duplicate) and each chat's in order.
func TestServeEventsTwoProcessesOneMongo(t *testing.T) {
	uri := mongoURI(t)
	var mu sync.Mutex
	seen := map[string]int{}
	order := map[string][]float64{} // chat → counts in arrival order
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			ID, Event string
			Data      struct {
				ChatID     string         `json:"chatId"`
				Attributes map[string]any `json:"attributes"`
			}
		}
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &p)
		mu.Lock()
		seen[p.ID]++
		if p.Event == "conversation.updated" {
			c, _ := p.Data.Attributes["count"].(float64)
			order[p.Data.ChatID] = append(order[p.Data.ChatID], c)
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()
	stories := storiesDir(t)
	a := startServe(t, "--mongo", uri, "--stories", stories, "--data", t.TempDir(), "--allow-private-webhooks")
	b := startServe(t, "--mongo", uri, "--stories", stories, "--data", t.TempDir(), "--allow-private-webhooks")
	mustCall(t, a.url, "POST", "/v1/event-webhooks", map[string]any{"url": rcv.URL, "events": []string{"*"}}, 201)

	const chats, turns = 4, 15
	want := 0
	var wg sync.WaitGroup
	for c := 0; c < chats; c++ {
		id := mustCall(t, a.url, "POST", "/v1/chats", map[string]any{"storyId": "counter"}, 201)["chatId"].(string)
		want++ // conversation.created
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < turns; i++ {
				srv := a
				if i%2 == 1 {
					srv = b
				}
				mustCall(t, srv.url, "POST", "/v1/chats/"+id+"/messages", map[string]any{"text": fmt.Sprintf("m%d", i)}, 200)
			}
		}()
		want += turns
	}
	wg.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events arrived\nA:\n%s\nB:\n%s", n, want, a.logs, b.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // a duplicate would come now
	mu.Lock()
	defer mu.Unlock()
	for id, k := range seen {
		if k != 1 {
			t.Errorf("event %s arrived %d times", id, k)
		}
	}
	if len(seen) != want {
		t.Errorf("%d distinct events, want %d", len(seen), want)
	}
	for chat, counts := range order {
		for i := range counts {
			if counts[i] != float64(i+1) {
				t.Errorf("chat %s: conversation.updated counts arrived as %v", chat, counts)
				break
			}
		}
	}
}
