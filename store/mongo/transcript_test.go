package mongo_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/mongo"
)

// openRaw opens a store on a fresh database and a plain driver client on
// the same database.
func openRaw(t *testing.T) (*mongo.Store, *driver.Database) {
	t.Helper()
	uri := freshDatabase(t, testURI(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := mongo.Open(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	c, err := driver.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(context.Background()) })
	name, _ := mongo.DatabaseName(uri)
	return s, c.Database(name)
}

func texts(es []engine.Entry) string {
	var b strings.Builder
	for _, e := range es {
		v := ""
		if e.Input != nil {
			v = e.Input.Text
		} else if e.Response != nil {
			v = e.Response.Message
		}
		fmt.Fprintf(&b, "%d:%s ", e.Seq, v)
	}
	return strings.TrimSpace(b.String())
}

// update adds an input entry to c and stores it.
func update(t *testing.T, s store.Store, c *engine.Chat, text string) {
	t.Helper()
	c.Seq++
	c.Transcript = append(c.Transcript, engine.Entry{Seq: c.Seq, From: "user", Input: &engine.Input{Text: text}})
	c.Transcript = c.Transcript[max(0, len(c.Transcript)-engine.MaxTranscript):]
	if err := s.UpdateChat(context.Background(), c, nil); err != nil {
		t.Fatal(err)
	}
}

// TestLegacyRevision: a revision written before transcripts were kept
// apart (no seq, transcript inline) reads with entries numbered, and the
// first update copies them all.
func TestLegacyRevision(t *testing.T) {
	s, db := openRaw(t)
	ctx := context.Background()
	chat := bson.D{{Key: "storyId", Value: "shop"}, {Key: "node", Value: "ask"}, {Key: "status", Value: "active"},
		{Key: "attributes", Value: bson.D{}}, {Key: "userAttributes", Value: bson.D{}},
		{Key: "transcript", Value: bson.A{
			bson.D{{Key: "from", Value: "bot"}, {Key: "response", Value: bson.D{{Key: "type", Value: "text"}, {Key: "message", Value: "Hi"}}}},
			bson.D{{Key: "from", Value: "user"}, {Key: "input", Value: bson.D{{Key: "text", Value: "yo"}}}},
		}}}
	_, err := db.Collection("chats").InsertOne(ctx, bson.D{{Key: "_id", Value: "old/000000000001"}, {Key: "chatId", Value: "old"},
		{Key: "rev", Value: int64(1)}, {Key: "head", Value: true}, {Key: "storyId", Value: "shop"}, {Key: "status", Value: "active"},
		{Key: "chat", Value: chat}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.GetChat(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if got := texts(c.Transcript); c.Seq != 2 || got != "1:Hi 2:yo" {
		t.Fatalf("legacy chat: seq %d transcript %q", c.Seq, got)
	}
	tr, err := s.GetTranscript(ctx, "old", 1, 0)
	if err != nil || texts(tr) != "2:yo" {
		t.Fatalf("legacy transcript: %q %v", texts(tr), err)
	}
	c.Transcript = c.Transcript[1:] // as if the window had dropped it
	update(t, s, c, "new")
	tr, err = s.GetTranscript(ctx, "old", 0, 0)
	if err != nil || texts(tr) != "1:Hi 2:yo 3:new" {
		t.Fatalf("transcript after the first update: %q %v", texts(tr), err)
	}
}

// TestTranscriptRepair: entries whose copy to transcripts was lost (a
// crash after the compare-and-set) are found in their revisions, by
// GetTranscript and by the sweep before it deletes old revisions.
func TestTranscriptRepair(t *testing.T) {
	s, db := openRaw(t)
	ctx := context.Background()
	c := &engine.Chat{ID: "c", StoryID: "s", Status: engine.StatusActive}
	if err := s.CreateChat(ctx, c); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		update(t, s, c, fmt.Sprint(i))
	}
	lose := func(seqs ...int) {
		t.Helper()
		for _, q := range seqs {
			if _, err := db.Collection("transcripts").DeleteOne(ctx, bson.D{{Key: "_id", Value: fmt.Sprintf("c/%012d", q)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	lose(2, 4)
	tr, err := s.GetTranscript(ctx, "c", 0, 0)
	if err != nil || texts(tr) != "1:0 2:1 3:2 4:3 5:4" {
		t.Fatalf("repaired transcript: %q %v", texts(tr), err)
	}
	n, err := db.Collection("transcripts").CountDocuments(ctx, bson.D{{Key: "chatId", Value: "c"}})
	if err != nil || n != 5 {
		t.Fatalf("%d entries copied back, want 5 (%v)", n, err)
	}

	// The sweep deletes revisions 2.. once MaxReplies newer ones exist:
	// lose revision 3's entry, then run that far.
	lose(2)
	for c.Rev < store.MaxReplies+40 {
		update(t, s, c, fmt.Sprint(c.Seq))
	}
	if n, err := db.Collection("chats").CountDocuments(ctx, bson.D{{Key: "_id", Value: "c/000000000003"}}); err != nil || n != 0 {
		t.Fatalf("revision 3 not swept (%d, %v)", n, err)
	}
	tr, err = s.GetTranscript(ctx, "c", 0, 3)
	if err != nil || texts(tr) != "1:0 2:1 3:2" {
		t.Fatalf("transcript after the sweep: %q %v", texts(tr), err)
	}
}
