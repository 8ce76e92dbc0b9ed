package stories_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
)

var update = flag.Bool("update", false, "rewrite the .golden files of testdata")

// testEnv is the environment of the golden stories: only STORY_CRM_TOKEN is set.
func testEnv(name string) (string, bool) {
	if name == "STORY_CRM_TOKEN" {
		return "s3cret-value", true
	}
	return "", false
}

func testOptions() stories.Options {
	return stories.Options{Registry: nodes.NewRegistry(nodes.Options{}), Getenv: testEnv}
}

// lintLines renders lints one a line, as storyflow validate prints them.
func lintLines(ls []engine.Lint) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func compareGolden(t *testing.T, file, got string) {
	t.Helper()
	golden := strings.TrimSuffix(file, ".yaml") + ".golden"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("lints of %s differ from %s\n--- got\n%s--- want\n%s", file, golden, got, want)
	}
}

func TestBrokenStories(t *testing.T) {
	files, err := filepath.Glob("testdata/broken/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no broken stories: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			s, _, err := stories.Load(file, src, testOptions())
			if err == nil {
				t.Fatalf("story loaded; want errors")
			}
			if s != nil {
				t.Errorf("story returned along with errors")
			}
			var le *engine.LintError
			if !errors.As(err, &le) {
				t.Fatalf("error is %T, want *engine.LintError", err)
			}
			for _, l := range le.Lints {
				if l.File != file || l.Line < 1 || l.Column < 1 || l.Message == "" {
					t.Errorf("badly positioned lint %+v", l)
				}
				if strings.HasPrefix(l.Message, "internal error") {
					t.Errorf("loader panicked: %s", l)
				}
			}
			compareGolden(t, file, lintLines(le.Lints))
		})
	}
}

func TestWarnings(t *testing.T) {
	files, err := filepath.Glob("testdata/warnings/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no stories with warnings: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			s, warns, err := stories.Load(file, src, testOptions())
			if err != nil {
				t.Fatalf("story does not load: %v", err)
			}
			if s == nil || len(warns) == 0 {
				t.Fatalf("got story %v and %d warnings; want a story with warnings", s != nil, len(warns))
			}
			for _, w := range warns {
				if !w.Warning {
					t.Errorf("warning not marked as one: %s", w)
				}
			}
			compareGolden(t, file, lintLines(warns))
		})
	}
}
