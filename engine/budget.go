package engine

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/builtin"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"
)

// Budget bounds what expressions may take (SPEC §1). A story is untrusted
// input: without a budget, `repeat(repeat("a", 1e6), 1e6)` or a quadratic
// reduce would take the server's memory or CPU.
type Budget struct {
	// Memory is how many bytes of strings and collections one evaluation
	// may build (default DefaultExprMemory).
	Memory int64
	// Time is how long the expressions of one turn may run in string
	// building and loops (default DefaultExprTime).
	Time time.Duration
}

// Defaults of Budget.
const (
	DefaultExprMemory = 1 << 20
	DefaultExprTime   = 50 * time.Millisecond
)

// ErrBudget is the error of an evaluation over its budget.
var ErrBudget = errors.New("over budget")

func (b Budget) withDefaults() Budget {
	if b.Memory <= 0 {
		b.Memory = DefaultExprMemory
	}
	if b.Time <= 0 {
		b.Time = DefaultExprTime
	}
	return b
}

// meter counts what one turn's evaluations take. Guarded operations (the
// calls budgetPatch puts into a program) charge it; others cost a bounded
// amount each, and loops tick it once per element.
type meter struct {
	budget   Budget
	memLeft  int64         // of the running evaluation
	timeLeft time.Duration // of the turn
	start    time.Time     // of the running evaluation's first guarded call
	deadline time.Time
	ticks    uint32
}

func newMeter(b Budget) meter {
	b = b.withDefaults()
	return meter{budget: b, timeLeft: b.Time}
}

// begin starts an evaluation.
func (m *meter) begin() {
	m.memLeft = m.budget.Memory
	m.start, m.deadline, m.ticks = time.Time{}, time.Time{}, 0
}

// end ends an evaluation, taking its time from the turn's.
func (m *meter) end() {
	if !m.start.IsZero() {
		m.timeLeft -= time.Since(m.start)
		m.start = time.Time{}
	}
}

func (m *meter) tick() error {
	if m.start.IsZero() {
		m.start = time.Now()
		m.deadline = m.start.Add(m.timeLeft)
		if m.timeLeft <= 0 {
			return m.timeError()
		}
		return nil
	}
	m.ticks++
	if m.ticks%16 == 0 && time.Now().After(m.deadline) {
		return m.timeError()
	}
	return nil
}

func (m *meter) timeError() error {
	return &budgetError{time: true, msg: fmt.Sprintf("expressions ran past the turn's time budget (%v)", m.budget.Time)}
}

// budgetError is an evaluation over its budget; errors.Is(err, ErrBudget).
type budgetError struct {
	time bool
	msg  string
}

func (e *budgetError) Error() string        { return e.msg }
func (e *budgetError) Is(target error) bool { return target == ErrBudget }

func (m *meter) charge(n int64) error {
	if err := m.tick(); err != nil {
		return err
	}
	if n > m.memLeft {
		return &budgetError{msg: fmt.Sprintf("expression builds more than its memory budget (%d bytes)", m.budget.Memory)}
	}
	m.memLeft -= n
	return nil
}

// Guarded builtins: those that can build far more than they are given are
// replaced by versions that check the size first; those that build about
// what they are given are charged after; predicates tick once per element.
var (
	preCharged  = map[string]bool{"repeat": true, "replace": true, "join": true}
	postCharged = map[string]bool{
		"string": true, "toJSON": true, "fromJSON": true, "upper": true, "lower": true,
		"trim": true, "trimPrefix": true, "trimSuffix": true, "split": true, "splitAfter": true,
		"toBase64": true, "fromBase64": true, "concat": true, "flatten": true, "sort": true,
		"keys": true, "values": true, "toPairs": true, "fromPairs": true, "uniq": true,
		"reverse": true, "take": true, "map": true, "filter": true, "groupBy": true, "sortBy": true,
	}
)

// budgetPatch rewrites a checked tree so that its evaluation charges the
// meter: string `+` and allocating builtins become calls to the guard
// functions below, with $env (the *Env holding the meter) as first argument.
type budgetPatch struct{ patched bool }

func (v *budgetPatch) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.BinaryNode:
		if n.Operator != "+" || (numeric(n.Left.Type()) && numeric(n.Right.Type())) {
			return
		}
		v.call(node, "__add", n.Left, n.Right)
	case *ast.BuiltinNode:
		for _, a := range n.Arguments {
			if p, ok := a.(*ast.PredicateNode); ok {
				p.Node = guardCall("__tick", p.Node)
				v.patched = true
			}
		}
		switch {
		case preCharged[n.Name]:
			v.call(node, "__"+n.Name, n.Arguments...)
		case postCharged[n.Name]:
			v.call(node, "__size", n)
		}
	}
}

func (v *budgetPatch) call(node *ast.Node, name string, args ...ast.Node) {
	v.patched = true
	ast.Patch(node, guardCall(name, args...))
}

func guardCall(name string, args ...ast.Node) ast.Node {
	return &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: name},
		Arguments: append([]ast.Node{&ast.IdentifierNode{Value: "$env"}}, args...),
	}
}

func numeric(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// addGuards registers the guard functions in an expr configuration.
func addGuards(c *conf.Config) {
	fns := map[string]func(m *meter, args []any) (any, error){
		"__add":     guardAdd,
		"__repeat":  guardRepeat,
		"__replace": guardReplace,
		"__join":    guardJoin,
		"__size": func(m *meter, args []any) (any, error) {
			return args[0], m.charge(sizeOf(args[0]))
		},
		"__tick": func(m *meter, args []any) (any, error) {
			return args[0], m.tick()
		},
	}
	for name, fn := range fns {
		c.Functions[name] = &builtin.Function{Name: name, Func: func(args ...any) (any, error) {
			env, ok := args[0].(*Env)
			if !ok || len(args) < 2 {
				return nil, fmt.Errorf("%s: bad call", name)
			}
			return fn(&env.meter, args[1:])
		}}
	}
}

func guardAdd(m *meter, args []any) (any, error) {
	if len(args) != 2 {
		return nil, errors.New("+: bad call")
	}
	if a, ok := args[0].(string); ok {
		if b, ok := args[1].(string); ok {
			if err := m.charge(int64(len(a)) + int64(len(b))); err != nil {
				return nil, err
			}
			return a + b, nil
		}
	}
	if err := m.tick(); err != nil {
		return nil, err
	}
	return runtime.Add(args[0], args[1]), nil
}

func guardRepeat(m *meter, args []any) (any, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("invalid number of arguments for repeat (expected 2, got %d)", len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("repeat: want a string, got %T", args[0])
	}
	n := runtime.ToInt(args[1])
	if n < 0 {
		return nil, fmt.Errorf("invalid argument for repeat (expected positive integer, got %d)", n)
	}
	if n > 0 && int64(len(s)) > m.memLeft/int64(n) {
		return nil, m.charge(m.memLeft + 1)
	}
	if err := m.charge(int64(len(s)) * int64(n)); err != nil {
		return nil, err
	}
	return strings.Repeat(s, n), nil
}

func guardReplace(m *meter, args []any) (any, error) {
	if len(args) != 3 && len(args) != 4 {
		return nil, fmt.Errorf("invalid number of arguments for replace (expected 3 or 4, got %d)", len(args))
	}
	var s [3]string
	for i := range s {
		v, ok := args[i].(string)
		if !ok {
			return nil, fmt.Errorf("replace: want strings, got %T", args[i])
		}
		s[i] = v
	}
	n := -1
	if len(args) == 4 {
		n = runtime.ToInt(args[3])
	}
	count := strings.Count(s[0], s[1])
	if s[1] == "" {
		count = utf8.RuneCountInString(s[0]) + 1
	}
	if n >= 0 && n < count {
		count = n
	}
	size := int64(len(s[0])) + int64(count)*(int64(len(s[2]))-int64(len(s[1])))
	if err := m.charge(max(size, int64(len(s[0])))); err != nil {
		return nil, err
	}
	return strings.Replace(s[0], s[1], s[2], n), nil
}

func guardJoin(m *meter, args []any) (any, error) {
	if len(args) != 1 && len(args) != 2 {
		return nil, fmt.Errorf("invalid number of arguments for join (expected 1 or 2, got %d)", len(args))
	}
	glue := ""
	if len(args) == 2 {
		g, ok := args[1].(string)
		if !ok {
			return nil, fmt.Errorf("join: want a string glue, got %T", args[1])
		}
		glue = g
	}
	var parts []string
	switch a := args[0].(type) {
	case []string:
		parts = a
	case []any:
		parts = make([]string, len(a))
		for i, v := range a {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("join: want strings, got %T", v)
			}
			parts[i] = s
		}
	default:
		return nil, fmt.Errorf("join: want an array of strings, got %T", args[0])
	}
	size := int64(len(glue)) * int64(max(len(parts)-1, 0))
	for _, p := range parts {
		size += int64(len(p))
	}
	if err := m.charge(size); err != nil {
		return nil, err
	}
	return strings.Join(parts, glue), nil
}

// sizeOf is about how many bytes v's outermost value takes: its elements
// were charged when they were built (or come from the chat).
func sizeOf(v any) int64 {
	switch x := v.(type) {
	case string:
		return int64(len(x))
	case []any:
		return 16 * int64(len(x))
	case []string:
		return 16 * int64(len(x))
	case map[string]any:
		return 48 * int64(len(x))
	case map[any][]any:
		return 48 * int64(len(x))
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array, reflect.Map:
		return 16 * int64(rv.Len())
	}
	return 16
}

// readsNothing tells whether tree reads nothing from the chat: a guarded
// constant is evaluated at load, so a bomb is an error there.
func readsNothing(tree ast.Node) bool {
	c := &constCheck{ok: true}
	ast.Walk(&tree, c)
	return c.ok
}

type constCheck struct{ ok bool }

func (c *constCheck) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if n.Value != "$env" && !strings.HasPrefix(n.Value, "__") {
			c.ok = false
		}
	case *ast.VariableDeclaratorNode:
		c.ok = false
	}
}

// checkConstant evaluates a guarded constant program under a budget whose
// time is at most left; it returns the error (only budget errors count) and
// the time it took.
func (p *Program) checkConstant(left time.Duration) (time.Duration, error) {
	env := &Env{meter: newMeter(Budget{Time: min(left, DefaultExprTime)})}
	env.meter.begin()
	var machine vm.VM
	machine.MemoryBudget = uint(env.meter.budget.Memory / 16)
	start := time.Now()
	_, err := machine.Run(p.prog, env)
	took := time.Since(start)
	var be *budgetError
	if errors.As(err, &be) && (!be.time || left >= DefaultExprTime) {
		return took, be
	}
	return took, nil
}
