package engine

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// Env is what expressions and templates see (SPEC §1).
type Env struct {
	Attributes     map[string]any `expr:"attributes"`
	UserAttributes map[string]any `expr:"userAttributes"`
	Input          string         `expr:"input"`
	Chat           ChatInfo       `expr:"chat"`
	// Scopes are the node scopes by name (see Turn.Set): expressions read
	// webhook.status as Scopes["webhook"]["status"].
	Scopes map[string]any `expr:"$scopes"`

	// boxedInput is Input as an interface value, made once a turn for fast paths.
	boxedInput any
	// meter charges guarded operations (see budgetPatch).
	meter meter
}

// ChatInfo is the chat as expressions see it.
type ChatInfo struct {
	ID         string `expr:"id"`
	UserID     string `expr:"userId"`
	ExternalID string `expr:"externalId"`
	StoryID    string `expr:"storyId"`
}

// Program is a compiled expression with its source.
type Program struct {
	Source string
	prog   *vm.Program
	// fast evaluates common shapes without the VM (nil: always the VM).
	fast   fastFunc
	asBool bool
	// guarded: the program charges the meter (see budgetPatch).
	guarded  bool
	constant bool
}

// ExprError is a compile error with its place in the source: Line (1-based),
// Column (0-based, in runes, on that line) and Offset (0-based, in runes,
// from the start of the source).
type ExprError struct {
	Line, Column int
	Offset       int
	Message      string
}

func (e *ExprError) Error() string { return e.Message }

// CompileExpr compiles an expression against Env. asBool makes it a
// condition. It knows no node scopes: a node's expressions compile through
// Config.Expr, which knows those of the story's registry.
func CompileExpr(src string, asBool bool) (*Program, error) {
	return compileExpr(src, asBool, nil)
}

func compileExpr(src string, asBool bool, scopes map[string]any) (*Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &ExprError{Message: "expression is empty"}
	}
	p, tree, guarded, err := compile(src, asBool, scopes)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			msg, _, _ := strings.Cut(fe.Message, "\n")
			return nil, &ExprError{Line: fe.Line, Column: fe.Column, Offset: fe.From, Message: msg}
		}
		return nil, &ExprError{Message: err.Error()}
	}
	prog := &Program{Source: src, prog: p, fast: fastPath(tree), asBool: asBool, guarded: guarded}
	prog.constant = guarded && readsNothing(tree)
	return prog, nil
}

// configs hold expr configurations for Env, made once and reused: a fresh
// one per compile (what expr.Compile does) costs as much as the compile.
// A config is not safe for concurrent use, hence the pool.
var configs = sync.Pool{New: func() any {
	c := conf.CreateNew()
	c.WithEnv(Env{})
	addGuards(c)
	return c
}}

// compile is expr.Compile(src, expr.Env(Env{}), expr.Optimize(true)[,
// expr.AsBool()]) on a pooled configuration, with the names of scopes read
// from Env.Scopes; it also returns the tree.
func compile(src string, asBool bool, scopes map[string]any) (_ *vm.Program, _ ast.Node, guarded bool, _ error) {
	base := configs.Get().(*conf.Config)
	defer configs.Put(base)
	c := *base
	c.Optimize = true
	if asBool {
		c.Expect, c.ExpectAny = reflect.Bool, true
	}
	defer func() { base.NtCache = c.NtCache }() // keep what the checker cached
	tree, err := parser.ParseWithConfig(src, &c)
	if err != nil {
		return nil, nil, false, err
	}
	if len(scopes) > 0 {
		ast.Walk(&tree.Node, scopeRefs(scopes))
	}
	if _, err := new(checker.Checker).PatchAndCheck(tree, &c); err != nil {
		return nil, nil, false, err
	}
	nc := &nilCompares{}
	ast.Walk(&tree.Node, nc)
	if nc.patched {
		if _, err := checker.Check(tree, &c); err != nil {
			return nil, nil, false, err
		}
	}
	// The optimizer folds constants (it would build a constant bomb), so
	// the budget guards go in first.
	bp := &budgetPatch{}
	ast.Walk(&tree.Node, bp)
	if bp.patched {
		if _, err := checker.Check(tree, &c); err != nil {
			return nil, nil, false, err
		}
	}
	if err := optimizer.Optimize(&tree.Node, &c); err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, nil, false, fe.Bind(tree.Source)
		}
		return nil, nil, false, err
	}
	p, err := compiler.Compile(tree, &c)
	if err != nil {
		return nil, nil, false, err
	}
	return p, tree.Node, bp.patched, nil
}

// Eval runs p with the turn's environment.
func (t *Turn) Eval(p *Program) (any, error) {
	if p.fast != nil {
		if v, ok := p.fast(&t.env); ok {
			if _, isBool := v.(bool); isBool || !p.asBool {
				return v, nil
			}
		}
	}
	if p.guarded {
		t.env.meter.begin()
	}
	v, err := t.vm.Run(p.prog, &t.env)
	if p.guarded {
		t.env.meter.end()
	}
	if err != nil {
		msg, _, _ := strings.Cut(err.Error(), "\n")
		return nil, fmt.Errorf("expression %q: %s", p.Source, msg)
	}
	return v, nil
}

// True runs a condition.
func (t *Turn) True(p *Program) (bool, error) {
	v, err := t.Eval(p)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("expression %q: got %T, want bool", p.Source, v)
	}
	return b, nil
}

// scopeRefs rewrites the names of node scopes into look-ups of Env.Scopes:
// webhook.status becomes $scopes["webhook"].status.
type scopeRefs map[string]any

func (s scopeRefs) Visit(node *ast.Node) {
	if id, ok := (*node).(*ast.IdentifierNode); ok {
		if _, ok := s[id.Value]; ok {
			m := &ast.MemberNode{Node: &ast.IdentifierNode{Value: "$scopes"}, Property: &ast.StringNode{Value: id.Value}}
			ast.Patch(node, m)
		}
	}
}
