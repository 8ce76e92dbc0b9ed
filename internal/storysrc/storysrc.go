// Package storysrc lets the story loader (package stories) hand package
// engine the YAML that node configs are read from, so that no *yaml.Node
// appears in the engine's API for plug-ins. Package engine sets the
// functions when it is initialised; they take and return engine values as
// any because this package cannot import the engine.
package storysrc

import "gopkg.in/yaml.v3"

var (
	// NewConfig returns the *engine.Config over mapping m of node info
	// (an *engine.NodeInfo; a nil one for the story's top level), for
	// build b (an *engine.Build).
	NewConfig func(b, info any, m *yaml.Node) any
	// SetSection gives build b (an *engine.Build) the named entries of a
	// top-level section of the story (webhooks:), which Config.Section reads.
	SetSection func(b any, section string, entries map[string]*yaml.Node)
)
