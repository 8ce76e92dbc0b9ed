package stories

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	"github.com/storyflow/storyflow/engine"
)

// Schema returns the JSON Schema (draft 2020-12) of story files whose node
// types are those of reg, for editor completion. A Field.Schema may point at
// the shared definitions: #/$defs/nodeId, duration, connection, responses,
// response, button, route, routes.
func Schema(reg *engine.Registry) ([]byte, error) {
	if reg == nil {
		return nil, errors.New("schema: no registry")
	}
	specs := reg.Specs()
	types := make([]string, 0, len(specs))
	var branches []any
	for _, sp := range specs {
		types = append(types, sp.Type)
		ns, err := nodeSchema(sp)
		if err != nil {
			return nil, err
		}
		branches = append(branches, obj{
			"if":   obj{"properties": obj{"type": obj{"const": sp.Type}}, "required": []string{"type"}},
			"then": ns,
		})
	}
	node := obj{
		"type":        "object",
		"description": "a node: its type decides its other fields",
		"required":    []string{"type"},
		"properties": obj{
			"type": obj{"enum": types, "description": "node type"},
			"name": nameSchema("human name of the node, sent as node.name; defaults to the id"),
		},
	}
	if len(branches) > 0 {
		node["allOf"] = branches
	}
	s := obj{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"title":                "storyflow story",
		"description":          "A storyflow story file: a graph of nodes a chat walks through.",
		"type":                 "object",
		"additionalProperties": false,
		"patternProperties":    obj{"^x-": obj{"description": "extension field, e.g. to hold YAML anchors"}},
		"required":             []string{"id", "start", "nodes"},
		"properties": obj{
			"id": obj{
				"type": "string", "pattern": storyIDRe.String(),
				"description": "story id, unique per server",
			},
			"name":    nameSchema("human name of the story"),
			"start":   ref("nodeId", "node where every new chat begins"),
			"onError": ref("nodeId", "where a failure with no branch of its own goes"),
			"attributes": obj{
				"type": "object", "description": "initial chat attributes",
			},
			"webhooks": obj{
				"type":                 "object",
				"description":          "named webhook connections",
				"propertyNames":        obj{"minLength": 1, "maxLength": 128},
				"additionalProperties": obj{"$ref": "#/$defs/connection"},
			},
			"nodes": obj{
				"type":                 "object",
				"description":          "the story's nodes by id",
				"minProperties":        1,
				"propertyNames":        obj{"$ref": "#/$defs/nodeId"},
				"additionalProperties": obj{"$ref": "#/$defs/node"},
			},
		},
		"$defs": defs(node),
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encode story schema: %w", err)
	}
	return buf.Bytes(), nil
}

type obj = map[string]any

func ref(def, description string) obj {
	o := obj{"$ref": "#/$defs/" + def}
	if description != "" {
		o["description"] = description
	}
	return o
}

func nameSchema(description string) obj {
	return obj{"type": "string", "minLength": 1, "maxLength": 128, "description": description}
}

func text(lo, hi int, description string) obj {
	o := obj{"type": "string", "maxLength": hi}
	if lo > 0 {
		o["minLength"] = lo
	}
	if description != "" {
		o["description"] = description
	}
	return o
}

// nodeSchema is the schema of one node type: its fields plus type and name.
func nodeSchema(sp engine.Spec) (obj, error) {
	o, err := objectSchema(sp.Fields, "node type "+sp.Type)
	if err != nil {
		return nil, err
	}
	props := o["properties"].(obj)
	props["type"] = obj{"const": sp.Type}
	props["name"] = nameSchema("human name of the node; defaults to the id")
	o["required"] = append([]string{"type"}, requiredOf(sp.Fields)...)
	if sp.Summary != "" {
		o["description"] = sp.Summary
	}
	o["title"] = sp.Type
	return o, nil
}

func requiredOf(fs []engine.Field) []string {
	var req []string
	for _, f := range fs {
		if f.Required {
			req = append(req, f.Name)
		}
	}
	return req
}

// objectSchema is a closed object with fields as properties.
func objectSchema(fs []engine.Field, where string) (obj, error) {
	props := obj{}
	for _, f := range fs {
		if _, dup := props[f.Name]; dup {
			return nil, fmt.Errorf("schema of %s: field %s is listed twice", where, f.Name)
		}
		fsch, err := fieldSchema(f, where)
		if err != nil {
			return nil, err
		}
		props[f.Name] = fsch
	}
	o := obj{"type": "object", "additionalProperties": false, "properties": props}
	if req := requiredOf(fs); len(req) > 0 {
		o["required"] = req
	}
	return o, nil
}

// fieldSchema maps a field's kind to a schema fragment.
func fieldSchema(f engine.Field, where string) (obj, error) {
	var o obj
	switch {
	case f.Schema != nil:
		o = maps.Clone(f.Schema)
	default:
		switch f.Kind {
		case engine.KindString, engine.KindTemplate:
			o = obj{"type": "string"}
		case engine.KindInt:
			o = obj{"type": "integer"}
		case engine.KindNumber:
			o = obj{"type": "number"}
		case engine.KindBool:
			o = obj{"type": "boolean"}
		case engine.KindDuration:
			o = ref("duration", "")
		case engine.KindRef:
			o = ref("nodeId", "")
		case engine.KindExpr:
			o = obj{"type": []string{"string", "boolean", "number"}}
		case engine.KindValues:
			o = obj{"type": "object", "additionalProperties": true}
		case engine.KindResponses:
			o = ref("responses", "")
		case engine.KindRoutes:
			o = ref("routes", "")
		case engine.KindObject:
			if len(f.Fields) == 0 {
				o = obj{"type": "object"}
				break
			}
			sub, err := objectSchema(f.Fields, where+" field "+f.Name)
			if err != nil {
				return nil, err
			}
			o = sub
		case engine.KindList:
			if len(f.Fields) == 0 {
				o = obj{"type": "array"}
				break
			}
			item, err := objectSchema(f.Fields, where+" field "+f.Name)
			if err != nil {
				return nil, err
			}
			o = obj{"type": "array", "items": item}
		case engine.KindAny, "":
			o = obj{}
		default:
			return nil, fmt.Errorf("schema of %s: field %s has unknown kind %q", where, f.Name, f.Kind)
		}
	}
	if f.Description != "" {
		if _, ok := o["description"]; !ok {
			o["description"] = f.Description
		}
	}
	if len(f.Enum) > 0 {
		o["enum"] = f.Enum
	}
	if f.Default != nil {
		o["default"] = f.Default
	}
	return o, nil
}

// defs are the shared definitions: node ids, durations, connections (SPEC
// §3), responses (SPEC §2) and routes.
func defs(node obj) obj {
	d := obj{
		"node": node,
		"nodeId": obj{
			"type": "string", "pattern": nodeIDRe.String(),
			"description": "a node id of the story",
		},
		"duration": obj{
			"description": `a duration like "10s" or "1m30s", or a number of seconds`,
			"anyOf": []any{
				obj{"type": "string", "pattern": `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`},
				obj{"type": "number", "minimum": 0},
			},
		},
		"connection": connectionSchema(),
		"route": obj{
			"type": "object", "additionalProperties": false,
			"required": requiredOf(engine.RouteFields),
			"properties": obj{
				"when": obj{"type": []string{"string", "boolean", "number"}, "description": "condition (expr)"},
				"next": ref("nodeId", "node to go to when true"),
			},
		},
		"routes": obj{
			"type": "array", "items": obj{"$ref": "#/$defs/route"},
			"description": "routes: the first whose when holds wins",
		},
		"responses": obj{
			"type": "array", "items": obj{"$ref": "#/$defs/response"},
			"description": "bot responses, sent in order",
		},
	}
	maps.Copy(d, responseDefs())
	return d
}

// connectionSchema is a webhook connection (SPEC §3).
func connectionSchema() obj {
	return obj{
		"type":                 "object",
		"description":          "a webhook connection",
		"additionalProperties": false,
		"required":             []string{"url"},
		"properties": obj{
			"url": obj{
				"type": "string", "minLength": 1, "maxLength": 1024,
				"pattern":     `^(https?://.+|.*\$\{[A-Za-z_][A-Za-z0-9_]*\}.*)$`,
				"description": "http or https URL",
			},
			"token": text(1, 1024, "signs requests (X-Storyflow-Signature)"),
			"headers": obj{
				"type": "object", "minProperties": 1, "maxProperties": 10,
				"additionalProperties": obj{"type": "string"},
				"description":          "extra request headers",
			},
			"auth": obj{
				"type": "object", "additionalProperties": false,
				"required":    []string{"username", "password"},
				"description": "HTTP basic auth",
				"properties": obj{
					"username": text(1, 1024, ""),
					"password": text(1, 1024, ""),
				},
			},
			"timeout": obj{
				"$ref": "#/$defs/duration", "default": "10s",
				"description": "request timeout, at most 120s",
			},
			"retries": obj{
				"type": "integer", "minimum": 0, "maximum": 5, "default": 0,
				"description": "retries on network errors and 5xx, with exponential backoff",
			},
		},
	}
}

// responseDefs are the schemas of SPEC §2: one per response type, one per
// button type.
func responseDefs() obj {
	delay := obj{"type": "integer", "minimum": 100, "maximum": 10000, "default": engine.DefaultDelay,
		"description": "ms before the response is shown"}
	resp := func(typ string, required []string, props obj) obj {
		props["type"] = obj{"const": typ}
		props["delay"] = delay
		return obj{
			"type": "object", "title": typ, "additionalProperties": false,
			"required": append([]string{"type"}, required...), "properties": props,
		}
	}
	buttons := func(max int, types []string) obj {
		var refs []any
		for _, t := range types {
			refs = append(refs, obj{"$ref": "#/$defs/button." + t})
		}
		return obj{"type": "array", "minItems": 1, "maxItems": max, "items": obj{"oneOf": refs}}
	}
	all := buttons(5, engine.ButtonTypes)
	byType := map[string]obj{
		engine.TypeText: resp(engine.TypeText, []string{"message"}, obj{
			"message": text(1, 1024, "text; may hold {{ expr }}"),
		}),
		engine.TypeRandomText: resp(engine.TypeRandomText, []string{"messages"}, obj{
			"messages": obj{"type": "array", "minItems": 1, "maxItems": 20, "items": text(1, 1024, ""),
				"description": "one is picked per send"},
		}),
		engine.TypeImage: resp(engine.TypeImage, []string{"imageUrl"}, obj{
			"imageUrl": text(1, 2048, ""),
		}),
		engine.TypeFile: resp(engine.TypeFile, []string{"fileUrl"}, obj{
			"fileUrl": text(1, 2048, ""),
		}),
		engine.TypeQuickReplies: resp(engine.TypeQuickReplies, []string{"title", "buttons"}, obj{
			"title":   text(1, 640, ""),
			"buttons": buttons(13, []string{"postback", "goto"}),
		}),
		engine.TypeButtons: resp(engine.TypeButtons, []string{"title", "buttons"}, obj{
			"title":   text(1, 640, ""),
			"buttons": all,
		}),
		engine.TypeCards: resp(engine.TypeCards, []string{"elements"}, obj{
			"elements": obj{"type": "array", "minItems": 1, "maxItems": 10, "items": obj{
				"type": "object", "additionalProperties": false,
				"required": []string{"title", "subtitle", "imageUrl", "buttons"},
				"properties": obj{
					"title":    text(1, 80, ""),
					"subtitle": text(1, 80, ""),
					"imageUrl": text(1, 2048, ""),
					"buttons":  all,
				},
			}},
		}),
	}
	var oneOf []any
	for _, t := range engine.ResponseTypes {
		if _, ok := byType[t]; ok {
			oneOf = append(oneOf, obj{"$ref": "#/$defs/response." + t})
		}
	}
	d := obj{"response": obj{
		"description": "a bot response; its type decides its fields",
		"type":        "object",
		"required":    []string{"type"},
		"properties":  obj{"type": obj{"enum": keysIn(engine.ResponseTypes, byType)}},
		"oneOf":       oneOf,
	}}
	for t, s := range byType {
		d["response."+t] = s
	}
	// value accepts numbers too: YAML reads `value: 1` as a number.
	value := func(lo, hi int) obj {
		o := text(lo, hi, "")
		o["type"] = []string{"string", "number"}
		return o
	}
	button := func(typ string, required []string, props obj) obj {
		props["type"] = obj{"const": typ}
		return obj{
			"type": "object", "title": typ + " button", "additionalProperties": false,
			"required": append([]string{"type"}, required...), "properties": props,
		}
	}
	d["button.postback"] = button("postback", []string{"title", "value"}, obj{
		"title": value(1, 20), "value": value(1, 2000),
	})
	d["button.goto"] = button("goto", []string{"title", "value"}, obj{
		"title": value(1, 20), "value": ref("nodeId", "node to jump to"),
	})
	d["button.url"] = button("url", nil, obj{
		"title": value(0, 20), "value": text(0, 2048, "URL to open"),
	})
	d["button.webview"] = button("webview", []string{"title", "value"}, obj{
		"title": value(1, 20), "value": text(1, 2048, "URL to open in a webview"),
		"height": obj{"enum": []string{"full", "tall", "compact"}, "default": "compact"},
	})
	d["button.phone"] = button("phone", []string{"title", "value"}, obj{
		"title": value(1, 20),
		"value": obj{"type": "string", "minLength": 3, "maxLength": 16, "pattern": `^\+[0-9]{2,}$`,
			"description": "phone number to call, like +15551234567"},
	})
	return d
}

func keysIn(order []string, m map[string]obj) []string {
	var out []string
	for _, k := range order {
		if _, ok := m[k]; ok {
			out = append(out, k)
		}
	}
	return out
}
