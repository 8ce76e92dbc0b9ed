package api

import (
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
)

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
