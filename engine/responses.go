package engine

import (
	"math/rand/v2"
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
		c.ErrorAt(v, "field %s must be a list of responses", field)
		return nil
	}
	out := make([]*ResponseTemplate, 0, len(v.Content))
	for i, it := range v.Content {
		it = resolve(it)
		if it.Kind != yaml.MappingNode {
			c.ErrorAt(it, "%s[%d]: a response must be an object", field, i)
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
			c.Errorf("type", "unknown response type %q (want one of %s)", typ, strings.Join(ResponseTypes, ", "))
		}
		return nil
	}
	before := *c.hasError
	*c.hasError = false
	for _, k := range c.Keys() {
		if k != "type" && k != "delay" && !contains(allowed, k) {
			kn, _ := c.get(k)
			c.ErrorAt(kn, "%s response: field %s not recognised", typ, k)
		}
	}
	rt := &ResponseTemplate{typ: typ, delay: c.Int("delay", 0)}
	r := &Response{Type: typ, Delay: rt.delay}
	pos := map[string]*yaml.Node{"": c.m}
	str := func(o *Config, path, field string, dst *string) *Template {
		if !o.Has(field) {
			return nil
		}
		pos[path] = o.Value(field)
		t := o.Template(field)
		*dst = o.String(field)
		return t
	}
	if c.Has("delay") {
		pos["delay"] = c.Value("delay")
	}
	rt.message = str(c, "message", "message", &r.Message)
	rt.image = str(c, "imageUrl", "imageUrl", &r.ImageURL)
	rt.file = str(c, "fileUrl", "fileUrl", &r.FileURL)
	rt.title = str(c, "title", "title", &r.Title)
	if mv := c.Value("messages"); mv != nil {
		pos["messages"] = mv
		for i, s := range c.Strings("messages") {
			pos[indexPath("messages", i)] = resolve(mv.Content[i])
			rt.messages = append(rt.messages, c.TemplateAt(resolve(mv.Content[i])))
			r.Messages = append(r.Messages, s)
		}
	}
	rt.buttons, r.Buttons = c.buttons("buttons", "buttons", pos)
	for i, e := range c.List("elements") {
		p := indexPath("elements", i)
		pos[p] = e.m
		for _, k := range e.Keys() {
			if k != "title" && k != "subtitle" && k != "imageUrl" && k != "buttons" {
				kn, _ := e.get(k)
				c.ErrorAt(kn, "card: field %s not recognised", k)
			}
		}
		var card Card
		ct := cardTemplate{
			title:    str(e, p+".title", "title", &card.Title),
			subtitle: str(e, p+".subtitle", "subtitle", &card.Subtitle),
			image:    str(e, p+".imageUrl", "imageUrl", &card.ImageURL),
		}
		ct.buttons, card.Buttons = e.buttons("buttons", p+".buttons", pos)
		rt.elements = append(rt.elements, ct)
		r.Elements = append(r.Elements, card)
	}
	if v := c.Value("elements"); v != nil {
		pos["elements"] = v
	}
	for _, p := range r.Check(c.b.NodeExists) {
		c.ErrorAt(lookupPos(pos, p.Path), "%s response: %s", typ, p.Error())
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

func (c *Config) recordGoto(b Button) {
	if b.Type == "goto" && c.info != nil {
		c.info.Edges = append(c.info.Edges, Edge{To: b.Value, Label: b.Title, Kind: "goto"})
	}
}

func (c *Config) buttons(field, path string, pos map[string]*yaml.Node) ([]buttonTemplate, []Button) {
	var bts []buttonTemplate
	var bs []Button
	if v := c.Value(field); v != nil {
		pos[path] = v
	}
	for i, o := range c.List(field) {
		p := indexPath(path, i)
		pos[p] = o.m
		for _, k := range o.Keys() {
			if k != "type" && k != "title" && k != "value" && k != "height" {
				kn, _ := o.get(k)
				c.ErrorAt(kn, "button: field %s not recognised", k)
			}
		}
		b := Button{Type: o.String("type"), Height: o.String("height")}
		if o.Has("type") {
			pos[p+".type"] = o.Value("type")
		}
		if o.Has("height") {
			pos[p+".height"] = o.Value("height")
		}
		bt := buttonTemplate{typ: b.Type, height: b.Height}
		if o.Has("title") {
			pos[p+".title"] = o.Value("title")
			b.Title = o.String("title")
			bt.title = o.Template("title")
		}
		if o.Has("value") {
			pos[p+".value"] = o.Value("value")
			b.Value = o.String("value")
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

func indexPath(p string, i int) string {
	return p + "[" + itoa(i) + "]"
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// lookupPos finds the node of path or of its closest parent.
func lookupPos(pos map[string]*yaml.Node, path string) *yaml.Node {
	for {
		if n, ok := pos[path]; ok && n != nil {
			return n
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return pos[""]
		}
		path = path[:i]
	}
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
		return cut(s, limit)
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

// cut shortens s to at most n runes.
func cut(s string, n int) string {
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
