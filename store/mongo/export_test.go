package mongo

import (
	"context"

	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// Seed stores n more revisions of c, each after step(c, k) for k from 0,
// as n UpdateChat calls would but in one insertMany: tests need long chats
// fast (FerretDB scans its collection on every write). The cached chat is
// marked stale.
func (s *Store) Seed(ctx context.Context, c *engine.Chat, n int, step func(c *engine.Chat, k int)) error {
	docs := make([]any, 0, n)
	for k := range n {
		seq := c.Seq
		step(c, k)
		entries, err := store.NewEntries(c.Transcript, seq, c.Seq)
		if err != nil {
			return err
		}
		raw, err := newTurn(c, c.Rev+1, entries, nil, nil, false)
		if err != nil {
			return err
		}
		doc, err := withID(revKey(c.ID, c.Rev+1), raw)
		if err != nil {
			return err
		}
		docs = append(docs, doc)
		c.Rev++
	}
	if _, err := s.turns.InsertMany(ctx, docs, options.InsertMany().SetOrdered(true)); err != nil {
		return err
	}
	s.cache.markStale(c.ID, c.Rev)
	return nil
}
