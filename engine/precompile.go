package engine

import (
	"runtime"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Precompile compiles, on all cores, the templates (strings holding "{{")
// and route conditions (routes[].when) found in nodes, so that building the
// nodes one after the other finds them compiled. What does not compile is
// left for the build to report.
func (b *Build) Precompile(nodes []*yaml.Node) {
	workers := min(runtime.GOMAXPROCS(0), len(nodes)/64)
	if workers < 2 {
		return // not worth it
	}
	caches := make([]Build, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &caches[w]
			for i := w; i < len(nodes); i += workers {
				c.precompile(nodes[i], false)
			}
		}()
	}
	wg.Wait()
	for i := range caches {
		c := &caches[i]
		if b.exprs == nil {
			b.exprs, b.templates = c.exprs, c.templates
			continue
		}
		for k, p := range c.exprs {
			b.exprs[k] = p
		}
		for k, t := range c.templates {
			b.templates[k] = t
		}
	}
}

// precompile walks n; when tells that n is the when of a route.
func (b *Build) precompile(n *yaml.Node, when bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		switch {
		case when:
			b.compileExpr(n.Value, true)
		case n.Tag == "!!str" && strings.Contains(n.Value, "{{"):
			b.compileTemplate(n.Value)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "routes" && n.Content[i+1].Kind == yaml.SequenceNode {
				for _, r := range n.Content[i+1].Content {
					if r.Kind != yaml.MappingNode {
						continue
					}
					for j := 0; j+1 < len(r.Content); j += 2 {
						b.precompile(r.Content[j+1], r.Content[j].Value == "when")
					}
				}
				continue
			}
			b.precompile(n.Content[i+1], false)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			b.precompile(c, false)
		}
	}
}
