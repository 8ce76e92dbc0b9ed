package embedded_test

import (
	"testing"

	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/embedded"
	"github.com/storyflow/storyflow/store/storetest"
)

func TestOutbox(t *testing.T) {
	storetest.RunOutbox(t, func(t *testing.T) storetest.Opener {
		dir := t.TempDir()
		return func() (store.Store, error) { return embedded.Open(dir, embedded.Options{}) }
	})
}
