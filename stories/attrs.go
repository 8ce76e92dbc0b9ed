package stories

import (
	"regexp"
	"strings"

	"github.com/storyflow/storyflow/engine"
	"gopkg.in/yaml.v3"
)

var (
	// attrReadRe finds attributes.x, attributes?.x and attributes["x"]
	// (not userAttributes.x).
	attrReadRe = regexp.MustCompile(`(?:^|[^A-Za-z0-9_.$])attributes\s*(?:\??\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*["']([^"']+)["']\s*\])`)
	templateRe = regexp.MustCompile(`\{\{(.*?)\}\}`)
)

// exprFields hold a whole expression (not a template).
var exprFields = map[string]bool{"when": true, "validate": true}

// warnUnsetAttributes warns about each attribute the story reads but that
// nothing sets: the story's attributes do not start it and no node field
// marked Sets names it (a question's save, a set node's attributes, a
// webhook node's sets, a custom node's own).
func (l *loader) warnUnsetAttributes(s *engine.Story, root *yaml.Node) {
	set := map[string]bool{}
	for k := range s.Attributes {
		set[k] = true
	}
	nodes := mapValue(root, "nodes")
	if nodes == nil || nodes.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(nodes.Content); i += 2 {
		m := nodes.Content[i+1]
		t := mapValue(m, "type")
		if t == nil {
			continue
		}
		spec, _, ok := l.o.Registry.Lookup(t.Value)
		if !ok {
			continue
		}
		for _, f := range spec.Fields {
			v := mapValue(m, f.Name)
			if !f.Sets || v == nil {
				continue
			}
			switch v.Kind {
			case yaml.ScalarNode:
				set[v.Value] = true
			case yaml.SequenceNode:
				for _, it := range v.Content {
					set[it.Value] = true
				}
			case yaml.MappingNode:
				for j := 0; j < len(v.Content); j += 2 {
					set[v.Content[j].Value] = true
				}
			}
		}
	}
	warned := map[string]bool{}
	for i := 0; i+1 < len(nodes.Content); i += 2 {
		info := s.Nodes[nodes.Content[i].Value]
		if info == nil {
			continue
		}
		eachString(nodes.Content[i+1], "", func(key string, v *yaml.Node) {
			src := v.Value
			if !strings.Contains(src, "attributes") {
				return // what attrReadRe needs (the regexps are most of a big story's lint)
			}
			if !exprFields[key] {
				var parts []string
				for _, m := range templateRe.FindAllStringSubmatch(src, -1) {
					parts = append(parts, m[1])
				}
				src = strings.Join(parts, " ")
			}
			for _, m := range attrReadRe.FindAllStringSubmatch(src, -1) {
				name := m[1] + m[2]
				if set[name] || warned[name] {
					continue
				}
				warned[name] = true
				l.b.Lints = append(l.b.Lints, engine.Lint{
					File: l.b.File, Line: v.Line, Column: v.Column, Node: info.ID, NodeType: info.Type, Warning: true,
					Message: "attribute " + name + " is read but nothing sets it (a question's save, a set node, the story's attributes or a webhook node's sets)",
				})
			}
		})
	}
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// eachString calls f with every string scalar under n and the key it is
// the value of ("" in lists).
func eachString(n *yaml.Node, key string, f func(key string, v *yaml.Node)) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!str" {
			f(key, n)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			eachString(n.Content[i+1], n.Content[i].Value, f)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			eachString(c, key, f)
		}
	}
}
