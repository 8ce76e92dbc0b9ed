package nodes

import (
	"context"
	"math"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/storyflow/storyflow/engine"
)

// Question sends its prompt and waits. The next input is validated, saved in
// attributes[Save] and the chat goes to Next; invalid input gets Retry (or the
// prompt again) and the chat keeps waiting.
type Question struct {
	Responses []*engine.ResponseTemplate
	Save      string
	Retry     []*engine.ResponseTemplate
	Next      string
	// Validate is the validate setting as written ("email", "number",
	// "phone", "url", "regex:…" or an expr); empty accepts any input.
	Validate string
	// valid checks an input; nil accepts any. It returns the value to save.
	valid func(t *engine.Turn, in string) (any, bool, error)
}

var (
	_ engine.Node    = (*Question)(nil)
	_ engine.Resumer = (*Question)(nil)

	attrRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
)

func init() {
	builtin(engine.Spec{
		Type:    "question",
		Summary: "Sends the prompt and waits; the answer is validated, saved in attributes[save], then next.",
		Waits:   true,
		Fields: []engine.Field{
			withRequired(responsesField),
			{Name: "save", Kind: engine.KindString, Sets: true, Description: "attribute to store the answer in"},
			{Name: "validate", Kind: engine.KindString, Description: "email, number, phone, url, regex:<re>, or an expr on input"},
			{Name: "retry", Kind: engine.KindResponses, Description: "responses sent on invalid input (default: the prompt again)"},
			withRequired(nextField),
		},
	}, newQuestion)
}

func newQuestion(c *engine.Config) (engine.Node, error) {
	n := &Question{
		Responses: c.Responses("responses"),
		Save:      c.String("save"),
		Retry:     c.Responses("retry"),
		Next:      c.Ref("next", "next", ""),
	}
	if c.Has("save") && !attrRe.MatchString(n.Save) {
		c.Errorf("save", "attribute name %q must match [A-Za-z_][A-Za-z0-9_]{0,63}", n.Save)
	}
	v := c.String("validate")
	n.Validate = v
	switch {
	case !c.Has("validate"):
	case v == "email":
		n.valid = check(func(s string) bool {
			a, err := mail.ParseAddress(s)
			return err == nil && a.Address == s && strings.Contains(s[strings.LastIndexByte(s, '@'):], ".")
		})
	case v == "number":
		n.valid = func(_ *engine.Turn, s string) (any, bool, error) {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			// NaN and infinities are no answer (nor can a chat store them as JSON).
			return f, err == nil && !math.IsNaN(f) && !math.IsInf(f, 0), nil
		}
	case v == "phone":
		n.valid = check(isPhone)
	case v == "url":
		n.valid = check(func(s string) bool {
			u, err := url.Parse(s)
			return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
		})
	case strings.HasPrefix(v, "regex:"):
		re, err := c.CompileRegexp(strings.TrimPrefix(v, "regex:"))
		if err != nil {
			c.Errorf("validate", "validate: %v", err)
			break
		}
		n.valid = check(re.MatchString)
	default:
		p := c.Expr("validate", true)
		if p == nil {
			break
		}
		n.valid = func(t *engine.Turn, s string) (any, bool, error) {
			ok, err := t.True(p)
			return s, ok, err
		}
	}
	return n, nil
}

// isPhone accepts a phone number written the usual ways: an optional leading
// +, then 6 to 15 digits, with spaces, dots, dashes and parentheses between.
func isPhone(s string) bool {
	s = strings.TrimPrefix(s, "+")
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == ' ' || r == '.' || r == '-' || r == '(' || r == ')':
		default:
			return false
		}
	}
	return digits >= 6 && digits <= 15
}

func check(f func(string) bool) func(*engine.Turn, string) (any, bool, error) {
	return func(_ *engine.Turn, s string) (any, bool, error) {
		s = strings.TrimSpace(s)
		return s, f(s), nil
	}
}

// Run implements engine.Node: it sends the prompt and waits.
func (n *Question) Run(_ context.Context, t *engine.Turn) (engine.Result, error) {
	if err := t.SendTemplates(n.Responses); err != nil {
		return engine.Result{}, err
	}
	return engine.Wait(), nil
}

// Resume implements engine.Resumer: it validates and saves the input.
func (n *Question) Resume(_ context.Context, t *engine.Turn) (engine.Result, error) {
	in := t.Input.Value()
	var val any = in
	if n.valid != nil {
		v, ok, err := n.valid(t, in)
		if err != nil {
			return engine.Result{}, err
		}
		if !ok {
			retry := n.Retry
			if len(retry) == 0 {
				retry = n.Responses
			}
			if err := t.SendTemplates(retry); err != nil {
				return engine.Result{}, err
			}
			return engine.Wait(), nil
		}
		val = v
	}
	if n.Save != "" {
		t.SetAttribute(n.Save, val)
	}
	return engine.Goto(n.Next), nil
}
