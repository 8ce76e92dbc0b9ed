package api

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/storyflow/storyflow/engine"
)

// DefaultPoll is how often WatchStories looks for changed files.
const DefaultPoll = time.Second

// watcher keeps the story files of a directory in the store: a new or
// changed file (by modification time and size) is stored as the story's
// next version. Chats keep the version they started on.
type watcher struct {
	s     *Server
	dir   string
	every time.Duration
	files map[string]fileState
	// retry asks the next scan to load again the files that failed (a
	// webhook connection they name may exist now).
	retry atomic.Bool
	// waiting counts the files that loaded but the store refused (disk
	// full, store down): every scan tries them again; /readyz reports them.
	waiting atomic.Int32
	quit    chan struct{}
	done    chan struct{}
	stopped sync.Once
}

type fileState struct {
	mod  time.Time
	size int64
	id   string // the story id, when the file loaded
	ok   bool
	// unstored: the file loaded and the store refused it.
	unstored bool
}

// WatchStories stores every story file (*.yaml, *.yml; not *.test.yaml) of dir, then checks
// the directory every poll (default DefaultPoll) and stores each new or
// changed file as a new version, until Shutdown. A file that does not load
// is logged with its lints and skipped. It returns how many files loaded
// and failed in the first scan; an error only if dir cannot be read.
func (s *Server) WatchStories(dir string, poll time.Duration) (loaded, failed int, err error) {
	if poll <= 0 {
		poll = DefaultPoll
	}
	w := &watcher{s: s, dir: dir, every: poll, files: map[string]fileState{}, quit: make(chan struct{}), done: make(chan struct{})}
	loaded, failed, err = w.scan()
	if err != nil {
		return 0, 0, err
	}
	s.mu.Lock()
	s.watchers = append(s.watchers, w)
	s.mu.Unlock()
	go w.loop()
	return loaded, failed, nil
}

// connectionsChanged makes watchers retry the files that did not load.
func (s *Server) connectionsChanged() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.watchers {
		w.retry.Store(true)
	}
}

func (w *watcher) loop() {
	defer close(w.done)
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-t.C:
			if _, _, err := w.scan(); err != nil {
				w.s.log.Warn("read stories directory", "dir", w.dir, "err", err)
			}
		}
	}
}

func (w *watcher) stop() {
	w.stopped.Do(func() { close(w.quit) })
	<-w.done
}

// storyExt tells whether name is a story file (not a story test, *.test.yaml).
func storyExt(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	test := strings.HasSuffix(strings.ToLower(name), ".test"+ext)
	return (ext == ".yaml" || ext == ".yml") && !test
}

// scan loads the files that are new or changed since the last scan.
func (w *watcher) scan() (loaded, failed int, err error) {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return 0, 0, fmt.Errorf("read stories directory: %w", err)
	}
	retry := w.retry.Swap(false)
	seen := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() || !storyExt(e.Name()) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(w.dir, e.Name())
		info, err := os.Stat(path)
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		seen[path] = true
		old, known := w.files[path]
		if known && old.mod.Equal(info.ModTime()) && old.size == info.Size() && (old.ok || !retry) && !old.unstored {
			continue
		}
		st := fileState{mod: info.ModTime(), size: info.Size()}
		st.id, st.ok, st.unstored = w.load(path)
		w.files[path] = st
		if st.ok {
			loaded++
		} else {
			failed++
		}
	}
	waiting := 0
	for path, st := range w.files {
		if !seen[path] {
			delete(w.files, path)
			w.s.log.Info("story file removed; its story stays stored", "file", path)
		} else if st.unstored {
			waiting++
		}
	}
	w.waiting.Store(int32(waiting))
	return loaded, failed, nil
}

// load stores one story file; it returns the story id, whether it loaded,
// and whether it loaded but the store refused it.
func (w *watcher) load(path string) (id string, ok, unstored bool) {
	log := w.s.log.With("file", path)
	src, err := os.ReadFile(path)
	if err != nil {
		log.Warn("read story file", "err", err)
		return "", false, false
	}
	st, warns, err := w.s.load(path, src)
	if err != nil {
		var le *engine.LintError
		if !errors.As(err, &le) {
			log.Warn("story file does not load; skipped", "err", err)
			return "", false, false
		}
		log.Warn("story file does not load; skipped", "lints", len(le.Lints))
		for _, l := range le.Lints {
			log.Warn("lint", "lint", l.String())
		}
		return "", false, false
	}
	for other, fs := range w.files {
		if other != path && fs.ok && fs.id == st.ID {
			log.Warn("story file skipped: its id is the story of another file", "story", st.ID, "other", other)
			return "", false, false
		}
	}
	ctx, cancel := context.WithTimeout(w.s.ctx, 30*time.Second)
	defer cancel()
	version, created, err := w.s.st.PutStory(ctx, st.ID, src)
	if err != nil {
		log.Error("store story; trying again on the next scan", "story", st.ID, "err", err)
		return "", false, true
	}
	st.Version = version
	w.s.stories.put(st)
	for _, l := range warns {
		log.Warn("lint", "lint", l.String())
	}
	log.Info("story loaded", "story", st.ID, "version", version, "new", created, "warnings", len(warns))
	return st.ID, true, false
}
