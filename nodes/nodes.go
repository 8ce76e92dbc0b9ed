// Package nodes holds storyflow's built-in node types, one file each. Each
// registers itself in engine.Default; Register adds them to another registry.
package nodes

import "github.com/storyflow/storyflow/engine"

var builtins []func(r *engine.Registry) error

// Register adds every built-in node type to r.
func Register(r *engine.Registry) error {
	for _, add := range builtins {
		if err := add(r); err != nil {
			return err
		}
	}
	return nil
}

// NewRegistry returns a fresh registry holding the built-in node types.
func NewRegistry() *engine.Registry {
	r := engine.NewRegistry()
	if err := Register(r); err != nil {
		panic(err)
	}
	return r
}

func builtin(spec engine.Spec, build engine.Constructor) {
	builtins = append(builtins, func(r *engine.Registry) error { return r.Register(spec, build) })
	engine.Default.MustRegister(spec, build)
}

// Common fields.
var (
	responsesField = engine.Field{Name: "responses", Kind: engine.KindResponses, Description: "bot responses to send (SPEC §2)"}
	nextField      = engine.Field{Name: "next", Kind: engine.KindRef, Description: "node to go to next"}
)
