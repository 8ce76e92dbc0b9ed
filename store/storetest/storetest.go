// Package storetest is the behaviour suite every store.Store implementation
// must pass.
package storetest

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// Opener opens one storage location; opening it again after Close gives the
// same data.
type Opener func() (store.Store, error)

// Fresh makes a new, empty storage location (cleaned up with t) and returns
// its Opener.
type Fresh func(t *testing.T) Opener

// Run runs the suite; each test gets its own fresh location.
func Run(t *testing.T, fresh Fresh) {
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"StoryVersions", testStoryVersions},
		{"StoryDelete", testStoryDelete},
		{"StoryList", testStoryList},
		{"ChatCreateGet", testChatCreateGet},
		{"ChatUpdate", testChatUpdate},
		{"ChatUpdateRace", testChatUpdateRace},
		{"Replies", testReplies},
		{"RepliesBounded", testRepliesBounded},
		{"ListChats", testListChats},
		{"Connections", testConnections},
		{"ConnectionErrors", testConnectionErrors},
		{"ConcurrentIncrements", testConcurrentIncrements},
		{"Transcript", testTranscript},
		{"TranscriptOutOfSequence", testTranscriptOutOfSequence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, open(t, fresh(t)))
		})
	}
	t.Run("Reopen", func(t *testing.T) { testReopen(t, fresh(t)) })
}

func open(t *testing.T, o Opener) store.Store {
	t.Helper()
	s, err := o()
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

func ms(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// newChat makes a chat with the shapes the engine stores: nested attributes
// (numbers as JSON decodes them) and a transcript with a response.
func newChat(id, storyID string, status engine.Status) *engine.Chat {
	t := ms(time.Now())
	return &engine.Chat{
		ID: id, StoryID: storyID, StoryVersion: 2, Node: "ask", Status: status, UserID: "u-" + id,
		ExternalID: "ext-" + id,
		Attributes: map[string]any{
			"n": float64(0), "name": "Ann", "ok": true, "none": nil,
			"order": map[string]any{"id": "A1", "items": []any{"x", float64(2)}},
		},
		UserAttributes: map[string]any{"email": "ann@example.com"},
		Transcript: []engine.Entry{
			{Seq: 1, From: "user", Input: &engine.Input{Text: "hi"}, Time: t},
			{Seq: 2, From: "bot", Node: "ask", Response: &engine.Response{Type: "text", Message: "Hello"}, Time: t},
		},
		Seq:     2,
		Waiting: true, CreatedAt: t, UpdatedAt: t,
	}
}

// same fails unless got and want encode to the same JSON.
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func testStoryVersions(t *testing.T, s store.Store) {
	ctx := context.Background()
	steps := []struct {
		source      string
		version     int
		created     bool
		wantLatest  int
		description string
	}{
		{"a: 1", 1, true, 1, "first put creates version 1"},
		{"a: 1", 1, false, 1, "identical source keeps version 1"},
		{"a: 2", 2, false, 2, "changed source makes version 2"},
		{"a: 1", 3, false, 3, "older source again is a new version"},
		{"a: 1", 3, false, 3, "identical again keeps version 3"},
	}
	var created time.Time
	for _, st := range steps {
		v, c, err := s.PutStory(ctx, "shop", []byte(st.source))
		must(t, st.description, err)
		if v != st.version || c != st.created {
			t.Errorf("%s: got version %d created %v, want %d %v", st.description, v, c, st.version, st.created)
		}
		r, err := s.GetStory(ctx, "shop", 0)
		must(t, "get latest", err)
		if r.Version != st.wantLatest || string(r.Source) != st.source || r.ID != "shop" || r.Deleted {
			t.Errorf("%s: latest is %+v", st.description, r)
		}
		if created.IsZero() {
			created = r.CreatedAt
		}
		if !r.CreatedAt.Equal(created) || r.UpdatedAt.Before(r.CreatedAt) {
			t.Errorf("%s: createdAt %v updatedAt %v, want createdAt %v kept", st.description, r.CreatedAt, r.UpdatedAt, created)
		}
	}
	for v, src := range map[int]string{1: "a: 1", 2: "a: 2", 3: "a: 1"} {
		r, err := s.GetStory(ctx, "shop", v)
		must(t, "get version", err)
		if r.Version != v || string(r.Source) != src {
			t.Errorf("version %d: got %d %q, want %q", v, r.Version, r.Source, src)
		}
	}
	for _, tc := range []struct {
		id      string
		version int
	}{{"shop", 4}, {"nope", 0}, {"nope", 1}} {
		_, err := s.GetStory(ctx, tc.id, tc.version)
		wantErr(t, fmt.Sprintf("get %s version %d", tc.id, tc.version), err, store.ErrNotFound)
	}
}

func testStoryDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, src := range []string{"v: 1", "v: 2"} {
		_, _, err := s.PutStory(ctx, "faq", []byte(src))
		must(t, "put", err)
	}
	must(t, "delete", s.DeleteStory(ctx, "faq"))
	wantErr(t, "delete again", s.DeleteStory(ctx, "faq"), store.ErrNotFound)
	wantErr(t, "delete unknown", s.DeleteStory(ctx, "nope"), store.ErrNotFound)
	_, err := s.GetStory(ctx, "faq", 0)
	wantErr(t, "get latest of deleted", err, store.ErrNotFound)
	for v := 1; v <= 2; v++ {
		r, err := s.GetStory(ctx, "faq", v)
		must(t, "old versions stay readable", err)
		if r.Version != v || string(r.Source) != fmt.Sprintf("v: %d", v) {
			t.Errorf("version %d after delete: %+v", v, r)
		}
	}
	list, err := s.ListStories(ctx)
	must(t, "list", err)
	if len(list) != 0 {
		t.Errorf("list after delete: %+v", list)
	}
	// Putting the same source again revives the story as a new version.
	v, created, err := s.PutStory(ctx, "faq", []byte("v: 2"))
	must(t, "put after delete", err)
	if v != 3 || !created {
		t.Errorf("put after delete: version %d created %v, want 3 true", v, created)
	}
	r, err := s.GetStory(ctx, "faq", 0)
	must(t, "get revived", err)
	if r.Version != 3 || r.Deleted {
		t.Errorf("revived: %+v", r)
	}
}

func testStoryList(t *testing.T, s store.Store) {
	ctx := context.Background()
	puts := []struct{ id, src string }{
		{"zeta", "z1"}, {"alpha", "a1"}, {"mid", "m1"}, {"alpha", "a2"}, {"gone", "g1"}, {"zeta", "z2"}, {"zeta", "z3"},
	}
	for _, p := range puts {
		_, _, err := s.PutStory(ctx, p.id, []byte(p.src))
		must(t, "put "+p.id, err)
	}
	must(t, "delete", s.DeleteStory(ctx, "gone"))
	list, err := s.ListStories(ctx)
	must(t, "list", err)
	var got []string
	for _, r := range list {
		got = append(got, fmt.Sprintf("%s@%d=%s", r.ID, r.Version, r.Source))
	}
	want := []string{"alpha@2=a2", "mid@1=m1", "zeta@3=z3"}
	if !slices.Equal(got, want) {
		t.Errorf("list: got %v, want %v", got, want)
	}
}

func testChatCreateGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChat("c1", "shop", engine.StatusActive)
	c.Rev = 7 // ignored: a new chat is revision 1
	must(t, "create", s.CreateChat(ctx, c))
	if c.Rev != 1 {
		t.Errorf("rev after create: %d, want 1", c.Rev)
	}
	got, err := s.GetChat(ctx, "c1")
	must(t, "get", err)
	same(t, "chat read back", got, c)

	wantErr(t, "create duplicate", s.CreateChat(ctx, newChat("c1", "other", engine.StatusActive)), store.ErrExists)
	got, err = s.GetChat(ctx, "c1")
	must(t, "get after duplicate", err)
	same(t, "chat unchanged by duplicate create", got, c)

	_, err = s.GetChat(ctx, "nope")
	wantErr(t, "get unknown", err, store.ErrNotFound)
}

func testChatUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChat("c1", "shop", engine.StatusActive)
	must(t, "create", s.CreateChat(ctx, c))
	stale := *c

	c.Node, c.Status, c.Waiting = "done", engine.StatusCompleted, false
	c.Attributes = map[string]any{"n": float64(1)} // keys removed stay removed
	addEntry(c, engine.Entry{From: "bot", Response: &engine.Response{Type: "quickReplies", Message: "Pick", Buttons: []engine.Button{{Type: "postback", Title: "A", Value: "a"}}}, Time: ms(time.Now())})
	addEntry(c, engine.Entry{From: "bot", Node: "ai", Response: &engine.Response{Type: "text", Message: "Sure."}, Time: ms(time.Now()),
		Call: &engine.Call{Format: "messages", Model: "m1", StopReason: "end_turn", InputTokens: 12, OutputTokens: 3,
			Metadata: map[string]any{"model": "m1", "tokens_used": float64(15)}}}) // a webhook call's record
	c.UpdatedAt = ms(time.Now().Add(time.Second))
	must(t, "update", s.UpdateChat(ctx, c, nil))
	if c.Rev != 2 {
		t.Errorf("rev after update: %d, want 2", c.Rev)
	}
	got, err := s.GetChat(ctx, "c1")
	must(t, "get", err)
	same(t, "updated chat", got, c)

	stale.Node = "lost"
	wantErr(t, "stale update", s.UpdateChat(ctx, &stale, nil), store.ErrConflict)
	if stale.Rev != 1 {
		t.Errorf("stale rev changed to %d", stale.Rev)
	}
	got, err = s.GetChat(ctx, "c1")
	must(t, "get after conflict", err)
	same(t, "chat after conflict", got, c)

	wantErr(t, "update unknown", s.UpdateChat(ctx, newChat("nope", "shop", engine.StatusActive), nil), store.ErrNotFound)
}

func testChatUpdateRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	for round := range 5 {
		id := fmt.Sprintf("race%d", round)
		c := newChat(id, "shop", engine.StatusActive)
		must(t, "create", s.CreateChat(ctx, c))
		var wg sync.WaitGroup
		errs := make([]error, 2)
		chats := make([]*engine.Chat, 2)
		for i := range 2 {
			cc := *c
			cc.Node = fmt.Sprintf("writer%d", i)
			cc.Transcript = slices.Clone(c.Transcript)
			addEntry(&cc, engine.Entry{From: "user", Input: &engine.Input{Text: cc.Node}, Time: ms(time.Now())})
			chats[i] = &cc
			wg.Go(func() { errs[i] = s.UpdateChat(ctx, chats[i], &store.Reply{MessageID: cc.Node, Body: []byte(cc.Node)}) })
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner < 0:
				winner = i
			case err == nil:
				t.Fatalf("round %d: both updaters from rev 1 won", round)
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("round %d: updater %d: %v", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no updater won: %v", round, errs)
		}
		got, err := s.GetChat(ctx, id)
		must(t, "get", err)
		same(t, "winner stored", got, chats[winner])
		loser := chats[1-winner].Node
		if _, ok, err := s.GetReply(ctx, id, loser); err != nil || ok {
			t.Errorf("round %d: loser's reply remembered (ok %v, err %v)", round, ok, err)
		}
		tr, err := s.GetTranscript(ctx, id, 0, 0)
		must(t, "get transcript", err)
		same(t, "transcript of the winner", tr, chats[winner].Transcript)
	}
}

func testReplies(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChat("c1", "shop", engine.StatusActive)
	must(t, "create", s.CreateChat(ctx, c))
	must(t, "create other", s.CreateChat(ctx, newChat("c2", "shop", engine.StatusActive)))

	body := []byte(`{"status":"active","responses":[{"type":"text","message":"hé"}]}`)
	must(t, "update with reply", s.UpdateChat(ctx, c, &store.Reply{MessageID: "m1", Body: body}))
	must(t, "update without reply", s.UpdateChat(ctx, c, nil))
	must(t, "update with reply", s.UpdateChat(ctx, c, &store.Reply{MessageID: "m.2$", Body: []byte("two")}))

	tests := []struct {
		chat, message string
		ok            bool
		body          string
	}{
		{"c1", "m1", true, string(body)},
		{"c1", "m.2$", true, "two"},
		{"c1", "m3", false, ""},
		{"c2", "m1", false, ""},
		{"nope", "m1", false, ""},
	}
	for _, tc := range tests {
		got, ok, err := s.GetReply(ctx, tc.chat, tc.message)
		must(t, "get reply", err)
		if ok != tc.ok || string(got) != tc.body {
			t.Errorf("reply %s/%s: got %q %v, want %q %v", tc.chat, tc.message, got, ok, tc.body, tc.ok)
		}
	}
}

// testRepliesBounded: the last MaxReplies replies are kept; older ones are
// forgotten (an implementation may drop them in batches, so only replies
// MaxReplies/2 older than that must be gone).
func testRepliesBounded(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChat("c1", "shop", engine.StatusActive)
	c.Transcript, c.Seq = nil, 0
	must(t, "create", s.CreateChat(ctx, c))
	n := store.MaxReplies + store.MaxReplies/2 + 10
	for i := range n {
		must(t, "update", s.UpdateChat(ctx, c, &store.Reply{MessageID: fmt.Sprintf("m%d", i), Body: fmt.Appendf(nil, "b%d", i)}))
	}
	keep, drop := n-store.MaxReplies, n-store.MaxReplies-store.MaxReplies/2
	for i := range n {
		near := func(b int) bool { return i >= b-3 && i < b+3 }
		if i%10 != 0 && !near(0) && !near(drop) && !near(keep) && !near(n) {
			continue // a sample: lookups can be slow on a test server
		}
		id := fmt.Sprintf("m%d", i)
		body, ok, err := s.GetReply(ctx, "c1", id)
		must(t, "get reply", err)
		switch {
		case i >= keep && (!ok || string(body) != fmt.Sprintf("b%d", i)):
			t.Errorf("reply %s: got %q %v, want it kept", id, body, ok)
		case i < drop && ok:
			t.Errorf("reply %s: still remembered after %d newer ones", id, n-1-i)
		}
	}
	got, err := s.GetChat(ctx, "c1")
	must(t, "get", err)
	same(t, "chat after many updates", got, c)
}

func testListChats(t *testing.T, s store.Store) {
	ctx := context.Background()
	chats := []struct {
		id, story string
		status    engine.Status
	}{
		{"c5", "shop", engine.StatusActive},
		{"c1", "shop", engine.StatusCompleted},
		{"c3", "faq", engine.StatusActive},
		{"c2", "shop", engine.StatusActive},
		{"c4", "faq", engine.StatusHandoff},
	}
	for _, c := range chats {
		must(t, "create", s.CreateChat(ctx, newChat(c.id, c.story, engine.StatusActive)))
		if c.status != engine.StatusActive {
			// The status filter must see updates, not the status at create.
			got, err := s.GetChat(ctx, c.id)
			must(t, "get", err)
			got.Status = c.status
			must(t, "update", s.UpdateChat(ctx, got, nil))
		}
	}
	tests := []struct {
		name   string
		filter store.ChatFilter
		want   []string
	}{
		{"all", store.ChatFilter{}, []string{"c1", "c2", "c3", "c4", "c5"}},
		{"story", store.ChatFilter{StoryID: "shop"}, []string{"c1", "c2", "c5"}},
		{"status", store.ChatFilter{Status: engine.StatusActive}, []string{"c2", "c3", "c5"}},
		{"story and status", store.ChatFilter{StoryID: "faq", Status: engine.StatusHandoff}, []string{"c4"}},
		{"no match", store.ChatFilter{StoryID: "nope"}, nil},
		{"limit", store.ChatFilter{Limit: 2}, []string{"c1", "c2"}},
		{"after", store.ChatFilter{After: "c2"}, []string{"c3", "c4", "c5"}},
		{"after missing id", store.ChatFilter{After: "c25"}, []string{"c3", "c4", "c5"}},
		{"after with filter and limit", store.ChatFilter{StoryID: "shop", After: "c1", Limit: 1}, []string{"c2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			list, err := s.ListChats(ctx, tc.filter)
			must(t, "list", err)
			var got []string
			for _, c := range list {
				got = append(got, c.ID)
				if c.Rev == 0 || c.UserID != "u-"+c.ID {
					t.Errorf("chat %s listed incomplete: %+v", c.ID, c)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

var hexID = regexp.MustCompile(`^[0-9a-f]{24}$`)

func testConnections(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := &store.Connection{StoryID: "shop", Name: "Orders", URL: "https://example.com/orders", Token: "tok",
		Headers: map[string]string{"X-Key": "k"}, Auth: &store.BasicAuth{Username: "u", Password: "p"}, MaxInFlight: 8}
	must(t, "create", s.CreateConnection(ctx, a))
	if !hexID.MatchString(a.ID) {
		t.Errorf("id %q is not 24 hex digits", a.ID)
	}
	if a.CreatedAt.IsZero() || !a.UpdatedAt.Equal(a.CreatedAt) {
		t.Errorf("times not set: %v %v", a.CreatedAt, a.UpdatedAt)
	}
	b := &store.Connection{ID: "0000000000000000000000ff", StoryID: "faq", Name: "FAQ", URL: "https://example.com/faq"}
	must(t, "create with id", s.CreateConnection(ctx, b))
	c := &store.Connection{StoryID: "shop", Name: "Stock", URL: "https://example.com/stock"}
	must(t, "create", s.CreateConnection(ctx, c))
	if a.ID == c.ID {
		t.Errorf("two connections got id %s", a.ID)
	}
	wantErr(t, "create duplicate id", s.CreateConnection(ctx, &store.Connection{ID: b.ID, Name: "x"}), store.ErrExists)

	got, err := s.GetConnection(ctx, a.ID)
	must(t, "get", err)
	same(t, "connection read back", got, a)

	byID := func(cs ...*store.Connection) []store.Connection {
		var out []store.Connection
		for _, c := range cs {
			out = append(out, *c)
		}
		slices.SortFunc(out, func(x, y store.Connection) int { return cmp.Compare(x.ID, y.ID) })
		return out
	}
	list, err := s.ListConnections(ctx, "")
	must(t, "list", err)
	same(t, "list all", list, byID(a, b, c))
	list, err = s.ListConnections(ctx, "shop")
	must(t, "list shop", err)
	same(t, "list shop", list, byID(a, c))
	list, err = s.ListConnections(ctx, "nope")
	must(t, "list none", err)
	if len(list) != 0 {
		t.Errorf("list none: %+v", list)
	}

	time.Sleep(2 * time.Millisecond)
	must(t, "set error", s.SetConnectionError(ctx, a.ID, "timeout"))
	upd := store.Connection{ID: a.ID, StoryID: "faq", Name: "Orders 2", URL: "https://example.com/v2", Error: "ignored"}
	must(t, "update", s.UpdateConnection(ctx, &upd))
	got, err = s.GetConnection(ctx, a.ID)
	must(t, "get updated", err)
	if !got.CreatedAt.Equal(a.CreatedAt) || !got.UpdatedAt.After(a.UpdatedAt) {
		t.Errorf("times after update: created %v updated %v (was %v %v)", got.CreatedAt, got.UpdatedAt, a.CreatedAt, a.UpdatedAt)
	}
	want := store.Connection{ID: a.ID, StoryID: "faq", Name: "Orders 2", URL: "https://example.com/v2", Error: "timeout",
		CreatedAt: got.CreatedAt, UpdatedAt: got.UpdatedAt}
	same(t, "updated connection (headers, auth, token cleared; error kept)", got, want)
	same(t, "update sets the caller's copy", upd, want)

	must(t, "delete", s.DeleteConnection(ctx, a.ID))
	_, err = s.GetConnection(ctx, a.ID)
	wantErr(t, "get deleted", err, store.ErrNotFound)
	wantErr(t, "delete again", s.DeleteConnection(ctx, a.ID), store.ErrNotFound)
	wantErr(t, "update deleted", s.UpdateConnection(ctx, &store.Connection{ID: a.ID, Name: "x"}), store.ErrNotFound)
	list, err = s.ListConnections(ctx, "")
	must(t, "list after delete", err)
	same(t, "list after delete", list, byID(b, c))
}

func testConnectionErrors(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := &store.Connection{StoryID: "shop", Name: "Orders", URL: "https://example.com"}
	must(t, "create", s.CreateConnection(ctx, c))
	for _, msg := range []string{"status 500", "verification failed: challenge not echoed", ""} {
		must(t, "set error", s.SetConnectionError(ctx, c.ID, msg))
		got, err := s.GetConnection(ctx, c.ID)
		must(t, "get", err)
		if got.Error != msg {
			t.Errorf("error: got %q, want %q", got.Error, msg)
		}
		if got.Name != "Orders" || got.URL != c.URL {
			t.Errorf("set error changed other fields: %+v", got)
		}
	}
	wantErr(t, "set error of unknown", s.SetConnectionError(ctx, "nope", "x"), store.ErrNotFound)
}

// testConcurrentIncrements: read-modify-write with retry on conflict loses
// no update.
func testConcurrentIncrements(t *testing.T, s store.Store) {
	ctx := context.Background()
	const workers, each = 20, 10
	c := newChat("count", "shop", engine.StatusActive)
	must(t, "create", s.CreateChat(ctx, c))
	var wg sync.WaitGroup
	var conflicts atomic.Int64
	errs := make(chan error, workers)
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				for attempt := 0; ; attempt++ {
					c, err := s.GetChat(ctx, "count")
					if err != nil {
						errs <- err
						return
					}
					c.Attributes["n"] = c.Attributes["n"].(float64) + 1
					err = s.UpdateChat(ctx, c, &store.Reply{MessageID: fmt.Sprintf("w%d-%d", w, i), Body: []byte("ok")})
					if errors.Is(err, store.ErrConflict) {
						conflicts.Add(1)
						// Back off, as callers should: a random wait, growing.
						time.Sleep(time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 5))))
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					break
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("worker: %v", err)
	}
	t.Logf("%d updates, %d conflicts retried, in %v", workers*each, conflicts.Load(), time.Since(start).Round(time.Millisecond))
	got, err := s.GetChat(ctx, "count")
	must(t, "get", err)
	if n := got.Attributes["n"]; n != float64(workers*each) || got.Rev != workers*each+1 {
		t.Errorf("after %d increments: n = %v, rev = %d", workers*each, n, got.Rev)
	}
	for _, id := range []string{"w0-9", "w19-9", "w7-3"} {
		if _, ok, err := s.GetReply(ctx, "count", id); err != nil || !ok {
			t.Errorf("reply %s not remembered (ok %v, err %v)", id, ok, err)
		}
	}
}

// addEntry appends e as c's next transcript entry, as the engine does.
func addEntry(c *engine.Chat, e engine.Entry) {
	c.Seq++
	e.Seq = c.Seq
	c.Transcript = append(c.Transcript, e)
}

// window is what GetChat returns of a transcript.
func window(tr []engine.Entry) []engine.Entry {
	return tr[max(0, len(tr)-engine.MaxTranscript):]
}

// testTranscript: every entry ever added stays readable in order with
// paging, while GetChat returns the recent window.
func testTranscript(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChat("c1", "shop", engine.StatusActive)
	all := slices.Clone(c.Transcript)
	must(t, "create", s.CreateChat(ctx, c))
	c2 := newChat("c2", "shop", engine.StatusActive)
	must(t, "create other", s.CreateChat(ctx, c2))
	turns := engine.MaxTranscript/2 + 15
	for i := range turns {
		// A turn as the engine makes it: an input, one to three responses,
		// the transcript trimmed to the window.
		n0 := len(c.Transcript)
		addEntry(c, engine.Entry{From: "user", Node: "ask", Input: &engine.Input{Text: fmt.Sprint(i)}, Time: ms(time.Now())})
		if i%4 == 1 { // what a webhook node notes (engine.Turn.Note)
			addEntry(c, engine.Entry{From: "node", Node: "check", Data: map[string]any{"webhook": "crm", "status": float64(200),
				"attributes": map[string]any{"plan": "pro", "gone": nil, "n": float64(i)}}, Time: ms(time.Now())})
		}
		for k := range 1 + i%3 {
			addEntry(c, engine.Entry{From: "bot", Node: "ask", Response: &engine.Response{Type: "text", Message: fmt.Sprintf("r%d.%d", i, k)}, Time: ms(time.Now())})
		}
		added := len(c.Transcript) - n0
		all = append(all, c.Transcript[len(c.Transcript)-added:]...)
		c.Transcript = window(c.Transcript)
		if i%5 == 0 {
			// Also from a fresh read, as another turn would.
			got, err := s.GetChat(ctx, "c1")
			must(t, "get", err)
			got.Transcript = append(got.Transcript, c.Transcript[len(c.Transcript)-added:]...)
			got.Seq, got.Node = c.Seq, c.Node
			c = got
		}
		must(t, "update", s.UpdateChat(ctx, c, nil))
	}
	got, err := s.GetChat(ctx, "c1")
	must(t, "get", err)
	same(t, "window", got.Transcript, window(all))
	if got.Seq != int64(len(all)) {
		t.Errorf("seq %d, want %d", got.Seq, len(all))
	}
	n := int64(len(all))
	tests := []struct {
		name  string
		after int64
		limit int
		want  []engine.Entry
	}{
		{"all", 0, 0, all},
		{"first page", 0, 10, all[:10]},
		{"next page", 10, 10, all[10:20]},
		{"last page", n - 3, 10, all[n-3:]},
		{"after the end", n, 10, nil},
		{"negative after", -5, 2, all[:2]},
	}
	for _, tc := range tests {
		tr, err := s.GetTranscript(ctx, "c1", tc.after, tc.limit)
		must(t, tc.name, err)
		if len(tr) != len(tc.want) {
			t.Errorf("%s: %d entries, want %d", tc.name, len(tr), len(tc.want))
			continue
		}
		same(t, tc.name, tr, tc.want)
	}
	other, err := s.GetTranscript(ctx, "c2", 0, 0)
	must(t, "other chat", err)
	same(t, "other chat's transcript", other, c2.Transcript)
	_, err = s.GetTranscript(ctx, "nope", 0, 0)
	wantErr(t, "unknown chat", err, store.ErrNotFound)
}

// testTranscriptOutOfSequence: an update whose new entries do not run on
// from the stored ones is refused and writes nothing.
func testTranscriptOutOfSequence(t *testing.T, s store.Store) {
	ctx := context.Background()
	c := newChat("c1", "shop", engine.StatusActive)
	must(t, "create", s.CreateChat(ctx, c))
	bad := []struct {
		name string
		edit func(c *engine.Chat)
	}{
		{"seq ahead of the entries", func(c *engine.Chat) { c.Seq = 4 }},
		{"gap", func(c *engine.Chat) {
			c.Transcript = append(c.Transcript, engine.Entry{Seq: 4, From: "user", Input: &engine.Input{Text: "x"}})
			c.Seq = 4
		}},
	}
	for _, tc := range bad {
		cc := *c
		cc.Transcript = slices.Clone(c.Transcript)
		tc.edit(&cc)
		err := s.UpdateChat(ctx, &cc, nil)
		wantErr(t, tc.name, err, store.ErrTranscript)
		if cc.Rev != 1 {
			t.Errorf("%s: rev moved to %d", tc.name, cc.Rev)
		}
	}
	got, err := s.GetChat(ctx, "c1")
	must(t, "get", err)
	same(t, "chat unchanged", got, c)
}

func testReopen(t *testing.T, o Opener) {
	ctx := context.Background()
	s, err := o()
	must(t, "open", err)
	_, _, err = s.PutStory(ctx, "shop", []byte("v1"))
	must(t, "put", err)
	_, _, err = s.PutStory(ctx, "shop", []byte("v2"))
	must(t, "put", err)
	c := newChat("c1", "shop", engine.StatusActive)
	must(t, "create chat", s.CreateChat(ctx, c))
	c.Node = "next"
	addEntry(c, engine.Entry{From: "user", Input: &engine.Input{Text: "next"}, Time: ms(time.Now())})
	must(t, "update chat", s.UpdateChat(ctx, c, &store.Reply{MessageID: "m1", Body: []byte("answer")}))
	conn := &store.Connection{StoryID: "shop", Name: "Orders", URL: "https://example.com"}
	must(t, "create connection", s.CreateConnection(ctx, conn))
	must(t, "close", s.Close())

	s = open(t, o)
	r, err := s.GetStory(ctx, "shop", 0)
	must(t, "get story", err)
	if r.Version != 2 || string(r.Source) != "v2" {
		t.Errorf("story after reopen: %+v", r)
	}
	got, err := s.GetChat(ctx, "c1")
	must(t, "get chat", err)
	same(t, "chat after reopen", got, c)
	tr, err := s.GetTranscript(ctx, "c1", 0, 0)
	must(t, "get transcript", err)
	same(t, "transcript after reopen", tr, c.Transcript)
	body, ok, err := s.GetReply(ctx, "c1", "m1")
	if err != nil || !ok || string(body) != "answer" {
		t.Errorf("reply after reopen: %q %v %v", body, ok, err)
	}
	gc, err := s.GetConnection(ctx, conn.ID)
	must(t, "get connection", err)
	same(t, "connection after reopen", gc, conn)
	// The store keeps working after reopen.
	must(t, "update after reopen", s.UpdateChat(ctx, got, nil))
	if got.Rev != 3 {
		t.Errorf("rev after reopen and update: %d, want 3", got.Rev)
	}
}
