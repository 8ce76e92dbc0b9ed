package mongo_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/mongo"
)

func rawDB(t *testing.T, uri string) *driver.Database {
	t.Helper()
	c, err := driver.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	name, _ := mongo.DatabaseName(uri)
	return c.Database(name)
}

func openStore(t *testing.T, uri string) *mongo.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := mongo.Open(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestUpsertRace: the store's compare-and-set, an upsert of a new _id with
// $setOnInsert returning the document before, has exactly one winner per
// _id under a race, and the losers see the winner's document or E11000.
// It also logs how a revision-filtered updateOne fares under the same race
// (on FerretDB v1 it loses updates; on MongoDB it does not).
func TestUpsertRace(t *testing.T) {
	db := rawDB(t, freshDatabase(t, testURI(t)))
	ctx := context.Background()
	c := db.Collection("race")
	const workers, rounds = 8, 30
	for r := range rounds {
		id := fmt.Sprintf("x/%012d", r)
		var wg sync.WaitGroup
		won := make([]bool, workers)
		seen := make([]int32, workers)
		errs := make([]error, workers)
		for w := range workers {
			wg.Go(func() {
				res := c.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: "w", Value: int32(w)}}}},
					options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.Before))
				var d struct{ W int32 }
				err := res.Decode(&d)
				switch {
				case errors.Is(err, driver.ErrNoDocuments):
					won[w] = true
				case err == nil:
					seen[w] = d.W + 1
				case !driver.IsDuplicateKeyError(err):
					errs[w] = err
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		winner := slices.Index(won, true)
		if n := len(slices.DeleteFunc(slices.Clone(won), func(b bool) bool { return !b })); n != 1 {
			t.Fatalf("round %d: %d winners", r, n)
		}
		for w, s := range seen {
			if s != 0 && s != int32(winner)+1 {
				t.Fatalf("round %d: loser %d saw the document of %d, winner %d", r, w, s-1, winner)
			}
		}
		var d struct{ W int32 }
		if err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil || d.W != int32(winner) {
			t.Fatalf("round %d: stored %d (%v), winner %d", r, d.W, err, winner)
		}
	}

	// The rejected alternative, for the record.
	u := db.Collection("update_race")
	if _, err := u.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "rev", Value: int64(0)}}); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := 0; i < 10; {
				var d struct{ Rev int64 }
				if err := u.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&d); err != nil {
					t.Error(err)
					return
				}
				res, err := u.UpdateOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "rev", Value: d.Rev}},
					bson.D{{Key: "$inc", Value: bson.D{{Key: "rev", Value: 1}}}})
				if err != nil {
					t.Error(err)
					return
				}
				if res.ModifiedCount == 1 {
					wins.Add(1)
					i++
				}
			}
		})
	}
	wg.Wait()
	var d struct{ Rev int64 }
	u.FindOne(ctx, bson.D{{Key: "_id", Value: "a"}}).Decode(&d)
	t.Logf("updateOne({_id, rev}) race: %d updates reported won, rev moved by %d (%d lost)", wins.Load(), d.Rev, wins.Load()-d.Rev)
}

// addTurn adds one input entry with text n (the new value of attribute n)
// to c, or none when empty.
func addTurn(c *engine.Chat, empty bool) {
	n := c.Attributes["n"].(float64) + 1
	c.Attributes["n"] = n
	if !empty {
		c.Seq++
		c.Transcript = append(c.Transcript, engine.Entry{Seq: c.Seq, From: "user", Input: &engine.Input{Text: strconv.Itoa(int(n))}})
		c.Transcript = c.Transcript[max(0, len(c.Transcript)-engine.MaxTranscript):]
	}
}

// TestTwoStores: two processes (stores) increment one chat concurrently,
// with message ids; every increment, reply and entry is there once.
func TestTwoStores(t *testing.T) {
	uri := freshDatabase(t, testURI(t))
	a, b := openStore(t, uri), openStore(t, uri)
	ctx := context.Background()
	if err := a.CreateChat(ctx, &engine.Chat{ID: "c", StoryID: "s", Status: engine.StatusActive, Attributes: map[string]any{"n": float64(0)}}); err != nil {
		t.Fatal(err)
	}
	const each = 10
	var wg sync.WaitGroup
	var conflicts atomic.Int64
	for w, s := range []*mongo.Store{a, a, b, b} {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				for attempt := 0; ; attempt++ {
					if attempt > 200 {
						t.Errorf("%s: too many conflicts", id)
						return
					}
					if _, ok, err := s.GetReply(ctx, "c", id); err != nil || ok {
						t.Errorf("%s: reply before the turn: %v %v", id, ok, err)
						return
					}
					c, err := s.GetChat(ctx, "c")
					if err != nil {
						t.Error(err)
						return
					}
					addTurn(c, false)
					err = s.UpdateChat(ctx, c, &store.Reply{MessageID: id, Body: []byte(id)})
					if errors.Is(err, store.ErrConflict) {
						conflicts.Add(1)
						time.Sleep(time.Duration(attempt%5) * time.Millisecond)
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const total = 4 * each
	t.Logf("%d increments from two stores, %d conflicts", total, conflicts.Load())
	for _, s := range []*mongo.Store{a, b, openStore(t, uri)} {
		c, err := s.GetChat(ctx, "c")
		if err != nil {
			t.Fatal(err)
		}
		if c.Attributes["n"] != float64(total) || c.Rev != total+1 || c.Seq != total {
			t.Errorf("after %d increments: n %v rev %d seq %d", total, c.Attributes["n"], c.Rev, c.Seq)
		}
		for w := range 4 {
			id := fmt.Sprintf("w%d-%d", w, each-1)
			if body, ok, err := s.GetReply(ctx, "c", id); err != nil || !ok || string(body) != id {
				t.Errorf("reply %s: %q %v %v", id, body, ok, err)
			}
		}
		tr, err := s.GetTranscript(ctx, "c", 0, 0)
		if err != nil || len(tr) != total {
			t.Fatalf("transcript: %d entries, %v", len(tr), err)
		}
		for i, e := range tr {
			if e.Seq != int64(i+1) || e.Input.Text != strconv.Itoa(i+1) {
				t.Fatalf("entry %d: %+v", i, e)
			}
		}
	}
}

// TestReplySeenLate: process B looks message m up in its cached chat (not
// there), A answers m, a GetChat on B catches B's cache up, and B's turn
// for m then runs on the chat that holds A's answer. B's UpdateChat must
// refuse it (ErrConflict), so that the retry finds A's answer: m is
// answered once. Before the check, B stored a second turn for m.
func TestReplySeenLate(t *testing.T) {
	uri := freshDatabase(t, testURI(t))
	a, b := openStore(t, uri), openStore(t, uri)
	ctx := context.Background()
	if err := a.CreateChat(ctx, &engine.Chat{ID: "c", StoryID: "s", Status: engine.StatusActive, Attributes: map[string]any{"n": float64(0)}}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.GetReply(ctx, "c", "m"); err != nil || ok {
		t.Fatalf("B: reply before any turn: %v %v", ok, err)
	}
	c, err := a.GetChatForTurn(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	addTurn(c, false)
	if err := a.UpdateChat(ctx, c, &store.Reply{MessageID: "m", Body: []byte("first")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetChat(ctx, "c"); err != nil { // a reader on B
		t.Fatal(err)
	}
	c, err = b.GetChatForTurn(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	addTurn(c, false)
	if err := b.UpdateChat(ctx, c, &store.Reply{MessageID: "m", Body: []byte("second")}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("B stored a second turn for m: %v", err)
	}
	if body, ok, err := b.GetReply(ctx, "c", "m"); err != nil || !ok || string(body) != "first" {
		t.Fatalf("B's retry: %q %v %v, want A's answer", body, ok, err)
	}
	// Another message id still goes through on the same revision.
	if err := b.UpdateChat(ctx, c, &store.Reply{MessageID: "m2", Body: []byte("m2")}); err != nil {
		t.Fatal(err)
	}
	got, err := openStore(t, uri).GetChat(ctx, "c")
	if err != nil || got.Attributes["n"] != float64(2) || got.Rev != 3 {
		t.Fatalf("chat after m and m2: %+v %v", got, err)
	}
}

// TestLongChat: after many turns (the last 200 revisions holding fewer
// than MaxTranscript entries), a process that has not seen the chat reads
// the same chat, window, replies and transcript; the compactions removed
// the head fields of the revisions before.
func TestLongChat(t *testing.T) {
	uri := freshDatabase(t, testURI(t))
	db := rawDB(t, uri)
	ctx := context.Background()
	a := openStore(t, uri)
	c := &engine.Chat{ID: "long", StoryID: "s", Status: engine.StatusActive, Attributes: map[string]any{"n": float64(0)}}
	if err := a.CreateChat(ctx, c); err != nil {
		t.Fatal(err)
	}
	var all []engine.Entry
	step := func(c *engine.Chat, k int) {
		// Turns 100 to 299 add no entry.
		addTurn(c, k >= 100 && k < 300 || k%7 == 3)
		if len(c.Transcript) > 0 && (len(all) == 0 || c.Transcript[len(c.Transcript)-1].Seq > all[len(all)-1].Seq) {
			all = append(all, c.Transcript[len(c.Transcript)-1])
		}
	}
	if err := a.Seed(ctx, c, 300, step); err != nil {
		t.Fatal(err)
	}
	const turns = 340
	for k := 300; k < turns; k++ {
		step(c, k)
		if err := a.UpdateChat(ctx, c, &store.Reply{MessageID: fmt.Sprint("m", k), Body: fmt.Append(nil, k)}); err != nil {
			t.Fatal(err)
		}
	}
	a.Close() // waits for compactions
	heads, _ := db.Collection("turns").CountDocuments(ctx, bson.D{{Key: "chatId", Value: "long"}, {Key: "head", Value: true},
		{Key: "rev", Value: bson.D{{Key: "$gte", Value: 260}}}})
	if heads != 2 {
		t.Errorf("%d revisions from 260 to %d have head fields, want 2 (the last and the one after the last compaction)", heads, c.Rev)
	}

	b := openStore(t, uri)
	got, err := b.GetChat(ctx, "long")
	if err != nil {
		t.Fatal(err)
	}
	want := *c
	want.Transcript = all[max(0, len(all)-engine.MaxTranscript):]
	if got.Rev != want.Rev || got.Seq != want.Seq || got.Attributes["n"] != want.Attributes["n"] || !slices.EqualFunc(got.Transcript, want.Transcript, sameEntry) {
		t.Errorf("cold read: rev %d seq %d n %v, %d entries; want rev %d seq %d n %v, %d entries", got.Rev, got.Seq, got.Attributes["n"],
			len(got.Transcript), want.Rev, want.Seq, want.Attributes["n"], len(want.Transcript))
	}
	for _, k := range []int{turns - 1, 300} {
		if body, ok, err := b.GetReply(ctx, "long", fmt.Sprint("m", k)); err != nil || !ok || string(body) != fmt.Sprint(k) {
			t.Errorf("reply m%d: %q %v %v", k, body, ok, err)
		}
	}
	tr, err := b.GetTranscript(ctx, "long", 0, 0)
	if err != nil || !slices.EqualFunc(tr, all, sameEntry) {
		t.Errorf("transcript: %d entries, want %d (%v)", len(tr), len(all), err)
	}
	tr, err = b.GetTranscript(ctx, "long", 50, 7)
	if err != nil || !slices.EqualFunc(tr, all[50:57], sameEntry) {
		t.Errorf("transcript page: %v (%v)", tr, err)
	}
	// The store goes on from the cold read.
	addTurn(got, false)
	if err := b.UpdateChat(ctx, got, nil); err != nil {
		t.Fatal(err)
	}
}

func sameEntry(a, b engine.Entry) bool {
	return a.Seq == b.Seq && a.Input != nil && b.Input != nil && a.Input.Text == b.Input.Text
}

// TestKill9: a child process updates chats through the store and prints
// each acknowledged revision; after SIGKILL a new store finds every
// acknowledged update, its reply and its transcript entry.
func TestKill9(t *testing.T) {
	const env = "STORYFLOW_MONGO_KILL_URI"
	if uri := os.Getenv(env); uri != "" {
		killChild(uri)
		return
	}
	uri := freshDatabase(t, testURI(t))
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9$", "-test.count=1")
	cmd.Env = append(os.Environ(), env+"="+uri)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int64{}
	lines := 0
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(60 * time.Second)
	for lines < 150 && time.Now().Before(deadline) && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ack" {
			continue
		}
		rev, _ := strconv.ParseInt(f[2], 10, 64)
		acked[f[1]] = max(acked[f[1]], rev)
		lines++
	}
	cmd.Process.Kill()
	cmd.Wait()
	if lines < 150 {
		t.Fatalf("child acknowledged only %d updates", lines)
	}
	s := openStore(t, uri)
	ctx := context.Background()
	for id, rev := range acked {
		// The child's last, unacknowledged upsert may still be running on
		// the server after the kill: read the chat and its transcript
		// until the chat's revision holds still around the transcript.
		var c *engine.Chat
		var tr []engine.Entry
		for range 20 {
			c0, err := s.GetChat(ctx, id)
			if err != nil {
				t.Fatalf("chat %s: %v", id, err)
			}
			if tr, err = s.GetTranscript(ctx, id, 0, 0); err != nil {
				t.Fatalf("chat %s: transcript: %v", id, err)
			}
			if c, err = s.GetChat(ctx, id); err != nil {
				t.Fatalf("chat %s: %v", id, err)
			}
			if c.Rev == c0.Rev {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if c.Rev < rev || c.Attributes["n"] != float64(c.Rev-1) {
			t.Errorf("chat %s: rev %d (acknowledged %d), n %v", id, c.Rev, rev, c.Attributes["n"])
		}
		if body, ok, err := s.GetReply(ctx, id, fmt.Sprint("m", rev)); rev > 1 && (err != nil || !ok || string(body) != fmt.Sprint(rev)) {
			t.Errorf("chat %s: reply of rev %d: %q %v %v", id, rev, body, ok, err)
		}
		if int64(len(tr)) != c.Rev-1 {
			t.Errorf("chat %s at rev %d: %d entries", id, c.Rev, len(tr))
			continue
		}
		for i, e := range tr {
			if e.Seq != int64(i+1) || e.Input.Text != strconv.Itoa(i+1) {
				t.Errorf("chat %s: entry %d is %+v", id, i, e)
				break
			}
		}
	}
	t.Logf("%d acknowledged updates over %d chats survived SIGKILL", lines, len(acked))
}

func killChild(uri string) {
	s, err := mongo.Open(context.Background(), uri)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := time.Now().Add(time.Minute)
	for i := range 4 {
		wg.Go(func() {
			c := &engine.Chat{ID: fmt.Sprint("chat", i), StoryID: "s", Status: engine.StatusActive, Attributes: map[string]any{"n": float64(0)}}
			err := s.CreateChat(ctx, c)
			for err == nil && time.Now().Before(stop) {
				mu.Lock()
				fmt.Printf("ack %s %d\n", c.ID, c.Rev)
				mu.Unlock()
				addTurn(c, false)
				err = s.UpdateChat(ctx, c, &store.Reply{MessageID: fmt.Sprint("m", c.Rev+1), Body: fmt.Append(nil, c.Rev+1)})
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}
