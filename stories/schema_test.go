package stories_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
	"gopkg.in/yaml.v3"
)

// compileSchema compiles the story schema of reg; compiling also checks it
// against the draft 2020-12 meta-schema.
func compileSchema(t testing.TB, reg *engine.Registry) *jsonschema.Schema {
	t.Helper()
	raw, err := stories.Schema(reg)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("schema is not JSON: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("story.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("story.schema.json")
	if err != nil {
		t.Fatalf("compile schema: %v", err)
	}
	return sch
}

// yamlInstance turns YAML into a JSON value for the validator.
func yamlInstance(t testing.TB, src string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(jsonKeys(v))
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func jsonKeys(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonKeys(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = jsonKeys(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = jsonKeys(e)
		}
	}
	return v
}

// fullStory uses every built-in node type, response type and button type.
const fullStory = `
id: full-demo
name: Full demo
start: welcome
onError: sorry
attributes: {plan: free, visits: 0}
webhooks:
  crm:
    url: https://crm.example.com/bot
    token: abc
    headers: {X-Source: storyflow}
    auth: {username: bot, password: pw}
    timeout: 10s
    retries: 2
  env:
    url: ${STORY_CRM_URL}
    timeout: 2.5
nodes:
  welcome:
    name: Welcome
    type: message
    responses:
      - {type: text, message: "Hi {{ userAttributes.default_name }}!", delay: 500}
      - {type: randomText, messages: [Hello, Hey]}
      - {type: image, imageUrl: https://example.com/a.png}
      - {type: file, fileUrl: https://example.com/a.pdf}
      - type: quickReplies
        title: Pick one
        buttons:
          - {type: postback, title: One, value: 1}
          - {type: goto, title: Human, value: human}
      - type: buttons
        title: Links
        buttons:
          - {type: url, value: https://example.com}
          - {type: webview, title: Shop, value: https://example.com/shop, height: tall}
          - {type: phone, title: Call, value: "+15551234567"}
      - type: cards
        elements:
          - title: Pro
            subtitle: For teams
            imageUrl: https://example.com/pro.png
            buttons: [{type: postback, title: Buy, value: buy_pro}]
    next: ask
  ask:
    type: question
    responses: [{type: text, message: "Your email?"}]
    save: email
    validate: email
    retry: [{type: text, message: That is not an email.}]
    next: check
  check:
    type: condition
    routes:
      - {when: 'attributes.plan == "pro"', next: save}
      - {when: true, next: tell}
    else: save
  save:
    type: set
    attributes: {visits: "{{ attributes.visits + 1 }}", tier: null, tags: [a, b]}
    next: tell
  tell:
    type: emit
    event: order.requested
    data: {email: "{{ attributes.email }}"}
    next: bye
  human:
    type: handoff
    responses: [{type: text, message: A human will answer.}]
    task: {reason: asked}
  sorry:
    type: end
  bye:
    type: end
    responses: [{type: text, message: Bye.}]
`

func TestSchemaJSON(t *testing.T) {
	reg := nodes.NewRegistry(nodes.Options{})
	a, err := stories.Schema(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := stories.Schema(reg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("schema differs between two calls")
	}
	if !json.Valid(a) {
		t.Fatal("schema is not valid JSON")
	}
	if !bytes.HasPrefix(a, []byte("{\n  \"$defs\"")) {
		t.Errorf("schema is not indented with sorted keys: %.40q", a)
	}
	compileSchema(t, reg)
}

func TestSchemaListsTypes(t *testing.T) {
	reg := exportRegistry(t) // the built-ins and a custom "fetch"
	raw, err := stories.Schema(reg)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Defs struct {
			Node struct {
				Properties struct {
					Type struct {
						Enum []string `json:"enum"`
					} `json:"type"`
				} `json:"properties"`
				AllOf []struct {
					If struct {
						Properties struct {
							Type struct {
								Const string `json:"const"`
							} `json:"type"`
						} `json:"properties"`
					} `json:"if"`
					Then struct {
						AdditionalProperties *bool          `json:"additionalProperties"`
						Properties           map[string]any `json:"properties"`
						Required             []string       `json:"required"`
					} `json:"then"`
				} `json:"allOf"`
			} `json:"node"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, sp := range reg.Specs() {
		want = append(want, sp.Type)
	}
	if !slices.Contains(want, "fetch") || !slices.Contains(want, "message") {
		t.Fatalf("test registry lacks types: %v", want)
	}
	if got := s.Defs.Node.Properties.Type.Enum; !slices.Equal(got, want) {
		t.Errorf("type enum = %v, want %v", got, want)
	}
	var branches []string
	for _, b := range s.Defs.Node.AllOf {
		typ := b.If.Properties.Type.Const
		branches = append(branches, typ)
		sp, _, _ := reg.Lookup(typ)
		if b.Then.AdditionalProperties == nil || *b.Then.AdditionalProperties {
			t.Errorf("node type %s: additionalProperties is not false", typ)
		}
		for _, f := range append(sp.Fields, engine.Field{Name: "type"}, engine.Field{Name: "name"}) {
			if _, ok := b.Then.Properties[f.Name]; !ok {
				t.Errorf("node type %s: field %s missing", typ, f.Name)
			}
		}
		if len(b.Then.Properties) != len(sp.Fields)+2 {
			t.Errorf("node type %s: %d properties, want %d", typ, len(b.Then.Properties), len(sp.Fields)+2)
		}
		req := []string{"type"}
		for _, f := range sp.Fields {
			if f.Required {
				req = append(req, f.Name)
			}
		}
		if !slices.Equal(b.Then.Required, req) {
			t.Errorf("node type %s: required = %v, want %v", typ, b.Then.Required, req)
		}
	}
	if !slices.Equal(branches, want) {
		t.Errorf("if/then branches = %v, want %v", branches, want)
	}
}

func TestSchemaAcceptsStories(t *testing.T) {
	reg := nodes.NewRegistry(nodes.Options{})
	sch := compileSchema(t, reg)
	getenv := func(string) (string, bool) { return "https://example.com/x", true }
	if _, _, err := stories.Load("full.yaml", []byte(fullStory), stories.Options{Registry: reg, Getenv: getenv}); err != nil {
		t.Fatalf("the full story does not load: %v", err)
	}
	if err := sch.Validate(yamlInstance(t, fullStory)); err != nil {
		t.Errorf("full story: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join("..", "examples", "stories", "*.yaml"))
	more, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	files = append(files, more...)
	for _, f := range files {
		t.Run(filepath.ToSlash(f), func(t *testing.T) {
			// Only stories this registry loads: the schema knows no other node types.
			s, _, err := stories.LoadFile(f, stories.Options{Registry: reg, Getenv: getenv})
			if err != nil {
				t.Skipf("does not load with the built-in node types: %v", err)
			}
			if err := sch.Validate(yamlInstance(t, string(s.Source))); err != nil {
				t.Errorf("%s loads but breaks the schema: %v", f, err)
			}
		})
	}
}

func TestSchemaRejects(t *testing.T) {
	reg := nodes.NewRegistry(nodes.Options{})
	sch := compileSchema(t, reg)
	base := func(node string) string {
		return "id: x\nstart: a\nnodes:\n  a:\n" + node
	}
	for _, tc := range []struct{ name, src, want string }{
		{"unknown node field", base("    type: end\n    colour: red\n"), "colour"},
		{"unknown node type", base("    type: teleport\n"), "/nodes/a/type"},
		{"node without type", base("    name: A\n"), "type"},
		{"missing required field", base("    type: set\n    next: a\n"), "attributes"},
		{"bad ref", base("    type: set\n    attributes: {a: 1}\n    next: 'not an id'\n"), "next"},
		{"bad node id", "id: x\nstart: a\nnodes:\n  'a b':\n    type: end\n", "a b"},
		{"bad story id", "id: X!\nstart: a\nnodes:\n  a: {type: end}\n", "id"},
		{"missing start", "id: x\nnodes:\n  a: {type: end}\n", "start"},
		{"unknown story field", "id: x\nstart: a\nversion: 2\nnodes:\n  a: {type: end}\n", "version"},
		{"no nodes", "id: x\nstart: a\nnodes: {}\n", "nodes"},
		{"unknown response type", base("    type: end\n    responses: [{type: video, url: x}]\n"), "responses"},
		{"text too long", base("    type: end\n    responses: [{type: text, message: " + strings.Repeat("a", 1025) + "}]\n"), "message"},
		{"empty text", base("    type: end\n    responses: [{type: text, message: ''}]\n"), "message"},
		{"unknown response field", base("    type: end\n    responses: [{type: text, message: hi, colour: red}]\n"), "colour"},
		{"delay too short", base("    type: end\n    responses: [{type: text, message: hi, delay: 50}]\n"), "delay"},
		{"url button in quick replies", base("    type: end\n    responses: [{type: quickReplies, title: t, buttons: [{type: url, value: 'https://x'}]}]\n"), "buttons"},
		{"too many quick replies", base("    type: end\n    responses: [{type: quickReplies, title: t, buttons: [" +
			strings.TrimSuffix(strings.Repeat("{type: postback, title: p, value: v},", 14), ",") + "]}]\n"), "buttons"},
		{"button title too long", base("    type: end\n    responses: [{type: buttons, title: t, buttons: [{type: postback, title: " + strings.Repeat("b", 21) + ", value: v}]}]\n"), "title"},
		{"bad phone", base("    type: end\n    responses: [{type: buttons, title: t, buttons: [{type: phone, title: Call, value: '555-1234'}]}]\n"), "value"},
		{"too many random texts", base("    type: end\n    responses: [{type: randomText, messages: [" + strings.TrimSuffix(strings.Repeat("m,", 21), ",") + "]}]\n"), "messages"},
		{"card without subtitle", base("    type: end\n    responses: [{type: cards, elements: [{title: t, imageUrl: i, buttons: [{type: postback, title: p, value: v}]}]}]\n"), "subtitle"},
		{"route without next", base("    type: condition\n    routes: [{when: 'true'}]\n    else: a\n"), "next"},
		{"webhook without url", "id: x\nstart: a\nwebhooks:\n  crm: {token: t}\nnodes:\n  a: {type: end}\n", "url"},
		{"webhook ftp url", "id: x\nstart: a\nwebhooks:\n  crm: {url: 'ftp://x'}\nnodes:\n  a: {type: end}\n", "url"},
		{"webhook unknown field", "id: x\nstart: a\nwebhooks:\n  crm: {url: 'https://x', verb: PUT}\nnodes:\n  a: {type: end}\n", "verb"},
		{"webhook bad timeout", "id: x\nstart: a\nwebhooks:\n  crm: {url: 'https://x', timeout: soon}\nnodes:\n  a: {type: end}\n", "timeout"},
		{"webhook 11 headers", "id: x\nstart: a\nwebhooks:\n  crm:\n    url: https://x\n    headers: {" +
			"A: 1, B: 2, C: 3, D: 4, E: 5, F: 6, G: 7, H: 8, I: 9, J: 10, K: 11}\nnodes:\n  a: {type: end}\n", "headers"},
		{"webhook negative retries", "id: x\nstart: a\nwebhooks:\n  crm: {url: 'https://x', retries: -1}\nnodes:\n  a: {type: end}\n", "retries"},
		{"webhook 6 retries", "id: x\nstart: a\nwebhooks:\n  crm: {url: 'https://x', retries: 6}\nnodes:\n  a: {type: end}\n", "retries"},
		{"webhook auth without password", "id: x\nstart: a\nwebhooks:\n  crm: {url: 'https://x', auth: {username: u}}\nnodes:\n  a: {type: end}\n", "password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sch.Validate(yamlInstance(t, tc.src))
			if err == nil {
				t.Fatalf("schema accepts:\n%s", tc.src)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not mention %q:\n%v", tc.want, err)
			}
			// Connections are checked by the webhook nodes that use them, not the loader.
			if strings.HasPrefix(tc.name, "webhook") {
				return
			}
			if _, _, err := stories.Load("x.yaml", []byte(tc.src), stories.Options{Registry: reg}); err == nil {
				t.Errorf("the schema rejects a story that loads:\n%s", tc.src)
			}
		})
	}
}

// kindsSpec has a field of every kind.
var kindsSpec = engine.Spec{
	Type:    "kinds",
	Summary: "Every field kind.",
	Fields: []engine.Field{
		{Name: "s", Kind: engine.KindString, Enum: []string{"red", "green"}, Default: "red", Description: "a colour"},
		{Name: "i", Kind: engine.KindInt, Required: true},
		{Name: "n", Kind: engine.KindNumber},
		{Name: "b", Kind: engine.KindBool},
		{Name: "d", Kind: engine.KindDuration},
		{Name: "r", Kind: engine.KindRef},
		{Name: "e", Kind: engine.KindExpr},
		{Name: "t", Kind: engine.KindTemplate},
		{Name: "v", Kind: engine.KindValues},
		{Name: "rs", Kind: engine.KindResponses},
		{Name: "ro", Kind: engine.KindRoutes},
		{Name: "o", Kind: engine.KindObject, Fields: []engine.Field{{Name: "x", Kind: engine.KindInt, Required: true}}},
		{Name: "l", Kind: engine.KindList, Fields: []engine.Field{{Name: "y", Kind: engine.KindRef, Required: true}}},
		{Name: "a", Kind: engine.KindAny},
		{Name: "c", Kind: engine.KindObject, Schema: map[string]any{"$ref": "#/$defs/connection"}, Description: "a connection"},
	},
}

func TestSchemaFieldKinds(t *testing.T) {
	reg := engine.NewRegistry()
	build := func(*engine.Config) (engine.Node, error) { return nil, nil }
	if err := reg.Register(kindsSpec, build); err != nil {
		t.Fatal(err)
	}
	raw, err := stories.Schema(reg)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Defs struct {
			Node struct {
				AllOf []struct {
					Then struct {
						Properties map[string]json.RawMessage `json:"properties"`
					} `json:"then"`
				} `json:"allOf"`
			} `json:"node"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	props := s.Defs.Node.AllOf[0].Then.Properties
	for field, want := range map[string]string{
		"s":  `{"default":"red","description":"a colour","enum":["red","green"],"type":"string"}`,
		"i":  `{"type":"integer"}`,
		"n":  `{"type":"number"}`,
		"b":  `{"type":"boolean"}`,
		"d":  `{"$ref":"#/$defs/duration"}`,
		"r":  `{"$ref":"#/$defs/nodeId"}`,
		"e":  `{"type":["string","boolean","number"]}`,
		"t":  `{"type":"string"}`,
		"v":  `{"additionalProperties":true,"type":"object"}`,
		"rs": `{"$ref":"#/$defs/responses"}`,
		"ro": `{"$ref":"#/$defs/routes"}`,
		"o":  `{"additionalProperties":false,"properties":{"x":{"type":"integer"}},"required":["x"],"type":"object"}`,
		"l":  `{"items":{"additionalProperties":false,"properties":{"y":{"$ref":"#/$defs/nodeId"}},"required":["y"],"type":"object"},"type":"array"}`,
		"a":  `{}`,
		"c":  `{"$ref":"#/$defs/connection","description":"a connection"}`,
	} {
		var b bytes.Buffer
		if err := json.Compact(&b, props[field]); err != nil {
			t.Fatalf("field %s: %v", field, err)
		}
		if b.String() != want {
			t.Errorf("field %s:\n got %s\nwant %s", field, b.String(), want)
		}
	}
	if kindsSpec.Fields[14].Schema["description"] != nil {
		t.Error("Schema mutated the spec's Field.Schema")
	}

	sch := compileSchema(t, reg)
	node := func(body string) any {
		return yamlInstance(t, "id: k\nstart: a\nnodes:\n  a:\n    type: kinds\n"+body)
	}
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"minimal", "    i: 1\n", true},
		{"all", "    i: 1\n    s: green\n    n: 1.5\n    b: true\n    d: 1m30s\n    r: a\n    e: x > 1\n    t: 'hi {{ x }}'\n" +
			"    v: {a: [1]}\n    rs: [{type: text, message: hi}]\n    ro: [{when: 'true', next: a}]\n" +
			"    o: {x: 2}\n    l: [{y: a}]\n    a: [anything]\n    c: {url: 'https://x'}\n", true},
		{"number duration", "    i: 1\n    d: 30\n", true},
		{"missing required", "    s: red\n", false},
		{"enum", "    i: 1\n    s: blue\n", false},
		{"int", "    i: 1.5\n", false},
		{"bad duration", "    i: 1\n    d: 10 seconds\n", false},
		{"object unknown field", "    i: 1\n    o: {x: 1, z: 2}\n", false},
		{"list item missing field", "    i: 1\n    l: [{}]\n", false},
		{"override", "    i: 1\n    c: {token: t}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sch.Validate(node(tc.body))
			if tc.ok && err != nil {
				t.Errorf("rejected: %v", err)
			}
			if !tc.ok && err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestSchemaSpecErrors(t *testing.T) {
	build := func(*engine.Config) (engine.Node, error) { return nil, nil }
	for _, tc := range []struct {
		name string
		spec engine.Spec
		want string
	}{
		{"unknown kind", engine.Spec{Type: "odd", Fields: []engine.Field{{Name: "f", Kind: "colour"}}},
			`schema of node type odd: field f has unknown kind "colour"`},
		{"duplicate field", engine.Spec{Type: "dup", Fields: []engine.Field{
			{Name: "o", Kind: engine.KindObject, Fields: []engine.Field{{Name: "f", Kind: engine.KindInt}, {Name: "f", Kind: engine.KindInt}}}}},
			`schema of node type dup field o: field f is listed twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := engine.NewRegistry()
			if err := reg.Register(tc.spec, build); err != nil {
				t.Fatal(err)
			}
			_, err := stories.Schema(reg)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error = %v, want %s", err, tc.want)
			}
		})
	}
}

func BenchmarkSchema(b *testing.B) {
	reg := nodes.NewRegistry(nodes.Options{})
	for b.Loop() {
		if _, err := stories.Schema(reg); err != nil {
			b.Fatal(err)
		}
	}
}
