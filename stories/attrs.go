package stories

import (
	"strings"

	"github.com/storyflow/storyflow/engine"
	"gopkg.in/yaml.v3"
)

// exprFields hold a whole expression (not a template).
var exprFields = map[string]bool{"when": true, "validate": true}

// unsetAttributes returns a warning for each attribute the story reads but
// that nothing sets: the story's attributes do not start it and no node
// field marked Sets names it (a question's save, a set node's attributes, a
// webhook node's sets, a custom node's own). The warnings name their node
// but not its type: they are made while the nodes build (see load), reading
// only the tree and the node ids.
func (l *loader) unsetAttributes(s *engine.Story, root *yaml.Node) []engine.Lint {
	nodes := mapValue(root, "nodes")
	if nodes == nil || nodes.Kind != yaml.MappingNode {
		return nil
	}
	set := make(map[string]bool, len(s.Attributes)+len(nodes.Content)/4)
	for k := range s.Attributes {
		set[k] = true
	}
	// The fields marked Sets, by node type.
	setsFields := map[string][]string{}
	for _, spec := range l.o.Registry.Specs() {
		for _, f := range spec.Fields {
			if f.Sets {
				setsFields[spec.Type] = append(setsFields[spec.Type], f.Name)
			}
		}
	}
	for i := 0; i+1 < len(nodes.Content); i += 2 {
		m := nodes.Content[i+1]
		t := mapValue(m, "type")
		if t == nil {
			continue
		}
		for _, name := range setsFields[t.Value] {
			v := mapValue(m, name)
			if v == nil {
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
	var parts []string
	var lints []engine.Lint
	for i := 0; i+1 < len(nodes.Content); i += 2 {
		id := nodes.Content[i].Value
		if s.Nodes[id] == nil {
			continue
		}
		eachString(nodes.Content[i+1], "", func(key string, v *yaml.Node) {
			src := v.Value
			if !strings.Contains(src, "attributes") {
				return // what an attribute read needs
			}
			if !exprFields[key] {
				parts = templateExprs(src, parts[:0])
				src = strings.Join(parts, " ")
			}
			attributeReads(src, func(name string) {
				if set[name] || warned[name] {
					return
				}
				warned[name] = true
				lints = append(lints, engine.Lint{
					File: l.b.File, Line: v.Line, Column: v.Column, Node: id, Warning: true,
					Message: "attribute " + name + " is read but nothing sets it (a question's save, a set node, the story's attributes or a webhook node's sets)",
				})
			})
		})
	}
	return lints
}

// templateExprs appends to parts the text between each {{ and the first }}
// after it on the same line, in order: what the regular expression
// \{\{(.*?)\}\} finds (TestAttributeScanners checks that).
func templateExprs(s string, parts []string) []string {
	for i := 0; ; {
		j := strings.Index(s[i:], "{{")
		if j < 0 {
			return parts
		}
		from := i + j + 2
		k := strings.Index(s[from:], "}}")
		if k < 0 {
			return parts
		}
		if strings.IndexByte(s[from:from+k], '\n') >= 0 {
			i = i + j + 1 // no match opens here
			continue
		}
		parts = append(parts, s[from:from+k])
		i = from + k + 2
	}
}

// attributeReads calls f with the name of each attributes.x,
// attributes?.x and attributes["x"] in an expression (not
// userAttributes.x), as the regular expression
// (?:^|[^A-Za-z0-9_.$])attributes\s*(?:\??\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*["']([^"']+)["']\s*\])
// finds them (TestAttributeScanners checks that). The regexp took most of
// a big story's lint.
func attributeReads(s string, f func(name string)) {
	const word = "attributes"
	end := 0 // where the last read ended
	for i := 0; ; {
		j := strings.Index(s[i:], word)
		if j < 0 {
			return
		}
		at := i + j
		i = at + 1
		if at > 0 && (at-1 < end || !attrPrefixOK(s[at-1])) {
			continue
		}
		name, n := attributeAccess(s[at+len(word):])
		if n == 0 {
			continue
		}
		f(name)
		end = at + len(word) + n
		i = end
	}
}

// attrPrefixOK tells whether c may come before "attributes": not a name
// character, a dot or $.
func attrPrefixOK(c byte) bool {
	return !(isNameByte(c) || c == '.' || c == '$')
}

func isNameByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// attributeAccess reads .x, ?.x or ["x"] (with spaces allowed as the
// regexp allows them) at the start of s; n is its length, 0 when there is
// none.
func attributeAccess(s string) (name string, n int) {
	i := skipSpace(s, 0)
	if i < len(s) && s[i] == '?' {
		i++
		if i >= len(s) || s[i] != '.' {
			return "", 0
		}
	}
	switch {
	case i < len(s) && s[i] == '.':
		i = skipSpace(s, i+1)
		start := i
		if i >= len(s) || !(isNameByte(s[i]) && (s[i] < '0' || s[i] > '9')) {
			return "", 0
		}
		for i < len(s) && isNameByte(s[i]) {
			i++
		}
		return s[start:i], i
	case i < len(s) && s[i] == '[':
		i = skipSpace(s, i+1)
		if i >= len(s) || (s[i] != '"' && s[i] != '\'') {
			return "", 0
		}
		start := i + 1
		q := strings.IndexAny(s[start:], `"'`)
		if q <= 0 {
			return "", 0
		}
		name = s[start : start+q]
		i = skipSpace(s, start+q+1)
		if i >= len(s) || s[i] != ']' {
			return "", 0
		}
		return name, i + 1
	}
	return "", 0
}

// skipSpace skips what \s matches: tab, newline, form feed, carriage
// return and space.
func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\f' || s[i] == '\r') {
		i++
	}
	return i
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
