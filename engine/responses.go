package engine

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// ResponseTemplate is a response of a story: its strings are templates.
type ResponseTemplate struct {
	// static is the response when no string holds an expression.
	static   *Response
	typ      string
	delay    int
	message  *Template
	messages []*Template
	image    *Template
	file     *Template
	title    *Template
	buttons  []buttonTemplate
	elements []cardTemplate
}

// Type returns the response type (text, quickReplies, ...).
func (r *ResponseTemplate) Type() string { return r.typ }

type buttonTemplate struct {
	typ, height  string
	title, value *Template
}

type cardTemplate struct {
	title, subtitle, image *Template
	buttons                []buttonTemplate
}

var responseFields = map[string][]string{
	TypeText:         {"message"},
	TypeRandomText:   {"messages"},
	TypeImage:        {"imageUrl"},
	TypeFile:         {"fileUrl"},
	TypeQuickReplies: {"title", "buttons"},
	TypeButtons:      {"title", "buttons"},
	TypeCards:        {"elements"},
}

// Responses compiles the list of responses in field, checking SPEC §2.
func (c *Config) Responses(field string) []*ResponseTemplate {
	_, v := c.get(field)
	if isNull(v) {
		return nil
	}
	if v.Kind != yaml.SequenceNode {
		c.errorAt(v, "field %s must be a list of responses", field)
		return nil
	}
	out := make([]*ResponseTemplate, 0, len(v.Content))
	for i, it := range v.Content {
		it = resolve(it)
		if it.Kind != yaml.MappingNode {
			c.errorAt(it, "%s[%d]: a response must be an object", field, i)
			continue
		}
		if rt := c.sub(it).response(); rt != nil {
			out = append(out, rt)
		}
	}
	return out
}

// response compiles one response held in c.
func (c *Config) response() *ResponseTemplate {
	typ := c.String("type")
	allowed, ok := responseFields[typ]
	if !ok {
		if typ == "" {
			c.Errorf("", "response: field type is required")
		} else {
			hint := didYouMean(typ, ResponseTypes)
			if hint == "" {
				hint = " (want one of " + strings.Join(ResponseTypes, ", ") + ")"
			}
			c.Errorf("type", "unknown response type %q%s", typ, hint)
		}
		return nil
	}
	before := *c.hasError
	*c.hasError = false
	for i := 0; i+1 < len(c.m.Content); i += 2 {
		k := c.m.Content[i]
		if k.Value != "type" && k.Value != "delay" && !contains(allowed, k.Value) {
			c.errorAt(k, "%s response: field %s not recognised%s", typ, k.Value, didYouMean(k.Value, append([]string{"type", "delay"}, allowed...)))
		}
	}
	rt := &ResponseTemplate{typ: typ, delay: c.Int("delay", 0)}
	r := &Response{Type: typ, Delay: rt.delay}
	rt.message = c.responseString("message", &r.Message)
	rt.image = c.responseString("imageUrl", &r.ImageURL)
	rt.file = c.responseString("fileUrl", &r.FileURL)
	rt.title = c.responseString("title", &r.Title)
	if mv := c.value("messages"); mv != nil {
		if mv.Kind != yaml.SequenceNode {
			c.errorAt(mv, "field messages must be a list of strings")
		}
		for _, it := range mv.Content {
			if it = resolve(it); it.Kind != yaml.ScalarNode {
				c.errorAt(it, "field messages must be a list of strings")
				continue
			}
			rt.messages = append(rt.messages, c.templateAt(it))
			r.Messages = append(r.Messages, it.Value)
		}
	}
	rt.buttons, r.Buttons = c.buttons()
	for _, e := range c.List("elements") {
		for i := 0; i+1 < len(e.m.Content); i += 2 {
			switch k := e.m.Content[i]; k.Value {
			case "title", "subtitle", "imageUrl", "buttons":
			default:
				c.errorAt(k, "card: field %s not recognised%s", k.Value, didYouMean(k.Value, []string{"title", "subtitle", "imageUrl", "buttons"}))
			}
		}
		var card Card
		ct := cardTemplate{
			title:    e.responseString("title", &card.Title),
			subtitle: e.responseString("subtitle", &card.Subtitle),
			image:    e.responseString("imageUrl", &card.ImageURL),
		}
		ct.buttons, card.Buttons = e.buttons()
		rt.elements = append(rt.elements, ct)
		r.Elements = append(r.Elements, card)
	}
	for _, p := range r.Check(c.b.NodeExists) {
		c.errorAt(c.locate(p.Path), "%s response: %s", typ, p.Error())
	}
	failed := *c.hasError
	*c.hasError = before || failed
	if failed {
		return nil
	}
	for _, b := range r.Buttons {
		c.recordGoto(b)
	}
	for _, e := range r.Elements {
		for _, b := range e.Buttons {
			c.recordGoto(b)
		}
	}
	if rt.isStatic() {
		if r.Delay == 0 {
			r.Delay = DefaultDelay
		}
		setHeights(r)
		rt.static = r
	}
	return rt
}

// responseString reads a string field of a response into dst and compiles it.
func (c *Config) responseString(field string, dst *string) *Template {
	if !c.Has(field) {
		return nil
	}
	*dst = c.String(field)
	return c.Template(field)
}

func (c *Config) recordGoto(b Button) {
	if b.Type == "goto" && c.info != nil {
		c.info.Edges = append(c.info.Edges, Edge{To: b.Value, Label: b.Title, Kind: "goto"})
	}
}

// buttons reads the buttons field of a response or card.
func (c *Config) buttons() ([]buttonTemplate, []Button) {
	var bts []buttonTemplate
	var bs []Button
	for _, o := range c.List("buttons") {
		for i := 0; i+1 < len(o.m.Content); i += 2 {
			switch k := o.m.Content[i]; k.Value {
			case "type", "title", "value", "height":
			default:
				c.errorAt(k, "button: field %s not recognised%s", k.Value, didYouMean(k.Value, []string{"type", "title", "value", "height"}))
			}
		}
		b := Button{Type: o.String("type"), Height: o.String("height"), Title: o.String("title"), Value: o.String("value")}
		bt := buttonTemplate{typ: b.Type, height: b.Height}
		if o.Has("title") {
			bt.title = o.Template("title")
		}
		if o.Has("value") {
			if b.Type == "goto" {
				bt.value = &Template{Source: b.Value, parts: []part{{lit: b.Value}}}
			} else {
				bt.value = o.Template("value")
			}
		}
		bts = append(bts, bt)
		bs = append(bs, b)
	}
	return bts, bs
}

// locate returns the YAML node at path ("elements[0].buttons[1].value")
// under the object, or the closest one above it that exists.
func (c *Config) locate(path string) *yaml.Node {
	n := c.m
	for path != "" {
		i := strings.IndexAny(path, ".[")
		if i < 0 {
			i = len(path)
		}
		_, v := c.sub(n).get(path[:i])
		if v == nil {
			return n
		}
		n, path = v, path[i:]
		for strings.HasPrefix(path, "[") {
			j := strings.IndexByte(path, ']')
			k, err := strconv.Atoi(path[1:max(j, 1)])
			if j < 0 || err != nil || n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return n
			}
			n, path = resolve(n.Content[k]), path[j+1:]
		}
		path = strings.TrimPrefix(path, ".")
	}
	return n
}

func (rt *ResponseTemplate) isStatic() bool {
	static := func(t *Template) bool { return t == nil || t.Static() }
	ok := static(rt.message) && static(rt.image) && static(rt.file) && static(rt.title)
	for _, m := range rt.messages {
		ok = ok && static(m)
	}
	for _, b := range rt.buttons {
		ok = ok && static(b.title) && static(b.value)
	}
	for _, e := range rt.elements {
		ok = ok && static(e.title) && static(e.subtitle) && static(e.image)
		for _, b := range e.buttons {
			ok = ok && static(b.title) && static(b.value)
		}
	}
	return ok
}

func setHeights(r *Response) {
	for i := range r.Buttons {
		if r.Buttons[i].Type == "webview" && r.Buttons[i].Height == "" {
			r.Buttons[i].Height = "compact"
		}
	}
	for j := range r.Elements {
		for i := range r.Elements[j].Buttons {
			b := &r.Elements[j].Buttons[i]
			if b.Type == "webview" && b.Height == "" {
				b.Height = "compact"
			}
		}
	}
}

// SendTemplates renders responses and sends them.
func (t *Turn) SendTemplates(rts []*ResponseTemplate) error {
	for _, rt := range rts {
		r, err := t.RenderResponse(rt)
		if err != nil {
			return err
		}
		t.Send(r)
	}
	return nil
}

// RenderResponse renders a response template. A randomText renders as a text
// with one of its messages; rendered strings are cut to their limits.
func (t *Turn) RenderResponse(rt *ResponseTemplate) (Response, error) {
	if rt.static != nil {
		r := *rt.static
		if r.Type == TypeRandomText {
			r = Response{Type: TypeText, Delay: r.Delay, Message: r.Messages[rand.IntN(len(r.Messages))]}
		}
		return r, nil
	}
	var err error
	render := func(tp *Template, limit int) string {
		if tp == nil || err != nil {
			return ""
		}
		var s string
		s, err = t.Render(tp)
		return Cut(s, limit)
	}
	r := Response{Type: rt.typ, Delay: rt.delay}
	if r.Delay == 0 {
		r.Delay = DefaultDelay
	}
	switch rt.typ {
	case TypeRandomText:
		r.Type = TypeText
		r.Message = render(rt.messages[rand.IntN(len(rt.messages))], 1024)
	default:
		r.Message = render(rt.message, 1024)
	}
	r.ImageURL = render(rt.image, 2048)
	r.FileURL = render(rt.file, 2048)
	r.Title = render(rt.title, 640)
	rb := func(bts []buttonTemplate) []Button {
		if len(bts) == 0 {
			return nil
		}
		bs := make([]Button, len(bts))
		for i, bt := range bts {
			bs[i] = Button{Type: bt.typ, Height: bt.height, Title: render(bt.title, 20), Value: render(bt.value, 2048)}
		}
		return bs
	}
	r.Buttons = rb(rt.buttons)
	for _, e := range rt.elements {
		r.Elements = append(r.Elements, Card{
			Title: render(e.title, 80), Subtitle: render(e.subtitle, 80),
			ImageURL: render(e.image, 2048), Buttons: rb(e.buttons),
		})
	}
	setHeights(&r)
	return r, err
}

// Cut shortens s to at most n runes (templates and webhook answers are cut
// to their SPEC §2 limits).
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}
