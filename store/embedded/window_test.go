package embedded

import (
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/storyflow/storyflow/engine"
)

func entries(from, to int64) []engine.Entry {
	var list []engine.Entry
	for s := from; s <= to; s++ {
		list = append(list, engine.Entry{Seq: s, From: "user"})
	}
	return list
}

// check fails unless w holds the seqs up to seq, at most MaxTranscript.
func check(t *testing.T, w []engine.Entry, seq int64) {
	t.Helper()
	want := min(int64(engine.MaxTranscript), seq)
	if int64(len(w)) != want {
		t.Fatalf("window of %d entries, want %d", len(w), want)
	}
	for i, e := range w {
		if e.Seq != seq-want+1+int64(i) {
			t.Fatalf("entry %d has seq %d, want %d", i, e.Seq, seq-want+1+int64(i))
		}
	}
}

func TestClaimOnce(t *testing.T) {
	c := newChatCache(0)
	c.putWindow("a", 1, 3, entries(1, 3))
	w1, ok := c.getWindow("a", 3)
	if !ok || cap(w1) == len(w1) {
		t.Fatalf("first get: ok %v, len %d cap %d; want room", ok, len(w1), cap(w1))
	}
	w2, _ := c.getWindow("a", 3)
	if cap(w2) != len(w2) {
		t.Fatalf("second get has room (len %d cap %d)", len(w2), cap(w2))
	}
	if _, ok := c.getWindow("a", 2); ok {
		t.Fatal("got a window for another seq")
	}
}

func TestInPlace(t *testing.T) {
	c := newChatCache(0)
	c.putWindow("a", 1, 3, entries(1, 3))
	w, _ := c.getWindow("a", 3)
	w = append(w, entries(4, 5)...)
	last := &w[len(w)-1]
	c.putWindow("a", 2, 5, w)
	got, ok := c.getWindow("a", 5)
	if !ok {
		t.Fatal("no window after put")
	}
	check(t, got, 5)
	if &got[len(got)-1] != last {
		t.Error("the window was copied; want the claimant's entries taken in place")
	}
	if cap(got) == len(got) {
		t.Error("the room was not freed by the put")
	}
}

func TestOtherPutWhileClaimed(t *testing.T) {
	c := newChatCache(0)
	c.putWindow("a", 1, 3, entries(1, 3))
	claimant, _ := c.getWindow("a", 3)
	other, _ := c.getWindow("a", 3)
	other = append(other, engine.Entry{Seq: 4, From: "bot"})
	c.putWindow("a", 2, 4, other)
	// The claimant (whose turn lost) writes its room: the cache must not
	// have handed it to anyone else.
	claimant = append(claimant, engine.Entry{Seq: 4, From: "user"})
	got, _ := c.getWindow("a", 4)
	check(t, got, 4)
	if got[3].From != "bot" {
		t.Errorf("entry 4 is from %q: the claimant's write reached the window", got[3].From)
	}
	next := append(got, engine.Entry{Seq: 5, From: "bot"})
	if claimant[3].From != "user" {
		t.Errorf("the claimant's entry changed to %q", claimant[3].From)
	}
	c.putWindow("a", 3, 5, next)
	got, _ = c.getWindow("a", 5)
	check(t, got, 5)
}

func TestTrimAndRoomRunsOut(t *testing.T) {
	c := newChatCache(0)
	seq := int64(engine.MaxTranscript + 10)
	c.putWindow("a", 1, seq, entries(1, seq))
	rev := int64(1)
	for range 200 {
		w, ok := c.getWindow("a", seq)
		if !ok {
			t.Fatalf("no window at seq %d", seq)
		}
		check(t, w, seq)
		w = append(w, entries(seq+1, seq+3)...) // copies when there is no room
		seq += 3
		rev++
		c.putWindow("a", rev, seq, w)
	}
	w, _ := c.getWindow("a", seq)
	check(t, w, seq)
}

func TestOlderPutIgnored(t *testing.T) {
	c := newChatCache(0)
	c.putWindow("a", 5, 10, entries(1, 10))
	c.putWindow("a", 4, 9, entries(1, 9))
	if _, ok := c.getWindow("a", 10); !ok {
		t.Fatal("an older put replaced the window")
	}
	if w, ok := c.window("a"); !ok || w.rev != 5 || w.seq != 10 {
		t.Fatalf("window after an older put: %+v, %v", w, ok)
	}
}

// TestConcurrent runs turns (get, append, put) beside readers; run with
// -race, it fails if a reader can see a write.
func TestConcurrent(t *testing.T) {
	c := newChatCache(0)
	c.putWindow("a", 1, 1, entries(1, 1))
	var mu sync.Mutex // the chat's turn lock
	seq, rev := int64(1), int64(1)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				mu.Lock()
				w, ok := c.getWindow("a", seq)
				if !ok {
					mu.Unlock()
					t.Error("window missing")
					return
				}
				w = append(w, entries(seq+1, seq+2)...)
				seq += 2
				rev++
				c.putWindow("a", rev, seq, w)
				mu.Unlock()
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var w []engine.Entry // read again while turns append
			for i := range 2000 {
				if i%50 == 0 {
					mu.Lock()
					s := seq
					mu.Unlock()
					w, _ = c.getWindow("a", s)
				}
				for i := 1; i < len(w); i++ {
					if w[i].Seq != w[i-1].Seq+1 {
						t.Errorf("window not in order at %d", i)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

// TestEntryBytesFields fails when a transcript entry's types gain fields:
// entryBytes must weigh them.
func TestEntryBytesFields(t *testing.T) {
	for _, c := range []struct {
		typ    reflect.Type
		fields int
	}{
		{reflect.TypeFor[engine.Entry](), 9},
		{reflect.TypeFor[engine.Step](), 5},
		{reflect.TypeFor[engine.Input](), 3},
		{reflect.TypeFor[engine.Response](), 9},
		{reflect.TypeFor[engine.Button](), 4},
		{reflect.TypeFor[engine.Card](), 4},
		{reflect.TypeFor[engine.Call](), 6},
	} {
		if n := c.typ.NumField(); n != c.fields {
			t.Errorf("%s has %d fields, not %d: check entryBytes weighs the new ones", c.typ, n, c.fields)
		}
	}
	e := engine.Entry{From: "bot", Response: &engine.Response{Type: "text", Message: strings.Repeat("m", 1000)},
		Call: &engine.Call{Format: "messages", Metadata: map[string]any{"k": strings.Repeat("v", 1000)}}}
	if n := entryBytes(&e); n < 2000 || n > 2500 {
		t.Errorf("entryBytes = %d for an entry holding some 2000 bytes", n)
	}
}

// TestWindowWeights: a window's weights stay those of its entries, and
// its payload their sum, through appends in place, copies into the room
// and new buffers (which take the old weights of the entries they keep).
func TestWindowWeights(t *testing.T) {
	c := newChatCache(0)
	text := func(s int64) string { return strings.Repeat("x", int(s%7)*10) }
	var tr []engine.Entry
	add := func(from, to int64) {
		for s := from; s <= to; s++ {
			tr = append(tr, engine.Entry{Seq: s, From: "user", Input: &engine.Input{Text: text(s)}})
		}
	}
	add(1, 3)
	c.putWindow("a", 1, 3, tr)
	seq, rev := int64(3), int64(1)
	for turn := range 200 {
		w, ok := c.getWindow("a", seq)
		if !ok {
			t.Fatalf("turn %d: no window at %d", turn, seq)
		}
		tr = w
		n := int64(1 + turn%5)
		add(seq+1, seq+n)
		seq, rev = seq+n, rev+1
		if turn%3 == 0 {
			c.getWindow("a", seq-n) // a reader takes no room
		}
		c.putWindow("a", rev, seq, tr)
		cw, _ := c.window("a")
		if len(cw.weights) != len(cw.buf) {
			t.Fatalf("turn %d: %d weights for %d entries", turn, len(cw.weights), len(cw.buf))
		}
		sum := 0
		for i := range cw.buf {
			want := entryBytes(&cw.buf[i])
			if int(cw.weights[i]) != want {
				t.Fatalf("turn %d: entry %d (seq %d) weighs %d, want %d", turn, i, cw.buf[i].Seq, cw.weights[i], want)
			}
			sum += want
		}
		if cw.payload != sum {
			t.Fatalf("turn %d: payload %d, want %d", turn, cw.payload, sum)
		}
		tr = slices.Clip(tr)
	}
}
