package stories

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/storyflow/storyflow/engine"
	"gopkg.in/yaml.v3"
)

// Hints that teach: what a YAML or structure error most likely means.

// bracesRe finds a value that starts with an unquoted {{ (after "key: " or "- ").
var bracesRe = regexp.MustCompile(`^(\s*(?:-\s+)?(?:[^\s"'#{][^:#]*:\s+|-\s+))(\{\{.*)$`)

// quoteHint is the advice for an unquoted value that starts with {{.
func quoteHint(key, value string) string {
	value = strings.TrimSpace(value)
	q := `"` + strings.ReplaceAll(value, `"`, `\"`) + `"`
	if !strings.Contains(value, "'") {
		q = "'" + value + "'"
	}
	return fmt.Sprintf("a value that starts with {{ must be quoted: %s%s", key, q)
}

// yamlHint explains a YAML syntax error at line: an unquoted {{, a tab, a
// line indented like nothing above it. col is the column to point at (0:
// keep it).
func yamlHint(src []byte, line int, msg string) (hint string, col int) {
	lines := strings.Split(string(src), "\n")
	lineText := func(_ []byte, l int) string {
		if l < 1 || l > len(lines) {
			return ""
		}
		return strings.TrimSuffix(lines[l-1], "\r")
	}
	text := lineText(src, line)
	if m := bracesRe.FindStringSubmatch(text); m != nil {
		return "; " + quoteHint(strings.TrimLeft(m[1], " -"), m[2]), utf8.RuneCountInString(m[1]) + 1
	}
	indent := len(text) - len(strings.TrimLeft(text, " "))
	switch {
	case strings.HasPrefix(strings.TrimLeft(text, " "), "\t"):
		return "; indent with spaces, not tabs", indent + 1
	case strings.HasPrefix(msg, "mapping values are not allowed"):
		if prev, ok := prevLine(lines, line); ok && indentOf(prev) < indent {
			return "; this line is indented more than the one above it: indent it like the fields it belongs with", 0
		}
	case strings.HasPrefix(msg, "did not find expected key"), strings.HasPrefix(msg, "did not find expected '-' indicator"):
		levels := levelsAbove(lines, line)
		for _, lv := range levels {
			if lv == indent {
				return "", 0
			}
		}
		var ok []string
		for _, lv := range levels {
			if lv <= indent+2 && lv >= indent-2 && !slices.Contains(ok, fmt.Sprint(lv)) {
				ok = append(ok, fmt.Sprint(lv))
			}
		}
		if len(ok) > 0 {
			return fmt.Sprintf("; this line is indented by %d spaces, like no field above it: use %s", indent, strings.Join(ok, " or ")), indent + 1
		}
	}
	return "", 0
}

func indentOf(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

// prevLine is the last line before line (1-based) that holds more than a comment.
func prevLine(lines []string, line int) (string, bool) {
	for l := min(line-1, len(lines)); l >= 1; l-- {
		t := strings.TrimSpace(lines[l-1])
		if t != "" && !strings.HasPrefix(t, "#") {
			return lines[l-1], true
		}
	}
	return "", false
}

// levelsAbove are the indentations a line after line-1 may have: those of
// the enclosing keys above it (and of the keys inside a "- " item).
func levelsAbove(lines []string, line int) []int {
	var levels []int
	limit := 1 << 30
	for l := min(line-1, len(lines)); l >= 1 && limit > 0; l-- {
		text := strings.TrimSuffix(lines[l-1], "\r")
		t := strings.TrimLeft(text, " ")
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		in := len(text) - len(t)
		if in >= limit {
			continue
		}
		if strings.HasPrefix(t, "- ") {
			levels = append(levels, in+2+indentOf(t[2:]))
		}
		levels = append(levels, in)
		limit = in
	}
	return levels
}

// unquotedBraces tells whether n is a value written {{ … }} without
// quotes, which YAML reads as a mapping in a mapping.
func unquotedBraces(n *yaml.Node) bool {
	return n.Kind == yaml.MappingNode && n.Style&yaml.FlowStyle != 0 && len(n.Content) >= 2 &&
		n.Content[0].Kind == yaml.MappingNode && n.Content[0].Style&yaml.FlowStyle != 0
}

// quoteBraces reports unquoted braces (n) with the advice to quote them,
// and makes n the string it was meant to be.
func (l *loader) quoteBraces(n *yaml.Node) {
	if l.lines == nil {
		l.lines = strings.Split(string(l.b.Source), "\n")
	}
	text := ""
	if n.Line >= 1 && n.Line <= len(l.lines) {
		text = strings.TrimSuffix(l.lines[n.Line-1], "\r")
	}
	value := text
	if i := columnOffset(text, n.Column); i >= 0 {
		value = text[i:]
	}
	value = strings.TrimSpace(value)
	if i := strings.Index(value, " #"); i >= 0 {
		value = strings.TrimSpace(value[:i])
	}
	key := ""
	if m := bracesRe.FindStringSubmatch(text); m != nil {
		key = strings.TrimLeft(m[1], " -")
	}
	l.b.Lints = append(l.b.Lints, engine.Lint{File: l.b.File, Line: n.Line, Column: n.Column, Message: quoteHint(key, value)})
	*n = yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value, Line: n.Line, Column: n.Column}
}

// columnOffset is the byte offset of 1-based rune column col in s, or -1.
func columnOffset(s string, col int) int {
	n := 1
	for i := range s {
		if n == col {
			return i
		}
		n++
	}
	return -1
}

// fieldLike tells whether a node id is the name of a field of some node
// type: a field indented like a node id.
func fieldLike(r *engine.Registry, id string) bool {
	if id == "type" || id == "name" {
		return true
	}
	for _, sp := range r.Specs() {
		if _, ok := sp.Field(id); ok {
			return true
		}
	}
	return false
}
