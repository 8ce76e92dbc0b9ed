package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names and limits of storyflow's webhook contract (SPEC §3).
const (
	headerTimestamp = "X-Storyflow-Timestamp"
	headerSignature = "X-Storyflow-Signature"
	signaturePrefix = "sha256="

	// maxClockSkew is how far a request's timestamp may lie from our clock,
	// in either direction, before the request is refused as a possible replay.
	maxClockSkew = 5 * time.Minute

	// maxBodyBytes bounds what we read from a webhook request.
	maxBodyBytes = 1 << 20
)

// webhookRequest is the body storyflow POSTs for a webhook node (format: chatbot).
type webhookRequest struct {
	ChatID         string         `json:"chatId"`
	MessageID      string         `json:"messageId"`
	UserID         string         `json:"userId"`
	ExternalID     string         `json:"externalId"`
	Node           webhookNode    `json:"node"`
	UserAttributes map[string]any `json:"userAttributes"`
	Attributes     map[string]any `json:"attributes"`
}

type webhookNode struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	WebhookID   string `json:"webhookId"`
	WebhookName string `json:"webhookName"`
}

// webhookResponse is what we answer. Both fields are optional; an attribute
// set to nil is encoded as null, which removes it from the chat.
type webhookResponse struct {
	Responses  []botResponse  `json:"responses,omitempty"`
	Attributes map[string]any `json:"attributes,omitempty"`
}

// botResponse covers the response types this service sends: text,
// quickReplies and cards (SPEC §2).
type botResponse struct {
	Type     string        `json:"type"`
	Delay    int           `json:"delay,omitempty"`
	Message  string        `json:"message,omitempty"`
	Title    string        `json:"title,omitempty"`
	Buttons  []button      `json:"buttons,omitempty"`
	Elements []cardElement `json:"elements,omitempty"`
}

type button struct {
	Type  string `json:"type"` // postback, goto, url, webview, phone
	Title string `json:"title"`
	Value string `json:"value"`
}

type cardElement struct {
	Title    string   `json:"title"`
	Subtitle string   `json:"subtitle"`
	ImageURL string   `json:"imageUrl"`
	Buttons  []button `json:"buttons"`
}

// customer is a row of the in-memory CRM.
type customer struct {
	Name       string
	Plan       string
	OpenOrders int
}

// product is a row of the in-memory catalog; prices are in cents.
type product struct {
	Name     string
	Price    int
	ImageURL string
	PageURL  string
}

var customers = map[string]customer{
	"ann@example.com":   {Name: "Ann", Plan: "pro", OpenOrders: 2},
	"bob@example.com":   {Name: "Bob", Plan: "free", OpenOrders: 0},
	"carol@example.com": {Name: "Carol", Plan: "enterprise", OpenOrders: 1},
}

var catalog = map[string]product{
	"espresso": {Name: "Espresso beans 1kg", Price: 2490,
		ImageURL: "https://shop.example.com/img/espresso.jpg", PageURL: "https://shop.example.com/p/espresso"},
	"filter": {Name: "Filter roast 500g", Price: 1290,
		ImageURL: "https://shop.example.com/img/filter.jpg", PageURL: "https://shop.example.com/p/filter"},
	"grinder": {Name: "Hand grinder", Price: 5900,
		ImageURL: "https://shop.example.com/img/grinder.jpg", PageURL: "https://shop.example.com/p/grinder"},
}

// catalogOrder lists catalog keys in a fixed order for suggestions.
var catalogOrder = []string{"espresso", "filter", "grinder"}

// backend holds the service's state: the shared token and the orders taken so far.
type backend struct {
	token []byte
	now   func() time.Time
	log   *slog.Logger

	mu        sync.Mutex
	nextOrder int
	// ordersByMessage makes order creation idempotent: storyflow retries a
	// call with the same messageId, and a retry must not place a second order.
	ordersByMessage map[string]string
}

// newHandler returns the service's routes. An empty token turns signature and
// verification checks off (only sensible for local experiments).
func newHandler(token string) http.Handler {
	return newBackend(token, time.Now, slog.Default()).routes()
}

func newBackend(token string, now func() time.Time, log *slog.Logger) *backend {
	return &backend{
		token:           []byte(token),
		now:             now,
		log:             log,
		nextOrder:       1001,
		ordersByMessage: make(map[string]string),
	}
}

func (b *backend) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /crm", b.verify)
	mux.HandleFunc("POST /crm", b.webhook(b.crm))
	mux.HandleFunc("GET /orders", b.verify)
	mux.HandleFunc("POST /orders", b.webhook(b.orders))
	return mux
}

// verify answers storyflow's verification request,
// GET <url>?challenge=<random>&token=<token>, by echoing the challenge.
func (b *backend) verify(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	challenge := q.Get("challenge")
	if challenge == "" {
		writeError(w, http.StatusBadRequest, "missing challenge", "invalid_request")
		return
	}
	if len(b.token) > 0 && subtle.ConstantTimeCompare([]byte(q.Get("token")), b.token) != 1 {
		b.log.Warn("verification refused: token mismatch", "path", r.URL.Path)
		writeError(w, http.StatusForbidden, "token does not match", "bad_token")
		return
	}
	b.log.Info("verification answered", "path", r.URL.Path)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, challenge)
}

// webhook wraps a webhook handler with body reading, signature checking and
// JSON decoding and encoding.
func (b *backend) webhook(handle func(*webhookRequest) webhookResponse) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeError(w, http.StatusRequestEntityTooLarge, "body too large", "too_large")
				return
			}
			writeError(w, http.StatusBadRequest, "cannot read body", "invalid_request")
			return
		}
		if err := b.checkSignature(r.Header, body); err != nil {
			b.log.Warn("webhook refused", "path", r.URL.Path, "err", err)
			writeError(w, http.StatusUnauthorized, err.Error(), "bad_signature")
			return
		}
		var req webhookRequest
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, "body is not a webhook request: "+err.Error(), "invalid_json")
			return
		}
		resp := handle(&req)
		b.log.Info("webhook answered",
			"path", r.URL.Path,
			"chatId", req.ChatID,
			"messageId", req.MessageID,
			"node", req.Node.ID,
			"responses", len(resp.Responses),
			"attributes", len(resp.Attributes))
		writeJSON(w, http.StatusOK, resp)
	}
}

// checkSignature checks X-Storyflow-Signature, the hex HMAC-SHA256 of
// "<timestamp>.<body>" keyed by the token, and that the timestamp is recent.
func (b *backend) checkSignature(h http.Header, body []byte) error {
	if len(b.token) == 0 {
		return nil
	}
	ts := h.Get(headerTimestamp)
	sig := h.Get(headerSignature)
	if ts == "" || sig == "" {
		return errors.New("missing signature headers")
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("malformed timestamp")
	}
	skew := b.now().Sub(time.Unix(secs, 0))
	if skew > maxClockSkew || skew < -maxClockSkew {
		return errors.New("timestamp outside the 5 minute window")
	}
	hexSig, ok := strings.CutPrefix(sig, signaturePrefix)
	if !ok {
		return errors.New("signature must start with sha256=")
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return errors.New("malformed signature")
	}
	if !hmac.Equal(got, signBytes(b.token, ts, body)) {
		return errors.New("signature mismatch")
	}
	return nil
}

// signBytes computes HMAC-SHA256(token, "<timestamp>.<body>").
func signBytes(token []byte, timestamp string, body []byte) []byte {
	mac := hmac.New(sha256.New, token)
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return mac.Sum(nil)
}

// sign returns the X-Storyflow-Signature header value for a body.
func sign(token, timestamp string, body []byte) string {
	return signaturePrefix + hex.EncodeToString(signBytes([]byte(token), timestamp, body))
}

// crm looks the chat's email up in the customer table. The story routes on
// the attributes it sets: customer ("yes"/"no"), plan, customer_name,
// open_orders, and lookup_error (set when there is no email, removed otherwise).
func (b *backend) crm(req *webhookRequest) webhookResponse {
	email := stringAttr(req.Attributes, "email")
	if email == "" {
		email = stringAttr(req.UserAttributes, "default_email")
	}
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return webhookResponse{Attributes: map[string]any{
			"customer":     "no",
			"lookup_error": "no email in attributes.email or userAttributes.default_email",
		}}
	}
	c, ok := customers[email]
	if !ok {
		// Unknown: no message, the story decides what to say.
		return webhookResponse{Attributes: map[string]any{
			"customer":      "no",
			"customer_name": nil,
			"lookup_error":  nil,
		}}
	}
	welcome := fmt.Sprintf("Welcome back, %s! You are on the %s plan.", c.Name, titleCase(c.Plan))
	resp := webhookResponse{
		Responses: []botResponse{{Type: "text", Message: welcome}},
		Attributes: map[string]any{
			"customer":      "yes",
			"plan":          c.Plan,
			"customer_name": c.Name,
			"open_orders":   c.OpenOrders,
			"lookup_error":  nil,
		},
	}
	if c.OpenOrders > 0 {
		resp.Responses = append(resp.Responses, botResponse{
			Type:    "text",
			Delay:   500,
			Message: fmt.Sprintf("You have %d open %s.", c.OpenOrders, plural(c.OpenOrders, "order", "orders")),
		})
	}
	return resp
}

// orders prices the product and quantity the story collected, places an
// order and asks the user to confirm it. It sets order_id, total (a number),
// total_text and currency, or order_error when the input cannot be used.
func (b *backend) orders(req *webhookRequest) webhookResponse {
	name := stringAttr(req.Attributes, "product")
	key, p, ok := findProduct(name)
	if !ok {
		buttons := make([]button, 0, len(catalogOrder))
		for _, k := range catalogOrder {
			buttons = append(buttons, button{Type: "postback", Title: k, Value: k})
		}
		title := "Which product would you like?"
		if name != "" {
			title = fmt.Sprintf("Sorry, we don't sell %q. Which product would you like?", truncate(name, 64))
		}
		return webhookResponse{
			Responses: []botResponse{{Type: "quickReplies", Title: title, Buttons: buttons}},
			Attributes: map[string]any{
				"order_error": "unknown_product",
				"product":     nil,
				"order_id":    nil,
				"total":       nil,
			},
		}
	}
	qty, ok := quantityAttr(req.Attributes["quantity"])
	if !ok {
		return webhookResponse{
			Responses: []botResponse{{Type: "text", Message: "Please tell me a quantity from 1 to 99."}},
			Attributes: map[string]any{
				"order_error": "bad_quantity",
				"quantity":    nil,
				"order_id":    nil,
				"total":       nil,
			},
		}
	}
	totalCents := p.Price * qty
	orderID := b.placeOrder(req.MessageID)
	total := money(totalCents)
	return webhookResponse{
		Responses: []botResponse{
			{
				Type: "cards",
				Elements: []cardElement{{
					Title:    p.Name,
					Subtitle: fmt.Sprintf("%d × %s = %s", qty, money(p.Price), total),
					ImageURL: p.ImageURL,
					Buttons:  []button{{Type: "url", Title: "Details", Value: p.PageURL}},
				}},
			},
			{
				Type:  "quickReplies",
				Title: fmt.Sprintf("Order %s: %s in total. Shall I place it?", orderID, total),
				Buttons: []button{
					{Type: "postback", Title: "Confirm", Value: "confirm"},
					{Type: "postback", Title: "Cancel", Value: "cancel"},
				},
			},
		},
		Attributes: map[string]any{
			"product":     key,
			"quantity":    qty,
			"order_id":    orderID,
			"total":       float64(totalCents) / 100,
			"total_text":  total,
			"currency":    "USD",
			"order_error": nil,
		},
	}
}

// placeOrder returns a new order id, or the one already given to messageID.
func (b *backend) placeOrder(messageID string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if id, ok := b.ordersByMessage[messageID]; ok && messageID != "" {
		return id
	}
	id := fmt.Sprintf("ORD-%06d", b.nextOrder)
	b.nextOrder++
	if messageID != "" {
		if len(b.ordersByMessage) >= 10000 { // a demo: forget old ids rather than grow forever
			clear(b.ordersByMessage)
		}
		b.ordersByMessage[messageID] = id
	}
	return id
}

func findProduct(name string) (string, product, bool) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" {
		return "", product{}, false
	}
	if p, ok := catalog[n]; ok {
		return n, p, true
	}
	for _, k := range catalogOrder {
		if strings.ToLower(catalog[k].Name) == n {
			return k, catalog[k], true
		}
	}
	return "", product{}, false
}

// quantityAttr accepts a JSON number or a numeric string (what a question
// node stores) holding a whole number from 1 to 99.
func quantityAttr(v any) (int, bool) {
	var f float64
	switch v := v.(type) {
	case float64:
		f = v
	case string:
		var err error
		f, err = strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	if f != math.Trunc(f) || f < 1 || f > 99 {
		return 0, false
	}
	return int(f), true
}

func stringAttr(m map[string]any, key string) string {
	s, _ := m[key].(string)
	return s
}

func money(cents int) string {
	return fmt.Sprintf("$%d.%02d", cents/100, cents%100)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg, code string) {
	writeJSON(w, status, map[string]string{"error": msg, "code": code})
}
