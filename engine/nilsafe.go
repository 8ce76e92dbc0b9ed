package engine

import (
	"reflect"

	"github.com/expr-lang/expr/ast"
)

// nilCompares guards <, >, <= and >= whose operand may be nil (an attribute
// that is not set): `attributes.seats > 10` becomes
// `attributes.seats != nil && attributes.seats > 10`, so a missing attribute
// compares false instead of failing the turn (SPEC §1: a missing attribute
// is nil, never an error).
type nilCompares struct{ patched bool }

func (v *nilCompares) Visit(node *ast.Node) {
	b, ok := (*node).(*ast.BinaryNode)
	if !ok {
		return
	}
	switch b.Operator {
	case "<", ">", "<=", ">=":
	default:
		return
	}
	var guard ast.Node
	for _, side := range []ast.Node{b.Left, b.Right} {
		if t := side.Type(); t != nil && t.Kind() != reflect.Interface {
			continue
		}
		if _, isNil := side.(*ast.NilNode); isNil {
			continue
		}
		g := ast.Node(&ast.BinaryNode{Operator: "!=", Left: side, Right: &ast.NilNode{}})
		if guard != nil {
			g = &ast.BinaryNode{Operator: "&&", Left: guard, Right: g}
		}
		guard = g
	}
	if guard == nil {
		return
	}
	v.patched = true
	ast.Patch(node, &ast.BinaryNode{Operator: "&&", Left: guard, Right: b})
}
