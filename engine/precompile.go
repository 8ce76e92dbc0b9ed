package engine

import (
	"runtime"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Precompiled holds templates and route conditions compiled ahead of a
// build, e.g. by the goroutine that parsed part of a file. One value is not
// safe for concurrent use; Build.Use takes several.
type Precompiled struct{ b Build }

// Add compiles the templates (strings holding "{{") and route conditions
// (routes[].when) found under n. What does not compile is left for the
// build to report.
func (p *Precompiled) Add(n *yaml.Node) { p.b.precompile(n, false) }

// Use makes the build take what ps compiled.
func (b *Build) Use(ps ...*Precompiled) {
	for _, p := range ps {
		if p == nil {
			continue
		}
		if b.exprs == nil {
			b.exprs = map[exprKey]*Program{}
		}
		if b.templates == nil {
			b.templates = map[string]*Template{}
		}
		for k, v := range p.b.exprs {
			b.exprs[k] = v
		}
		for k, v := range p.b.templates {
			b.templates[k] = v
		}
	}
}

// Precompile compiles the templates and route conditions of nodes on all
// cores (see Precompiled.Add), so that building the nodes one after the
// other finds them compiled.
func (b *Build) Precompile(nodes []*yaml.Node) {
	workers := min(runtime.GOMAXPROCS(0), len(nodes)/64)
	if workers < 2 {
		return // not worth it
	}
	ps := make([]*Precompiled, workers)
	var wg sync.WaitGroup
	for w := range workers {
		ps[w] = &Precompiled{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(nodes); i += workers {
				ps[w].Add(nodes[i])
			}
		}()
	}
	wg.Wait()
	b.Use(ps...)
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
