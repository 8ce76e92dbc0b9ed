package api

import (
	"fmt"
	"testing"
	"time"
)

// TestLimiterStorageBound: a limiter keeps at most limiterBytes of keys
// and counters, however many clients it sees.
func TestLimiterStorageBound(t *testing.T) {
	l := newLimiterStorage(time.Minute)
	val := make([]byte, 4<<10)
	for i := range 8_000 { // 32 MiB offered
		if err := l.Set(fmt.Sprintf("ip-%d", i), val, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	l.c.CleanUp()
	if got := l.c.WeightedSize(); got > limiterBytes {
		t.Errorf("limiter holds %d bytes, want at most %d", got, limiterBytes)
	}
	if err := l.Set("k", []byte{1}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, _ := l.Get("k"); len(v) != 1 {
		t.Errorf("Get after Set = %v", v)
	}
	l.Delete("k")
	if v, _ := l.Get("k"); v != nil {
		t.Errorf("Get after Delete = %v", v)
	}
}
