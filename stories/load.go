// Package stories loads story files: strict YAML decoding with positions,
// environment expansion, node building through a registry, and lints.
package stories

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/internal/storysrc"
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
	if o.Registry == nil {
		o.Registry = engine.NewRegistry() // every node type is then unknown
	}
	l := &loader{o: o, envFailed: map[[2]int]bool{}, b: &engine.Build{
		File: file, Values: o.Values, Source: src, Recompile: o.Recompile, Scopes: o.Registry.Scopes(),
	}}
	if l.o.Env == nil {
		l.o.Env = DefaultEnv
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
	// pre compiled expressions ahead while parsing (see parseSplit).
	pre []*engine.Build
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
	root := l.parseRoot(src)
	if root == nil {
		return nil
	}
	top := newConfig(l.b, nil, root)
	s := l.readStory(top, root, src)
	nodes := l.readSections(root)
	// Pass 1: ids, so references can be checked while nodes build.
	ps := l.declareNodes(s, nodes)
	l.checkStart(s, top, root)
	// The unset-attribute lint only reads the tree: it runs while the nodes
	// build. A panic in it is raised again here, for Load to report.
	unset := make(chan any, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				unset <- r
			}
		}()
		unset <- l.unsetAttributes(s, root)
	}()
	lints := func() []engine.Lint {
		r := <-unset
		if ls, ok := r.([]engine.Lint); ok {
			return ls
		}
		panic(r)
	}
	// Pass 2: build every node (their expressions compiled on all cores first).
	if l.pre != nil {
		l.b.Use(l.pre...)
	} else if len(ps) > 0 {
		ms := make([]*yaml.Node, len(ps))
		for i, p := range ps {
			ms[i] = p.m
		}
		l.precompile(ms)
	}
	for _, p := range ps {
		l.buildNode(p.info, p.m)
	}
	for _, p := range ps {
		if p.info.Node == nil {
			lints()
			return nil
		}
	}
	if len(ps) == 0 && nodes != nil {
		l.errAt(nodes, "a story needs at least one node")
	}
	l.warnGraph(s)
	for _, li := range lints() {
		li.NodeType = s.Nodes[li.Node].Type
		l.b.Lints = append(l.b.Lints, li)
	}
	return s
}

// newConfig is engine's config over m (see internal/storysrc).
func newConfig(b *engine.Build, info *engine.NodeInfo, m *yaml.Node) *engine.Config {
	return storysrc.NewConfig(b, info, m).(*engine.Config)
}

// parseRoot parses src and returns its top-level mapping, with ${VAR}s
// and merge keys expanded, or nil after reporting why there is none.
func (l *loader) parseRoot(src []byte) *yaml.Node {
	doc, pre, err := parse(src, l.b.Scopes)
	if err != nil {
		l.yamlError(err)
		return nil
	}
	l.pre = pre
	if len(doc.Content) == 0 {
		l.errAt(nil, "story is empty")
		return nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		l.errAt(root, "a story must be a mapping with id, start and nodes")
		return nil
	}
	l.rewrite(root)
	if bytes.Contains(src, []byte("<<")) {
		l.expandMerges(root, map[*yaml.Node]bool{})
	}
	return root
}

// readStory reads the story's own fields (id, name, start, onError,
// attributes) and checks the top-level field names.
func (l *loader) readStory(top *engine.Config, root *yaml.Node, src []byte) *engine.Story {
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
		Nodes: map[string]*engine.NodeInfo{}, Scopes: l.b.Scopes,
	}
	l.b.StoryID = s.ID
	for _, f := range []string{"id", "start", "nodes"} {
		if !top.Has(f) {
			l.errAt(root, "field %s is required", f)
		}
	}
	if top.Has("id") && !storyIDRe.MatchString(s.ID) {
		l.errAt(field(root, "id"), "story id %q must match [a-z0-9][a-z0-9_-]{0,63}", s.ID)
	}
	if n := len([]rune(s.Name)); top.Has("name") && (n < 1 || n > 128) {
		l.errAt(field(root, "name"), "name must be 1 to 128 characters")
	}
	if a := field(root, "attributes"); a != nil {
		if a.Kind != yaml.MappingNode {
			l.errAt(a, "field attributes must be a map")
		} else if err := a.Decode(&s.Attributes); err != nil {
			l.errAt(a, "attributes: %v", err)
		}
	}
	return s
}

// readSections hands the webhooks: section to the build and returns the
// nodes: mapping (nil when absent or no mapping).
func (l *loader) readSections(root *yaml.Node) (nodes *yaml.Node) {
	if w := field(root, "webhooks"); w != nil {
		if w.Kind != yaml.MappingNode {
			l.errAt(w, "field webhooks must be a map of connections")
		} else {
			entries := map[string]*yaml.Node{}
			for i := 0; i+1 < len(w.Content); i += 2 {
				entries[w.Content[i].Value] = w.Content[i+1]
			}
			storysrc.SetSection(l.b, "webhooks", entries)
		}
	}
	nodes = field(root, "nodes")
	if nodes != nil && nodes.Kind != yaml.MappingNode {
		l.errAt(nodes, "field nodes must be a map of node id to node")
		nodes = nil
	}
	return nodes
}

// pending is a node declared and not built yet.
type pending struct {
	info *engine.NodeInfo
	m    *yaml.Node
}

// declareNodes adds the ids of nodes to s, checking them.
func (l *loader) declareNodes(s *engine.Story, nodes *yaml.Node) []pending {
	var ps []pending
	if nodes != nil {
		n := len(nodes.Content) / 2
		s.Nodes = make(map[string]*engine.NodeInfo, n)
		s.Order = make([]string, 0, n)
		ps = make([]pending, 0, n)
		infos := make([]engine.NodeInfo, n)
		for i := 0; i+1 < len(nodes.Content); i += 2 {
			k, v := nodes.Content[i], nodes.Content[i+1]
			id := k.Value
			if _, dup := s.Nodes[id]; dup {
				l.errAt(k, "node %q is defined twice", id)
				continue
			}
			if !validNodeID(id) {
				l.errAt(k, "node id %q must match [A-Za-z0-9_-]{1,64} or be a UUID", id)
			}
			info := &infos[i/2]
			*info = engine.NodeInfo{ID: id, Name: id, Line: k.Line, Column: k.Column}
			s.Nodes[id] = info
			s.Order = append(s.Order, id)
			ps = append(ps, pending{info, v})
		}
	}
	l.b.NodeExists = func(id string) bool { _, ok := s.Nodes[id]; return ok }
	l.b.NodeIDs = s.Order
	return ps
}

// validNodeID tells whether id matches nodeIDRe (whose UUIDs are also
// 36 characters of [A-Za-z0-9_-]), without the regexp's cost per node.
func validNodeID(id string) bool {
	if len(id) < 1 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isNameByte(c) && c != '-' {
			return false
		}
	}
	return true
}

// checkStart checks that start and onError name nodes.
func (l *loader) checkStart(s *engine.Story, top *engine.Config, root *yaml.Node) {
	switch {
	case !top.Has("start"):
	case s.Start == "":
		l.errAt(field(root, "start"), "start must name the first node")
	case !l.b.NodeExists(s.Start):
		l.errAt(field(root, "start"), "start: node %q not found%s", s.Start, engine.DidYouMean(s.Start, s.Order))
	}
	if top.Has("onError") && !l.b.NodeExists(s.OnError) {
		l.errAt(field(root, "onError"), "onError: node %q not found%s", s.OnError, engine.DidYouMean(s.OnError, s.Order))
	}
}

// field returns the value of key in mapping m (aliases followed), or nil
// when absent or null.
func field(m *yaml.Node, key string) *yaml.Node {
	v := mapValue(m, key)
	for v != nil && v.Kind == yaml.AliasNode {
		v = v.Alias
	}
	if v == nil || (v.Kind == yaml.ScalarNode && v.Tag == "!!null") {
		return nil
	}
	return v
}

func (l *loader) buildNode(info *engine.NodeInfo, m *yaml.Node) {
	for m != nil && m.Kind == yaml.AliasNode {
		m = m.Alias
	}
	c := newConfig(l.b, info, m)
	if m == nil || m.Kind != yaml.MappingNode {
		if fieldLike(l.o.Registry, info.ID) {
			l.errAt(&yaml.Node{Line: info.Line, Column: info.Column}, "%s is indented like a node id, not as a field: indent it like the fields of the node above", info.ID)
			return
		}
		c.Errorf("", "a node must be a mapping with a type")
		return
	}
	info.Type = c.String("type")
	if info.Type == "" {
		c.Errorf("", "field type is required")
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
		c.Errorf("", "%v", err)
		return
	}
	if c.Failed() {
		return
	}
	info.Node = node
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

// rewrite makes each value written {{ … }} without quotes a string (with
// an error, see quoteBraces) and replaces ${VAR} in every scalar (see
// expandEnv), in one walk of the tree.
func (l *loader) rewrite(n *yaml.Node) {
	if n == nil {
		return
	}
	if unquotedBraces(n) {
		l.quoteBraces(n)
	}
	if n.Kind == yaml.ScalarNode {
		if strings.Contains(n.Value, "${") {
			l.expandEnv(n)
		}
		return
	}
	for _, c := range n.Content {
		l.rewrite(c)
	}
}

// expandEnv replaces ${VAR} in scalar n. Only allowed names are looked up;
// an unset one is an error, and so is any other name (with a message that
// does not depend on whether it is set).
func (l *loader) expandEnv(n *yaml.Node) {
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
