package engine

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Kind is the kind of a config field, for linting, docs and the JSON Schema.
type Kind string

// Field kinds.
const (
	KindString    Kind = "string"
	KindInt       Kind = "int"
	KindNumber    Kind = "number"
	KindBool      Kind = "bool"
	KindDuration  Kind = "duration"  // "10s"
	KindRef       Kind = "ref"       // a node id of the story
	KindExpr      Kind = "expr"      // an expr-lang expression
	KindTemplate  Kind = "template"  // a string with {{ expr }} parts
	KindValues    Kind = "values"    // a map of value templates
	KindResponses Kind = "responses" // a list of bot responses (SPEC §2)
	KindRoutes    Kind = "routes"    // a list of {when, next}
	KindObject    Kind = "object"    // Fields
	KindList      Kind = "list"      // a list of objects with Fields
	KindAny       Kind = "any"
)

// Field describes one config field of a node type.
type Field struct {
	Name        string
	Kind        Kind
	Description string
	Required    bool
	Default     any
	Enum        []string
	// Fields of an object, or of each item of a list.
	Fields []Field
	// Schema, when set, is the field's JSON Schema (overrides Kind).
	Schema map[string]any
	// Sets tells that the node sets the attributes the field names: its
	// value (a string), its items (a list) or its keys (a map). The lint
	// of attributes read but never set counts them.
	Sets bool
}

// Spec describes a node type.
type Spec struct {
	Type    string
	Summary string
	Fields  []Field
	// Waits tells that the node can wait for user input (cycles through it are fine).
	Waits bool
	// Scope, when set, declares values the type's nodes set during a turn
	// (Turn.Set) for expressions to read.
	Scope *Scope
}

// Scope declares a node scope: values a node sets during a turn with
// Turn.Set and expressions read as Name.key, e.g. webhook.status.
type Scope struct {
	// Name is what expressions call the scope: a lower-case identifier
	// other than attributes, userAttributes, input and chat.
	Name string
	// Defaults are what expressions read before a node of the turn sets
	// the scope (nil: an empty map, where every key reads nil).
	Defaults map[string]any
}

var scopeNameRe = regexp.MustCompile(`^[a-z][A-Za-z0-9_]{0,63}$`)

// reservedScopes are the names Env gives expressions.
var reservedScopes = []string{"attributes", "userAttributes", "input", "chat"}

// Field returns the spec's field named name.
func (s *Spec) Field(name string) (Field, bool) {
	for _, f := range s.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// Constructor builds a node from its config. Problems go to c.Errorf; a
// returned error is reported at the node.
type Constructor func(c *Config) (Node, error)

type nodeType struct {
	spec  Spec
	build Constructor
}

// Registry holds node types by name. The zero value is not usable; use NewRegistry.
type Registry struct {
	mu    sync.RWMutex
	types map[string]nodeType
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{types: map[string]nodeType{}} }

// Register adds a node type. A duplicate or invalid name is an error.
func (r *Registry) Register(spec Spec, build Constructor) error {
	if spec.Type == "" || build == nil {
		return fmt.Errorf("register node type: type name and constructor are required")
	}
	for _, f := range spec.Fields {
		if f.Name == "type" || f.Name == "name" {
			return fmt.Errorf("register node type %q: field %q is reserved", spec.Type, f.Name)
		}
	}
	if sc := spec.Scope; sc != nil && (!scopeNameRe.MatchString(sc.Name) || slices.Contains(reservedScopes, sc.Name)) {
		return fmt.Errorf("register node type %q: scope name %q must match %s and not be one of %s",
			spec.Type, sc.Name, scopeNameRe, strings.Join(reservedScopes, ", "))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.types[spec.Type]; ok {
		return fmt.Errorf("register node type %q: already registered", spec.Type)
	}
	if sc := spec.Scope; sc != nil {
		for _, t := range r.types {
			if t.spec.Scope != nil && t.spec.Scope.Name == sc.Name {
				return fmt.Errorf("register node type %q: scope %q is node type %q's", spec.Type, sc.Name, t.spec.Type)
			}
		}
	}
	r.types[spec.Type] = nodeType{spec, build}
	return nil
}

// MustRegister is Register that panics, for init functions.
func (r *Registry) MustRegister(spec Spec, build Constructor) {
	if err := r.Register(spec, build); err != nil {
		panic(err)
	}
}

// Lookup returns a node type's spec and constructor.
func (r *Registry) Lookup(typ string) (Spec, Constructor, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	t, ok := r.types[typ]
	return t.spec, t.build, ok
}

// Specs lists the node types sorted by name.
func (r *Registry) Specs() []Spec {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Spec, 0, len(r.types))
	for _, t := range r.types {
		out = append(out, t.spec)
	}
	slices.SortFunc(out, func(a, b Spec) int {
		switch {
		case a.Type < b.Type:
			return -1
		case a.Type > b.Type:
			return 1
		}
		return 0
	})
	return out
}

// Scopes returns the node scopes of the registry's types by name, each the
// map[string]any of its defaults (Build.Scopes, Story.Scopes).
func (r *Registry) Scopes() map[string]any {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out map[string]any
	for _, t := range r.types {
		if sc := t.spec.Scope; sc != nil {
			if out == nil {
				out = map[string]any{}
			}
			d := sc.Defaults
			if d == nil {
				d = map[string]any{}
			}
			out[sc.Name] = d
		}
	}
	return out
}
