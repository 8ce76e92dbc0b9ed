package lsm_test

import (
	"testing"

	"github.com/storyflow/storyflow/store"
	"github.com/storyflow/storyflow/store/lsm"
	"github.com/storyflow/storyflow/store/storetest"
)

func TestOutbox(t *testing.T) {
	storetest.RunOutbox(t, func(t *testing.T) storetest.Opener {
		dir := t.TempDir()
		return func() (store.Store, error) { return lsm.Open(dir) }
	})
}
