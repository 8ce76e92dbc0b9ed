package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Env is what expressions and templates see (SPEC §1).
type Env struct {
	Attributes     map[string]any `expr:"attributes"`
	UserAttributes map[string]any `expr:"userAttributes"`
	Input          string         `expr:"input"`
	Chat           ChatInfo       `expr:"chat"`
	Webhook        WebhookInfo    `expr:"webhook"`
}

// ChatInfo is the chat as expressions see it.
type ChatInfo struct {
	ID         string `expr:"id"`
	UserID     string `expr:"userId"`
	ExternalID string `expr:"externalId"`
	StoryID    string `expr:"storyId"`
}

// WebhookInfo is the last webhook call of the turn.
type WebhookInfo struct {
	Status int `expr:"status"`
}

// Program is a compiled expression with its source.
type Program struct {
	Source string
	prog   *vm.Program
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

// CompileExpr compiles an expression against Env. asBool makes it a condition.
func CompileExpr(src string, asBool bool) (*Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &ExprError{Message: "expression is empty"}
	}
	opts := []expr.Option{expr.Env(Env{}), expr.Optimize(true)}
	if asBool {
		opts = append(opts, expr.AsBool())
	}
	p, err := expr.Compile(src, opts...)
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			msg, _, _ := strings.Cut(fe.Message, "\n")
			return nil, &ExprError{Line: fe.Line, Column: fe.Column, Offset: fe.From, Message: msg}
		}
		return nil, &ExprError{Message: err.Error()}
	}
	return &Program{Source: src, prog: p}, nil
}

// Eval runs p with the turn's environment.
func (t *Turn) Eval(p *Program) (any, error) {
	v, err := t.vm.Run(p.prog, &t.env)
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
