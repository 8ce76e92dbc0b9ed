package api

import (
	"context"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// turnStore is a store with a cached read for turns, as the MongoDB store.
type turnStore struct {
	store.Store
	forTurn, get int
}

func (s *turnStore) GetChatForTurn(ctx context.Context, id string) (*engine.Chat, error) {
	s.forTurn++
	return &engine.Chat{ID: id}, nil
}

func (s *turnStore) GetChat(ctx context.Context, id string) (*engine.Chat, error) {
	s.get++
	return &engine.Chat{ID: id}, nil
}

// TestTimedStoreTurnRead: the metrics wrapper passes GetChatForTurn
// through to a store that has it (it used to hide it, so every turn on
// MongoDB read its chat from the database), and is GetChat otherwise.
func TestTimedStoreTurnRead(t *testing.T) {
	m := newMetrics()
	inner := &turnStore{}
	s := &Server{st: &timedStore{Store: inner, secs: &m.storeCache}}
	if _, err := s.chatForTurn(context.Background(), "c"); err != nil || inner.forTurn != 1 || inner.get != 0 {
		t.Fatalf("turn read: GetChatForTurn %d times, GetChat %d times, %v", inner.forTurn, inner.get, err)
	}
	plain := &turnStore{}
	s = &Server{st: &timedStore{Store: struct{ store.Store }{plain}, secs: &m.storeCache}}
	if _, err := s.chatForTurn(context.Background(), "c"); err != nil || plain.forTurn != 0 || plain.get != 1 {
		t.Fatalf("a store without GetChatForTurn: GetChatForTurn %d times, GetChat %d times, %v", plain.forTurn, plain.get, err)
	}
}

// BenchmarkMetricsPerTurn: what the metrics add to a turn of two nodes with
// a chat read and write, once the series exist.
func BenchmarkMetricsPerTurn(b *testing.B) {
	m := newMetrics()
	c := &engine.Chat{StoryID: "counter", Status: engine.StatusActive}
	ts := &timedStore{secs: &m.storeCache}
	b.ReportAllocs()
	for b.Loop() {
		m.NodeRan("question", time.Microsecond, nil)
		m.NodeRan("set", time.Microsecond, nil)
		m.TurnEnded(c, nil)
		began := time.Now()
		ts.observe("get_chat", began, nil)
		ts.observe("update_chat", began, nil)
		m.requestCache.with("/v1/chats/:chatId/messages", "POST", "200").Inc()
	}
}
