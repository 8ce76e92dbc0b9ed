package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// openAPIDoc fetches GET /openapi.json and compiles schemas out of it.
type openAPIDoc struct {
	t     *testing.T
	raw   map[string]any
	c     *jsonschema.Compiler
	paths map[string]map[string]map[string]any // path -> method -> operation
}

const docURL = "mem:///openapi.json"

func loadOpenAPI(t *testing.T, e *env) *openAPIDoc {
	t.Helper()
	r := e.doAuth("GET", "/openapi.json", nil, "")
	want(t, r, 200, "")
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	d := &openAPIDoc{t: t, c: jsonschema.NewCompiler(), paths: map[string]map[string]map[string]any{}}
	if err := json.Unmarshal(r.body, &d.raw); err != nil {
		t.Fatal(err)
	}
	if d.raw["openapi"] != "3.1.0" {
		t.Fatalf("openapi %v", d.raw["openapi"])
	}
	if err := d.c.AddResource(docURL, inst); err != nil {
		t.Fatal(err)
	}
	for p, ops := range d.raw["paths"].(map[string]any) {
		d.paths[p] = map[string]map[string]any{}
		for m, op := range ops.(map[string]any) {
			d.paths[p][strings.ToUpper(m)] = op.(map[string]any)
		}
	}
	return d
}

// pointer escapes a JSON pointer token.
func pointer(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1") }

// validate checks v against the schema at a pointer into the document.
func (d *openAPIDoc) validate(ptr string, body []byte) error {
	sch, err := d.c.Compile(docURL + "#" + ptr)
	if err != nil {
		return fmt.Errorf("compile %s: %w", ptr, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return sch.Validate(inst)
}

// checkAnswer checks an answer against the operation's documented answer
// for its status.
func (d *openAPIDoc) checkAnswer(path, method string, r resp) {
	t := d.t
	t.Helper()
	op := d.paths[path][method]
	res, ok := op["responses"].(map[string]any)[strconv.Itoa(r.status)].(map[string]any)
	if !ok {
		t.Errorf("%s %s answered %d, which the document does not list: %s", method, path, r.status, r.body)
		return
	}
	ptr := "/paths/" + pointer(path) + "/" + strings.ToLower(method) + "/responses/" + strconv.Itoa(r.status)
	if ref, ok := res["$ref"].(string); ok {
		ptr = strings.TrimPrefix(ref, "#")
		res = d.raw["components"].(map[string]any)["responses"].(map[string]any)[strings.TrimPrefix(ref, "#/components/responses/")].(map[string]any)
	}
	content, _ := res["content"].(map[string]any)
	ct := r.header.Get("Content-Type")
	if content == nil {
		if len(r.body) > 0 {
			t.Errorf("%s %s %d: a body the document does not list: %s", method, path, r.status, r.body)
		}
		return
	}
	if mt, ok := content["application/json"].(map[string]any); ok && mt["schema"] != nil {
		if !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s %s %d: Content-Type %q, want JSON", method, path, r.status, ct)
		}
		if err := d.validate(ptr+"/content/application~1json/schema", r.body); err != nil {
			t.Errorf("%s %s %d: the answer does not match the document: %v\n%s", method, path, r.status, err, r.body)
		}
		return
	}
	for mt := range content {
		if strings.HasPrefix(ct, mt) {
			return
		}
	}
	t.Errorf("%s %s %d: Content-Type %q is none of %v", method, path, r.status, ct, content)
}

var paramRe = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// TestOpenAPIRoutes: the document lists exactly the routes the server
// registers.
func TestOpenAPIRoutes(t *testing.T) {
	e := newEnv(t)
	d := loadOpenAPI(t, e)
	registered := map[string]bool{}
	for _, r := range e.srv.App().GetRoutes(true) {
		if r.Method == "HEAD" || r.Method == "USE" {
			continue // fiber adds HEAD to every GET
		}
		p := strings.TrimSuffix(paramRe.ReplaceAllString(r.Path, "{$1}"), "/")
		if p == "" {
			p = "/"
		}
		registered[r.Method+" "+p] = true
	}
	documented := map[string]bool{}
	for p, ops := range d.paths {
		for m := range ops {
			documented[m+" "+p] = true
		}
	}
	for r := range registered {
		if !documented[r] {
			t.Errorf("route %s is not in /openapi.json (document it in api/openapi.go)", r)
		}
	}
	for r := range documented {
		if !registered[r] {
			t.Errorf("/openapi.json documents %s, which the server does not register", r)
		}
	}
}

// needsState: operations whose success needs a chat in handoff, a task or
// a failed delivery, which this test does not set up; here their error
// answer is checked against the document (api/events_test.go's hand-off
// round trip and replay tests cover their success).
var needsState = map[string]int{
	"POST /v1/chats/{chatId}/agent-messages":                      409,
	"POST /v1/chats/{chatId}/resume":                              409,
	"PATCH /v1/tasks/{id}":                                        404,
	"POST /v1/tasks/{id}/complete":                                404,
	"DELETE /v1/tasks/{id}":                                       404,
	"POST /v1/event-webhooks/{id}/deliveries/{deliveryId}/replay": 404,
}

// TestOpenAPIShapes calls every documented operation with its example and
// checks each answer against the document; then the error answers.
func TestOpenAPIShapes(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := r.URL.Query().Get("challenge"); c != "" {
			fmt.Fprint(w, c)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"responses":[{"type":"text","message":"hi"}]}`)
	}))
	defer hook.Close()
	e := newEnv(t)
	d := loadOpenAPI(t, e)
	e.putStory("hello", strings.ReplaceAll(counterStory, "id: counter", "id: hello"))
	params := map[string]string{"id": "hello", "storyId": "hello", "file": "studio.css", "userId": "u1", "deliveryId": "nope"}

	type call struct{ path, method string }
	var calls []call
	for p, ops := range d.paths {
		for m := range ops {
			calls = append(calls, call{p, m})
		}
	}
	// Collections before their items, deletes last.
	rank := func(c call) int {
		switch {
		case c.method == "DELETE":
			return 3
		case strings.Contains(c.path, "{"):
			return 2
		}
		return 1
	}
	slices.SortFunc(calls, func(a, b call) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a.path+a.method, b.path+b.method)
	})
	for _, c := range calls {
		op := d.paths[c.path][c.method]
		path := c.path
		switch {
		case strings.HasPrefix(path, "/v2/"):
			params["id"] = params["connection"]
		case strings.HasPrefix(path, "/v1/event-webhooks/"):
			params["id"] = params["eventWebhook"]
		default:
			params["id"] = "hello"
		}
		for k, v := range params {
			path = strings.ReplaceAll(path, "{"+k+"}", v)
		}
		var body []byte
		ctype := ""
		if rb, ok := op["requestBody"].(map[string]any); ok {
			for mt, m := range rb["content"].(map[string]any) {
				ex := m.(map[string]any)["example"]
				if ex == nil {
					t.Fatalf("%s %s: no example request body", c.method, c.path)
				}
				ctype = mt
				if s, ok := ex.(string); ok {
					body = []byte(s)
					continue
				}
				if strings.HasPrefix(c.path, "/v2/") || c.path == "/v1/event-webhooks" {
					ex.(map[string]any)["url"] = hook.URL // loopback only
				}
				body, _ = json.Marshal(ex)
				if err := d.validate("/paths/"+pointer(c.path)+"/"+strings.ToLower(c.method)+"/requestBody/content/"+pointer(mt)+"/schema", body); err != nil {
					t.Errorf("%s %s: example does not match its schema: %v", c.method, c.path, err)
				}
			}
		}
		req, _ := http.NewRequest(c.method, e.url+path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		r := e.send(req)
		if want, ok := needsState[c.method+" "+c.path]; ok {
			if r.status != want {
				t.Errorf("%s %s with the example: %d %s, want %d", c.method, path, r.status, r.body, want)
			}
		} else if r.status >= 300 {
			t.Errorf("%s %s with the example: %d %s", c.method, path, r.status, r.body)
		}
		d.checkAnswer(c.path, c.method, r)
		if c.method == "POST" && c.path == "/v2/integrations/webhook" {
			params["connection"], _ = r.json(t)["id"].(string)
		}
		if c.method == "POST" && c.path == "/v1/event-webhooks" {
			params["eventWebhook"], _ = r.json(t)["id"].(string)
		}
		if c.method == "POST" && c.path == "/v1/chats" {
			params["chatId"], _ = r.json(t)["chatId"].(string)
		}

		// Errors: no token; malformed JSON.
		if _, public := op["security"]; !public {
			req, _ := http.NewRequest(c.method, e.url+path, bytes.NewReader(body))
			r := e.send(req)
			want(t, r, 401, "unauthorized")
			d.checkAnswer(c.path, c.method, r)
		}
		if ctype == "application/json" {
			req, _ := http.NewRequest(c.method, e.url+path, strings.NewReader(`{"x":`))
			req.Header.Set("Authorization", "Bearer "+token)
			r := e.send(req)
			want(t, r, 400, "invalid_request")
			d.checkAnswer(c.path, c.method, r)
		}
	}
	// Answers that only some requests get.
	for _, tc := range []struct {
		path, method, url string
		status            int
	}{
		{"/v1/chats/{chatId}", "GET", "/v1/chats/nope", 404},
		{"/v1/stories/{id}", "GET", "/v1/stories/nope", 404},
		{"/v1/stories/{id}/graph", "GET", "/v1/stories/hello/graph?format=nope", 400},
	} {
		r := e.do(tc.method, tc.url, nil)
		if r.status != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.url, r.status, tc.status)
		}
		d.checkAnswer(tc.path, tc.method, r)
	}
}
