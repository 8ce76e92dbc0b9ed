package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/storyflow/storyflow/internal/strictjson"
)

// decodeJSON decodes one JSON object strictly into v, a pointer to a zero
// value: unknown fields, wrong types, a name twice and trailing data are
// 400 errors whose message names the field.
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("request body is empty; want a JSON object")
	}
	if strictjson.Unmarshal(body, v) == nil {
		return nil
	}
	// The one-pass decoder refused it: decode again to say why.
	reflect.ValueOf(v).Elem().SetZero()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if err := strictjson.CheckDuplicates(body); err != nil {
		return badRequest("request body is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("request body is not valid JSON: data after the object")
	}
	return nil
}

func jsonError(err error) *Error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return badRequest("request body is not valid JSON: %s (at byte %d)", strings.TrimPrefix(syn.Error(), "json: "), syn.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("request body is not valid JSON: unexpected end")
	case errors.As(err, &typ):
		if strings.HasPrefix(typ.Value, "number ") && typ.Type != nil && typeName(typ.Type.Kind().String(), "") == "a number" {
			return badRequest("field %s: number %s is out of range", typ.Field, strings.TrimPrefix(typ.Value, "number "))
		}
		if typ.Field == "" {
			return badRequest("request body must be a JSON object, got %s", jsonKind(typ.Value))
		}
		return badRequest("field %s must be %s, got %s", typ.Field, typeName(typ.Type.Kind().String(), typ.Type.String()), jsonKind(typ.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field %s", strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`))
	}
	return badRequest("request body is not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names a JSON value kind as UnmarshalTypeError.Value holds it.
func jsonKind(v string) string {
	switch {
	case v == "number", strings.HasPrefix(v, "number "):
		return "a number"
	case v == "string":
		return "a string"
	case v == "bool":
		return "a boolean"
	case v == "array":
		return "an array"
	case v == "object":
		return "an object"
	}
	return v
}

// typeName names a Go type the way a JSON user thinks of it.
func typeName(kind, full string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int64", "int32", "uint", "uint64", "float64", "float32":
		return "a number"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	}
	return fmt.Sprintf("a %s", full)
}

// marshal encodes v as JSON without escaping <, > and & (bot messages
// hold them); every JSON answer goes through it.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}
