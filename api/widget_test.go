package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/storyflow/storyflow/api"
	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/webhook"
)

// shopStory has every response type the widget shapes.
const shopStory = `id: shop
name: Shop
start: hello
nodes:
  hello:
    type: message
    responses:
      - type: text
        message: Welcome to the shop.
    next: menu
  menu:
    type: question
    responses:
      - type: quickReplies
        title: What would you like?
        buttons:
          - {type: postback, title: Plans, value: plans}
          - {type: postback, title: Photo, value: photo}
          - {type: goto, title: Email me, value: ask_email}
    validate: input in ["plans", "photo"]
    save: choice
    next: route
  route:
    type: condition
    routes:
      - when: attributes.choice == "plans"
        next: plans
    else: photo
  plans:
    type: question
    responses:
      - type: cards
        elements:
          - title: Pro
            subtitle: 29 a month
            imageUrl: https://shop.example.com/pro.png
            buttons:
              - {type: postback, title: Choose Pro, value: pro}
              - {type: url, title: Compare, value: "https://shop.example.com/plans"}
              - {type: phone, title: Call us, value: "+4930123456"}
    next: done
  photo:
    type: message
    responses:
      - type: image
        imageUrl: https://shop.example.com/photo.png
      - type: buttons
        title: More?
        buttons:
          - {type: url, title: Website, value: "https://shop.example.com"}
          - {type: goto, title: Back, value: menu}
    next: menu
  ask_email:
    type: question
    responses:
      - type: text
        message: Your email?
    validate: email
    save: email
    next: done
  done:
    type: end
    responses:
      - type: text
        message: "Thanks, {{ attributes.email ?? input }}!"
`

// post sends a JSON body with extra headers and no token.
func (e *env) post(path string, body any, headers map[string]string) resp {
	e.t.Helper()
	var data []byte
	switch b := body.(type) {
	case string:
		data = []byte(b)
	case []byte:
		data = b
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			e.t.Fatal(err)
		}
	}
	req, err := http.NewRequest("POST", e.url+path, strings.NewReader(string(data)))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) resp {
	e.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp{status: res.StatusCode, header: res.Header, body: []byte(b.String())}
}

type widgetAnswer struct {
	Output            *string `json:"output"`
	Content           string  `json:"content"`
	ContentType       string  `json:"content_type"`
	ContentAttributes struct {
		Items []struct {
			Type, Title, Description, Value, Link string
		} `json:"items"`
		Cards *struct {
			Cards []struct {
				Title, Description, Image, Link, LinkText string
				Buttons                                   []struct{ Type, Title, Value, Link string }
			} `json:"cards"`
		} `json:"cards"`
		Form *struct {
			Fields []struct {
				ID, Type, Label string
				Required        bool
			} `json:"fields"`
		} `json:"form"`
		Responses []engine.Response `json:"responses"`
	} `json:"content_attributes"`
}

func (e *env) widget(story, session, prompt string) widgetAnswer {
	e.t.Helper()
	r := e.post("/v1/widget/"+story, map[string]string{"prompt": prompt, "session_id": session}, nil)
	want(e.t, r, 200, "")
	var a widgetAnswer
	if err := json.Unmarshal(r.body, &a); err != nil {
		e.t.Fatalf("%v: %s", err, r.body)
	}
	return a
}

func TestWidgetFormats(t *testing.T) {
	e := newEnv(t)
	e.putStory("shop", shopStory)

	// First prompt: the chat starts (welcome, quick replies) and "hi"
	// is its input: not a choice, so the quick replies come again.
	a := e.widget("shop", "s1", "hi")
	if a.Output != nil || a.ContentType != "article" {
		t.Fatalf("first answer: %+v", a)
	}
	if !strings.HasPrefix(a.Content, "Welcome to the shop.\n\nWhat would you like?") {
		t.Fatalf("content %q", a.Content)
	}
	items := a.ContentAttributes.Items
	if len(items) != 6 || items[0].Title != "Plans" || items[0].Value != "plans" || items[0].Description != "What would you like?" || items[2].Type != "goto" {
		t.Fatalf("items %+v", items)
	}
	if n := len(a.ContentAttributes.Responses); n != 3 {
		t.Fatalf("every response of the request is kept: got %d, want 3", n)
	}

	// A button press comes back as its value: photo -> image + buttons.
	a = e.widget("shop", "s1", "photo")
	if a.ContentType != "card" || a.ContentAttributes.Cards == nil || a.ContentAttributes.Cards.Cards[0].Image != "https://shop.example.com/photo.png" {
		t.Fatalf("photo: %+v", a)
	}
	var kinds []string
	for _, it := range a.ContentAttributes.Items {
		kinds = append(kinds, it.Type+":"+it.Value+it.Link)
	}
	if got := strings.Join(kinds, " "); !strings.HasPrefix(got, "url:https://shop.example.com goto:menu postback:plans") {
		t.Fatalf("items %s", got)
	}

	// A typed title presses the button too; cards come as cards.
	a = e.widget("shop", "s1", "  plans ")
	if a.ContentType != "card" || len(a.ContentAttributes.Cards.Cards) != 1 {
		t.Fatalf("plans: %+v", a)
	}
	c := a.ContentAttributes.Cards.Cards[0]
	if c.Title != "Pro" || c.Description != "29 a month" || c.Link != "https://shop.example.com/plans" || c.LinkText != "Compare" ||
		len(c.Buttons) != 3 || c.Buttons[0].Value != "pro" || c.Buttons[2].Link != "tel:+4930123456" {
		t.Fatalf("card %+v", c)
	}

	// Text only: output.
	a = e.widget("shop", "s1", "pro")
	if a.Output == nil || *a.Output != "Thanks, pro!" || a.ContentType != "" {
		t.Fatalf("end: %+v", a)
	}

	// The chat completed: the next prompt starts it again; a goto button
	// leads to a question with a validator, which is a form.
	a = e.widget("shop", "s1", "ask_email")
	if a.ContentType != "form" || a.ContentAttributes.Form == nil {
		t.Fatalf("form: %+v", a)
	}
	f := a.ContentAttributes.Form.Fields
	if len(f) != 1 || f[0].ID != "email" || f[0].Type != "email" || f[0].Label != "Your email?" || !f[0].Required {
		t.Fatalf("form fields %+v", f)
	}
	a = e.widget("shop", "s1", "ann@example.com")
	if a.Output == nil || *a.Output != "Thanks, ann@example.com!" {
		t.Fatalf("email: %+v", a)
	}

	// The session's chat is one chat, with the whole conversation.
	chats := e.do("GET", "/v1/chats?storyId=shop", nil).list(t)
	if len(chats) != 1 || chats[0]["externalId"] != "s1" {
		t.Fatalf("chats %v", chats)
	}
}

func TestWidgetSessions(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.SessionIdle = 300 * time.Millisecond })
	e.putStory("counter", counterStory)
	e.putStory("shop", shopStory)
	e.widget("counter", "same", "one")
	e.widget("counter", "same", "two")
	e.widget("counter", "other", "x")
	// The same session id on another story is another chat.
	e.widget("shop", "same", "hi")
	byStory := map[string]int{}
	for _, c := range e.do("GET", "/v1/chats", nil).list(t) {
		byStory[c["storyId"].(string)]++
		full := e.do("GET", "/v1/chats/"+c["id"].(string), nil).json(t)
		if c["storyId"] == "counter" && c["externalId"] == "same" {
			if n := full["attributes"].(map[string]any)["count"]; n != 2.0 {
				t.Fatalf("count %v, want 2", n)
			}
		}
	}
	if byStory["counter"] != 2 || byStory["shop"] != 1 {
		t.Fatalf("chats by story %v", byStory)
	}
	// Idle past the session time: a fresh conversation (attributes anew).
	time.Sleep(400 * time.Millisecond)
	e.widget("counter", "same", "three")
	for _, c := range e.do("GET", "/v1/chats?storyId=counter", nil).list(t) {
		if c["externalId"] != "same" {
			continue
		}
		full := e.do("GET", "/v1/chats/"+c["id"].(string), nil).json(t)
		if n := full["attributes"].(map[string]any)["count"]; n != 1.0 {
			t.Fatalf("after idle: count %v, want 1", n)
		}
		if tr := full["transcript"].([]any); len(tr) != 8 {
			t.Fatalf("transcript keeps both conversations: %d entries, want 8", len(tr))
		}
	}
}

func TestWidgetErrors(t *testing.T) {
	e := newEnv(t)
	e.putStory("counter", counterStory)
	long := strings.Repeat("a", 1001)
	mb := strings.Repeat("é", 500_000) // 1 MB of UTF-8: over the widget route's 16 KiB
	for _, tc := range []struct {
		name, path string
		body       any
		status     int
		code       string
	}{
		{"ok", "/v1/widget/counter", map[string]any{"prompt": "hi", "session_id": "a"}, 200, ""},
		{"malformed JSON", "/v1/widget/counter", `{"prompt": "hi", "session_id": `, 400, "invalid_request"},
		{"not an object", "/v1/widget/counter", `[1]`, 400, "invalid_request"},
		{"unknown field", "/v1/widget/counter", map[string]any{"prompt": "hi", "session_id": "a", "x": 1}, 400, "invalid_request"},
		{"no prompt", "/v1/widget/counter", map[string]any{"session_id": "a"}, 400, "invalid_request"},
		{"no session", "/v1/widget/counter", map[string]any{"prompt": "hi"}, 400, "invalid_request"},
		{"prompt too long", "/v1/widget/counter", map[string]any{"prompt": long, "session_id": "a"}, 400, "invalid_request"},
		{"1 MB prompt", "/v1/widget/counter", map[string]any{"prompt": mb, "session_id": "a"}, 413, "body_too_large"},
		{"2 MB body", "/v1/widget/counter", map[string]any{"prompt": mb + mb, "session_id": "a"}, 413, "body_too_large"},
		{"session too long", "/v1/widget/counter", map[string]any{"prompt": "hi", "session_id": strings.Repeat("s", 129)}, 400, "invalid_request"},
		{"prompt a number", "/v1/widget/counter", `{"prompt": 1, "session_id": "a"}`, 400, "invalid_request"},
		{"unknown story", "/v1/widget/nope", map[string]any{"prompt": "hi", "session_id": "a"}, 404, "story_not_found"},
		{"bad story id", "/v1/widget/NO%20PE", map[string]any{"prompt": "hi", "session_id": "a"}, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want(t, e.post(tc.path, tc.body, nil), tc.status, tc.code)
		})
	}
	// Below the body limit, a long prompt is refused by its length.
	r := e.post("/v1/widget/counter", map[string]any{"prompt": strings.Repeat("é", 5000), "session_id": "a"}, nil)
	want(t, r, 400, "invalid_request")
	if !strings.Contains(string(r.body), "at most 1000 characters") {
		t.Fatalf("%s", r.body)
	}
	// Other methods: 405, with or without a token.
	for _, auth := range []string{"", "Bearer " + token} {
		r = e.doAuth("GET", "/v1/widget/counter", nil, auth)
		want(t, r, 405, "method_not_allowed")
		if r.header.Get("Allow") != "POST, OPTIONS" {
			t.Fatalf("Allow %q", r.header.Get("Allow"))
		}
	}
	r = e.do("DELETE", "/v1/chats", nil)
	want(t, r, 405, "method_not_allowed")
	if !strings.Contains(string(r.body), "method DELETE is not allowed on /v1/chats (allowed: GET, HEAD, POST)") {
		t.Fatalf("%s", r.body)
	}
}

func TestWidgetCORS(t *testing.T) {
	e := newEnv(t, func(c *api.Config) { c.CORSOrigins = []string{"https://shop.example.com"} })
	e.putStory("counter", counterStory)
	preflight := func(origin string) resp {
		req, _ := http.NewRequest("OPTIONS", e.url+"/v1/widget/counter", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		return e.send(req)
	}
	r := preflight("https://shop.example.com")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://shop.example.com" ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(strings.ToLower(r.header.Get("Access-Control-Allow-Headers")), "content-type") {
		t.Fatalf("allowed preflight: %d %v", r.status, r.header)
	}
	r = preflight("https://evil.example.com")
	want(t, r, 403, "origin_not_allowed")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("refused preflight allows: %v", r.header)
	}
	body := map[string]any{"prompt": "hi", "session_id": "c"}
	r = e.post("/v1/widget/counter", body, map[string]string{"Origin": "https://shop.example.com"})
	want(t, r, 200, "")
	if r.header.Get("Access-Control-Allow-Origin") != "https://shop.example.com" {
		t.Fatalf("allowed POST: %v", r.header)
	}
	r = e.post("/v1/widget/counter", body, map[string]string{"Origin": "https://evil.example.com"})
	want(t, r, 403, "origin_not_allowed")
	// The server's own origin and requests without one (not browsers) pass.
	want(t, e.post("/v1/widget/counter", body, map[string]string{"Origin": e.url}), 200, "")
	want(t, e.post("/v1/widget/counter", body, nil), 200, "")
	if _, err := api.New(api.Config{Store: e.st, Token: "x", CORSOrigins: []string{"shop.example.com/path"}}); err == nil {
		t.Fatal("a bad origin is accepted")
	}
}

func TestWidgetRateLimits(t *testing.T) {
	// A window of seconds: the limiter counts in whole seconds, and the
	// requests below must fall in one window on a busy machine too.
	e := newEnv(t, func(c *api.Config) { c.Rates = api.RateLimits{Session: 2, IP: 5, Window: 3 * time.Second} })
	e.putStory("counter", counterStory)
	body := func(s string) map[string]any { return map[string]any{"prompt": "hi", "session_id": s} }
	// Per session: the third request of a session in a window is refused.
	want(t, e.post("/v1/widget/counter", body("a"), nil), 200, "")
	want(t, e.post("/v1/widget/counter", body("a"), nil), 200, "")
	r := e.post("/v1/widget/counter", body("a"), nil)
	want(t, r, 429, "rate_limited")
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || retry < 1 || retry > 4 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	// Another session still passes; then the client IP runs out.
	want(t, e.post("/v1/widget/counter", body("b"), nil), 200, "")
	want(t, e.post("/v1/widget/counter", body("c"), nil), 200, "")
	want(t, e.post("/v1/widget/counter", body("d"), nil), 429, "rate_limited")
	// Recovered after Retry-After.
	time.Sleep(time.Duration(retry)*time.Second + 100*time.Millisecond)
	want(t, e.post("/v1/widget/counter", body("a"), nil), 200, "")
	m := e.metrics()
	if m[`storyflow_rate_limited_total{limit="session",route="/v1/widget/:storyId"}`] != 1 ||
		m[`storyflow_rate_limited_total{limit="ip",route="/v1/widget/:storyId"}`] != 1 {
		t.Fatalf("rate limit metrics: %v", m)
	}
	// The management routes are not limited.
	for range 10 {
		want(t, e.do("GET", "/v1/stories", nil), 200, "")
	}
}

// TestWidgetRateLimitBehindProxy: behind a trusted proxy, the IP limit
// counts each client of X-Forwarded-For.
func TestWidgetRateLimitBehindProxy(t *testing.T) {
	e := newEnv(t, func(c *api.Config) {
		c.Rates = api.RateLimits{Session: -1, IP: 1, Window: time.Minute}
		c.TrustedProxies = []string{"127.0.0.1"}
	})
	e.putStory("counter", counterStory)
	body := map[string]any{"prompt": "hi", "session_id": "p"}
	from := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip + ", 127.0.0.1"} }
	want(t, e.post("/v1/widget/counter", body, from("10.0.0.1")), 200, "")
	want(t, e.post("/v1/widget/counter", body, from("10.0.0.1")), 429, "rate_limited")
	want(t, e.post("/v1/widget/counter", body, from("10.0.0.2")), 200, "")
	if _, err := api.New(api.Config{Store: e.st, Token: "x", TrustedProxies: []string{"proxy.local"}}); err == nil {
		t.Fatal("a trusted proxy that is no address is accepted")
	}
}

// metrics returns GET /metrics as series -> value.
func (e *env) metrics() map[string]float64 {
	e.t.Helper()
	r := e.doAuth("GET", "/metrics", nil, "")
	want(e.t, r, 200, "")
	m := map[string]float64{}
	for _, l := range strings.Split(string(r.body), "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			e.t.Fatalf("metrics line %q", l)
		}
		m[l[:i]] = v
	}
	return m
}

func TestPlatform(t *testing.T) {
	e := newEnv(t)
	e.putStory("shop", shopStory)
	req := func(content any) map[string]any {
		return map[string]any{
			"messages":        []any{map[string]any{"role": "assistant", "content": "earlier"}, map[string]any{"role": "user", "content": content}},
			"conversation_id": "conv_1",
			"user":            map[string]any{"id": "user_1", "platform": "telegram", "name": "Ann", "username": "ann"},
			"bot":             map[string]any{"id": "bot_1", "name": "Shop"},
			"metadata":        map[string]any{"channel": "telegram", "chat_id": "1", "message_id": "2"},
		}
	}
	type answer struct {
		Content     string
		Attachments []struct {
			URL      string `json:"url"`
			Filename string `json:"filename"`
			MimeType string `json:"mime_type"`
		}
		Metadata struct {
			ChatID, StoryID, Node string
			Status                engine.Status
			Responses             []engine.Response
		}
	}
	call := func(body any) answer {
		t.Helper()
		r := e.post("/v1/platform/shop", body, map[string]string{"Authorization": "Bearer " + token})
		want(t, r, 200, "")
		var a answer
		if err := json.Unmarshal(r.body, &a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := call(req("hello"))
	if !strings.HasPrefix(a.Content, "Welcome to the shop.\n\nWhat would you like?\n• Plans\n• Photo\n• Email me") || a.Metadata.Node != "menu" || a.Metadata.StoryID != "shop" {
		t.Fatalf("first: %+v", a)
	}
	// Multimodal: a text part naming a button, an image part.
	a = call(req([]any{map[string]any{"type": "text", "text": "photo"}}))
	if len(a.Attachments) != 1 || a.Attachments[0].Filename != "photo.png" || a.Attachments[0].MimeType != "image/png" ||
		!strings.Contains(a.Content, "• Website: https://shop.example.com") {
		t.Fatalf("photo: %+v", a)
	}
	a = call(req([]any{map[string]any{"type": "text", "text": "look"}, map[string]any{"type": "image_url", "image_url": map[string]any{"url": "https://x.example/cat.jpg"}}}))
	chat := e.do("GET", "/v1/chats/"+a.Metadata.ChatID, nil).json(t)
	tr := chat["transcript"].([]any)
	var last map[string]any
	for _, en := range tr {
		if m := en.(map[string]any); m["from"] == "user" {
			last = m
		}
	}
	if in := last["input"].(map[string]any)["text"]; in != "look\nhttps://x.example/cat.jpg" {
		t.Fatalf("multimodal input %q", in)
	}
	if chat["userId"] != "user_1" || chat["userAttributes"].(map[string]any)["default_name"] != "Ann" || chat["externalId"] != "conv_1" {
		t.Fatalf("chat %v", chat)
	}

	auth := map[string]string{"Authorization": "Bearer " + token}
	for _, tc := range []struct {
		name   string
		body   any
		hdr    map[string]string
		status int
		code   string
	}{
		{"no token", req("x"), nil, 401, "unauthorized"},
		{"malformed", `{"messages": [`, auth, 400, "invalid_request"},
		{"no messages", map[string]any{"conversation_id": "c"}, auth, 400, "invalid_request"},
		{"no user message", map[string]any{"conversation_id": "c", "messages": []any{map[string]any{"role": "assistant", "content": "x"}}}, auth, 400, "invalid_request"},
		{"no conversation", map[string]any{"messages": []any{map[string]any{"role": "user", "content": "x"}}}, auth, 400, "invalid_request"},
		{"bad part", req([]any{map[string]any{"type": "audio"}}), auth, 400, "invalid_request"},
		{"content a number", req(5), auth, 400, "invalid_request"},
		{"empty text", req(""), auth, 400, "invalid_request"},
		{"long user name", map[string]any{"messages": []any{map[string]any{"role": "user", "content": "x"}}, "conversation_id": "c",
			"user": map[string]any{"name": strings.Repeat("n", 300)}}, auth, 400, "invalid_request"},
		{"unknown story", nil, auth, 404, "story_not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/v1/platform/shop"
			body := tc.body
			if body == nil {
				path, body = "/v1/platform/nope", req("x")
			}
			want(t, e.post(path, body, tc.hdr), tc.status, tc.code)
		})
	}
}

// hookStory calls a webhook that works, then one that fails, then hands
// the chat to a human.
const hookStory = `id: hooks
start: good
webhooks:
  crm: {url: "%s/good"}
  broken: {url: "%s/broken"}
nodes:
  good:
    type: webhook
    webhook: crm
    next: bad
    failure: bad
  bad:
    type: webhook
    webhook: broken
    next: human
    failure: human
  human:
    type: handoff
    responses: [{type: text, message: "A human will answer."}]
`

// TestMetricsMove: a turn moves the turn, node, store and webhook series.
func TestMetricsMove(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/broken" {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"attributes":{"ok":true}}`)
	}))
	defer hook.Close()
	// A webhook client of the caller's (as storyflow serve gives one) is
	// observed too.
	e := newEnv(t, func(c *api.Config) { c.Webhooks = webhook.NewClient(webhook.Options{AllowPrivate: true}) })
	e.putStory("counter", counterStory)
	e.putStory("hooks", fmt.Sprintf(hookStory, hook.URL, hook.URL))
	if m := e.metrics(); m["storyflow_chats_in_handoff"] != 0 {
		t.Fatalf("handoff gauge %v before any chat", m["storyflow_chats_in_handoff"])
	}
	if r := e.startChat("hooks"); r["status"] != "handoff" {
		t.Fatalf("hooks chat: %v", r)
	}
	m := e.metrics()
	for k, want := range map[string]float64{
		`storyflow_webhook_call_seconds_count{connection="crm",result="ok",story="hooks"}`:        1,
		`storyflow_webhook_call_seconds_count{connection="broken",result="failed",story="hooks"}`: 1,
		`storyflow_webhook_failures_total{connection="broken",reason="status_5xx",story="hooks"}`: 1,
		`storyflow_turns_total{outcome="handoff",story="hooks"}`:                                  1,
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	// The handoff gauge counts from the store, at most every 15s: a new
	// server sees the chat at once.
	e2 := newEnv(t, func(c *api.Config) { c.Store = e.st })
	if g := e2.metrics()["storyflow_chats_in_handoff"]; g != 1 {
		t.Errorf("storyflow_chats_in_handoff %v, want 1", g)
	}

	before := e.metrics()
	e.widget("counter", "m", "hi")
	after := e.metrics()
	for _, k := range []string{
		`storyflow_turns_total{outcome="active",story="counter"}`,
		`storyflow_node_runs_total{result="ok",type="question"}`,
		`storyflow_node_runs_total{result="ok",type="set"}`,
		`storyflow_store_seconds_count{op="create_chat",result="ok"}`,
		`storyflow_store_seconds_count{op="get_chat",result="not_found"}`,
		`storyflow_http_requests_total{code="200",method="POST",route="/v1/widget/:storyId"}`,
	} {
		if after[k] <= before[k] {
			t.Errorf("%s did not move: %v -> %v", k, before[k], after[k])
		}
	}
	if _, ok := after["storyflow_chats_in_handoff"]; !ok {
		t.Error("no storyflow_chats_in_handoff")
	}
}

func TestPanicIs500(t *testing.T) {
	e := newEnv(t, func(c *api.Config) {
		c.Register = func(r *engine.Registry) error {
			return r.Register(engine.Spec{Type: "boom", Summary: "panics", Fields: []engine.Field{{Name: "next", Kind: engine.KindRef}}},
				func(*engine.Config) (engine.Node, error) { return boom{}, nil })
		}
	})
	e.putStory("boom", `id: boom
start: ask
nodes:
  ask:
    type: question
    responses: [{type: text, message: "Go?"}]
    save: go
    next: bang
  bang:
    type: boom
    next: ask
`)
	chat := e.startChat("boom")["chatId"].(string)
	for range 2 {
		want(t, e.do("POST", "/v1/chats/"+chat+"/messages", map[string]any{"text": "yes"}), 500, "internal")
	}
	// Nothing of the failed turns was kept; the chat still waits at ask.
	c := e.do("GET", "/v1/chats/"+chat, nil).json(t)
	if c["node"] != "ask" || c["seq"] != 1.0 || c["attributes"].(map[string]any)["go"] != nil {
		t.Fatalf("chat after panics: %v", c)
	}
	want(t, e.doAuth("GET", "/healthz", nil, ""), 200, "")
	if m := e.metrics(); m[`storyflow_http_requests_total{code="500",method="POST",route="/v1/chats/:chatId/messages"}`] != 2 {
		t.Fatalf("500s not counted: %v", m)
	}
}

type boom struct{}

func (boom) Run(context.Context, *engine.Turn) (engine.Result, error) { panic(fmt.Sprint("boom")) }
