package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"
)

const testToken = "test-token"

// signedRequest builds a POST like storyflow's, signed at time at with token.
func signedRequest(t *testing.T, path string, body any, token string, at time.Time) *http.Request {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	ts := strconv.FormatInt(at.Unix(), 10)
	req.Header.Set(headerTimestamp, ts)
	req.Header.Set(headerSignature, sign(token, ts, raw))
	return req
}

func chatBody(attrs, userAttrs map[string]any) map[string]any {
	return map[string]any{
		"chatId":     "chat-1",
		"messageId":  "6f1d2c1e-1b7a-4c39-9c9e-5d1f1b2f0a01",
		"userId":     "user-1",
		"externalId": "ext-1",
		"node": map[string]any{
			"id": "check_customer", "name": "Check customer", "type": "WEBHOOK",
			"webhookId": "wh-1", "webhookName": "crm",
		},
		"userAttributes": userAttrs,
		"attributes":     attrs,
	}
}

// decoded is the answer as the story engine sees it; json.RawMessage lets
// the tests tell a null attribute (removal) from a missing one.
type decoded struct {
	Responses  []botResponse              `json:"responses"`
	Attributes map[string]json.RawMessage `json:"attributes"`
}

func serve(t *testing.T, h http.Handler, req *http.Request) (*httptest.ResponseRecorder, decoded) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var d decoded
	if rec.Header().Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
			t.Fatalf("answer is not JSON: %v: %s", err, rec.Body)
		}
	}
	return rec, d
}

func TestVerification(t *testing.T) {
	h := newHandler(testToken)
	tests := []struct {
		name     string
		path     string
		query    url.Values
		wantCode int
		wantBody string
	}{
		{"crm ok", "/crm", url.Values{"challenge": {"abc123"}, "token": {testToken}}, 200, "abc123"},
		{"orders ok", "/orders", url.Values{"challenge": {"xyz"}, "token": {testToken}}, 200, "xyz"},
		{"bad token", "/crm", url.Values{"challenge": {"abc123"}, "token": {"nope"}}, 403, ""},
		{"no token", "/crm", url.Values{"challenge": {"abc123"}}, 403, ""},
		{"no challenge", "/crm", url.Values{"token": {testToken}}, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.path+"?"+tt.query.Encode(), nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Fatalf("status = %d, want %d (%s)", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantCode == 200 {
				if got := rec.Body.String(); got != tt.wantBody {
					t.Errorf("body = %q, want %q", got, tt.wantBody)
				}
				if ct := rec.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
					t.Errorf("content type = %q", ct)
				}
			}
		})
	}
}

func TestSignature(t *testing.T) {
	h := newHandler(testToken)
	body := chatBody(map[string]any{"email": "ann@example.com"}, nil)
	now := time.Now()
	tests := []struct {
		name     string
		req      func() *http.Request
		wantCode int
		wantErr  string
	}{
		{"good", func() *http.Request { return signedRequest(t, "/crm", body, testToken, now) }, 200, ""},
		{"slightly future clock", func() *http.Request {
			return signedRequest(t, "/crm", body, testToken, now.Add(time.Minute))
		}, 200, ""},
		{"wrong token", func() *http.Request { return signedRequest(t, "/crm", body, "other", now) }, 401, "signature mismatch"},
		{"expired", func() *http.Request {
			return signedRequest(t, "/crm", body, testToken, now.Add(-6*time.Minute))
		}, 401, "timestamp outside the 5 minute window"},
		{"tampered body", func() *http.Request {
			r := signedRequest(t, "/crm", body, testToken, now)
			raw, _ := json.Marshal(chatBody(map[string]any{"email": "carol@example.com"}, nil))
			r.Body = io.NopCloser(bytes.NewReader(raw))
			return r
		}, 401, "signature mismatch"},
		{"timestamp replaced", func() *http.Request {
			r := signedRequest(t, "/crm", body, testToken, now)
			r.Header.Set(headerTimestamp, strconv.FormatInt(now.Unix()+1, 10))
			return r
		}, 401, "signature mismatch"},
		{"missing headers", func() *http.Request {
			r := signedRequest(t, "/crm", body, testToken, now)
			r.Header.Del(headerSignature)
			return r
		}, 401, "missing signature headers"},
		{"no sha256 prefix", func() *http.Request {
			r := signedRequest(t, "/crm", body, testToken, now)
			r.Header.Set(headerSignature, r.Header.Get(headerSignature)[len("sha256="):])
			return r
		}, 401, "signature must start with sha256="},
		{"orders checked too", func() *http.Request {
			return signedRequest(t, "/orders", body, "other", now)
		}, 401, "signature mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tt.req())
			if rec.Code != tt.wantCode {
				t.Fatalf("status = %d, want %d (%s)", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantErr != "" {
				var e struct{ Error, Code string }
				if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
					t.Fatalf("error body is not JSON: %s", rec.Body)
				}
				if e.Error != tt.wantErr || e.Code != "bad_signature" {
					t.Errorf("error = %+v, want %q/bad_signature", e, tt.wantErr)
				}
			}
		})
	}
}

func TestCRM(t *testing.T) {
	h := newHandler(testToken)
	tests := []struct {
		name      string
		attrs     map[string]any
		userAttrs map[string]any
		wantAttrs map[string]string // attribute -> its JSON; "null" means removed
		absent    []string
		wantTexts []string
	}{
		{
			name:  "known customer by attribute",
			attrs: map[string]any{"email": " Ann@Example.com "},
			wantAttrs: map[string]string{
				"customer": `"yes"`, "plan": `"pro"`, "customer_name": `"Ann"`,
				"open_orders": `2`, "lookup_error": `null`,
			},
			wantTexts: []string{"Welcome back, Ann! You are on the Pro plan.", "You have 2 open orders."},
		},
		{
			name:      "known customer by user attribute",
			userAttrs: map[string]any{"default_email": "bob@example.com"},
			wantAttrs: map[string]string{
				"customer": `"yes"`, "plan": `"free"`, "customer_name": `"Bob"`, "lookup_error": `null`,
			},
			wantTexts: []string{"Welcome back, Bob! You are on the Free plan."},
		},
		{
			name:      "attribute wins over user attribute",
			attrs:     map[string]any{"email": "carol@example.com"},
			userAttrs: map[string]any{"default_email": "ann@example.com"},
			wantAttrs: map[string]string{"customer": `"yes"`, "plan": `"enterprise"`},
			wantTexts: []string{"Welcome back, Carol! You are on the Enterprise plan.", "You have 1 open order."},
		},
		{
			name:      "unknown email",
			attrs:     map[string]any{"email": "zed@example.com"},
			wantAttrs: map[string]string{"customer": `"no"`, "customer_name": `null`, "lookup_error": `null`},
			absent:    []string{"plan"},
		},
		{
			name:      "no email",
			attrs:     map[string]any{"plan": "free"},
			wantAttrs: map[string]string{"customer": `"no"`, "lookup_error": `"no email in attributes.email or userAttributes.default_email"`},
			absent:    []string{"plan"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, d := serve(t, h, signedRequest(t, "/crm", chatBody(tt.attrs, tt.userAttrs), testToken, time.Now()))
			if rec.Code != 200 {
				t.Fatalf("status = %d (%s)", rec.Code, rec.Body)
			}
			for k, want := range tt.wantAttrs {
				got, ok := d.Attributes[k]
				if !ok {
					t.Errorf("attribute %s missing", k)
				} else if string(got) != want {
					t.Errorf("attribute %s = %s, want %s", k, got, want)
				}
			}
			for _, k := range tt.absent {
				if _, ok := d.Attributes[k]; ok {
					t.Errorf("attribute %s present, want absent", k)
				}
			}
			if len(d.Responses) != len(tt.wantTexts) {
				t.Fatalf("got %d responses, want %d: %s", len(d.Responses), len(tt.wantTexts), rec.Body)
			}
			for i, want := range tt.wantTexts {
				if r := d.Responses[i]; r.Type != "text" || r.Message != want {
					t.Errorf("response %d = %+v, want text %q", i, r, want)
				}
			}
			if len(tt.wantTexts) == 0 && bytes.Contains(rec.Body.Bytes(), []byte(`"responses"`)) {
				t.Errorf("responses field present in %s", rec.Body)
			}
		})
	}
}

func TestOrders(t *testing.T) {
	h := newHandler(testToken)
	tests := []struct {
		name      string
		attrs     map[string]any
		wantAttrs map[string]string
		wantTypes []string
	}{
		{
			name:  "quantity as number",
			attrs: map[string]any{"product": "espresso", "quantity": 2},
			wantAttrs: map[string]string{
				"order_id": `"ORD-001001"`, "total": `49.8`, "total_text": `"$49.80"`,
				"product": `"espresso"`, "quantity": `2`, "order_error": `null`,
			},
			wantTypes: []string{"cards", "quickReplies"},
		},
		{
			name:      "quantity as text, product by name",
			attrs:     map[string]any{"product": "Hand Grinder", "quantity": "1"},
			wantAttrs: map[string]string{"order_id": `"ORD-001002"`, "total": `59`, "product": `"grinder"`},
			wantTypes: []string{"cards", "quickReplies"},
		},
		{
			name:      "unknown product",
			attrs:     map[string]any{"product": "tea", "quantity": 1},
			wantAttrs: map[string]string{"order_error": `"unknown_product"`, "product": `null`, "order_id": `null`},
			wantTypes: []string{"quickReplies"},
		},
		{
			name:      "bad quantity",
			attrs:     map[string]any{"product": "filter", "quantity": "1.5"},
			wantAttrs: map[string]string{"order_error": `"bad_quantity"`, "quantity": `null`},
			wantTypes: []string{"text"},
		},
		{
			name:      "quantity too large",
			attrs:     map[string]any{"product": "filter", "quantity": 500},
			wantAttrs: map[string]string{"order_error": `"bad_quantity"`},
			wantTypes: []string{"text"},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := chatBody(tt.attrs, nil)
			body["messageId"] = "msg-" + strconv.Itoa(i)
			rec, d := serve(t, h, signedRequest(t, "/orders", body, testToken, time.Now()))
			if rec.Code != 200 {
				t.Fatalf("status = %d (%s)", rec.Code, rec.Body)
			}
			for k, want := range tt.wantAttrs {
				if got := string(d.Attributes[k]); got != want {
					t.Errorf("attribute %s = %s, want %s", k, got, want)
				}
			}
			var types []string
			for _, r := range d.Responses {
				types = append(types, r.Type)
			}
			if len(types) != len(tt.wantTypes) {
				t.Fatalf("response types = %v, want %v", types, tt.wantTypes)
			}
			for j := range types {
				if types[j] != tt.wantTypes[j] {
					t.Fatalf("response types = %v, want %v", types, tt.wantTypes)
				}
			}
			for _, r := range d.Responses {
				checkLimits(t, r)
			}
		})
	}
}

func TestOrderShape(t *testing.T) {
	h := newHandler(testToken)
	_, d := serve(t, h, signedRequest(t, "/orders",
		chatBody(map[string]any{"product": "filter", "quantity": 3}, nil), testToken, time.Now()))
	card := d.Responses[0].Elements[0]
	if card.Title != "Filter roast 500g" || card.Subtitle != "3 × $12.90 = $38.70" || card.ImageURL == "" {
		t.Errorf("card = %+v", card)
	}
	qr := d.Responses[1]
	if qr.Title != "Order ORD-001001: $38.70 in total. Shall I place it?" {
		t.Errorf("quick replies title = %q", qr.Title)
	}
	want := []button{{"postback", "Confirm", "confirm"}, {"postback", "Cancel", "cancel"}}
	if len(qr.Buttons) != 2 || qr.Buttons[0] != want[0] || qr.Buttons[1] != want[1] {
		t.Errorf("buttons = %+v, want %+v", qr.Buttons, want)
	}
}

// A retry from storyflow carries the same messageId and must not place a second order.
func TestOrderRetryIsIdempotent(t *testing.T) {
	h := newHandler(testToken)
	body := chatBody(map[string]any{"product": "espresso", "quantity": 1}, nil)
	_, first := serve(t, h, signedRequest(t, "/orders", body, testToken, time.Now()))
	_, retry := serve(t, h, signedRequest(t, "/orders", body, testToken, time.Now()))
	body["messageId"] = "another-message"
	_, next := serve(t, h, signedRequest(t, "/orders", body, testToken, time.Now()))
	if string(first.Attributes["order_id"]) != string(retry.Attributes["order_id"]) {
		t.Errorf("retry got order %s, first %s", retry.Attributes["order_id"], first.Attributes["order_id"])
	}
	if string(next.Attributes["order_id"]) == string(first.Attributes["order_id"]) {
		t.Errorf("a new message reused order %s", first.Attributes["order_id"])
	}
}

func TestBadRequests(t *testing.T) {
	h := newHandler(testToken)
	now := strconv.FormatInt(time.Now().Unix(), 10)
	raw := []byte("not json")
	req := httptest.NewRequest(http.MethodPost, "/crm", bytes.NewReader(raw))
	req.Header.Set(headerTimestamp, now)
	req.Header.Set(headerSignature, sign(testToken, now, raw))
	if rec, _ := serve(t, h, req); rec.Code != http.StatusBadRequest {
		t.Errorf("invalid JSON: status = %d", rec.Code)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != 200 {
		t.Errorf("healthz: status = %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodDelete, "/crm", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /crm: status = %d", rec.Code)
	}
}

// checkLimits checks the response limits storyflow enforces on webhook answers (SPEC §2).
func checkLimits(t *testing.T, r botResponse) {
	t.Helper()
	n := func(s string) int { return len([]rune(s)) }
	checkButtons := func(bs []button, max int) {
		if len(bs) < 1 || len(bs) > max {
			t.Errorf("%s: %d buttons", r.Type, len(bs))
		}
		for _, b := range bs {
			if n(b.Title) > 20 || (b.Type != "url" && n(b.Title) < 1) {
				t.Errorf("%s: button title %q", r.Type, b.Title)
			}
		}
	}
	switch r.Type {
	case "text":
		if n(r.Message) < 1 || n(r.Message) > 1024 {
			t.Errorf("text message length %d", n(r.Message))
		}
	case "quickReplies":
		if n(r.Title) < 1 || n(r.Title) > 640 {
			t.Errorf("quickReplies title length %d", n(r.Title))
		}
		checkButtons(r.Buttons, 13)
	case "cards":
		if len(r.Elements) < 1 || len(r.Elements) > 10 {
			t.Errorf("cards: %d elements", len(r.Elements))
		}
		for _, e := range r.Elements {
			if n(e.Title) < 1 || n(e.Title) > 80 || n(e.Subtitle) < 1 || n(e.Subtitle) > 80 || e.ImageURL == "" {
				t.Errorf("card element %+v breaks limits", e)
			}
			checkButtons(e.Buttons, 5)
		}
	default:
		t.Errorf("unexpected response type %q", r.Type)
	}
}
