package engine

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// Build is the shared state of loading one story file: its lints, and what
// node constructors may ask of the story. The stories package drives it.
type Build struct {
	File  string
	Lints []Lint
	// StoryID is the story's id (empty when the file names none).
	StoryID string
	// NodeExists tells whether a node id is defined in the story.
	NodeExists func(id string) bool
	// NodeIDs are the story's node ids, to suggest one for a wrong reference.
	NodeIDs []string
	// Recompile tells that the story loaded before (a stored version built
	// again): things outside the story that have gone since, such as an API
	// webhook connection, are warnings and fail at run time instead.
	Recompile bool
	// Values holds anything a caller hands to constructors (e.g. options).
	Values map[string]any
	// Source is the file's text, to place errors inside multi-line values.
	Source []byte
	// Scopes are the node scopes expressions may read (Registry.Scopes).
	Scopes map[string]any

	lineStarts []int
	// sections are the story's top-level sections of named objects
	// (webhooks:), which Config.Section reads.
	sections map[string]map[string]*yaml.Node
	// What was compiled, by source: a story repeats its expressions.
	exprs     map[exprKey]*Program
	templates map[string]*Template
	regexps   map[string]*regexp.Regexp
	// constTime is what evaluating constant expressions took so far.
	constTime time.Duration
}

// maxConstTime bounds the time a load spends evaluating constant
// expressions (to find those over budget); past it they are not checked.
const maxConstTime = 200 * time.Millisecond

type exprKey struct {
	src    string
	asBool bool
}

// compileExpr is CompileExpr, once per source and story.
func (b *Build) compileExpr(src string, asBool bool) (*Program, error) {
	k := exprKey{src, asBool}
	if p, ok := b.exprs[k]; ok {
		return p, nil
	}
	p, err := compileExpr(src, asBool, b.Scopes)
	if err != nil {
		return nil, err
	}
	if p.constant && b.constTime < maxConstTime {
		took, err := p.checkConstant(maxConstTime - b.constTime)
		b.constTime += took
		if err != nil {
			return nil, &ExprError{Message: err.Error()}
		}
	}
	if b.exprs == nil {
		b.exprs = map[exprKey]*Program{}
	}
	b.exprs[k] = p
	return p, nil
}

// compileTemplate is CompileTemplate, once per source and story.
func (b *Build) compileTemplate(src string) (*Template, error) {
	if t, ok := b.templates[src]; ok {
		return t, nil
	}
	t, err := compileTemplate(src, b.compileExpr)
	if err != nil {
		return nil, err
	}
	if b.templates == nil {
		b.templates = map[string]*Template{}
	}
	b.templates[src] = t
	return t, nil
}

// Config is a node's YAML config (or an object within it) as its
// constructor reads it. Getters report problems as positioned lints and
// return zero values, so a constructor reads every field and returns once.
type Config struct {
	b        *Build
	info     *NodeInfo
	m        *yaml.Node // mapping node
	parent   *Config
	hasError *bool
}

// newConfig returns the config of node info held in mapping m.
func (b *Build) newConfig(info *NodeInfo, m *yaml.Node) *Config {
	f := false
	return &Config{b: b, info: info, m: m, hasError: &f}
}

// Failed tells whether any problem was reported through c or its objects.
func (c *Config) Failed() bool { return *c.hasError }

// ID is the node's id.
func (c *Config) ID() string { return c.info.ID }

// Name is the node's human name (its id when not set).
func (c *Config) Name() string { return c.info.Name }

// Type is the node's type.
func (c *Config) Type() string { return c.info.Type }

// Build returns the story-wide build state.
func (c *Config) Build() *Build { return c.b }

func (c *Config) lint(n *yaml.Node, warn bool, format string, args ...any) {
	l := Lint{File: c.b.File, Message: fmt.Sprintf(format, args...), Warning: warn}
	if c.info != nil {
		l.Node, l.NodeType = c.info.ID, c.info.Type
	}
	if n != nil {
		l.Line, l.Column = n.Line, n.Column
	}
	if !warn {
		*c.hasError = true
	}
	c.b.Lints = append(c.b.Lints, l)
}

// Errorf reports a problem at field (its value), or at the object when the
// field is absent or empty.
func (c *Config) Errorf(field, format string, args ...any) {
	c.lint(c.pos(field), false, format, args...)
}

// errorAt reports a problem at a YAML node.
func (c *Config) errorAt(n *yaml.Node, format string, args ...any) {
	c.lint(n, false, format, args...)
}

// Warnf reports a warning at field.
func (c *Config) Warnf(field, format string, args ...any) {
	c.lint(c.pos(field), true, format, args...)
}

func (c *Config) pos(field string) *yaml.Node {
	if field != "" {
		if _, v := c.get(field); v != nil {
			return v
		}
	}
	return c.m
}

// get returns the key and value nodes of field.
func (c *Config) get(field string) (*yaml.Node, *yaml.Node) {
	if c.m == nil || c.m.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(c.m.Content); i += 2 {
		if c.m.Content[i].Value == field {
			return c.m.Content[i], resolve(c.m.Content[i+1])
		}
	}
	return nil, nil
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// Has tells whether field is set (and not null).
func (c *Config) Has(field string) bool {
	_, v := c.get(field)
	return !isNull(v)
}

// value returns the value node of field, or nil.
func (c *Config) value(field string) *yaml.Node {
	_, v := c.get(field)
	if isNull(v) {
		return nil
	}
	return v
}

// Keys returns the field names set in the object, in file order.
func (c *Config) Keys() []string {
	var ks []string
	if c.m != nil && c.m.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(c.m.Content); i += 2 {
			ks = append(ks, c.m.Content[i].Value)
		}
	}
	return ks
}

// CheckFields reports unknown fields and missing required ones against fields,
// recursing into objects and lists. Names in extra are allowed too.
func (c *Config) CheckFields(fields []Field, extra ...string) {
	if c.m == nil || c.m.Kind != yaml.MappingNode {
		c.errorAt(c.m, "must be an object")
		return
	}
	var seen map[string]bool // for big objects; small ones are scanned
	if len(c.m.Content) > 64 {
		seen = map[string]bool{}
	}
	for i := 0; i+1 < len(c.m.Content); i += 2 {
		k := c.m.Content[i]
		twice := seen[k.Value]
		for j := 0; seen == nil && j < i; j += 2 {
			twice = twice || c.m.Content[j].Value == k.Value
		}
		if twice {
			c.errorAt(k, "field %s is set twice", k.Value)
		}
		if seen != nil {
			seen[k.Value] = true
		}
		f, ok := findField(fields, k.Value)
		if !ok {
			if !contains(extra, k.Value) {
				names := slices.Clone(extra)
				for _, f := range fields {
					names = append(names, f.Name)
				}
				c.errorAt(k, "field %s not recognised%s", k.Value, didYouMean(k.Value, names))
			}
			continue
		}
		v := resolve(c.m.Content[i+1])
		if isNull(v) || len(f.Fields) == 0 {
			continue
		}
		switch f.Kind {
		case KindObject:
			if o := c.Object(f.Name); o != nil {
				o.CheckFields(f.Fields)
			}
		case KindList:
			for _, o := range c.List(f.Name) {
				o.CheckFields(f.Fields)
			}
		}
	}
	for _, f := range fields {
		if f.Required && !c.Has(f.Name) {
			c.errorAt(c.m, "field %s is required", f.Name)
		}
	}
}

func findField(fs []Field, name string) (Field, bool) {
	for _, f := range fs {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

func (c *Config) scalar(field, what string) (*yaml.Node, bool) {
	_, v := c.get(field)
	if isNull(v) {
		return nil, false
	}
	if v.Kind != yaml.ScalarNode {
		c.errorAt(v, "field %s must be %s", field, what)
		return nil, false
	}
	return v, true
}

// String returns a string field ("" when absent).
func (c *Config) String(field string) string {
	v, ok := c.scalar(field, "a string")
	if !ok {
		return ""
	}
	return v.Value
}

// Int returns an integer field, def when absent.
func (c *Config) Int(field string, def int) int {
	v, ok := c.scalar(field, "an integer")
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v.Value)
	if err != nil {
		c.errorAt(v, "field %s must be an integer, got %q", field, v.Value)
		return def
	}
	return n
}

// Number returns a number field, def when absent.
func (c *Config) Number(field string, def float64) float64 {
	v, ok := c.scalar(field, "a number")
	if !ok {
		return def
	}
	n, err := strconv.ParseFloat(v.Value, 64)
	if err != nil {
		c.errorAt(v, "field %s must be a number, got %q", field, v.Value)
		return def
	}
	return n
}

// Bool returns a boolean field, def when absent.
func (c *Config) Bool(field string, def bool) bool {
	v, ok := c.scalar(field, "true or false")
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v.Value)
	if err != nil {
		c.errorAt(v, "field %s must be true or false, got %q", field, v.Value)
		return def
	}
	return b
}

// Duration returns a duration field ("10s", or a number of seconds), def when absent.
func (c *Config) Duration(field string, def time.Duration) time.Duration {
	v, ok := c.scalar(field, "a duration")
	if !ok {
		return def
	}
	if n, err := strconv.ParseFloat(v.Value, 64); err == nil {
		return time.Duration(n * float64(time.Second))
	}
	d, err := time.ParseDuration(v.Value)
	if err != nil {
		c.errorAt(v, "field %s must be a duration like 10s, got %q", field, v.Value)
		return def
	}
	return d
}

// Strings returns a list of strings.
func (c *Config) Strings(field string) []string {
	_, v := c.get(field)
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		c.errorAt(v, "field %s must be a list of strings", field)
		return nil
	}
	out := make([]string, 0, len(v.Content))
	for _, it := range v.Content {
		it = resolve(it)
		if it.Kind != yaml.ScalarNode {
			c.errorAt(it, "field %s must be a list of strings", field)
			continue
		}
		out = append(out, it.Value)
	}
	return out
}

// StringMap returns a map of strings.
func (c *Config) StringMap(field string) map[string]string {
	_, v := c.get(field)
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		c.errorAt(v, "field %s must be a map of strings", field)
		return nil
	}
	out := map[string]string{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		val := resolve(v.Content[i+1])
		if val.Kind != yaml.ScalarNode {
			c.errorAt(val, "field %s: %s must be a string", field, v.Content[i].Value)
			continue
		}
		out[v.Content[i].Value] = val.Value
	}
	return out
}

// Object returns the object held in field, or nil when absent.
func (c *Config) Object(field string) *Config {
	_, v := c.get(field)
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		c.errorAt(v, "field %s must be an object", field)
		return nil
	}
	return c.sub(v)
}

func (c *Config) sub(m *yaml.Node) *Config {
	return &Config{b: c.b, info: c.info, m: m, parent: c, hasError: c.hasError}
}

// Section returns the entry named key of the story's top-level section
// (e.g. a connection of the webhooks: section), read as part of this node:
// problems are reported as this node's. ok is false when there is no such
// entry. The entry may be no object: see IsObject.
func (c *Config) Section(section, key string) (_ *Config, ok bool) {
	m, ok := c.b.sections[section][key]
	if !ok {
		return nil, false
	}
	return c.sub(resolve(m)), true
}

// IsObject tells whether field holds an object; field "" asks it of c.
func (c *Config) IsObject(field string) bool {
	v := c.m
	if field != "" {
		_, v = c.get(field)
	}
	return v != nil && v.Kind == yaml.MappingNode
}

// IsList tells whether field holds a list.
func (c *Config) IsList(field string) bool {
	_, v := c.get(field)
	return v != nil && v.Kind == yaml.SequenceNode
}

// List returns the objects of a list field.
func (c *Config) List(field string) []*Config {
	_, v := c.get(field)
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		c.errorAt(v, "field %s must be a list", field)
		return nil
	}
	out := make([]*Config, 0, len(v.Content))
	for _, it := range v.Content {
		it = resolve(it)
		if it.Kind != yaml.MappingNode {
			c.errorAt(it, "field %s: each item must be an object", field)
			continue
		}
		out = append(out, c.sub(it))
	}
	return out
}

// Ref returns a node reference held in field, checks that the node exists
// and records the edge (kind is the edge's kind, e.g. "next").
func (c *Config) Ref(field, kind, label string) string {
	v, ok := c.scalar(field, "a node id")
	if !ok {
		return ""
	}
	return c.ref(v, kind, label)
}

func (c *Config) ref(v *yaml.Node, kind, label string) string {
	if c.b.NodeExists != nil && !c.b.NodeExists(v.Value) {
		c.errorAt(v, "%s: node %q not found%s", kind, v.Value, didYouMean(v.Value, c.b.NodeIDs))
		return ""
	}
	if c.info != nil {
		c.info.Edges = append(c.info.Edges, Edge{To: v.Value, Label: label, Kind: kind})
	}
	return v.Value
}

// exprPos returns the position of an expression error inside scalar v.
func (c *Config) exprPos(v *yaml.Node, err error) *yaml.Node {
	var ee *ExprError
	if !errors.As(err, &ee) {
		return v
	}
	p := *v
	if line, col, ok := c.b.scalarPos(v, ee.Offset); ok {
		p.Line, p.Column = line, col
		return &p
	}
	// The value cannot be traced in the source: count on the first line.
	p.Column += ee.Offset
	if v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
		p.Column++
	}
	return &p
}

// Expr compiles the expression in field; asBool makes it a condition.
func (c *Config) Expr(field string, asBool bool) *Program {
	v, ok := c.scalar(field, "an expression")
	if !ok {
		return nil
	}
	return c.exprAt(v, asBool)
}

// exprAt compiles the expression held in scalar v.
func (c *Config) exprAt(v *yaml.Node, asBool bool) *Program {
	p, err := c.b.compileExpr(v.Value, asBool)
	if err != nil {
		c.errorAt(c.exprPos(v, err), "expression: %v", err)
		return nil
	}
	return p
}

// Template compiles the template in field (nil when absent).
func (c *Config) Template(field string) *Template {
	v, ok := c.scalar(field, "a string")
	if !ok {
		return nil
	}
	return c.templateAt(v)
}

// templateAt compiles the template held in scalar v.
func (c *Config) templateAt(v *yaml.Node) *Template {
	t, err := c.b.compileTemplate(v.Value)
	if err != nil {
		c.errorAt(c.exprPos(v, err), "%v", err)
		return nil
	}
	return t
}

// CompileRegexp compiles a regular expression, once per source and story.
func (c *Config) CompileRegexp(src string) (*regexp.Regexp, error) {
	if re, ok := c.b.regexps[src]; ok {
		return re, nil
	}
	re, err := regexp.Compile(src)
	if err != nil {
		return nil, err
	}
	if c.b.regexps == nil {
		c.b.regexps = map[string]*regexp.Regexp{}
	}
	c.b.regexps[src] = re
	return re, nil
}

// Regexp compiles the regular expression in field.
func (c *Config) Regexp(field string) *regexp.Regexp {
	v, ok := c.scalar(field, "a regular expression")
	if !ok {
		return nil
	}
	re, err := c.CompileRegexp(v.Value)
	if err != nil {
		c.errorAt(v, "field %s: %v", field, err)
		return nil
	}
	return re
}

// Values compiles a map of value templates (set attributes, emit data, tasks).
func (c *Config) Values(field string) Values {
	_, v := c.get(field)
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.MappingNode {
		c.errorAt(v, "field %s must be a map", field)
		return nil
	}
	out := make(Values, 0, len(v.Content)/2)
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], resolve(v.Content[i+1])
		vt := ValueTemplate{Name: k.Value}
		if val.Kind == yaml.ScalarNode && val.Tag == "!!str" {
			vt.tpl = c.templateAt(val)
			if vt.tpl != nil && vt.tpl.Static() {
				vt.tpl, vt.constant = nil, val.Value // boxed once, not every run
			}
		} else if err := val.Decode(&vt.constant); err != nil {
			c.errorAt(val, "field %s: %s: %v", field, k.Value, err)
		}
		out = append(out, vt)
	}
	return out
}

// Routes compiles a list of {when, next} routes.
func (c *Config) Routes(field string) []Route {
	var out []Route
	for _, o := range c.List(field) {
		o.CheckFields(RouteFields)
		r := Route{When: o.Expr("when", true)}
		if w := o.value("when"); w != nil {
			r.Next = o.Ref("next", "route", w.Value)
		}
		out = append(out, r)
	}
	return out
}

// Route is a conditional branch.
type Route struct {
	When *Program
	Next string
}

// RouteFields are the fields of a route.
var RouteFields = []Field{
	{Name: "when", Kind: KindExpr, Required: true, Description: "condition (expr)"},
	{Name: "next", Kind: KindRef, Required: true, Description: "node to go to when true"},
}

// Pick returns the Next of the first route whose condition holds.
func (t *Turn) Pick(routes []Route) (string, bool, error) {
	for i := range routes {
		ok, err := t.True(routes[i].When)
		if err != nil {
			return "", false, err
		}
		if ok {
			t.route = i + 1
			return routes[i].Next, true, nil
		}
	}
	return "", false, nil
}
