package mongo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/mongo"
)

// counter counts the commands a store sends and their bytes (the command
// documents, without the wire header), but not the driver's handshakes.
type counter struct {
	mu    sync.Mutex
	cmds  int
	bytes int
	names map[string]int
	// compact is the bytes of update commands: the background compaction.
	compact int
}

func (c *counter) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{Started: func(_ context.Context, e *event.CommandStartedEvent) {
		switch strings.ToLower(e.CommandName) {
		case "hello", "ismaster", "endsessions", "ping", "buildinfo", "getlasterror", "saslstart", "saslcontinue":
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.cmds++
		c.bytes += len(e.Command)
		if c.names == nil {
			c.names = map[string]int{}
		}
		c.names[e.CommandName]++
		if e.CommandName == "update" {
			c.compact += len(e.Command)
		}
	}}
}

func (c *counter) read() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmds, c.bytes
}

// turnBytes is the bytes sent but for the background compactions.
func (c *counter) turnBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes - c.compact
}

func openCounted(t *testing.T, uri string) (*mongo.Store, *counter) {
	t.Helper()
	c := &counter{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := mongo.OpenWith(ctx, uri, mongo.Options{Monitor: c.monitor()})
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

// turn runs one turn as the API does (api.Server.turn): GetReply for the
// message id, GetChatForTurn, a change, UpdateChat with the reply; again on a
// conflict.
func turn(ctx context.Context, s store.Store, id string, i int, msgID bool) error {
	mid := fmt.Sprintf("m%06d", i)
	for attempt := 0; attempt < 64; attempt++ {
		if msgID {
			if _, ok, err := s.GetReply(ctx, id, mid); err != nil || ok {
				return fmt.Errorf("get reply %s: ok %v, %v", mid, ok, err)
			}
		}
		c, err := s.(*mongo.Store).GetChatForTurn(ctx, id)
		if err != nil {
			return err
		}
		step(c, i)
		var reply *store.Reply
		if msgID {
			reply = &store.Reply{MessageID: mid, Body: fmt.Appendf(nil, `{"status":"active","responses":[{"type":"text","message":"you said hello %06d"}]}`, i)}
		}
		err = s.UpdateChat(ctx, c, reply)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("turn %d: 64 conflicts", i)
}

// step is turn i's change to c: attribute n counts turns, the node
// alternates, an input and a response of constant size are added.
func step(c *engine.Chat, i int) {
	c.Attributes["n"] = c.Attributes["n"].(float64) + 1
	c.Node = fmt.Sprintf("node%d", i%2)
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	for _, e := range []engine.Entry{
		{From: "user", Node: c.Node, Input: &engine.Input{Text: fmt.Sprintf("hello %06d", i)}, Time: at},
		{From: "bot", Node: c.Node, Response: &engine.Response{Type: "text", Message: fmt.Sprintf("you said hello %06d", i)}, Time: at},
	} {
		c.Seq++
		e.Seq = c.Seq
		c.Transcript = append(c.Transcript, e)
	}
	c.Transcript = c.Transcript[max(0, len(c.Transcript)-engine.MaxTranscript):]
	c.UpdatedAt = at
}

func costChat(id string) *engine.Chat {
	t := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	return &engine.Chat{ID: id, StoryID: "shop", StoryVersion: 3, Node: "start", Status: engine.StatusActive, UserID: "user-" + id,
		Attributes: map[string]any{"n": float64(0), "plan": "pro", "name": "Ada"}, UserAttributes: map[string]any{"lang": "en"},
		Waiting: true, CreatedAt: t, UpdatedAt: t}
}

// TestTurnCost checks the MongoDB cost of a turn with the driver's command
// monitor: on average at most 1.2 commands per turn on a chat served by
// one process (with message ids), at most 3 when two processes alternate
// on one chat, and at most 2 KB sent per plain turn, the same at turn 10
// and turn 1,000.
func TestTurnCost(t *testing.T) {
	uri := freshDatabase(t, testURI(t))
	ctx := context.Background()

	t.Run("one process", func(t *testing.T) {
		s, n := openCounted(t, uri)
		if err := s.CreateChat(ctx, costChat("one")); err != nil {
			t.Fatal(err)
		}
		const turns = 100
		c0, _ := n.read()
		for i := range turns {
			if err := turn(ctx, s, "one", i, true); err != nil {
				t.Fatal(err)
			}
		}
		s.Close() // waits for the background compactions
		c1, _ := n.read()
		per := float64(c1-c0) / turns
		t.Logf("one process, message ids: %.3f commands/turn over %d turns (%v)", per, turns, n.names)
		if per > 1.2 {
			t.Errorf("%.3f commands per turn, want at most 1.2", per)
		}
	})

	t.Run("two processes alternate", func(t *testing.T) {
		a, na := openCounted(t, uri)
		b, nb := openCounted(t, uri)
		defer a.Close()
		defer b.Close()
		if err := a.CreateChat(ctx, costChat("two")); err != nil {
			t.Fatal(err)
		}
		if err := turn(ctx, b, "two", 0, true); err != nil { // b reads the chat once
			t.Fatal(err)
		}
		const turns = 40
		ca, _ := na.read()
		cb, _ := nb.read()
		for i := 1; i <= turns; i++ {
			s := a
			if i%2 == 0 {
				s = b
			}
			if err := turn(ctx, s, "two", i, true); err != nil {
				t.Fatal(err)
			}
		}
		a.Close()
		b.Close()
		ca1, _ := na.read()
		cb1, _ := nb.read()
		per := float64(ca1-ca+cb1-cb) / turns
		t.Logf("two processes alternating: %.3f commands/turn over %d turns (a %v, b %v)", per, turns, na.names, nb.names)
		if per > 3 {
			t.Errorf("%.3f commands per turn, want at most 3", per)
		}
		s, err := mongo.Open(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		c, err := s.GetChat(ctx, "two")
		if err != nil || c.Attributes["n"] != float64(turns+1) || c.Rev != turns+2 {
			t.Fatalf("after %d alternating turns: %v rev %v, %v", turns+1, c.Attributes, c.Rev, err)
		}
	})

	t.Run("bytes per plain turn", func(t *testing.T) {
		s, n := openCounted(t, uri)
		defer s.Close()
		if err := s.CreateChat(ctx, costChat("long")); err != nil {
			t.Fatal(err)
		}
		bytesAt := map[int]int{}
		measure := func(i int) {
			b0 := n.turnBytes()
			if err := turn(ctx, s, "long", i, false); err != nil {
				t.Fatal(err)
			}
			bytesAt[i] = n.turnBytes() - b0
		}
		for i := 1; i <= 10; i++ {
			measure(i)
		}
		// Turns 11 to 998 are stored in one insertMany (as UpdateChat would
		// store them): FerretDB scans its collection on every write.
		c, err := s.GetChat(ctx, "long")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Seed(ctx, c, 988, func(c *engine.Chat, k int) { step(c, 11+k) }); err != nil {
			t.Fatal(err)
		}
		measure(999) // reads the chat again: the cache is stale
		measure(1000)
		b10, b1000 := bytesAt[10], bytesAt[1000]
		t.Logf("bytes sent per plain turn: %d at turn 10, %d at turn 1000", b10, b1000)
		got, err := s.GetChat(ctx, "long")
		if err != nil || got.Rev != 1001 || got.Seq != 2000 || got.Attributes["n"] != float64(1000) {
			t.Fatalf("after 1000 turns: rev %d seq %d n %v (%v)", got.Rev, got.Seq, got.Attributes["n"], err)
		}
		if b10 > 2048 || b1000 > 2048 {
			t.Errorf("more than 2 KB per turn")
		}
		if d := float64(b1000-b10) / float64(b10); d > 0.1 || d < -0.1 {
			t.Errorf("bytes per turn grew by %.0f%% from turn 10 to 1000", d*100)
		}
	})
}
