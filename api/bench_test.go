package api_test

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkMessage measures turns over HTTP on the embedded store: each
// goroutine talks to its own chat (a question and a set node per turn),
// starting a new chat every 20 messages so that transcripts stay short.
func BenchmarkMessage(b *testing.B) {
	e := newEnv(b)
	e.putStory("counter", counterStory)
	var n atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := ""
		for i := 0; pb.Next(); i++ {
			if i%20 == 0 {
				id = e.startChat("counter")["chatId"].(string)
			}
			r, err := e.try("POST", "/v1/chats/"+id+"/messages", fmt.Sprintf(`{"text":"m%d"}`, n.Add(1)), "Bearer "+token)
			if err != nil || r.status != 200 {
				b.Errorf("message: %v %d %s", err, r.status, r.body)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "turns/s")
}
