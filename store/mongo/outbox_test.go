package mongo_test

import (
	"context"
	"testing"
	"time"

	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/mongo"
	"github.com/storyflow/storyflow/store/storetest"
)

func TestOutbox(t *testing.T) {
	uri := testURI(t)
	storetest.RunOutbox(t, func(t *testing.T) storetest.Opener {
		dbURI := freshDatabase(t, uri)
		return func() (store.Store, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return mongo.Open(ctx, dbURI)
		}
	})
}
