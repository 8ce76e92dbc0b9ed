package engine

import (
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm/runtime"
)

// fastFunc evaluates a simple expression straight on the environment, with
// no reflection or allocation. ok false means "not here": the caller then
// runs the expr VM, which gives the result or the error for that case. So a
// fast path never changes what an expression means; it only skips the VM
// for the common shapes: attribute and input look-ups, constants, ==, !=,
// <, >, <=, >= on numbers and strings, and, or, not, ??.
type fastFunc func(env *Env) (v any, ok bool)

// fastPath compiles the (checked and optimised) tree of an expression, or
// returns nil when some part has no fast path.
func fastPath(n ast.Node) fastFunc {
	switch n := n.(type) {
	case *ast.IdentifierNode:
		switch n.Value {
		case "attributes":
			return func(env *Env) (any, bool) { return env.Attributes, env.Attributes != nil }
		case "userAttributes":
			return func(env *Env) (any, bool) { return env.UserAttributes, env.UserAttributes != nil }
		case "input":
			return func(env *Env) (any, bool) { return env.boxedInput, env.boxedInput != nil }
		case "$scopes":
			return func(env *Env) (any, bool) { return env.Scopes, env.Scopes != nil }
		}
	case *ast.MemberNode:
		key, ok := n.Property.(*ast.StringNode)
		if !ok || n.Optional || n.Method {
			return nil
		}
		of := fastPath(n.Node)
		if of == nil {
			return nil
		}
		k := key.Value
		return func(env *Env) (any, bool) {
			v, ok := of(env)
			if !ok {
				return nil, false
			}
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			return m[k], true
		}
	case *ast.StringNode:
		return constant(n.Value)
	case *ast.IntegerNode:
		return constant(n.Value)
	case *ast.FloatNode:
		return constant(n.Value)
	case *ast.BoolNode:
		return constant(n.Value)
	case *ast.NilNode:
		return constant(nil)
	case *ast.UnaryNode:
		if n.Operator != "!" && n.Operator != "not" {
			return nil
		}
		of := fastPath(n.Node)
		if of == nil {
			return nil
		}
		return func(env *Env) (any, bool) {
			v, ok := of(env)
			b, isBool := v.(bool)
			if !ok || !isBool {
				return nil, false
			}
			return !b, true
		}
	case *ast.BinaryNode:
		return fastBinary(n)
	}
	return nil
}

func constant(c any) fastFunc {
	return func(*Env) (any, bool) { return c, true }
}

func fastBinary(n *ast.BinaryNode) fastFunc {
	l, r := fastPath(n.Left), fastPath(n.Right)
	if l == nil || r == nil {
		return nil
	}
	both := func(env *Env) (any, any, bool) {
		a, ok := l(env)
		if !ok {
			return nil, nil, false
		}
		b, ok := r(env)
		return a, b, ok
	}
	switch n.Operator {
	case "==", "!=":
		eq := n.Operator == "=="
		return func(env *Env) (any, bool) {
			a, b, ok := both(env)
			if !ok {
				return nil, false
			}
			return runtime.Equal(a, b) == eq, true
		}
	case "<", ">", "<=", ">=":
		cmp := map[string]func(a, b any) bool{
			"<": runtime.Less, ">": runtime.More, "<=": runtime.LessOrEqual, ">=": runtime.MoreOrEqual,
		}[n.Operator]
		return func(env *Env) (any, bool) {
			a, b, ok := both(env)
			if !ok || !ordered(a, b) {
				return nil, false
			}
			return cmp(a, b), true
		}
	case "&&", "and", "||", "or":
		and := n.Operator == "&&" || n.Operator == "and"
		return func(env *Env) (any, bool) {
			a, ok := l(env)
			x, isBool := a.(bool)
			if !ok || !isBool {
				return nil, false
			}
			if x != and { // false && ..., true || ...
				return x, true
			}
			b, ok := r(env)
			y, isBool := b.(bool)
			if !ok || !isBool {
				return nil, false
			}
			return y, true
		}
	case "??":
		return func(env *Env) (any, bool) {
			a, ok := l(env)
			if !ok {
				return nil, false
			}
			if a != nil {
				return a, true
			}
			return r(env)
		}
	}
	return nil
}

// ordered tells whether a and b are both numbers or both strings, the cases
// where expr's <, >, <= and >= give a result rather than an error.
func ordered(a, b any) bool {
	num := func(v any) bool {
		switch v.(type) {
		case int, int64, float64:
			return true
		}
		return false
	}
	if num(a) {
		return num(b)
	}
	_, sa := a.(string)
	_, sb := b.(string)
	return sa && sb
}
