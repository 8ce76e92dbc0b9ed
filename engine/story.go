package engine

import (
	"fmt"
	"strings"
)

// Story is a loaded, compiled story.
type Story struct {
	ID         string
	Name       string
	Version    int
	Start      string
	OnError    string
	Attributes map[string]any
	Nodes      map[string]*NodeInfo
	// Order lists the node ids as they stand in the file.
	Order []string
	File  string
	// Source is the YAML the story was loaded from.
	Source []byte
	// Scopes are the node scopes of the registry the story loaded with,
	// each a map[string]any of what expressions read before a node of the
	// turn sets it (Spec.Scope, Turn.Set).
	Scopes map[string]any
}

// NodeInfo is a node of a story with what the loader knows of it.
type NodeInfo struct {
	ID, Name, Type string
	Line, Column   int
	Node           Node
	Edges          []Edge
	Waits          bool
}

// Edge is a reference from a node to another, for graphs and reachability.
type Edge struct {
	To    string `json:"to"`
	Label string `json:"label,omitempty"`
	Kind  string `json:"kind"` // next, else, failure, route, goto, or a field name
}

// Lint is a positioned problem found when loading a story.
type Lint struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Node     string `json:"node,omitempty"`
	NodeType string `json:"nodeType,omitempty"`
	Message  string `json:"message"`
	Warning  bool   `json:"warning,omitempty"`
}

func (l Lint) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d:%d: ", l.File, l.Line, l.Column)
	if l.Warning {
		b.WriteString("warning: ")
	}
	switch {
	case l.Node != "" && l.NodeType != "":
		fmt.Fprintf(&b, "node %q (%s): ", l.Node, l.NodeType)
	case l.Node != "":
		fmt.Fprintf(&b, "node %q: ", l.Node)
	}
	b.WriteString(l.Message)
	return b.String()
}

// LintError is the error of a story that does not load: all its lints.
type LintError struct {
	Lints []Lint
}

func (e *LintError) Error() string {
	var b strings.Builder
	for i, l := range e.Lints {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(l.String())
	}
	return b.String()
}
