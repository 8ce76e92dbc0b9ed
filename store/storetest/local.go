package storetest

import (
	"context"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/store"
)

// Local checks what a store in a local data directory must do besides the
// suite: a second open of a directory in use fails, Close can be called
// twice, and a write after Close fails.
func Local(t *testing.T, openStore func(dir string) (store.Store, error)) {
	t.Run("locked", func(t *testing.T) {
		dir := t.TempDir()
		s, err := openStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s2, err := openStore(dir); err == nil {
			s2.Close()
			t.Fatal("second open of a store in use succeeded")
		}
	})
	t.Run("closed", func(t *testing.T) {
		s, err := openStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second close: %v", err)
		}
		if err := s.CreateChat(context.Background(), &engine.Chat{ID: "c"}); err == nil {
			t.Error("write after close succeeded")
		}
	})
}
