package nodes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/webhook"
)

// Webhook calls a bot owner's service and continues on its answer (SPEC §3):
// the answer's attributes are merged, its responses sent, then the first
// route that holds wins, else Next. A failed call sends and merges nothing
// and goes to Failure; without one the node fails (onError or apology).
type Webhook struct {
	// Conn is the connection of the story (or inline); nil when the
	// connection was made through the API and is looked up per call.
	Conn    *webhook.Connection
	Lookup  string
	Format  webhook.Format
	Routes  []engine.Route
	Next    string
	Failure string
	// Model, System, History, Image and Options are the settings of the
	// AI formats (messages, openai, anthropic).
	Model   string
	System  *engine.Template
	History int
	Image   *engine.Template
	Options webhook.ModelOptions

	client *webhook.Client
	conns  webhook.Connections
	rec    webhook.Recorder
	log    *slog.Logger
}

var (
	_ engine.Node    = (*Webhook)(nil)
	_ engine.Resumer = (*Webhook)(nil)
)

// FormAttribute holds a widget form being filled in the chat (its fields,
// the answers so far and the field asked); it is removed once submitted.
const FormAttribute = "widget_form"

// Webhook node fields.
const (
	whWebhook = "webhook"
	whFormat  = "format"
	whRoutes  = "routes"
	whNext    = "next"
	whFailure = "failure"
	whModel   = "model"
	whSystem  = "system"
	whHistory = "history"
	whImage   = "image"
	whTemp    = "temperature"
	whTopP    = "top_p"
	whMaxTok  = "max_tokens"
	whMaxComp = "max_completion_tokens"
	whStop    = "stop"
	whSets    = "sets"
)

// formatsWith tells which formats take a setting.
var formatsWith = map[string][]webhook.Format{
	whModel:   {webhook.FormatOpenAI, webhook.FormatAnthropic},
	whSystem:  {webhook.FormatMessages, webhook.FormatOpenAI, webhook.FormatAnthropic},
	whHistory: {webhook.FormatMessages, webhook.FormatOpenAI, webhook.FormatAnthropic},
	whImage:   {webhook.FormatMessages, webhook.FormatOpenAI, webhook.FormatAnthropic},
	whTemp:    {webhook.FormatOpenAI, webhook.FormatAnthropic},
	whTopP:    {webhook.FormatOpenAI, webhook.FormatAnthropic},
	whMaxTok:  {webhook.FormatOpenAI, webhook.FormatAnthropic},
	whMaxComp: {webhook.FormatOpenAI},
	whStop:    {webhook.FormatOpenAI, webhook.FormatAnthropic},
}

// connectionFields are the fields of a webhook connection.
var connectionFields = []engine.Field{
	{Name: "url", Kind: engine.KindString, Required: true, Description: "URL called with POST (http or https, 1..1024 characters)"},
	{Name: "token", Kind: engine.KindString, Description: "chatbot, widget: signs each request (X-Storyflow-Signature); messages: a bearer token that also signs; openai: a bearer token; anthropic: x-api-key"},
	{Name: "headers", Kind: engine.KindAny, Description: "headers added to each request (1..10)"},
	{Name: "auth", Kind: engine.KindObject, Description: "HTTP basic auth", Fields: []engine.Field{
		{Name: "username", Kind: engine.KindString, Required: true, Description: "user name (1..1024)"},
		{Name: "password", Kind: engine.KindString, Required: true, Description: "password (1..1024)"},
	}},
	{Name: "timeout", Kind: engine.KindDuration, Default: "10s", Description: "time for one attempt, answer included (at most 120s); default 10s, 30s for messages, 60s for openai and anthropic"},
	{Name: "retries", Kind: engine.KindInt, Default: 0, Description: "retries on network errors and 5xx (also 429 except chatbot; 408 and 409 for openai, anthropic), with exponential backoff or the answer's Retry-After (0..5; default 0, 2 for openai and anthropic)"},
	{Name: "max_in_flight", Kind: engine.KindInt, Description: "most calls in flight to this connection; a call over it waits briefly, then takes the failure branch (1..1000; default: the server's, 64)"},
}

func init() {
	builtinWith(webhookSpec(), newWebhook)
}

func webhookSpec() engine.Spec {
	return engine.Spec{
		Type:    "webhook",
		Summary: "Calls a webhook; merges the attributes and sends the responses it answers, then routes, else next; failure on error.",
		Fields: []engine.Field{
			{Name: whWebhook, Kind: engine.KindAny, Required: true, Fields: connectionFields,
				Description: "name of a connection (the story's webhooks: section or the API), or an inline connection",
				Schema: map[string]any{"oneOf": []any{
					map[string]any{"type": "string", "minLength": 1},
					map[string]any{"$ref": "#/$defs/connection"},
				}}},
			{Name: whFormat, Kind: engine.KindString, Default: string(webhook.FormatChatbot), Enum: webhook.Formats,
				Description: "wire format: chatbot (SPEC §3), messages, widget, openai or anthropic"},
			{Name: whRoutes, Kind: engine.KindRoutes, Fields: engine.RouteFields,
				Description: "list of {when, next} checked after a successful call (webhook.status holds the HTTP status)"},
			{Name: whNext, Kind: engine.KindRef, Description: "node after a successful call when no route holds; none completes the chat"},
			{Name: whFailure, Kind: engine.KindRef, Description: "node after a failed call (default: the story's onError, or an apology)"},
			{Name: whSets, Kind: engine.KindAny, Sets: true, Description: "names of the attributes the answer may set (so that reading them is not warned about as never set)",
				Schema: map[string]any{"type": "array", "items": map[string]any{"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"}}},
			{Name: whModel, Kind: engine.KindString, Description: "openai, anthropic: the model (required)"},
			{Name: whSystem, Kind: engine.KindTemplate, Description: "messages, openai, anthropic: the system message (a template)"},
			{Name: whHistory, Kind: engine.KindInt, Default: webhook.DefaultHistory,
				Description: "messages, openai, anthropic: how many messages of the conversation to send (1..100)"},
			{Name: whImage, Kind: engine.KindTemplate,
				Description: "messages, openai, anthropic: an image URL (http, https or data:) sent with the last user message; empty sends none"},
			{Name: whTemp, Kind: engine.KindNumber, Description: "openai (0..2), anthropic (0..1): sampling temperature"},
			{Name: whTopP, Kind: engine.KindNumber, Description: "openai, anthropic: nucleus sampling (0..1)"},
			{Name: whMaxTok, Kind: engine.KindInt, Description: "openai, anthropic: the longest reply in tokens (required with anthropic)"},
			{Name: whMaxComp, Kind: engine.KindInt, Description: "openai: max_completion_tokens, for models that refuse max_tokens (o-series)"},
			{Name: whStop, Kind: engine.KindAny, Description: "openai (at most 4), anthropic: stop sequences",
				Schema: map[string]any{"type": "array", "items": map[string]any{"type": "string", "minLength": 1}, "minItems": 1}},
		},
		// Routes and later nodes of the turn read webhook.status.
		Scope: &engine.Scope{Name: scopeWebhook, Defaults: map[string]any{"status": 0}},
	}
}

// scopeWebhook is the node scope webhook nodes set: webhook.status is the
// HTTP status of the turn's last call (0 without an answer).
const scopeWebhook = "webhook"

// setStatus sets webhook.status for the rest of the turn.
func setStatus(t *engine.Turn, status int) {
	t.Set(scopeWebhook, map[string]any{"status": status})
}

func newWebhook(o Options) engine.Constructor {
	client := o.Webhooks
	if client == nil {
		client = webhook.NewClient(webhook.Options{AllowPrivate: o.AllowPrivateWebhooks})
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	return func(c *engine.Config) (engine.Node, error) {
		n := &Webhook{
			Format:  webhook.Format(c.String(whFormat)),
			Routes:  c.Routes(whRoutes),
			Next:    c.Ref(whNext, "next", ""),
			Failure: c.Ref(whFailure, "failure", "failure"),
			client:  client, conns: o.Connections, rec: o.WebhookErrors, log: log,
		}
		if n.Format == "" {
			n.Format = webhook.FormatChatbot
		}
		if !slices.Contains(webhook.Formats, string(n.Format)) {
			c.Errorf(whFormat, "format %q unknown (want one of %s)", n.Format, strings.Join(webhook.Formats, ", "))
		}
		n.readSettings(c)
		for _, a := range c.Strings(whSets) {
			if !attrRe.MatchString(a) {
				c.Errorf(whSets, "sets: attribute name %q must match [A-Za-z_][A-Za-z0-9_]{0,63}", a)
			}
		}
		n.Conn, n.Lookup = resolveConnection(c, o.Connections)
		return n, nil
	}
}

// DefaultLLMRetries is the retries of an openai or anthropic connection
// that sets none: the official SDKs retry twice.
const DefaultLLMRetries = 2

func defaultRetries(f webhook.Format) int {
	if f == webhook.FormatOpenAI || f == webhook.FormatAnthropic {
		return DefaultLLMRetries
	}
	return 0
}

// readSettings reads the settings of the AI formats and reports those the
// node's format does not take.
func (n *Webhook) readSettings(c *engine.Config) {
	for _, f := range []string{whModel, whSystem, whHistory, whImage, whTemp, whTopP, whMaxTok, whMaxComp, whStop} {
		if c.Has(f) && !slices.Contains(formatsWith[f], n.Format) {
			c.Errorf(f, "field %s only applies to format %s", f, formatList(formatsWith[f]))
		}
	}
	n.Model = c.String(whModel)
	n.System = c.Template(whSystem)
	n.Image = c.Template(whImage)
	n.History = c.Int(whHistory, webhook.DefaultHistory)
	if c.Has(whHistory) && (n.History < 1 || n.History > 100) {
		c.Errorf(whHistory, "history must be 1 to 100, got %d", n.History)
	}
	llm := n.Format == webhook.FormatOpenAI || n.Format == webhook.FormatAnthropic
	if llm && !c.Has(whModel) {
		c.Errorf("", "field model is required with format %s", n.Format)
	}
	if n.Format == webhook.FormatAnthropic && !c.Has(whMaxTok) {
		c.Errorf("", "field max_tokens is required with format anthropic: the Messages API refuses a request without it")
	}
	o := &n.Options
	maxTemp := 2.0
	if n.Format == webhook.FormatAnthropic {
		maxTemp = 1
	}
	if c.Has(whTemp) {
		t := c.Number(whTemp, 0)
		if t < 0 || t > maxTemp {
			c.Errorf(whTemp, "temperature must be 0 to %g, got %g", maxTemp, t)
		}
		o.Temperature = &t
	}
	if c.Has(whTopP) {
		p := c.Number(whTopP, 0)
		if p < 0 || p > 1 {
			c.Errorf(whTopP, "top_p must be 0 to 1, got %g", p)
		}
		o.TopP = &p
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{whMaxTok, &o.MaxTokens}, {whMaxComp, &o.MaxCompletionTokens}} {
		if c.Has(f.name) {
			if *f.v = c.Int(f.name, 0); *f.v < 1 {
				c.Errorf(f.name, "%s must be at least 1, got %d", f.name, *f.v)
			}
		}
	}
	if c.Has(whMaxTok) && c.Has(whMaxComp) {
		c.Errorf(whMaxComp, "set max_tokens or max_completion_tokens, not both")
	}
	if c.Has(whStop) {
		o.Stop = c.Strings(whStop)
		switch {
		case len(o.Stop) == 0:
			c.Errorf(whStop, "stop must hold at least one sequence")
		case n.Format == webhook.FormatOpenAI && len(o.Stop) > 4:
			c.Errorf(whStop, "stop must hold at most 4 sequences with format openai, got %d", len(o.Stop))
		case slices.Contains(o.Stop, ""):
			c.Errorf(whStop, "stop sequences must not be empty")
		}
	}
}

func formatList(fs []webhook.Format) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = string(f)
	}
	if len(names) == 1 {
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// NeedsInput tells the story linter that the node would send the service
// nothing before the chat has user input: the request would be refused.
func (n *Webhook) NeedsInput() string {
	switch n.Format {
	case webhook.FormatWidget:
		return "format widget sends an empty prompt before the chat has user input, which the widget backend refuses: put a question before this node"
	case webhook.FormatMessages:
		return "format messages sends no messages before the chat has user input: put a question before this node"
	case webhook.FormatAnthropic:
		return "format anthropic sends no messages before the chat has user input, which the Messages API refuses: put a question before this node"
	case webhook.FormatOpenAI:
		if n.System == nil {
			return "format openai sends no messages before the chat has user input and without a system message, which the API refuses: set system or put a question before this node"
		}
	}
	return ""
}

// resolveConnection reads the node's webhook field: a name of the story's
// webhooks: section, a name the API knows (looked up per call), or an
// inline connection.
func resolveConnection(c *engine.Config, conns webhook.Connections) (*webhook.Connection, string) {
	switch {
	case !c.Has(whWebhook):
		return nil, ""
	case c.IsObject(whWebhook):
		return readConnection(c, c.Object(whWebhook), c.ID(), c.Name()), ""
	case c.IsList(whWebhook):
		c.Errorf(whWebhook, "field webhook must be a connection name or a connection object")
		return nil, ""
	}
	b := c.Build()
	name := c.String(whWebhook)
	if cc, ok := c.Section("webhooks", name); ok {
		if !cc.IsObject("") {
			cc.Errorf("", "webhook connection %q must be an object with a url", name)
			return nil, ""
		}
		return readConnection(c, cc, name, name), ""
	}
	if conns == nil {
		c.Errorf(whWebhook, "webhook connection %q not found in the story's webhooks section", name)
		return nil, ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, found, err := conns.Lookup(ctx, b.StoryID, name)
	switch {
	case err != nil:
		c.Errorf(whWebhook, "look up webhook connection %q: %v", name, err)
	case !found && b.Recompile:
		c.Warnf(whWebhook, "webhook connection %q no longer exists: calls take the failure branch", name)
		return nil, name
	case !found:
		c.Errorf(whWebhook, "webhook connection %q not found in the story's webhooks section or the API's connections", name)
	default:
		return nil, name
	}
	return nil, ""
}

// readConnection reads a connection object, reporting problems at its fields.
func readConnection(node, cc *engine.Config, id, name string) *webhook.Connection {
	cc.CheckFields(connectionFields)
	conn := &webhook.Connection{
		StoryID: node.Build().StoryID, ID: id, Name: name,
		URL: cc.String("url"), Token: cc.String("token"), Headers: cc.StringMap("headers"),
		Timeout: cc.Duration("timeout", 0), Retries: cc.Int("retries", defaultRetries(webhook.Format(node.String(whFormat)))),
		MaxInFlight: cc.Int("max_in_flight", 0),
	}
	if cc.Has("token") && conn.Token == "" {
		cc.Errorf("token", "connection %s: token must be 1 to 1024 characters", name)
	}
	if cc.Has("headers") && len(conn.Headers) == 0 {
		cc.Errorf("headers", "connection %s: headers must hold 1 to %d headers", name, webhook.MaxHeaders)
	}
	if cc.Has("timeout") && conn.Timeout <= 0 {
		cc.Errorf("timeout", "connection %s: timeout must be more than 0", name)
	}
	if cc.Has("max_in_flight") && conn.MaxInFlight == 0 {
		cc.Errorf("max_in_flight", "connection %s: max_in_flight must be 1 to %d, got 0", name, webhook.MaxInFlightLimit)
	}
	auth := cc.Object("auth")
	if auth != nil {
		conn.Auth = &webhook.BasicAuth{Username: auth.String("username"), Password: auth.String("password")}
	}
	for _, p := range conn.Check() {
		field, sub, _ := strings.Cut(p.Path, ".")
		switch {
		case field == "auth" && auth != nil:
			if auth.Has(sub) { // a missing one is reported by CheckFields
				auth.Errorf(sub, "connection %s: auth.%s %s", name, sub, p.Message)
			}
		case field == "headers" && sub != "":
			cc.Errorf(field, "connection %s: header %s: %s", name, sub, p.Message)
		default:
			cc.Errorf(field, "connection %s: %s %s", name, field, p.Message)
		}
	}
	if cc.Failed() {
		return nil
	}
	return conn
}

// Run implements engine.Node.
func (n *Webhook) Run(ctx context.Context, t *engine.Turn) (engine.Result, error) {
	if n.Format == webhook.FormatWidget {
		t.DeleteAttribute(FormAttribute) // a form left unfinished
	}
	conn, failed, err := n.connection(ctx, t)
	if conn == nil {
		return failed, err
	}
	c := t.Chat
	req := webhook.Request{
		Format: n.Format, ChatID: c.ID, UserID: c.UserID, ExternalID: c.ExternalID,
		StoryID: t.Story.ID, StoryName: t.Story.Name, NodeID: t.Node.ID, NodeName: t.Node.Name,
		UserAttributes: c.UserAttributes, Attributes: c.Attributes, Input: t.Input.Value(),
		GotoOK: func(id string) bool { _, ok := t.Story.Nodes[id]; return ok },
		Model:  n.Model, Options: n.Options,
	}
	switch n.Format {
	case webhook.FormatMessages, webhook.FormatOpenAI, webhook.FormatAnthropic:
		tr, err := c.Recent()
		if err != nil {
			return engine.Result{}, err
		}
		req.Messages = webhook.Window(tr, t.Output, n.History)
		if n.Image != nil {
			img, err := t.Render(n.Image)
			if err != nil {
				return engine.Result{}, err
			}
			if img = strings.TrimSpace(img); img != "" {
				if !imageURL(img) {
					return n.fail(ctx, t, nil, 0, fmt.Errorf("image must be an http, https or data:image URL, got %q", cutText(img, 40)))
				}
				if k := lastUser(req.Messages); k >= 0 {
					req.Messages[k].Images = append(req.Messages[k].Images, img)
				} else {
					req.Messages = append(req.Messages, webhook.Message{Role: "user", Images: []string{img}})
				}
			}
		}
	case webhook.FormatWidget:
		if req.Input == "" {
			// The last input, when the turn started without one.
			tr, err := c.Recent()
			if err != nil {
				return engine.Result{}, err
			}
			for i := len(tr) - 1; i >= 0 && req.Input == ""; i-- {
				if e := tr[i]; e.From == "user" && e.Input != nil {
					req.Input = e.Input.Value()
				}
			}
		}
	}
	if n.System != nil {
		s, err := t.Render(n.System)
		if err != nil {
			return engine.Result{}, err
		}
		req.System = s
	}
	res, err := n.client.Call(ctx, conn, &req)
	if err != nil {
		if ctx.Err() != nil {
			return engine.Result{}, ctx.Err()
		}
		return n.fail(ctx, t, conn, res.Status, err)
	}
	if n.rec != nil {
		n.rec.Record(ctx, conn, "")
	}
	setStatus(t, res.Status)
	note := map[string]any{"webhook": conn.Name, "status": res.Status}
	if res.Answer.Attributes != nil {
		note["attributes"] = res.Answer.Attributes
	}
	t.Note(note) // kept in the transcript: a recorded chat replays with it
	t.MergeAttributes(res.Answer.Attributes)
	if res.Answer.Call != nil && len(res.Answer.Responses) > 0 {
		t.NoteCall(res.Answer.Call)
	}
	for _, r := range res.Answer.Responses {
		if r.Type == engine.TypeRandomText {
			r = engine.Response{Type: engine.TypeText, Delay: r.Delay, Message: r.Messages[rand.IntN(len(r.Messages))]}
		}
		t.Send(r)
	}
	if f := res.Answer.Form; f != nil {
		return n.ask(t, f)
	}
	return n.next(t)
}

// connection returns the node's connection; nil with the result to return
// when it cannot be found.
func (n *Webhook) connection(ctx context.Context, t *engine.Turn) (*webhook.Connection, engine.Result, error) {
	if n.Conn != nil {
		return n.Conn, engine.Result{}, nil
	}
	found, ok, err := n.lookup(ctx, t.Story.ID)
	if err != nil {
		if ctx.Err() != nil {
			return nil, engine.Result{}, ctx.Err()
		}
		res, err := n.fail(ctx, t, nil, 0, err)
		return nil, res, err
	}
	if !ok {
		res, err := n.fail(ctx, t, nil, 0, fmt.Errorf("connection %q not found", n.Lookup))
		return nil, res, err
	}
	return found, engine.Result{}, nil
}

// ask keeps the form in the chat, asks its next field and waits.
func (n *Webhook) ask(t *engine.Turn, f *webhook.Form) (engine.Result, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return engine.Result{}, fmt.Errorf("keep form: %w", err)
	}
	var state map[string]any
	if err := json.Unmarshal(b, &state); err != nil {
		return engine.Result{}, fmt.Errorf("keep form: %w", err)
	}
	t.SetAttribute(FormAttribute, state)
	t.Send(f.Fields[f.Next].Ask()...)
	return engine.Result{Wait: true}, nil
}

// Resume implements engine.Resumer: the answer to a form's field. Once
// every field is answered the form is submitted and the node goes on as
// after a successful call. Without a form pending the node runs anew.
func (n *Webhook) Resume(ctx context.Context, t *engine.Turn) (engine.Result, error) {
	var f webhook.Form
	state, ok := t.Chat.Attributes[FormAttribute].(map[string]any)
	if ok {
		b, err := json.Marshal(state)
		ok = err == nil && json.Unmarshal(b, &f) == nil && f.Next >= 0 && f.Next < len(f.Fields)
	}
	if !ok {
		return n.Run(ctx, t)
	}
	field := &f.Fields[f.Next]
	v, valid, hint := field.Parse(t.Input.Value())
	if !valid {
		t.Send(engine.Response{Type: engine.TypeText, Delay: engine.DefaultDelay, Message: hint})
		t.Send(field.Ask()...)
		return engine.Result{Wait: true}, nil
	}
	if f.Values == nil {
		f.Values = map[string]any{}
	}
	if v != nil {
		f.Values[field.ID] = v
	}
	if f.Next++; f.Next < len(f.Fields) {
		return n.ask(t, &f)
	}
	t.DeleteAttribute(FormAttribute)
	conn, res, err := n.connection(ctx, t)
	if conn == nil {
		return res, err
	}
	status, rs, err := n.client.Submit(ctx, conn, &f)
	if err != nil {
		if ctx.Err() != nil {
			return engine.Result{}, ctx.Err()
		}
		return n.fail(ctx, t, conn, status, err)
	}
	setStatus(t, status)
	t.Send(rs...)
	return n.next(t)
}

// next picks the first route that holds, else Next.
func (n *Webhook) next(t *engine.Turn) (engine.Result, error) {
	next, ok, err := t.Pick(n.Routes)
	if err != nil {
		return engine.Result{}, err
	}
	if !ok {
		next = n.Next
	}
	if next == "" {
		return engine.Complete(), nil
	}
	return engine.Goto(next), nil
}

// lastUser is the index of the last user message, or -1.
func lastUser(ms []webhook.Message) int {
	for k := len(ms) - 1; k >= 0; k-- {
		if ms[k].Role == "user" {
			return k
		}
	}
	return -1
}

func imageURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "data:image/")
}

func cutText(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

func (n *Webhook) lookup(ctx context.Context, storyID string) (*webhook.Connection, bool, error) {
	if n.conns == nil {
		return nil, false, nil
	}
	c, ok, err := n.conns.Lookup(ctx, storyID, n.Lookup)
	if err != nil {
		return nil, false, fmt.Errorf("look up connection %q: %w", n.Lookup, err)
	}
	return &c, ok, nil
}

// fail records the reason and takes the failure branch; without one it
// returns the error for the runner to handle (and log).
func (n *Webhook) fail(ctx context.Context, t *engine.Turn, conn *webhook.Connection, status int, err error) (engine.Result, error) {
	name := n.Lookup
	if conn != nil {
		name = conn.Name
		// Nothing to send is the story's doing, not the connection's; a
		// call refused for the bound on calls in flight is not kept either
		// (the connection works, and an API connection's error would be
		// rewritten on every call under load).
		story := errors.Is(err, webhook.ErrNoInput) || errors.Is(err, webhook.ErrPromptTooLong)
		if n.rec != nil && !story && !errors.Is(err, webhook.ErrBusy) {
			n.rec.Record(ctx, conn, err.Error())
		}
	}
	setStatus(t, status)
	t.Note(map[string]any{"webhook": name, "status": status, "error": err.Error()})
	if n.Failure == "" {
		return engine.Result{}, fmt.Errorf("webhook %s: %w", name, err)
	}
	level := slog.LevelWarn
	if errors.Is(err, webhook.ErrCircuitOpen) {
		level = slog.LevelDebug // the client logged the circuit opening
	}
	n.log.Log(ctx, level, "webhook failed", "story", t.Story.ID, "chat", t.Chat.ID, "node", t.Node.ID,
		"connection", name, "reason", err.Error(), "next", n.Failure)
	return engine.Goto(n.Failure), nil
}
