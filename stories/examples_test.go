package stories_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
)

// TestExampleSchema: the JSON Schema the examples name for editor
// completion is the one storyflow schema prints (-update rewrites it), and
// every example names it.
func TestExampleSchema(t *testing.T) {
	const path = "../examples/stories/storyflow.schema.json"
	want, err := stories.Schema(nodes.NewRegistry(nodes.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(want, []byte("\n")) {
		want = append(want, '\n')
	}
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not what storyflow schema prints: run go test ./stories -update (or storyflow schema > %s)", path, path)
	}
	files, _ := filepath.Glob("../examples/stories/*.yaml")
	for _, f := range files {
		if strings.HasSuffix(f, ".test.yaml") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(src, []byte("# yaml-language-server: $schema=storyflow.schema.json\n")) {
			t.Errorf("%s does not start with the yaml-language-server schema comment", f)
		}
	}
}
