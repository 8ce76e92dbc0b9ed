package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/storyflow/storyflow/engine"
)

// Form is a widget answer's form with a submitUrl: the chat asks its
// fields one by one, checks each answer against the field's type, and
// posts the values to SubmitURL as the widget would.
type Form struct {
	SubmitURL string      `json:"submitUrl"`
	Fields    []FormField `json:"fields"`
	// Values holds the answers so far, by field id; Next is the field asked.
	Values map[string]any `json:"values"`
	Next   int            `json:"next"`
}

// FormField is one field of a Form.
type FormField struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Label    string       `json:"label"`
	Required bool         `json:"required"`
	Options  []FormOption `json:"options,omitempty"`
}

// FormOption is a choice of a select or radio field.
type FormOption struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// MaxFormFields bounds the fields a form may ask.
const MaxFormFields = 20

// SkipValue is the postback of an optional field's Skip button.
const SkipValue = "skip"

var (
	phoneRe = regexp.MustCompile(`^\+?[0-9 ()-]{3,20}$`)
	dateRe  = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
)

// newForm reads a widget form into a Form, or nil when it has no submitUrl
// or no field with an id (then it is only shown).
func newForm(f *widgetForm) (*Form, error) {
	if f.SubmitURL == "" {
		return nil, nil
	}
	if u, err := url.Parse(f.SubmitURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, invalid("content_attributes.form.submitUrl", "must be an http or https URL")
	}
	form := &Form{SubmitURL: f.SubmitURL, Values: map[string]any{}}
	for i, fl := range f.Fields {
		if fl.ID == "" {
			return nil, invalid(fmt.Sprintf("content_attributes.form.fields[%d].id", i), "is required")
		}
		ff := FormField{ID: fl.ID, Type: fl.Type, Label: engine.Cut(firstNonEmpty(fl.Label, fl.ID), 640), Required: fl.Required}
		for _, o := range fl.Options {
			if label, value := option(o); label != "" && value != "" {
				ff.Options = append(ff.Options, FormOption{Label: label, Value: value})
			}
		}
		form.Fields = append(form.Fields, ff)
	}
	switch {
	case len(form.Fields) == 0:
		return nil, nil
	case len(form.Fields) > MaxFormFields:
		return nil, invalid("content_attributes.form.fields", "must hold at most %d fields, got %d", MaxFormFields, len(form.Fields))
	}
	return form, nil
}

// Ask returns the responses that ask field f: a text, or quick replies for
// its options, a checkbox's yes and no, and an optional field's Skip.
func (f *FormField) Ask() []engine.Response {
	title := f.Label
	if k := fieldKind(f.Type); k != "" {
		title += " (" + k + ")"
	}
	var bs []engine.Button
	for _, o := range f.Options {
		bs = append(bs, engine.Button{Type: "postback", Title: engine.Cut(o.Label, 20), Value: engine.Cut(o.Value, 2000)})
	}
	if f.Type == "checkbox" && len(f.Options) == 0 {
		bs = append(bs, engine.Button{Type: "postback", Title: "Yes", Value: "yes"}, engine.Button{Type: "postback", Title: "No", Value: "no"})
	}
	if !f.Required {
		bs = append(bs, engine.Button{Type: "postback", Title: "Skip", Value: SkipValue})
	}
	if len(bs) == 0 || len(bs) > 13 {
		return texts(title)
	}
	return []engine.Response{{Type: engine.TypeQuickReplies, Delay: engine.DefaultDelay, Title: engine.Cut(title, 640), Buttons: bs}}
}

// Parse checks an answer to f: the value to post (nil for a skipped
// optional field), or false and a hint saying what is expected.
func (f *FormField) Parse(in string) (any, bool, string) {
	in = strings.TrimSpace(in)
	if in == "" || (!f.Required && strings.EqualFold(in, SkipValue)) {
		if f.Required {
			return nil, false, f.Label + " is required."
		}
		return nil, true, ""
	}
	if len(f.Options) > 0 {
		for _, o := range f.Options {
			if strings.EqualFold(in, o.Value) || strings.EqualFold(in, o.Label) {
				return o.Value, true, ""
			}
		}
		return nil, false, "Please pick one of the options."
	}
	switch f.Type {
	case "email":
		if a, err := mail.ParseAddress(in); err == nil && a.Address == in {
			return in, true, ""
		}
		return nil, false, "Please enter an email address."
	case "number":
		if n, err := strconv.ParseFloat(in, 64); err == nil {
			return n, true, ""
		}
		return nil, false, "Please enter a number."
	case "tel", "phone":
		if phoneRe.MatchString(in) {
			return in, true, ""
		}
		return nil, false, "Please enter a phone number."
	case "url":
		if u, err := url.Parse(in); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			return in, true, ""
		}
		return nil, false, "Please enter a URL (https://…)."
	case "date":
		if _, err := time.Parse("2006-01-02", in); err == nil && dateRe.MatchString(in) {
			return in, true, ""
		}
		return nil, false, "Please enter a date as YYYY-MM-DD."
	case "checkbox":
		switch strings.ToLower(in) {
		case "yes", "y", "true":
			return true, true, ""
		case "no", "n", "false":
			return false, true, ""
		}
		return nil, false, "Please answer yes or no."
	}
	return engine.Cut(in, 2000), true, ""
}

// Submit posts the form's values to its submitUrl, as the widget does, with
// conn's headers, basic auth and signature, through the client's guard. A
// 2xx answer's message ({success, message}) comes back as responses; a
// non-2xx answer is an *Error whose reason carries the answer's error.
func (c *Client) Submit(ctx context.Context, conn *Connection, f *Form) (int, []engine.Response, error) {
	body, err := json.Marshal(f.Values)
	if err != nil {
		return 0, nil, &Error{Reason: "Cannot encode form: " + oneLine(err.Error()), Err: err}
	}
	timeout := conn.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	admitted, aerr := c.limits.admit(ctx, conn, timeout)
	if aerr != nil {
		return 0, nil, aerr
	}
	status, rs, serr := c.submit(ctx, conn, f, body, timeout)
	if serr != nil {
		admitted.finish(ctx, serr)
		return status, nil, serr
	}
	admitted.finish(ctx, nil)
	return status, rs, nil
}

func (c *Client) submit(ctx context.Context, conn *Connection, f *Form, body []byte, timeout time.Duration) (int, []engine.Response, *Error) {
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, f.SubmitURL, bytes.NewReader(body))
	if err != nil {
		return 0, nil, &Error{Reason: "Invalid URL: " + oneLine(unwrapURLError(err).Error()), Err: err}
	}
	req.Header["Content-Type"] = jsonType
	req.Header["Accept"] = jsonType
	req.Header["User-Agent"] = userAgent
	for k, v := range conn.Headers {
		req.Header.Set(k, v)
	}
	if conn.Auth != nil {
		req.SetBasicAuth(conn.Auth.Username, conn.Auth.Password)
	}
	if conn.Token != "" {
		ts := strconv.FormatInt(c.now().Unix(), 10)
		req.Header[HeaderTimestamp] = []string{ts}
		req.Header[HeaderSignature] = []string{Sign(conn.Token, ts, body)}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, classify(err, actx.Err() != nil, ctx, timeout)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return resp.StatusCode, nil, classify(err, actx.Err() != nil, ctx, timeout)
	}
	if int64(len(answer)) > c.maxBody {
		return resp.StatusCode, nil, c.tooLarge(resp.StatusCode)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		reason := fmt.Sprintf("Form submission failed with status code %d", resp.StatusCode)
		if t := errorText(answer); t != "" {
			reason += ": " + t
		}
		return resp.StatusCode, nil, &Error{Reason: reason, Status: resp.StatusCode}
	}
	var ok struct {
		Message string `json:"message"`
	}
	json.Unmarshal(answer, &ok) // a 2xx without a JSON message says nothing
	return resp.StatusCode, texts(ok.Message), nil
}
