package mongo_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/mongo"
	"github.com/storyflow/storyflow/store/storetest"
)

// testURI returns MONGODB_TEST_URI. Unset, the test fails in CI (CI set)
// and is skipped only locally.
func testURI(t testing.TB) string {
	t.Helper()
	uri := os.Getenv("MONGODB_TEST_URI")
	if uri != "" {
		return uri
	}
	const how = `MONGODB_TEST_URI is not set; start a test server with eval "$(tools/mongotest/start.sh)" (stop it with tools/mongotest/stop.sh), or run make test`
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		t.Fatal(how + " (CI is set: the MongoDB store must be tested)")
	}
	t.Skip(how)
	return ""
}

// withDatabase replaces the database in a mongodb:// URI.
func withDatabase(uri, db string) (string, error) {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return "", fmt.Errorf("uri %q has no scheme", uri)
	}
	hosts, query := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		hosts = rest[:i]
		if j := strings.IndexByte(rest, '?'); j >= 0 {
			query = rest[j:]
		}
	}
	return scheme + "://" + hosts + "/" + db + query, nil
}

func TestWithDatabase(t *testing.T) {
	tests := []struct{ uri, want string }{
		{"mongodb://127.0.0.1:27017/", "mongodb://127.0.0.1:27017/t1"},
		{"mongodb://127.0.0.1:27017", "mongodb://127.0.0.1:27017/t1"},
		{"mongodb://u:p@h1:1,h2:2/old?replicaSet=rs&w=majority", "mongodb://u:p@h1:1,h2:2/t1?replicaSet=rs&w=majority"},
		{"mongodb://h?w=1", "mongodb://h/t1?w=1"},
	}
	for _, tc := range tests {
		got, err := withDatabase(tc.uri, "t1")
		if err != nil || got != tc.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tc.uri, got, err, tc.want)
		}
	}
}

func TestDatabaseName(t *testing.T) {
	tests := []struct{ uri, want string }{
		{"mongodb://127.0.0.1:27017/", "storyflow"},
		{"mongodb://127.0.0.1:27017", "storyflow"},
		{"mongodb://127.0.0.1:27017/bots?w=majority", "bots"},
	}
	for _, tc := range tests {
		got, err := mongo.DatabaseName(tc.uri)
		if err != nil || got != tc.want {
			t.Errorf("DatabaseName(%q) = %q, %v; want %q", tc.uri, got, err, tc.want)
		}
	}
	if _, err := mongo.DatabaseName("http://x"); err == nil {
		t.Error("DatabaseName accepted an http URI")
	}
}

var (
	runID  = randomHex()
	dbSeq  atomic.Int64
	prefix = "storyflow_test_"
)

func randomHex() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// freshDatabase names a new database for this run, dropped after t.
func freshDatabase(t testing.TB, uri string) string {
	t.Helper()
	name := fmt.Sprintf("%s%s_%d", prefix, runID, dbSeq.Add(1))
	dbURI, err := withDatabase(uri, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := driver.Connect(options.Client().ApplyURI(uri))
		if err != nil {
			t.Errorf("connect to drop %s: %v", name, err)
			return
		}
		defer c.Disconnect(ctx)
		if err := c.Database(name).Drop(ctx); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	return dbURI
}

func TestSuite(t *testing.T) {
	uri := testURI(t)
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		dbURI := freshDatabase(t, uri)
		return func() (store.Store, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return mongo.Open(ctx, dbURI)
		}
	})
}

// TestIndexes checks Open creates the indexes, and a second Open (another
// server process) accepts them.
func TestIndexes(t *testing.T) {
	uri := freshDatabase(t, testURI(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 2 {
		s, err := mongo.Open(ctx, uri)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	c, err := driver.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(ctx)
	name, _ := mongo.DatabaseName(uri)
	want := map[string][]string{
		"stories":     {"storyId_version"},
		"turns":       {"chatId_seq", "head_chatId_rev", "head_storyId_chatId_rev", "head_userId_chatId_rev", "outbox_outboxAt"},
		"connections": {"storyId"},
		"outbox":      {"outbox_outboxAt"},
		"deliveries":  {"event_stream", "status_order", "status_updatedAt", "subscriptionId_createdAt"},
	}
	for coll, names := range want {
		specs, err := c.Database(name).Collection(coll).Indexes().ListSpecifications(ctx)
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		for _, s := range specs {
			have[s.Name] = true
			if s.Name == "storyId_version" && (s.Unique == nil || !*s.Unique) {
				t.Errorf("%s.%s is not unique", coll, s.Name)
			}
			// outbox_outboxAt is created sparse; FerretDB v1 does not keep the option.
		}
		for _, n := range names {
			if !have[n] {
				t.Errorf("%s: index %s missing (have %v)", coll, n, have)
			}
		}
	}
}

func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens there.
	if s, err := mongo.Open(ctx, "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500"); err == nil {
		s.Close()
		t.Fatal("open of an unreachable server succeeded")
	}
}
