package stories_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
)

// updateExport rewrites the graph golden files (-update belongs to golden_test.go).
var updateExport = flag.Bool("update-export", false, "rewrite testdata/graph golden files")

// fetchNode is a test node type with a failure branch, like a webhook.
type fetchNode struct{ next, failure string }

func (f *fetchNode) Run(context.Context, *engine.Turn) (engine.Result, error) {
	return engine.Goto(f.next), nil
}

func exportRegistry(t testing.TB) *engine.Registry {
	t.Helper()
	reg := nodes.NewRegistry(nodes.Options{})
	err := reg.Register(engine.Spec{
		Type:    "fetch",
		Summary: "Fetches something; failure on error.",
		Fields: []engine.Field{
			{Name: "next", Kind: engine.KindRef, Required: true},
			{Name: "failure", Kind: engine.KindRef},
		},
	}, func(c *engine.Config) (engine.Node, error) {
		return &fetchNode{next: c.Ref("next", "next", ""), failure: c.Ref("failure", "failure", "")}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func loadExportStory(t *testing.T, reg *engine.Registry, path string) *engine.Story {
	t.Helper()
	s, _, err := stories.LoadFile(path, stories.Options{Registry: reg})
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	return s
}

func TestGraphGolden(t *testing.T) {
	s := loadExportStory(t, exportRegistry(t), filepath.Join("testdata", "graph", "story.yaml"))
	for _, tc := range []struct{ format, file string }{
		{"mermaid", "story.mmd"},
		{"dot", "story.dot"},
		{"json", "story.json"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			got, err := stories.Graph(s, tc.format)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "graph", tc.file)
			if *updateExport {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("graph %s differs from %s (run with -update-export to accept):\n%s", tc.format, golden, got)
			}
		})
	}
}

func TestGraphJSONEdges(t *testing.T) {
	s := loadExportStory(t, exportRegistry(t), filepath.Join("testdata", "graph", "story.yaml"))
	out, err := stories.Graph(s, "json")
	if err != nil {
		t.Fatal(err)
	}
	var g stories.GraphJSON
	if err := json.Unmarshal([]byte(out), &g); err != nil {
		t.Fatalf("graph json does not parse: %v", err)
	}
	var want, got []string
	for _, id := range s.Order {
		for _, e := range s.Nodes[id].Edges {
			want = append(want, id+" "+e.Kind+" "+e.To)
		}
	}
	for _, e := range g.Edges {
		got = append(got, e.From+" "+e.Kind+" "+e.To)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("edges:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(g.Nodes) != len(s.Order) || g.Start != "welcome" || g.ID != "graph-demo" {
		t.Errorf("graph header or nodes wrong: %+v", g)
	}
}

func TestGraphUnknownFormat(t *testing.T) {
	s := loadExportStory(t, exportRegistry(t), filepath.Join("testdata", "graph", "story.yaml"))
	for _, format := range []string{"", "svg", "Mermaid"} {
		_, err := stories.Graph(s, format)
		if err == nil {
			t.Fatalf("format %q: no error", format)
		}
		if !strings.Contains(err.Error(), "mermaid, dot, json") {
			t.Errorf("format %q: error %q does not name the formats", format, err)
		}
	}
}
