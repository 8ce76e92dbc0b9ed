package storytest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/webhook"
	"gopkg.in/yaml.v3"
)

// RedactComment marks a value of a recorded test that holds what a user
// typed or a user attribute: replace it before committing the test.
const RedactComment = "redact"

// Record turns a stored chat into a test file of one case: the chat's
// inputs as steps, each turn's responses as expectations, the webhook
// answers noted in the transcript as mocks, and the chat's final node,
// status and attributes as the last step's expectations. transcript is the
// chat's whole transcript. Values holding user attributes or free text
// are marked with a "# redact" comment.
func Record(s *engine.Story, chat *engine.Chat, transcript []engine.Entry) ([]byte, error) {
	rec := &recorder{story: s, random: randomTexts(s.Source)}
	for _, v := range chat.UserAttributes {
		rec.secret(v)
	}
	for _, e := range transcript {
		if e.From == "user" && e.Input != nil && e.Input.Text != "" {
			rec.secret(e.Input.Text)
		}
	}
	c := &yaml.Node{Kind: yaml.MappingNode}
	add(c, "name", str(fmt.Sprintf("chat %s", chat.ID)))
	if len(chat.UserAttributes) > 0 {
		add(c, "userAttributes", rec.value(chat.UserAttributes, true))
	}
	mocks := map[string][]*yaml.Node{}
	var mockOrder []string
	var steps []*yaml.Node
	var step, expect, responses *yaml.Node
	newStep := func(in *engine.Input) {
		step = &yaml.Node{Kind: yaml.MappingNode}
		if in != nil {
			switch {
			case in.Goto != "":
				add(step, "goto", str(in.Goto))
			case in.Postback != "":
				add(step, "postback", str(in.Postback))
			default:
				n := str(in.Text)
				n.LineComment = RedactComment
				add(step, "text", n)
			}
		}
		expect = &yaml.Node{Kind: yaml.MappingNode}
		responses = &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		add(expect, "responses", responses)
		add(step, "expect", expect)
		steps = append(steps, step)
	}
	newStep(nil)
	for i := 0; i < len(transcript); i++ {
		e := transcript[i]
		switch {
		case e.From == "user" && e.Input != nil:
			newStep(e.Input)
		case e.From == "bot" && e.Response != nil:
			responses.Style = 0
			responses.Content = append(responses.Content, rec.response(e))
		case e.From == "node" && e.Data["startAttributes"] != nil:
			add(c, "attributes", rec.value(e.Data["startAttributes"], false))
		case e.From == "node" && e.Data["webhook"] != nil:
			name := fmt.Sprint(e.Data["webhook"])
			// The answer's responses are the bot entries of the node that follow.
			var sent []engine.Response
			for j := i + 1; j < len(transcript) && transcript[j].From == "bot" && transcript[j].Node == e.Node; j++ {
				sent = append(sent, *transcript[j].Response)
			}
			if _, ok := mocks[name]; !ok {
				mockOrder = append(mockOrder, name)
			}
			mocks[name] = append(mocks[name], rec.mocks(e, sent)...)
		}
	}
	if len(mockOrder) > 0 {
		wh := &yaml.Node{Kind: yaml.MappingNode}
		for _, name := range mockOrder {
			add(wh, name, &yaml.Node{Kind: yaml.SequenceNode, Content: mocks[name]})
		}
		add(c, "webhooks", wh)
	}
	// The last step also checks where the chat ended.
	add(expect, "node", str(chat.Node))
	add(expect, "status", str(string(chat.Status)))
	if len(chat.Attributes) > 0 {
		add(expect, "attributes", rec.value(chat.Attributes, false))
	}
	if first := steps[0]; len(responsesOf(first).Content) == 0 && len(steps) > 1 {
		steps = steps[1:] // a start turn that said nothing
	}
	add(c, "steps", &yaml.Node{Kind: yaml.SequenceNode, Content: steps})

	doc := &yaml.Node{Kind: yaml.MappingNode}
	doc.HeadComment = fmt.Sprintf("Recorded from chat %s (story %s, version %d) by GET /v1/chats/%s/test.\n"+
		"Values marked \"# %s\" hold user attributes or what the user typed: replace them before you commit the test.",
		chat.ID, chat.StoryID, chat.StoryVersion, chat.ID, RedactComment)
	add(doc, "story", str(s.ID+".yaml"))
	add(doc, "tests", &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{c}})
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode test: %w", err)
	}
	return []byte(b.String()), nil
}

func responsesOf(step *yaml.Node) *yaml.Node {
	for i := 0; i+1 < len(step.Content); i += 2 {
		if step.Content[i].Value == "expect" {
			return step.Content[i+1].Content[1]
		}
	}
	return &yaml.Node{}
}

type recorder struct {
	story *engine.Story
	// secrets are user attribute values and typed texts (3 characters or more).
	secrets []string
	// random holds each node's randomText alternatives.
	random map[string][][]string
}

func (r *recorder) secret(v any) {
	if s, ok := v.(string); ok && len([]rune(s)) >= 3 && !slices.Contains(r.secrets, s) {
		r.secrets = append(r.secrets, s)
	}
}

// mark adds the redact comment to n when it holds a secret.
func (r *recorder) mark(n *yaml.Node, all bool) *yaml.Node {
	if all {
		n.LineComment = RedactComment
		return n
	}
	for _, s := range r.secrets {
		if strings.Contains(n.Value, s) {
			n.LineComment = RedactComment
			break
		}
	}
	return n
}

func str(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	switch strings.ToLower(s) {
	case "yes", "no", "on", "off", "y", "n":
		n.Style = yaml.DoubleQuotedStyle // booleans to YAML 1.1 readers
	}
	return n
}

func add(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, str(key), v)
}

// value turns a JSON-like value into YAML, marking the scalars that hold
// secrets (all of them with all).
func (r *recorder) value(v any, all bool) *yaml.Node {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		return str(fmt.Sprint(v))
	}
	var walk func(*yaml.Node, bool)
	walk = func(n *yaml.Node, isKey bool) {
		if n.Kind == yaml.ScalarNode && !isKey {
			r.mark(n, all)
		}
		for i, c := range n.Content {
			walk(c, n.Kind == yaml.MappingNode && i%2 == 0)
		}
	}
	walk(&n, false)
	return &n
}

// response is the expectation of a sent response: its type and exact text
// (a pattern of the alternatives for a node's randomText), and its buttons.
func (r *recorder) response(e engine.Entry) *yaml.Node {
	resp := e.Response
	n := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	add(n, "type", str(resp.Type))
	text := Text(resp)
	if alts := r.alternatives(e.Node, text); alts != nil {
		q := make([]string, len(alts))
		for i, a := range alts {
			q[i] = regexp.QuoteMeta(a)
		}
		add(n, "pattern", str("^(?:"+strings.Join(q, "|")+")$"))
	} else {
		add(n, "text", r.mark(str(text), false))
		if n.Content[len(n.Content)-1].LineComment != "" {
			n.Style = 0 // a comment fits a block mapping only
		}
	}
	if bs := buttonsOf(resp); len(bs) > 0 {
		l := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for _, b := range bs {
			l.Content = append(l.Content, str(b.Title))
		}
		add(n, "buttons", l)
	}
	return n
}

func (r *recorder) alternatives(node, text string) []string {
	for _, alts := range r.random[node] {
		if slices.Contains(alts, text) {
			return alts
		}
	}
	return nil
}

// randomTexts finds the randomText responses of each node in a story's source.
func randomTexts(src []byte) map[string][][]string {
	var doc yaml.Node
	if yaml.Unmarshal(src, &doc) != nil || len(doc.Content) == 0 {
		return nil
	}
	out := map[string][][]string{}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "nodes" {
			continue
		}
		ns := root.Content[i+1]
		for j := 0; j+1 < len(ns.Content); j += 2 {
			id := ns.Content[j].Value
			walk(ns.Content[j+1], func(m *yaml.Node) {
				var rt struct {
					Type     string
					Messages []string
				}
				if m.Decode(&rt) == nil && rt.Type == engine.TypeRandomText && len(rt.Messages) > 0 {
					out[id] = append(out[id], rt.Messages)
				}
			})
		}
	}
	return out
}

// mocks rebuilds the answers of a noted webhook call: a success as the
// body of the node's format (its responses and attributes), a failure as
// an error answer (repeated for each retry of a connection that retries).
func (r *recorder) mocks(e engine.Entry, sent []engine.Response) []*yaml.Node {
	status := toInt(e.Data["status"])
	format, retries := webhook.FormatChatbot, 0
	if info := r.story.Nodes[e.Node]; info != nil {
		if w, ok := info.Node.(*nodes.Webhook); ok {
			format = w.Format
			if w.Conn != nil {
				retries = w.Conn.Retries
			}
		}
	}
	m := &yaml.Node{Kind: yaml.MappingNode}
	reason, failed := e.Data["error"].(string)
	if !failed {
		attrs, _ := e.Data["attributes"].(map[string]any)
		add(m, "status", str(fmt.Sprint(status)))
		m.Content[1].Tag = "!!int"
		add(m, "body", r.value(answerBody(format, sent, attrs), false))
		return []*yaml.Node{m}
	}
	switch {
	case status == 0: // no answer: a timeout, a refused connection
		status = 503
	case status >= 200 && status <= 299: // an answer that broke the contract
		add(m, "status", str(fmt.Sprint(status)))
		m.Content[1].Tag = "!!int"
		add(m, "body", str("recorded answer was not usable: "+reason))
		return []*yaml.Node{m}
	}
	add(m, "status", str(fmt.Sprint(status)))
	m.Content[1].Tag = "!!int"
	add(m, "body", r.value(map[string]any{"error": reason}, false))
	n := 1
	if status >= 500 {
		n += retries
	}
	out := make([]*yaml.Node, n)
	for i := range out {
		out[i] = m
	}
	return out
}

// answerBody is an answer of format f that sends rs and sets attrs.
func answerBody(f webhook.Format, rs []engine.Response, attrs map[string]any) any {
	if f == webhook.FormatChatbot || f == "" {
		body := map[string]any{}
		if len(rs) > 0 {
			var list []any
			for i := range rs {
				var v any
				b, _ := json.Marshal(&rs[i])
				json.Unmarshal(b, &v)
				list = append(list, v)
			}
			body["responses"] = list
		}
		if attrs != nil {
			body["attributes"] = attrs
		}
		return body
	}
	var texts []string
	for i := range rs {
		texts = append(texts, Text(&rs[i]))
	}
	text := strings.Join(texts, "\n")
	switch f {
	case webhook.FormatMessages:
		body := map[string]any{"content": text}
		if md, ok := attrs["metadata"]; ok {
			body["metadata"] = md
		}
		return body
	case webhook.FormatWidget:
		return map[string]any{"output": text}
	case webhook.FormatAnthropic:
		return map[string]any{"type": "message", "role": "assistant", "stop_reason": "end_turn",
			"content": []any{map[string]any{"type": "text", "text": text}}}
	}
	return map[string]any{"choices": []any{map[string]any{"message": map[string]any{"content": text}}}}
}

func toInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	case int32:
		return int(n)
	}
	return 0
}
