// Package nodes holds storyflow's built-in node types, one file each. Each
// file's init adds its type to the list Register and NewRegistry put in a
// registry; nothing is built at import.
package nodes

import (
	"log/slog"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/webhook"
)

// Options configure the built-in node types of a registry.
type Options struct {
	// AllowPrivateWebhooks lets webhook nodes call loopback, private and
	// link-local addresses (development and tests).
	AllowPrivateWebhooks bool
	// Webhooks is the client webhook nodes share (default: one per registry,
	// built from AllowPrivateWebhooks, which it then overrides).
	Webhooks *webhook.Client
	// Connections finds webhook connections made through the API; without
	// it a webhook node may only name connections of its story.
	Connections webhook.Connections
	// WebhookErrors records each connection's last failure (optional).
	WebhookErrors webhook.Recorder
	// Logger logs webhook failures that take a failure branch (default slog.Default()).
	Logger *slog.Logger
}

var builtins []func(r *engine.Registry, o Options) error

// Register adds every built-in node type to r.
func Register(r *engine.Registry, o Options) error {
	for _, add := range builtins {
		if err := add(r, o); err != nil {
			return err
		}
	}
	return nil
}

// NewRegistry returns a fresh registry holding the built-in node types.
func NewRegistry(o Options) *engine.Registry {
	r := engine.NewRegistry()
	if err := Register(r, o); err != nil {
		panic(err)
	}
	return r
}

// builtin registers a node type that needs no options.
func builtin(spec engine.Spec, build engine.Constructor) {
	builtinWith(spec, func(Options) engine.Constructor { return build })
}

// builtinWith registers a node type whose constructor depends on Options.
func builtinWith(spec engine.Spec, build func(Options) engine.Constructor) {
	builtins = append(builtins, func(r *engine.Registry, o Options) error { return r.Register(spec, build(o)) })
}

// Common fields.
var (
	responsesField = engine.Field{Name: "responses", Kind: engine.KindResponses, Description: "bot responses to send (SPEC §2)"}
	nextField      = engine.Field{Name: "next", Kind: engine.KindRef, Description: "node to go to next"}
)
