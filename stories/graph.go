package stories

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/storyflow/storyflow/engine"
)

// GraphFormats are the formats Graph writes.
var GraphFormats = []string{"mermaid", "dot", "json"}

// Graph draws a story's node graph as a Mermaid flowchart ("mermaid"), a
// Graphviz digraph ("dot") or JSON ("json"). Edges come from each node's
// Edges, nodes and edges in file order.
func Graph(s *engine.Story, format string) (string, error) {
	if s == nil {
		return "", fmt.Errorf("graph: no story")
	}
	switch format {
	case "mermaid":
		return graphMermaid(s), nil
	case "dot":
		return graphDot(s), nil
	case "json":
		return graphJSON(s)
	}
	return "", fmt.Errorf("graph: unknown format %q (want %s)", format, strings.Join(GraphFormats, ", "))
}

// edgeLabel is what an edge shows: the route condition, the button title,
// else/failure, or nothing for next.
func edgeLabel(e engine.Edge) string {
	if e.Label != "" {
		return e.Label
	}
	if e.Kind == "next" {
		return ""
	}
	return e.Kind
}

// mermaidText escapes text for a quoted Mermaid label.
var mermaidText = strings.NewReplacer(
	"#", "#35;", `"`, "#quot;", "<", "#lt;", ">", "#gt;", "&", "#amp;",
	"|", "#124;", "`", "#96;", "\r\n", " ", "\n", " ", "\r", " ",
)

// graphMermaid writes a flowchart. Mermaid ids are n0, n1… in file order,
// since node ids like "end" are Mermaid keywords.
func graphMermaid(s *engine.Story) string {
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	ids := make(map[string]string, len(s.Order))
	idOf := func(node string) string {
		if id, ok := ids[node]; ok {
			return id
		}
		id := "n" + strconv.Itoa(len(ids))
		ids[node] = id
		return id
	}
	for _, id := range s.Order {
		n := s.Nodes[id]
		fmt.Fprintf(&b, "  %s[\"%s<br/>(%s)\"]\n", idOf(id), mermaidText.Replace(n.Name), mermaidText.Replace(n.Type))
	}
	for _, id := range s.Order {
		for _, e := range s.Nodes[id].Edges {
			arrow := "-->"
			if e.Kind == "goto" {
				arrow = "-.->"
			}
			if l := edgeLabel(e); l != "" {
				fmt.Fprintf(&b, "  %s %s|\"%s\"| %s\n", idOf(id), arrow, mermaidText.Replace(l), idOf(e.To))
			} else {
				fmt.Fprintf(&b, "  %s %s %s\n", idOf(id), arrow, idOf(e.To))
			}
		}
	}
	if _, ok := s.Nodes[s.Start]; ok {
		fmt.Fprintf(&b, "  classDef start stroke-width:3px\n  class %s start\n", idOf(s.Start))
	}
	return b.String()
}

// dotQuote quotes s as a DOT string.
func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r\n", `\n`, "\n", `\n`, "\r", `\n`)
	return `"` + r.Replace(s) + `"`
}

func graphDot(s *engine.Story) string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(s.ID))
	b.WriteString("  node [shape=box, style=rounded];\n")
	for _, id := range s.Order {
		n := s.Nodes[id]
		attrs := "label=" + dotQuote(n.Name+"\n("+n.Type+")")
		if id == s.Start {
			attrs += ", peripheries=2"
		}
		fmt.Fprintf(&b, "  %s [%s];\n", dotQuote(id), attrs)
	}
	for _, id := range s.Order {
		for _, e := range s.Nodes[id].Edges {
			var attrs []string
			if l := edgeLabel(e); l != "" {
				attrs = append(attrs, "label="+dotQuote(l))
			}
			if e.Kind == "goto" {
				attrs = append(attrs, "style=dashed")
			}
			fmt.Fprintf(&b, "  %s -> %s", dotQuote(id), dotQuote(e.To))
			if len(attrs) > 0 {
				fmt.Fprintf(&b, " [%s]", strings.Join(attrs, ", "))
			}
			b.WriteString(";\n")
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// GraphJSON is the json format of Graph.
type GraphJSON struct {
	ID    string      `json:"id"`
	Start string      `json:"start"`
	Nodes []GraphNode `json:"nodes"`
	Edges []GraphEdge `json:"edges"`
}

// GraphNode is a node of GraphJSON.
type GraphNode struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
	Line int    `json:"line"`
}

// GraphEdge is an edge of GraphJSON; Kind is next, else, failure, route,
// goto or a custom node's kind; Label is the route condition or button title.
type GraphEdge struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Kind  string `json:"kind"`
	Label string `json:"label"`
}

func graphJSON(s *engine.Story) (string, error) {
	g := GraphJSON{ID: s.ID, Start: s.Start, Nodes: []GraphNode{}, Edges: []GraphEdge{}}
	for _, id := range s.Order {
		n := s.Nodes[id]
		g.Nodes = append(g.Nodes, GraphNode{ID: id, Name: n.Name, Type: n.Type, Line: n.Line})
		for _, e := range n.Edges {
			g.Edges = append(g.Edges, GraphEdge{From: id, To: e.To, Kind: e.Kind, Label: e.Label})
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(g); err != nil {
		return "", fmt.Errorf("encode graph: %w", err)
	}
	return buf.String(), nil
}
