package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/storyflow/storyflow/store"
)

var _ store.Pinger = (*Store)(nil)

// Ping implements store.Pinger: a ping command to the primary.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("ping mongodb: %w", err)
	}
	return nil
}
