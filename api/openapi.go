package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
	"github.com/invopop/jsonschema"

	"github.com/storyflow/storyflow/engine"
)

// GET /openapi.json: the OpenAPI 3.1 document of the API, built from the
// operations below. Request and answer schemas are reflected from the Go
// types the handlers decode and encode, so they cannot drift apart;
// TestOpenAPI checks the document against the routes the server registers
// and the answers it really gives.
//
// Adding a route: register it, then document it with an operation (here,
// or in the route's own file: func init() { document(operation{...}) }),
// with an Example request body when it takes one. TestOpenAPI fails until
// both agree and the test has called the route.

// operation documents one route.
type operation struct {
	Method string
	// Path is the fiber path (/v1/chats/:chatId).
	Path    string
	Tag     string
	Summary string
	// Public routes need no bearer token.
	Public bool
	// Query parameters (all optional strings).
	Query []string
	// Request is a value of the JSON body's Go type; RequestType a media
	// type for other bodies (application/yaml).
	Request     any
	RequestType string
	// Example is an example request body (JSON value or text).
	Example any
	// Responses by status; Errors are the error statuses besides those
	// every route has (401 when not Public, 500, 503).
	Responses []answer
	Errors    []int
}

// answer is one documented answer.
type answer struct {
	Status int
	// Body is a value of the JSON answer's Go type (nil: no JSON body).
	Body any
	// Type is the media type of a body that is not JSON.
	Type        string
	Description string
}

var (
	opsMu      sync.Mutex
	operations []operation
)

// document adds operations to the OpenAPI document.
func document(ops ...operation) {
	opsMu.Lock()
	defer opsMu.Unlock()
	operations = append(operations, ops...)
}

// ok200 is a 200 answer with a JSON body of v's type.
func ok200(v any) []answer { return []answer{{Status: http.StatusOK, Body: v}} }

// lintsAnswer is POST /v1/stories/validate's answer.
type lintsAnswer struct {
	Valid bool   `json:"valid"`
	Lints []Lint `json:"lints"`
}

type deletedAnswer struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
}

type healthAnswer struct {
	Status string `json:"status"`
}

const exampleStory = "id: hello\nstart: hi\nnodes:\n  hi:\n    type: message\n    responses:\n      - {type: text, message: Hello!}\n"

func init() {
	sample := map[string]any{"storyId": "hello", "name": "crm", "url": "https://crm.example.com/bot", "token": "secret-token",
		"headers": map[string]string{"X-Source": "storyflow"}, "auth": map[string]string{"username": "bot", "password": "pw"}}
	document(
		operation{Method: "GET", Path: "/healthz", Tag: "server", Summary: "Liveness", Public: true, Responses: ok200(healthAnswer{})},
		operation{Method: "GET", Path: "/metrics", Tag: "server", Summary: "Prometheus metrics", Public: true,
			Responses: []answer{{Status: 200, Type: "text/plain"}}},
		operation{Method: "GET", Path: "/openapi.json", Tag: "server", Summary: "This document", Public: true,
			Responses: []answer{{Status: 200, Type: "application/json", Description: "an OpenAPI 3.1 document"}}},
		operation{Method: "GET", Path: "/", Tag: "studio", Summary: "The studio page (it asks for the token and calls the API with it)", Public: true,
			Responses: []answer{{Status: 200, Type: "text/html"}}},
		operation{Method: "GET", Path: "/studio/:file", Tag: "studio", Summary: "A file of the studio (script, style sheet)", Public: true,
			Responses: []answer{{Status: 200, Type: "text/css", Description: "studio.css; studio.js is text/javascript"}}, Errors: []int{404}},

		operation{Method: "PUT", Path: "/v1/stories/:id", Tag: "stories", Summary: "Create or update a story (YAML)",
			RequestType: "application/yaml", Example: exampleStory,
			Responses: []answer{{Status: 201, Body: putStoryAnswer{}, Description: "created"}, {Status: 200, Body: putStoryAnswer{}, Description: "updated"}},
			Errors:    []int{400, 413, 422}},
		operation{Method: "GET", Path: "/v1/stories", Tag: "stories", Summary: "List stories", Responses: ok200([]storyItem{})},
		operation{Method: "GET", Path: "/v1/stories/:id", Tag: "stories", Summary: "Get a story's YAML", Query: []string{"version"},
			Responses: []answer{{Status: 200, Type: "application/yaml"}}, Errors: []int{400, 404}},
		operation{Method: "DELETE", Path: "/v1/stories/:id", Tag: "stories", Summary: "Delete a story", Responses: ok200(deletedAnswer{}), Errors: []int{400, 404}},
		operation{Method: "POST", Path: "/v1/stories/validate", Tag: "stories", Summary: "Lint a story (YAML)",
			RequestType: "application/yaml", Example: exampleStory, Responses: ok200(lintsAnswer{}), Errors: []int{400, 413}},
		operation{Method: "GET", Path: "/v1/stories/:id/graph", Tag: "stories", Summary: "A story's graph (json, mermaid or dot)",
			Query:     []string{"format", "version"},
			Responses: []answer{{Status: 200, Type: "application/json", Description: "the graph; text/plain for mermaid, text/vnd.graphviz for dot"}},
			Errors:    []int{400, 404}},

		operation{Method: "POST", Path: "/v1/chats", Tag: "chats", Summary: "Start a chat", Request: createChatRequest{},
			Example:   map[string]any{"storyId": "hello", "userId": "u1", "externalId": "x1", "userAttributes": map[string]any{"default_name": "Ann"}, "attributes": map[string]any{"plan": "pro"}},
			Responses: []answer{{Status: 201, Body: turnAnswer{}}}, Errors: []int{400, 404, 413}},
		operation{Method: "GET", Path: "/v1/chats", Tag: "chats", Summary: "List chats", Query: []string{"storyId", "status", "limit", "after"},
			Responses: ok200([]chatItem{}), Errors: []int{400}},
		operation{Method: "GET", Path: "/v1/chats/:chatId", Tag: "chats", Summary: "A chat's state and transcript", Query: []string{"after", "limit"},
			Responses: ok200(chatView{Chat: &engine.Chat{}}), Errors: []int{400, 404}},
		operation{Method: "POST", Path: "/v1/chats/:chatId/messages", Tag: "chats", Summary: "Send a message (text, postback or goto)",
			Request: messageRequest{}, Example: map[string]any{"text": "hello", "messageId": "m-1"},
			Responses: ok200(turnAnswer{}), Errors: []int{400, 404, 409, 413}},

		operation{Method: "GET", Path: "/v1/chats/:chatId/test", Tag: "chats", Summary: "The chat as a story test case (YAML): inputs as steps, responses as expectations, webhook answers as mocks",
			Responses: []answer{{Status: 200, Type: "application/yaml"}}, Errors: []int{404, 422}},

		operation{Method: "POST", Path: "/v1/widget/:storyId", Tag: "channels", Summary: "Chat Widget webhook: a session's prompt", Public: true,
			Request: widgetRequest{}, Example: map[string]any{"prompt": "Hello", "session_id": "s-1"},
			Responses: ok200(widgetAnswer{}), Errors: []int{400, 403, 404, 413, 429}},
		operation{Method: "POST", Path: "/v1/platform/:storyId", Tag: "channels", Summary: "Chatbot Platform webhook: a conversation's last user message",
			Request: platformRequest{},
			Example: map[string]any{"messages": []any{map[string]any{"role": "user", "content": "Hello"}}, "conversation_id": "conv-1",
				"user": map[string]any{"id": "u-1", "platform": "telegram", "name": "Ann", "username": "ann"},
				"bot":  map[string]any{"id": "b-1", "name": "Bot"}, "metadata": map[string]any{"channel": "telegram"}},
			Responses: ok200(platformAnswer{}), Errors: []int{400, 404, 413}},

		operation{Method: "GET", Path: "/v2/integrations/webhook", Tag: "webhooks", Summary: "List webhook connections", Query: []string{"storyId"},
			Responses: ok200([]connectionItem{}), Errors: []int{400}},
		operation{Method: "POST", Path: "/v2/integrations/webhook", Tag: "webhooks", Summary: "Create a webhook connection (verified first)",
			Request: connectionRequest{}, Example: sample, Responses: []answer{{Status: 201, Body: statusAnswer{}}}, Errors: []int{400, 404, 409, 413}},
		operation{Method: "GET", Path: "/v2/integrations/webhook/:id", Tag: "webhooks", Summary: "Get a webhook connection",
			Responses: ok200(connectionDetail{}), Errors: []int{404}},
		operation{Method: "PUT", Path: "/v2/integrations/webhook/:id", Tag: "webhooks", Summary: "Update a webhook connection",
			Request: connectionRequest{}, Example: sample, Responses: ok200(statusAnswer{}), Errors: []int{400, 404, 409, 413}},
		operation{Method: "DELETE", Path: "/v2/integrations/webhook/:id", Tag: "webhooks", Summary: "Delete a webhook connection",
			Responses: ok200(statusAnswer{}), Errors: []int{404}},
		operation{Method: "POST", Path: "/v2/integrations/webhook/:id/test", Tag: "webhooks", Summary: "Send a sample request",
			Responses: ok200(testAnswer{}), Errors: []int{404}},
	)
}

var paramRe = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// openAPIPath turns a fiber path into an OpenAPI one (:id -> {id}).
func openAPIPath(p string) string { return paramRe.ReplaceAllString(p, "{$1}") }

var (
	openAPIOnce sync.Once
	openAPIDoc  []byte
	openAPIErr  error
)

// openAPI: GET /openapi.json.
func (s *Server) openAPI(c *fiber.Ctx) error {
	openAPIOnce.Do(func() { openAPIDoc, openAPIErr = json.Marshal(OpenAPI()) })
	if openAPIErr != nil {
		return openAPIErr
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(openAPIDoc)
}

// errorNames describe the error statuses.
var errorNames = map[int]string{
	400: "invalid input", 401: "missing or bad bearer token", 403: "origin not allowed", 404: "not found",
	405: "method not allowed", 409: "conflict", 413: "body too large", 422: "the story does not load (lints)",
	429: "rate limited (Retry-After)", 500: "internal error", 503: "store unavailable (store_unavailable), disk full (storage_full), busy or shutting down; Retry-After says when to try again",
}

// OpenAPI returns the OpenAPI 3.1 document of the API.
func OpenAPI() map[string]any {
	opsMu.Lock()
	ops := slices.Clone(operations)
	opsMu.Unlock()
	// Answers: a field is there unless omitempty. Requests: a field is
	// required only when tagged jsonschema:"required".
	r := &jsonschema.Reflector{Anonymous: true, DoNotReference: true, ExpandedStruct: true, Mapper: schemaOf}
	rq := *r
	rq.RequiredFromJSONSchemaTags = true
	reflect := func(r *jsonschema.Reflector, v any) *jsonschema.Schema {
		s := r.Reflect(v)
		s.Version = ""
		return s
	}
	schema := func(v any) *jsonschema.Schema { return reflect(r, v) }
	request := func(v any) *jsonschema.Schema { return reflect(&rq, v) }
	paths := map[string]map[string]any{}
	for _, op := range ops {
		o := map[string]any{"summary": op.Summary, "tags": []string{op.Tag}, "operationId": operationID(op)}
		var params []map[string]any
		for _, m := range paramRe.FindAllStringSubmatch(op.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range op.Query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]any{"type": "string"}})
		}
		if params != nil {
			o["parameters"] = params
		}
		if op.Public {
			o["security"] = []any{}
		}
		switch {
		case op.Request != nil:
			mt := map[string]any{"schema": request(op.Request)}
			if op.Example != nil {
				mt["example"] = op.Example
			}
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": mt}}
		case op.RequestType != "":
			mt := map[string]any{"schema": map[string]any{"type": "string"}}
			if op.Example != nil {
				mt["example"] = op.Example
			}
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{op.RequestType: mt}}
		}
		res := map[string]any{}
		for _, a := range op.Responses {
			d := a.Description
			if d == "" {
				d = http.StatusText(a.Status)
			}
			ra := map[string]any{"description": d}
			switch {
			case a.Body != nil:
				ra["content"] = map[string]any{"application/json": map[string]any{"schema": schema(a.Body)}}
			case a.Type != "":
				ra["content"] = map[string]any{a.Type: map[string]any{}}
			}
			res[strconv.Itoa(a.Status)] = ra
		}
		errs := slices.Clone(op.Errors)
		if !op.Public {
			errs = append(errs, 401)
		}
		errs = append(errs, 500, 503)
		for _, st := range errs {
			if res[strconv.Itoa(st)] != nil {
				continue // documented with its own body (GET /readyz)
			}
			res[strconv.Itoa(st)] = map[string]any{"$ref": "#/components/responses/Error" + strconv.Itoa(st)}
		}
		o["responses"] = res
		p := openAPIPath(op.Path)
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		paths[p][strings.ToLower(op.Method)] = o
	}
	errResponses := map[string]any{}
	for st, name := range errorNames {
		errResponses["Error"+strconv.Itoa(st)] = map[string]any{"description": name,
			"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Error"}}}}
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "storyflow", "version": "1",
			"description": "storyflow's HTTP API: stories, chats, channels (Chat Widget, Chatbot Platform) and webhook connections."},
		"paths": paths,
		"components": map[string]any{
			"schemas":         map[string]any{"Error": schema(errorBody{})},
			"responses":       errResponses,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
		"security": []any{map[string]any{"bearer": []string{}}},
	}
}

// operationID names an operation: putV1StoriesId.
func operationID(op operation) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(op.Method))
	for _, w := range strings.FieldsFunc(op.Path, func(r rune) bool { return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') }) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}

var rawMessageType = reflect.TypeOf(json.RawMessage{})

// schemaOf maps the types the reflector cannot read from their fields: a
// platform message's content is text or a list of parts.
func schemaOf(t reflect.Type) *jsonschema.Schema {
	if t != rawMessageType {
		return nil
	}
	part := &jsonschema.Schema{Type: "object", Description: "{type: text, text} or {type: image_url, image_url: {url}}"}
	return &jsonschema.Schema{OneOf: []*jsonschema.Schema{
		{Type: "string"},
		{Type: "array", Items: part},
	}}
}
