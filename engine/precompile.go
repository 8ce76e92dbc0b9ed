package engine

// CompileAhead compiles a template (or, with condition, a route
// condition) into b's cache, so that a build that takes b's cache (Use)
// finds it compiled. The stories package calls it on the goroutines that
// parse parts of a big file. What does not compile is left for the build
// to report. A Build is not safe for concurrent use.
func (b *Build) CompileAhead(src string, condition bool) {
	if condition {
		b.compileExpr(src, true)
	} else {
		b.compileTemplate(src)
	}
}

// Use makes b take what the builds in ahead compiled (CompileAhead).
func (b *Build) Use(ahead ...*Build) {
	// The maps are sized for all (the keys builds share are few).
	exprs, templates := len(b.exprs), len(b.templates)
	for _, p := range ahead {
		if p != nil {
			exprs += len(p.exprs)
			templates += len(p.templates)
		}
	}
	if b.exprs == nil {
		b.exprs = make(map[exprKey]*Program, exprs)
	}
	if b.templates == nil {
		b.templates = make(map[string]*Template, templates)
	}
	for _, p := range ahead {
		if p == nil {
			continue
		}
		for k, v := range p.exprs {
			b.exprs[k] = v
		}
		for k, v := range p.templates {
			b.templates[k] = v
		}
	}
}
