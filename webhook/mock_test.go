package webhook_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"sync"
	"testing"
)

// A strict mock of a service: it checks a request against rules (those of
// the document or the published API) and refuses it as the service does;
// a valid request gets the next canned answer.

// rule checks a JSON value at path ("" when valid).
type rule func(path string, v any) string

type field struct {
	required bool
	rule     rule
}

func req(r rule) field { return field{required: true, rule: r} }
func opt(r rule) field { return field{rule: r} }

// object refuses unknown and missing fields.
func object(fields map[string]field) rule {
	return func(path string, v any) string {
		m, ok := v.(map[string]any)
		if !ok {
			return path + ": must be an object"
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			f, ok := fields[k]
			if !ok {
				return join(path, k) + ": Extra inputs are not permitted"
			}
			if f.rule != nil {
				if msg := f.rule(join(path, k), m[k]); msg != "" {
					return msg
				}
			}
		}
		names := make([]string, 0, len(fields))
		for k := range fields {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if _, ok := m[k]; fields[k].required && !ok {
				return join(path, k) + ": Field required"
			}
		}
		return ""
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func str(nonEmpty bool) rule {
	return func(path string, v any) string {
		s, ok := v.(string)
		switch {
		case !ok:
			return path + ": must be a string"
		case nonEmpty && s == "":
			return path + ": must not be empty"
		}
		return ""
	}
}

func enum(vals ...string) rule {
	return func(path string, v any) string {
		if s, ok := v.(string); !ok || !slices.Contains(vals, s) {
			return fmt.Sprintf("%s: must be one of %v", path, vals)
		}
		return ""
	}
}

func number(lo, hi float64, integer bool) rule {
	return func(path string, v any) string {
		n, ok := v.(json.Number)
		if !ok {
			return path + ": must be a number"
		}
		if integer {
			if _, err := n.Int64(); err != nil {
				return path + ": must be an integer"
			}
		}
		f, _ := n.Float64()
		if f < lo || f > hi {
			return fmt.Sprintf("%s: must be %g to %g", path, lo, hi)
		}
		return ""
	}
}

func array(lo, hi int, item rule) rule {
	return func(path string, v any) string {
		a, ok := v.([]any)
		if !ok {
			return path + ": must be an array"
		}
		if len(a) < lo || (hi > 0 && len(a) > hi) {
			return fmt.Sprintf("%s: must hold %d to %d items, got %d", path, lo, hi, len(a))
		}
		for i, it := range a {
			if msg := item(fmt.Sprintf("%s.%d", path, i), it); msg != "" {
				return msg
			}
		}
		return ""
	}
}

// anyOf passes when one rule does; else it reports the last rule's problem.
func anyOf(rs ...rule) rule {
	return func(path string, v any) string {
		msg := ""
		for _, r := range rs {
			if msg = r(path, v); msg == "" {
				return ""
			}
		}
		return msg
	}
}

// tagged picks the rule by the value's "type" field.
func tagged(byType map[string]rule) rule {
	return func(path string, v any) string {
		m, _ := v.(map[string]any)
		t, _ := m["type"].(string)
		r, ok := byType[t]
		if !ok {
			return join(path, "type") + ": unknown type " + fmt.Sprint(m["type"])
		}
		return r(path, v)
	}
}

// reply is a canned answer of a mock.
type reply struct {
	status  int
	headers map[string]string
	body    string
}

// mock is a strict service on loopback.
type mock struct {
	url string
	// check returns the status and body that refuse a request, or 0.
	check func(r *http.Request, body map[string]any) (int, string)

	mu      sync.Mutex
	replies []reply
	bodies  []map[string]any
	raw     [][]byte
	headers []http.Header
	paths   []string
	refused []string
}

func newMock(t *testing.T, check func(r *http.Request, body map[string]any) (int, string), replies ...reply) *mock {
	m := &mock{check: check, replies: replies}
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body map[string]any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		derr := d.Decode(&body)
		m.mu.Lock()
		m.bodies = append(m.bodies, body)
		m.raw = append(m.raw, raw)
		m.headers = append(m.headers, r.Header.Clone())
		m.paths = append(m.paths, r.URL.Path)
		n := len(m.bodies)
		m.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.Method != http.MethodPost || derr != nil {
			w.WriteHeader(400)
			io.WriteString(w, `{"error":"invalid JSON"}`)
			return
		}
		if status, answer := m.check(r, body); status != 0 {
			m.mu.Lock()
			m.refused = append(m.refused, answer)
			m.mu.Unlock()
			w.WriteHeader(status)
			io.WriteString(w, answer)
			return
		}
		rp := reply{status: 200, body: `{}`}
		if len(m.replies) > 0 {
			rp = m.replies[min(n, len(m.replies))-1]
		}
		for k, v := range rp.headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rp.status)
		io.WriteString(w, rp.body)
	})
	m.url = srv.URL
	return m
}

func (m *mock) calls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.bodies)
}

// jsonOf re-encodes the first request body, keys sorted.
func (m *mock) jsonOf(i int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i >= len(m.bodies) {
		return ""
	}
	b, _ := json.Marshal(m.bodies[i])
	return string(b)
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func bearerOK(r *http.Request, token string) bool {
	return r.Header.Get("Authorization") == "Bearer "+token
}
