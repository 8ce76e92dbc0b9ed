package engine

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Template is a string that may hold {{ expr }} parts (SPEC §1).
type Template struct {
	Source string
	parts  []part
	// size is a guess at the rendered length, to allocate once.
	size int
}

type part struct {
	lit  string
	prog *Program
}

// CompileTemplate parses and compiles src. Errors carry the rune column in src.
func CompileTemplate(src string) (*Template, error) { return compileTemplate(src, CompileExpr) }

func compileTemplate(src string, compileExpr func(string, bool) (*Program, error)) (*Template, error) {
	t := &Template{Source: src}
	rest, off := src, 0
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" {
				t.parts = append(t.parts, part{lit: rest})
			}
			for _, p := range t.parts {
				t.size += len(p.lit)
				if p.prog != nil {
					t.size += 16
				}
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, part{lit: rest[:i]})
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			e := &ExprError{Offset: utf8.RuneCountInString(src[:off+i]), Message: "template has {{ without }}"}
			e.Line, e.Column = lineColumn(src, e.Offset)
			return nil, e
		}
		code := rest[i+2 : i+2+j]
		p, err := compileExpr(code, false)
		if err != nil {
			e := err.(*ExprError)
			e.Offset += utf8.RuneCountInString(src[:off+i+2])
			e.Line, e.Column = lineColumn(src, e.Offset)
			e.Message = "template: " + e.Message
			return nil, e
		}
		t.parts = append(t.parts, part{prog: p})
		off += i + 2 + j + 2
		rest = rest[i+2+j+2:]
	}
}

// lineColumn returns the line (1-based) and column (0-based) of rune offset off in s.
func lineColumn(s string, off int) (line, col int) {
	line = 1
	n := 0
	for _, r := range s {
		if n == off {
			break
		}
		n++
		if r == '\n' {
			line, col = line+1, 0
		} else {
			col++
		}
	}
	return line, col
}

// MustTemplate compiles src or panics; for tests and static strings.
func MustTemplate(src string) *Template {
	t, err := CompileTemplate(src)
	if err != nil {
		panic(err)
	}
	return t
}

// Static tells whether the template holds no expression.
func (tp *Template) Static() bool {
	for _, p := range tp.parts {
		if p.prog != nil {
			return false
		}
	}
	return true
}

// Render renders the template as text; nil renders as "".
func (t *Turn) Render(tp *Template) (string, error) {
	switch len(tp.parts) {
	case 0:
		return "", nil
	case 1:
		if tp.parts[0].prog == nil {
			return tp.parts[0].lit, nil
		}
	}
	var b strings.Builder
	b.Grow(tp.size)
	for _, p := range tp.parts {
		if p.prog == nil {
			b.WriteString(p.lit)
			continue
		}
		v, err := t.Eval(p.prog)
		if err != nil {
			return "", err
		}
		b.WriteString(Text(v))
	}
	return b.String(), nil
}

// Value renders a template keeping the type when it is exactly one {{ expr }}.
func (t *Turn) Value(tp *Template) (any, error) {
	if len(tp.parts) == 1 && tp.parts[0].prog != nil && strings.TrimSpace(tp.Source) == tp.Source {
		return t.Eval(tp.parts[0].prog)
	}
	return t.Render(tp)
}

// Text renders a value as templates do.
func Text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}
