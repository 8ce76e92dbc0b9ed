package stories

import (
	"bytes"
	"runtime"
	"strings"
	"sync"

	"github.com/storyflow/storyflow/engine"
	"gopkg.in/yaml.v3"
)

// parallelMin is the size from which a story's nodes are parsed on several
// cores (yaml.v3 parses some 10 MB/s: a 2 MB story takes 200 ms on one).
var parallelMin = 256 << 10

// parse decodes the first YAML document of src. A big file is parsed in
// parts, which also compile the nodes' expressions ahead (pre) for the
// node scopes of the registry.
func parse(src []byte, scopes map[string]any) (doc *yaml.Node, pre []*engine.Build, err error) {
	if n := runtime.GOMAXPROCS(0); n > 1 && len(src) >= parallelMin {
		if doc, pre := parseSplit(src, 4*n, scopes); doc != nil {
			return doc, pre, nil
		}
	}
	doc = &yaml.Node{}
	err = yaml.Unmarshal(src, doc)
	return doc, nil, err
}

// parseSplit parses a story whose nodes: section is a block mapping in
// parts: the section is cut before node keys (lines indented exactly as the
// first key: nothing inside a node can be), the rest of the file and each
// part are parsed at once, and the parts' nodes joined with their line
// numbers shifted. It returns nil when src is not plainly laid out (tabs,
// directives, several documents, no or several nodes: sections) or when any
// piece fails to parse (an error, or an alias to an anchor of another part):
// parse then parses the whole file, which reports errors as usual.
func parseSplit(src []byte, parts int, scopes map[string]any) (*yaml.Node, []*engine.Build) {
	ls := newLines(src)
	first, last, ok := ls.nodesSection()
	if !ok {
		return nil, nil
	}
	keys, ok := ls.nodeKeys(first, last)
	if !ok || len(keys) < 2*parts {
		return nil, nil
	}
	cuts := ls.cut(keys, first, last, parts)
	end := len(src)
	if last < len(ls.starts) {
		end = ls.starts[last]
	}
	// The file without the section (blank lines keep the line numbers).
	rest := make([]byte, 0, ls.starts[first]+(last-first)+len(src)-end)
	rest = append(rest, src[:ls.starts[first]]...)
	rest = append(rest, bytes.Repeat([]byte("\n"), last-first)...)
	rest = append(rest, src[end:]...)
	pieces := make([][]byte, len(cuts)+1)
	for p := range cuts {
		to := end
		if p+1 < len(cuts) {
			to = ls.starts[cuts[p+1]]
		}
		pieces[p] = src[ls.starts[cuts[p]]:to]
	}
	pieces[len(cuts)] = rest
	docs, pre, ok := parsePieces(pieces, cuts, scopes)
	if !ok {
		return nil, nil
	}
	return joinPieces(docs, len(cuts), first), pre
}

// lines indexes the lines of a source.
type lines struct {
	src    []byte
	starts []int // starts[i]: offset of line i (0-based)
}

func newLines(src []byte) lines {
	starts := make([]int, 1, bytes.Count(src, []byte{'\n'})+1)
	for i := 0; ; {
		j := bytes.IndexByte(src[i:], '\n')
		if j < 0 || i+j+1 >= len(src) {
			break
		}
		i += j + 1
		starts = append(starts, i)
	}
	return lines{src, starts}
}

// line returns line i without its line break.
func (ls lines) line(i int) []byte {
	end := len(ls.src)
	if i+1 < len(ls.starts) {
		end = ls.starts[i+1]
	}
	return bytes.TrimRight(ls.src[ls.starts[i]:end], "\r\n")
}

// nodesSection returns the lines first..last-1 of the one nodes: section;
// ok is false when there is none or the file is not plainly laid out.
func (ls lines) nodesSection() (first, last int, ok bool) {
	first, last = -1, len(ls.starts)
	for i := range ls.starts {
		b := ls.line(i)
		if len(b) == 0 {
			continue
		}
		switch {
		case b[0] == '%', bytes.HasPrefix(b, []byte("---")), bytes.HasPrefix(b, []byte("...")), bytes.IndexByte(b, '\t') >= 0 && bytes.TrimLeft(b, " ")[0] == '\t':
			return 0, 0, false
		case first >= 0 && last == len(ls.starts) && b[0] != ' ' && b[0] != '#':
			last = i
		case b[0] == 'n' && isNodesLine(b):
			if first >= 0 {
				return 0, 0, false
			}
			first = i + 1
		}
	}
	return first, last, first >= 0
}

// nodeKeys returns the lines of the section indented like its first one.
func (ls lines) nodeKeys(first, last int) (keys []int, ok bool) {
	indent := -1
	for i := first; i < last; i++ {
		b := ls.line(i)
		t := bytes.TrimLeft(b, " ")
		if len(t) == 0 || t[0] == '#' {
			continue
		}
		n := len(b) - len(t)
		if indent < 0 {
			indent = n
		}
		switch {
		case n < indent || indent == 0 || (n == indent && t[0] == '-'):
			return nil, false
		case n == indent:
			keys = append(keys, i)
		}
	}
	return keys, true
}

// cut returns the first line of each of about parts parts of equal size,
// at node keys.
func (ls lines) cut(keys []int, first, last, parts int) []int {
	size := ls.starts[min(last, len(ls.starts)-1)] - ls.starts[first]
	var cuts []int
	for _, k := range keys {
		if len(cuts) == 0 || ls.starts[k]-ls.starts[cuts[len(cuts)-1]] >= size/parts {
			cuts = append(cuts, k)
		}
	}
	return cuts
}

// parsePieces parses the pieces at once; the last is the file without its
// nodes, the others hold nodes, whose lines are shifted to the file's (piece
// p starts on line cuts[p]) and whose expressions are compiled ahead. ok is
// false when a piece is not one mapping.
func parsePieces(pieces [][]byte, cuts []int, scopes map[string]any) ([]yaml.Node, []*engine.Build, bool) {
	docs := make([]yaml.Node, len(pieces))
	errs := make([]error, len(pieces))
	pre := make([]*engine.Build, len(pieces)-1)
	var wg sync.WaitGroup
	for p := range pieces {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = yaml.Unmarshal(pieces[p], &docs[p])
			if d := &docs[p]; p < len(pre) && errs[p] == nil && len(d.Content) == 1 && d.Content[0].Kind == yaml.MappingNode {
				pre[p] = &engine.Build{Scopes: scopes}
				m := d.Content[0]
				shiftLines(m, cuts[p])
				for i := 1; i < len(m.Content); i += 2 {
					compileAhead(pre[p], m.Content[i], false)
				}
			}
		}()
	}
	wg.Wait()
	for p := range docs {
		if d := &docs[p]; errs[p] != nil || len(d.Content) != 1 || d.Content[0].Kind != yaml.MappingNode {
			return nil, nil, false
		}
	}
	return docs, pre, true
}

// joinPieces puts the nodes of the parts (the first parts docs) into the
// nodes: field, on line first, of the rest (the last doc).
func joinPieces(docs []yaml.Node, parts, first int) *yaml.Node {
	size := 0
	for p := range parts {
		size += len(docs[p].Content[0].Content)
	}
	nodes := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: make([]*yaml.Node, 0, size)}
	for p := range parts {
		m := docs[p].Content[0]
		if p == 0 {
			nodes.Line, nodes.Column = m.Line, m.Column
		}
		nodes.Content = append(nodes.Content, m.Content...)
	}
	doc := &docs[parts]
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "nodes" && root.Content[i].Line == first {
			if !isNull(root.Content[i+1]) {
				return nil
			}
			root.Content[i+1] = nodes
			return doc
		}
	}
	return nil
}

// isNodesLine tells whether b is "nodes:", maybe with spaces and a comment.
func isNodesLine(b []byte) bool {
	rest, ok := bytes.CutPrefix(b, []byte("nodes:"))
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(rest, " ")
	return len(rest) == 0 || rest[0] == '#'
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null" && (n.Value == "" || n.Value == "~" || n.Value == "null")
}

func shiftLines(n *yaml.Node, by int) {
	n.Line += by
	for _, c := range n.Content {
		shiftLines(c, by)
	}
}

// precompile compiles the templates and route conditions of nodes on all
// cores, so that building the nodes one after the other finds them
// compiled.
func (l *loader) precompile(nodes []*yaml.Node) {
	workers := min(runtime.GOMAXPROCS(0), len(nodes)/64)
	if workers < 2 {
		return // not worth it
	}
	ahead := make([]*engine.Build, workers)
	var wg sync.WaitGroup
	for w := range workers {
		ahead[w] = &engine.Build{Scopes: l.b.Scopes}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(nodes); i += workers {
				compileAhead(ahead[w], nodes[i], false)
			}
		}()
	}
	wg.Wait()
	l.b.Use(ahead...)
}

// compileAhead compiles into b the templates (strings holding "{{") and
// route conditions (routes[].when) found under n; when tells that n is the
// when of a route.
func compileAhead(b *engine.Build, n *yaml.Node, when bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		switch {
		case when:
			b.CompileAhead(n.Value, true)
		case n.Tag == "!!str" && strings.Contains(n.Value, "{{"):
			b.CompileAhead(n.Value, false)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "routes" && n.Content[i+1].Kind == yaml.SequenceNode {
				for _, r := range n.Content[i+1].Content {
					if r.Kind != yaml.MappingNode {
						continue
					}
					for j := 0; j+1 < len(r.Content); j += 2 {
						compileAhead(b, r.Content[j+1], r.Content[j].Value == "when")
					}
				}
				continue
			}
			compileAhead(b, n.Content[i+1], false)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			compileAhead(b, c, false)
		}
	}
}
