package embedded

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/storyflow/storyflow/internal/jsontext"

	"github.com/storyflow/storyflow/engine"
)

// Records and transcript entries are JSON that json.Unmarshal reads back;
// the hot ones are written without reflection, with json.Marshal for the
// parts it would take long to write by hand, and as the fallback.

// appendChat appends c's record JSON without its transcript, the fields
// json.Marshal writes for engine.Chat, without reflection; false when c
// holds a string or time it leaves to json.Marshal.
func appendChat(b []byte, c *engine.Chat) ([]byte, bool) {
	if c.Task != nil {
		return b, false
	}
	var ok bool
	field := func(name string, s string) {
		if ok {
			b = append(b, `,"`...)
			b = append(b, name...)
			b = append(b, `":`...)
			b, ok = appendString(b, s)
		}
	}
	ok = true
	b = append(b, `{"id":`...)
	b, ok = appendString(b, c.ID)
	field("storyId", c.StoryID)
	b = append(b, `,"storyVersion":`...)
	b = strconv.AppendInt(b, int64(c.StoryVersion), 10)
	field("node", c.Node)
	field("status", string(c.Status))
	field("userId", c.UserID)
	if c.ExternalID != "" {
		field("externalId", c.ExternalID)
	}
	if c.Error != "" {
		field("error", c.Error)
	}
	if !ok {
		return b, false
	}
	for _, m := range []struct {
		name  string
		attrs map[string]any
	}{{"attributes", c.Attributes}, {"userAttributes", c.UserAttributes}} {
		b = append(b, `,"`...)
		b = append(b, m.name...)
		b = append(b, `":`...)
		if m.attrs == nil {
			b = append(b, "null"...)
			continue
		}
		var err error
		if b, err = jsontext.AppendObject(b, m.attrs); err != nil {
			return b, false
		}
	}
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, c.Seq, 10)
	b = append(b, `,"waiting":`...)
	b = strconv.AppendBool(b, c.Waiting)
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"createdAt", c.CreatedAt}, {"updatedAt", c.UpdatedAt}} {
		if y := t.t.Year(); y < 0 || y > 9999 {
			return b, false
		}
		b = append(b, `,"`...)
		b = append(b, t.name...)
		b = append(b, `":"`...)
		b = t.t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = append(b, `,"rev":`...)
	b = strconv.AppendInt(b, c.Rev, 10)
	return append(b, '}'), true
}

// appendString appends s as a JSON string; false if s is not valid UTF-8
// (json.Marshal then decides what it becomes).
func appendString(b []byte, s string) ([]byte, bool) {
	if !utf8.ValidString(s) {
		return b, false
	}
	return jsontext.AppendString(b, s), true
}

// appendEntry appends e's JSON; false when e holds a string or time it
// leaves to json.Marshal.
func appendEntry(b []byte, e *engine.Entry) ([]byte, bool) {
	ok := true
	str := func(name, s string) {
		if ok && s != "" {
			b = append(b, `,"`...)
			b = append(b, name...)
			b = append(b, `":`...)
			b, ok = appendString(b, s)
		}
	}
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"from":`...)
	b, ok = appendString(b, e.From)
	str("node", e.Node)
	if !ok {
		return b, false
	}
	if in := e.Input; in != nil {
		b = append(b, `,"input":{`...)
		first := true
		for _, f := range [...]struct{ name, v string }{{"text", in.Text}, {"postback", in.Postback}, {"goto", in.Goto}} {
			if f.v == "" {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, '"')
			b = append(b, f.name...)
			b = append(b, `":`...)
			if b, ok = appendString(b, f.v); !ok {
				return b, false
			}
		}
		b = append(b, '}')
	}
	if e.Call != nil {
		return b, false // rare: json.Marshal writes it
	}
	if e.Response != nil {
		b = append(b, `,"response":`...)
		b = e.Response.AppendJSON(b)
	}
	if e.Data != nil {
		b = append(b, `,"data":`...)
		var err error
		if b, err = jsontext.AppendObject(b, e.Data); err != nil {
			return b, false
		}
	}
	if len(e.Steps) > 0 {
		if b, ok = appendSteps(b, e.Steps); !ok {
			return b, false
		}
	}
	if y := e.Time.Year(); y < 0 || y > 9999 {
		return b, false
	}
	b = append(b, `,"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	return append(b, `"}`...), true
}

// appendSteps appends a transcript entry's steps field; false when a step
// holds a string or value it leaves to json.Marshal.
func appendSteps(b []byte, steps []engine.Step) ([]byte, bool) {
	ok := true
	str := func(name, s string) {
		if ok && s != "" {
			b = append(b, `,"`...)
			b = append(b, name...)
			b = append(b, `":`...)
			b, ok = appendString(b, s)
		}
	}
	b = append(b, `,"steps":[`...)
	for i := range steps {
		s := &steps[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"node":`...)
		b, ok = appendString(b, s.Node)
		str("next", s.Next)
		if s.Route != 0 {
			b = append(b, `,"route":`...)
			b = strconv.AppendInt(b, int64(s.Route), 10)
		}
		str("end", s.End)
		str("error", s.Error)
		if !ok {
			return b, false
		}
		b = append(b, '}')
	}
	return append(b, ']'), true
}
