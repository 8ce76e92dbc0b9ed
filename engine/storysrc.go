package engine

import (
	"github.com/storyflow/storyflow/internal/storysrc"
	"gopkg.in/yaml.v3"
)

// The stories package builds configs from YAML through storysrc.
func init() {
	storysrc.NewConfig = func(b, info any, m *yaml.Node) any {
		i, _ := info.(*NodeInfo)
		return b.(*Build).newConfig(i, m)
	}
	storysrc.SetSection = func(b any, section string, entries map[string]*yaml.Node) {
		bb := b.(*Build)
		if bb.sections == nil {
			bb.sections = map[string]map[string]*yaml.Node{}
		}
		bb.sections[section] = entries
	}
}
