package engine

// NewTurn returns a turn that runs nothing by itself, for tests that
// evaluate expressions and templates on it.
func NewTurn(s *Story, c *Chat, in Input) *Turn { return newTurn(s, c, in) }

// CompileWithScopes compiles like a node's Config.Expr with node scopes.
func CompileWithScopes(src string, asBool bool, scopes map[string]any) (*Program, error) {
	return compileExpr(src, asBool, scopes)
}

// CompileTemplateWithScopes compiles like a node's Config.Template with node scopes.
func CompileTemplateWithScopes(src string, scopes map[string]any) (*Template, error) {
	return compileTemplate(src, func(src string, asBool bool) (*Program, error) { return compileExpr(src, asBool, scopes) })
}
