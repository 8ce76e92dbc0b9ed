// Command events is an example receiver of storyflow's event webhooks: it
// checks each request's signature, drops events it has seen (by id: a
// delivery may repeat) and logs the rest. Standard library only.
//
//	EVENTS_SECRET=whsec go run ./examples/backends/events -addr 127.0.0.1:8083
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Event is what storyflow POSTs.
type Event struct {
	ID        string         `json:"id"`
	Event     string         `json:"event"`
	Timestamp time.Time      `json:"timestamp"`
	Data      map[string]any `json:"data"`
	WebhookID string         `json:"webhookId"`
}

// maxSkew is how far a request's timestamp may be from now.
const maxSkew = 5 * time.Minute

// Verify checks the X-Storyflow-Signature of body: "sha256=" and the hex
// HMAC-SHA256 of "<timestamp>.<body>" keyed by the subscription's secret.
func Verify(secret, timestamp, signature string, body []byte, now time.Time) bool {
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(secs, 0)); d > maxSkew || d < -maxSkew {
		return false
	}
	got, err := hex.DecodeString(strings.TrimPrefix(signature, "sha256="))
	if err != nil || !strings.HasPrefix(signature, "sha256=") {
		return false
	}
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(timestamp + "."))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

// Receiver handles event webhooks; Handle is called once per event id.
type Receiver struct {
	Secret string
	Handle func(Event)

	mu   sync.Mutex
	seen map[string]bool // a real service keeps this in its database
}

func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	if rc.Secret != "" && !Verify(rc.Secret, r.Header.Get("X-Storyflow-Timestamp"), r.Header.Get("X-Storyflow-Signature"), body, time.Now()) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" {
		http.Error(w, "not an event", http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	if rc.seen == nil {
		rc.seen = map[string]bool{}
	}
	dup := rc.seen[ev.ID]
	rc.seen[ev.ID] = true
	rc.mu.Unlock()
	if !dup && rc.Handle != nil {
		rc.Handle(ev)
	}
	w.WriteHeader(http.StatusNoContent) // answer fast: storyflow waits at most 10s
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8083", "listen address")
	secret := flag.String("secret", os.Getenv("EVENTS_SECRET"), "the subscription's secret (env EVENTS_SECRET)")
	flag.Parse()
	rc := &Receiver{Secret: *secret, Handle: func(ev Event) {
		log.Printf("event %s %s data=%v", ev.ID, ev.Event, ev.Data)
	}}
	log.Printf("events receiver on http://%s", *addr)
	log.Fatal(http.ListenAndServe(*addr, rc))
}
