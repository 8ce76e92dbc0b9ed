// Package stories loads story files: strict YAML decoding with positions,
// environment expansion, node building through a registry, and lints.
package stories

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/storyflow/storyflow/engine"
	"gopkg.in/yaml.v3"
)

// Options of Load.
type Options struct {
	// Registry of node types (required: nodes.NewRegistry for the built-in
	// ones).
	Registry *engine.Registry
	// Env lists the ${VAR} names a story may use: names, and patterns
	// ending in * that match by prefix (default DefaultEnv). Any other name
	// is an error that does not say whether the variable exists.
	Env []string
	// Getenv looks up allowed names (default os.LookupEnv).
	Getenv func(string) (string, bool)
	// Recompile marks a story that loaded before (see engine.Build.Recompile).
	Recompile bool
	// Values are handed to node constructors through engine.Build.Values.
	Values map[string]any
}

// ValidID tells whether id is a valid story id: [a-z0-9][a-z0-9_-]{0,63}.
func ValidID(id string) bool { return storyIDRe.MatchString(id) }

var (
	storyIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	nodeIDRe  = regexp.MustCompile(`^([A-Za-z0-9_-]{1,64}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$`)
	envRe     = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
)

// storyFields are the top-level fields of a story file.
var storyFields = []string{"id", "name", "start", "onError", "attributes", "webhooks", "nodes"}

// LoadFile reads and loads a story file.
func LoadFile(path string, o Options) (*engine.Story, []engine.Lint, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read story: %w", err)
	}
	return Load(path, src, o)
}

// Load parses and builds a story. It returns the story and its warnings, or
// an *engine.LintError holding every error (and warning) of the file.
func Load(file string, src []byte, o Options) (s *engine.Story, warnings []engine.Lint, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, warnings = nil, nil
			err = &engine.LintError{Lints: []engine.Lint{{File: file, Line: 1, Column: 1, Message: fmt.Sprintf("internal error: %v", r)}}}
		}
	}()
	l := &loader{o: o, b: &engine.Build{File: file, Values: o.Values, Source: src, Recompile: o.Recompile}, envFailed: map[[2]int]bool{}}
	if l.o.Env == nil {
		l.o.Env = DefaultEnv
	}
	if l.o.Registry == nil {
		l.o.Registry = engine.NewRegistry() // every node type is then unknown
	}
	if l.o.Getenv == nil {
		l.o.Getenv = os.LookupEnv
	}
	s = l.load(src)
	l.redact()
	var errs, warns []engine.Lint
	seen := make(map[engine.Lint]bool, len(l.b.Lints))
	meant := misspelt(l.b.Lints)
	for _, li := range l.b.Lints {
		// The same problem found twice (a list read by CheckFields and by
		// the node's constructor) is reported once.
		if seen[li] {
			continue
		}
		// A value with an unset variable, or a required field that a
		// misspelt one stands for, is one error, not two.
		if l.envFailed[[2]int{li.Line, li.Column}] && !strings.HasPrefix(li.Message, "environment variable ") {
			continue
		}
		if missing := requiredField(li.Message); missing != "" && meant[li.Node+"\x00"+missing] {
			continue
		}
		seen[li] = true
		if li.Warning {
			warns = append(warns, li)
		} else {
			errs = append(errs, li)
		}
	}
	sortLints(errs)
	sortLints(warns)
	if len(errs) > 0 {
		return nil, warns, &engine.LintError{Lints: append(errs, warns...)}
	}
	return s, warns, nil
}

func sortLints(ls []engine.Lint) {
	slices.SortStableFunc(ls, func(a, b engine.Lint) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
}

type loader struct {
	o Options
	b *engine.Build
	// expanded are the ${VAR} values put into the story, kept out of lints.
	expanded []expansion
	// envFailed holds the positions of values with an unset or refused ${VAR}.
	envFailed map[[2]int]bool
	// lines is the source split in lines, when a hint needs it.
	lines []string
}

type expansion struct {
	line, column int
	value, name  string
}

var (
	didYouMeanRe = regexp.MustCompile(`field \S+ not recognised \(did you mean (\S+)\?\)$`)
	requiredRe   = regexp.MustCompile(`(?:field |[ .])([A-Za-z_][A-Za-z0-9_]*)(?::)? is required$`)
)

// misspelt returns node+"\x00"+field for each field name suggested for an
// unrecognised one.
func misspelt(ls []engine.Lint) map[string]bool {
	m := map[string]bool{}
	for _, li := range ls {
		if sm := didYouMeanRe.FindStringSubmatch(li.Message); sm != nil {
			m[li.Node+"\x00"+sm[1]] = true
		}
	}
	return m
}

// requiredField is the field a "… is required" message names, or "".
func requiredField(msg string) string {
	if sm := requiredRe.FindStringSubmatch(msg); sm != nil {
		return sm[1]
	}
	return ""
}

func (l *loader) errAt(n *yaml.Node, format string, args ...any) {
	li := engine.Lint{File: l.b.File, Line: 1, Column: 1, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		li.Line, li.Column = n.Line, n.Column
	}
	l.b.Lints = append(l.b.Lints, li)
}

func (l *loader) load(src []byte) *engine.Story {
	doc, pre, err := parse(src)
	if err != nil {
		l.yamlError(err)
		return nil
	}
	if len(doc.Content) == 0 {
		l.errAt(nil, "story is empty")
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		l.errAt(root, "a story must be a mapping with id, start and nodes")
		return nil
	}
	l.unquotedBraces(root)
	l.expandEnv(root)
	if bytes.Contains(src, []byte("<<")) {
		l.expandMerges(root, map[*yaml.Node]bool{})
	}
	top := l.b.NewConfig(nil, root)
	allowed := storyFields
	for _, k := range top.Keys() {
		if strings.HasPrefix(k, "x-") { // extension fields, e.g. to hold YAML anchors
			allowed = append(allowed[:len(allowed):len(allowed)], k)
		}
	}
	top.CheckFields(nil, allowed...)
	s := &engine.Story{
		ID: top.String("id"), Name: top.String("name"), Start: top.String("start"),
		OnError: top.String("onError"), Version: 1, File: l.b.File, Source: src,
		Nodes: map[string]*engine.NodeInfo{},
	}
	l.b.StoryID = s.ID
	for _, f := range []string{"id", "start", "nodes"} {
		if !top.Has(f) {
			l.errAt(root, "field %s is required", f)
		}
	}
	if top.Has("id") && !storyIDRe.MatchString(s.ID) {
		l.errAt(top.Value("id"), "story id %q must match [a-z0-9][a-z0-9_-]{0,63}", s.ID)
	}
	if n := len([]rune(s.Name)); top.Has("name") && (n < 1 || n > 128) {
		l.errAt(top.Value("name"), "name must be 1 to 128 characters")
	}
	if a := top.Value("attributes"); a != nil {
		if a.Kind != yaml.MappingNode {
			l.errAt(a, "field attributes must be a map")
		} else if err := a.Decode(&s.Attributes); err != nil {
			l.errAt(a, "attributes: %v", err)
		}
	}
	if w := top.Value("webhooks"); w != nil {
		if w.Kind != yaml.MappingNode {
			l.errAt(w, "field webhooks must be a map of connections")
		} else {
			l.b.Webhooks = map[string]*yaml.Node{}
			for i := 0; i+1 < len(w.Content); i += 2 {
				l.b.Webhooks[w.Content[i].Value] = w.Content[i+1]
			}
		}
	}
	nodes := top.Value("nodes")
	if nodes != nil && nodes.Kind != yaml.MappingNode {
		l.errAt(nodes, "field nodes must be a map of node id to node")
		nodes = nil
	}
	// Pass 1: ids, so references can be checked while nodes build.
	type pending struct {
		info *engine.NodeInfo
		m    *yaml.Node
	}
	var ps []pending
	if nodes != nil {
		for i := 0; i+1 < len(nodes.Content); i += 2 {
			k, v := nodes.Content[i], nodes.Content[i+1]
			id := k.Value
			if _, dup := s.Nodes[id]; dup {
				l.errAt(k, "node %q is defined twice", id)
				continue
			}
			if !nodeIDRe.MatchString(id) {
				l.errAt(k, "node id %q must match [A-Za-z0-9_-]{1,64} or be a UUID", id)
			}
			info := &engine.NodeInfo{ID: id, Name: id, Line: k.Line, Column: k.Column}
			s.Nodes[id] = info
			s.Order = append(s.Order, id)
			ps = append(ps, pending{info, v})
		}
	}
	l.b.NodeExists = func(id string) bool { _, ok := s.Nodes[id]; return ok }
	l.b.NodeIDs = s.Order
	switch {
	case !top.Has("start"):
	case s.Start == "":
		l.errAt(top.Value("start"), "start must name the first node")
	case !l.b.NodeExists(s.Start):
		l.errAt(top.Value("start"), "start: node %q not found%s", s.Start, engine.DidYouMean(s.Start, s.Order))
	}
	if top.Has("onError") && !l.b.NodeExists(s.OnError) {
		l.errAt(top.Value("onError"), "onError: node %q not found%s", s.OnError, engine.DidYouMean(s.OnError, s.Order))
	}
	// Pass 2: build every node (their expressions compiled on all cores first).
	if pre != nil {
		l.b.Use(pre...)
	} else if len(ps) > 0 {
		ms := make([]*yaml.Node, len(ps))
		for i, p := range ps {
			ms[i] = p.m
		}
		l.b.Precompile(ms)
	}
	for _, p := range ps {
		l.buildNode(p.info, p.m)
	}
	for _, p := range ps {
		if p.info.Node == nil {
			return nil
		}
	}
	if len(ps) == 0 && nodes != nil {
		l.errAt(nodes, "a story needs at least one node")
	}
	l.warnGraph(s)
	l.warnUnsetAttributes(s, root)
	return s
}

func (l *loader) buildNode(info *engine.NodeInfo, m *yaml.Node) {
	for m != nil && m.Kind == yaml.AliasNode {
		m = m.Alias
	}
	c := l.b.NewConfig(info, m)
	if m == nil || m.Kind != yaml.MappingNode {
		if fieldLike(l.o.Registry, info.ID) {
			l.errAt(&yaml.Node{Line: info.Line, Column: info.Column}, "%s is indented like a node id, not as a field: indent it like the fields of the node above", info.ID)
			return
		}
		c.ErrorAt(m, "a node must be a mapping with a type")
		return
	}
	info.Type = c.String("type")
	if info.Type == "" {
		c.ErrorAt(m, "field type is required")
		return
	}
	spec, build, ok := l.o.Registry.Lookup(info.Type)
	if !ok {
		var names []string
		for _, sp := range l.o.Registry.Specs() {
			names = append(names, sp.Type)
		}
		hint := engine.DidYouMean(info.Type, names)
		if hint == "" {
			hint = " (known: " + strings.Join(names, ", ") + ")"
		}
		c.Errorf("type", "unknown node type %q%s", info.Type, hint)
		return
	}
	info.Waits = spec.Waits
	if c.Has("name") {
		info.Name = c.String("name")
		if n := len([]rune(info.Name)); n < 1 || n > 128 {
			c.Errorf("name", "name must be 1 to 128 characters")
		}
	}
	c.CheckFields(spec.Fields, "type", "name")
	node, err := build(c)
	if err != nil {
		c.ErrorAt(m, "%v", err)
		return
	}
	if c.Failed() {
		return
	}
	info.Node = node
}

// parallelMin is the size from which a story's nodes are parsed on several
// cores (yaml.v3 parses some 10 MB/s: a 2 MB story takes 200 ms on one).
var parallelMin = 256 << 10

// parse decodes the first YAML document of src. A big file is parsed in
// parts, which also compile the nodes' expressions (pre).
func parse(src []byte) (doc *yaml.Node, pre []*engine.Precompiled, err error) {
	if n := runtime.GOMAXPROCS(0); n > 1 && len(src) >= parallelMin {
		if doc, pre := parseSplit(src, 4*n); doc != nil {
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
func parseSplit(src []byte, parts int) (*yaml.Node, []*engine.Precompiled) {
	starts := []int{0} // starts[i]: offset of line i (0-based)
	for i, c := range src {
		if c == '\n' && i+1 < len(src) {
			starts = append(starts, i+1)
		}
	}
	line := func(i int) []byte {
		end := len(src)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		return bytes.TrimRight(src[starts[i]:end], "\r\n")
	}
	first, last := -1, len(starts) // the nodes: section is lines first..last-1
	for i := range starts {
		b := line(i)
		if len(b) == 0 {
			continue
		}
		switch {
		case b[0] == '%', bytes.HasPrefix(b, []byte("---")), bytes.HasPrefix(b, []byte("...")), bytes.IndexByte(b, '\t') >= 0 && bytes.TrimLeft(b, " ")[0] == '\t':
			return nil, nil
		case first >= 0 && last == len(starts) && b[0] != ' ' && b[0] != '#':
			last = i
		case b[0] == 'n' && isNodesLine(b):
			if first >= 0 {
				return nil, nil
			}
			first = i + 1
		}
	}
	if first < 0 {
		return nil, nil
	}
	// The node keys: lines indented like the first one.
	indent := -1
	var keys []int
	for i := first; i < last; i++ {
		b := line(i)
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
			return nil, nil
		case n == indent:
			keys = append(keys, i)
		}
	}
	if len(keys) < 2*parts {
		return nil, nil
	}
	// Cut into parts of about equal size, at node keys.
	size := starts[min(last, len(starts)-1)] - starts[first]
	var cuts []int // first line of each part
	for _, k := range keys {
		if len(cuts) == 0 || starts[k]-starts[cuts[len(cuts)-1]] >= size/parts {
			cuts = append(cuts, k)
		}
	}
	end := len(src)
	if last < len(starts) {
		end = starts[last]
	}
	// The file without the section (blank lines keep the line numbers).
	rest := make([]byte, 0, starts[first]+(last-first)+len(src)-end)
	rest = append(rest, src[:starts[first]]...)
	rest = append(rest, bytes.Repeat([]byte("\n"), last-first)...)
	rest = append(rest, src[end:]...)

	docs := make([]yaml.Node, len(cuts)+1)
	errs := make([]error, len(cuts)+1)
	pre := make([]*engine.Precompiled, len(cuts))
	var wg sync.WaitGroup
	for p := range docs {
		piece := rest
		if p < len(cuts) {
			to := end
			if p+1 < len(cuts) {
				to = starts[cuts[p+1]]
			}
			piece = src[starts[cuts[p]]:to]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[p] = yaml.Unmarshal(piece, &docs[p])
			if d := &docs[p]; p < len(cuts) && errs[p] == nil && len(d.Content) == 1 && d.Content[0].Kind == yaml.MappingNode {
				pre[p] = &engine.Precompiled{}
				m := d.Content[0]
				for i := 1; i < len(m.Content); i += 2 {
					pre[p].Add(m.Content[i])
				}
			}
		}()
	}
	wg.Wait()
	nodes := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for p := range cuts {
		d := &docs[p]
		if errs[p] != nil || len(d.Content) != 1 || d.Content[0].Kind != yaml.MappingNode {
			return nil, nil
		}
		shiftLines(d.Content[0], cuts[p])
		if p == 0 {
			nodes.Line, nodes.Column = d.Content[0].Line, d.Content[0].Column
		}
		nodes.Content = append(nodes.Content, d.Content[0].Content...)
	}
	doc := &docs[len(cuts)]
	if errs[len(cuts)] != nil || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "nodes" && root.Content[i].Line == first {
			if !isNull(root.Content[i+1]) {
				return nil, nil
			}
			root.Content[i+1] = nodes
			return doc, pre
		}
	}
	return nil, nil
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

// yamlError turns a yaml.v3 error ("yaml: line 3: ...") into a lint.
func (l *loader) yamlError(err error) {
	msg := err.Error()
	line := 1
	if te, ok := err.(*yaml.TypeError); ok && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		var n int
		if _, e := fmt.Sscanf(rest, "%d:", &n); e == nil {
			line = n
			_, msg, _ = strings.Cut(rest, ": ")
		}
	}
	if parserError(msg) {
		// yaml.v3 names the line before the collection a parser (not
		// scanner) error happened in: find the line that breaks it.
		line = problemLine(l.b.Source, line+1, msg)
	}
	li := engine.Lint{File: l.b.File, Line: line, Column: 1, Message: "yaml: " + msg}
	li.Column = firstColumn(l.b.Source, line)
	if hint, col := yamlHint(l.b.Source, line, msg); hint != "" {
		li.Message += hint
		if col > 0 {
			li.Column = col
		}
		l.b.Lints = append(l.b.Lints, li)
		return
	}
	if msg == "found unexpected end of stream" {
		// Most likely a quoted value that is never closed: point at its quote.
		li.Column = quoteColumn(l.b.Source, line, li.Column)
	}
	l.b.Lints = append(l.b.Lints, li)
}

// parserError tells whether a yaml.v3 message is a parser error (see
// yaml_parser_set_parser_error in yaml.v3's parserc.go).
func parserError(msg string) bool {
	for _, p := range []string{
		"did not find expected key", "did not find expected node content",
		"did not find expected '-' indicator", "did not find expected ',' or",
		"did not find expected <document start>", "did not find expected <stream-start>",
		"found duplicate %", "found incompatible YAML document", "found undefined tag handle",
	} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// problemLine returns the first line from line on such that the file up to
// it fails to parse with msg (a binary search: O(log lines) parses).
func problemLine(src []byte, line int, msg string) int {
	ends := []int{0} // ends[n]: where the first n lines end
	for i, c := range src {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if ends[len(ends)-1] < len(src) {
		ends = append(ends, len(src))
	}
	fails := func(n int) bool {
		var doc yaml.Node
		err := yaml.Unmarshal(src[:ends[n]], &doc)
		return err != nil && strings.HasSuffix(err.Error(), msg)
	}
	lo, hi := line, len(ends)-1
	if lo < 1 || lo > hi || !fails(hi) {
		return line
	}
	for lo < hi {
		if mid := (lo + hi) / 2; fails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// quoteColumn is the column of the first quote on line that opens a value
// (after "key:", "-", "[", "{" or ","), or def.
func quoteColumn(src []byte, line, def int) int {
	text := lineText(src, line)
	prev := byte(0)
	for i, c := range []byte(text) {
		if (c == '"' || c == '\'') && (prev == 0 || prev == ':' || prev == '-' || prev == '[' || prev == '{' || prev == ',') {
			return utf8.RuneCountInString(text[:i]) + 1
		}
		if c != ' ' {
			prev = c
		}
	}
	return def
}

func lineText(src []byte, line int) string {
	for i := 1; i < line; i++ {
		j := bytes.IndexByte(src, '\n')
		if j < 0 {
			return ""
		}
		src = src[j+1:]
	}
	if j := bytes.IndexByte(src, '\n'); j >= 0 {
		src = src[:j]
	}
	return string(src)
}

// firstColumn is the column of the first non-blank character of line (1-based).
func firstColumn(src []byte, line int) int {
	text := lineText(src, line)
	trimmed := strings.TrimLeft(text, " ")
	if trimmed == "" {
		return 1
	}
	return len(text) - len(trimmed) + 1
}

// expandMerges applies YAML merge keys (<<: *base, or a list of aliases):
// the merged mappings' keys join the mapping unless it sets them itself.
func (l *loader) expandMerges(n *yaml.Node, seen map[*yaml.Node]bool) {
	if n == nil || seen[n] {
		return
	}
	seen[n] = true
	for _, c := range n.Content {
		l.expandMerges(c, seen)
	}
	if n.Kind != yaml.MappingNode {
		return
	}
	var own, merged []*yaml.Node
	has := map[string]bool{}
	found := false
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Tag != "!!merge" {
			own = append(own, k, n.Content[i+1])
			has[k.Value] = true
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag != "!!merge" {
			continue
		}
		found = true
		srcs := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			srcs = v.Content
		}
		for _, m := range srcs {
			for m != nil && m.Kind == yaml.AliasNode {
				m = m.Alias
			}
			if m == nil || m.Kind != yaml.MappingNode {
				l.errAt(k, "<< must merge a mapping or a list of mappings")
				continue
			}
			l.expandMerges(m, seen)
			for j := 0; j+1 < len(m.Content); j += 2 {
				if mk := m.Content[j]; !has[mk.Value] {
					has[mk.Value] = true
					merged = append(merged, mk, m.Content[j+1])
				}
			}
		}
	}
	if found {
		n.Content = append(own, merged...)
	}
}

// expandEnv replaces ${VAR} in every scalar. Only allowed names are looked
// up; an unset one is an error, and so is any other name (with a message
// that does not depend on whether it is set).
func (l *loader) expandEnv(n *yaml.Node) {
	if n == nil {
		return
	}
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		n.Value = envRe.ReplaceAllStringFunc(n.Value, func(m string) string {
			name := m[2 : len(m)-1]
			if !EnvAllowed(l.o.Env, name) {
				l.errAt(n, "environment variable %s is not allowed in stories (allowed: %s; see serve --story-env)", name, strings.Join(l.o.Env, ", "))
				l.envFailed[[2]int{n.Line, n.Column}] = true
				return ""
			}
			v, ok := l.o.Getenv(name)
			if !ok {
				l.errAt(n, "environment variable %s is not set", name)
				l.envFailed[[2]int{n.Line, n.Column}] = true
			}
			if v != "" {
				l.expanded = append(l.expanded, expansion{n.Line, n.Column, v, m})
			}
			return v
		})
	}
	for _, c := range n.Content {
		l.expandEnv(c)
	}
}

// DefaultEnv is the ${VAR} names stories may use unless the operator says
// otherwise.
var DefaultEnv = []string{"STORY_*"}

// EnvAllowed tells whether name matches one of patterns: a name, or a
// prefix followed by *.
func EnvAllowed(patterns []string, name string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if p == name {
			return true
		}
	}
	return false
}

var envPatternRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*\*?$`)

// ParseEnv reads a comma list of names and PREFIX_* patterns (a flag).
func ParseEnv(list string) ([]string, error) {
	out := []string{}
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !envPatternRe.MatchString(p) {
			return nil, fmt.Errorf("story env %q: want a name or a PREFIX_* pattern", p)
		}
		out = append(out, p)
	}
	return out, nil
}

// redact keeps expanded values out of lints: a lint placed on an expanded
// scalar shows ${VAR} instead of its value, as do all lints for values of
// four bytes or more.
func (l *loader) redact() {
	if len(l.expanded) == 0 {
		return
	}
	for i := range l.b.Lints {
		li := &l.b.Lints[i]
		for _, e := range l.expanded {
			if len(e.value) >= 4 || (li.Line == e.line && li.Column == e.column) {
				li.Message = strings.ReplaceAll(li.Message, e.value, e.name)
			}
		}
	}
}
