package engine

import (
	"strconv"

	"github.com/storyflow/storyflow/internal/jsontext"
)

// AppendJSON appends r as JSON: what encoding/json writes for it, without
// HTML escaping and without reflection (hot paths: turn answers, stored
// transcript entries).
func (r *Response) AppendJSON(b []byte) []byte {
	b = append(b, `{"type":`...)
	b = jsontext.AppendString(b, r.Type)
	if r.Delay != 0 {
		b = append(b, `,"delay":`...)
		b = strconv.AppendInt(b, int64(r.Delay), 10)
	}
	b = appendField(b, "message", r.Message)
	if len(r.Messages) > 0 {
		b = append(b, `,"messages":[`...)
		for i, m := range r.Messages {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsontext.AppendString(b, m)
		}
		b = append(b, ']')
	}
	b = appendField(b, "imageUrl", r.ImageURL)
	b = appendField(b, "fileUrl", r.FileURL)
	b = appendField(b, "title", r.Title)
	if len(r.Buttons) > 0 {
		b = append(b, `,"buttons":`...)
		b = appendButtons(b, r.Buttons)
	}
	if len(r.Elements) > 0 {
		b = append(b, `,"elements":[`...)
		for i := range r.Elements {
			if i > 0 {
				b = append(b, ',')
			}
			c := &r.Elements[i]
			b = append(b, `{"title":`...)
			b = jsontext.AppendString(b, c.Title)
			b = append(b, `,"subtitle":`...)
			b = jsontext.AppendString(b, c.Subtitle)
			b = append(b, `,"imageUrl":`...)
			b = jsontext.AppendString(b, c.ImageURL)
			b = append(b, `,"buttons":`...)
			if c.Buttons == nil {
				b = append(b, "null"...)
			} else {
				b = appendButtons(b, c.Buttons)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendField appends ,"name":"v" unless v is empty (omitempty).
func appendField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	return jsontext.AppendString(b, v)
}

func appendButtons(b []byte, list []Button) []byte {
	b = append(b, '[')
	for i := range list {
		if i > 0 {
			b = append(b, ',')
		}
		x := &list[i]
		b = append(b, `{"type":`...)
		b = jsontext.AppendString(b, x.Type)
		b = append(b, `,"title":`...)
		b = jsontext.AppendString(b, x.Title)
		b = append(b, `,"value":`...)
		b = jsontext.AppendString(b, x.Value)
		b = appendField(b, "height", x.Height)
		b = append(b, '}')
	}
	return append(b, ']')
}
