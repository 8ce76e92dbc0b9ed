package webhook_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/storyflow/storyflow/webhook"
)

var local = webhook.NewClient(webhook.Options{AllowPrivate: true, Backoff: time.Millisecond})

func server(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestCallHeadersAndSignature(t *testing.T) {
	now := time.Unix(1767225600, 0)
	c := webhook.NewClient(webhook.Options{AllowPrivate: true, Now: func() time.Time { return now }})
	var got *http.Request
	var body []byte
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		got, body = r, must(io.ReadAll(r.Body))
		io.WriteString(w, `{}`)
	})
	conn := &webhook.Connection{
		StoryID: "s", ID: "crm-id", Name: "crm", URL: srv.URL + "/hook?x=1", Token: "s3cret",
		Headers: map[string]string{"X-Source": "storyflow", "x-lower": "v"},
		Auth:    &webhook.BasicAuth{Username: "bot", Password: "pw"},
	}
	res, err := c.Call(context.Background(), conn, &webhook.Request{ChatID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != http.MethodPost || got.URL.RequestURI() != "/hook?x=1" {
		t.Errorf("request %s %s", got.Method, got.URL)
	}
	want := map[string]string{
		"Content-Type":           "application/json",
		"X-Source":               "storyflow",
		"X-Lower":                "v",
		"X-Storyflow-Timestamp":  "1767225600",
		"X-Storyflow-Message-Id": res.MessageID,
	}
	for k, v := range want {
		if g := got.Header.Get(k); g != v {
			t.Errorf("header %s = %q, want %q", k, g, v)
		}
	}
	if u, p, ok := got.BasicAuth(); !ok || u != "bot" || p != "pw" {
		t.Errorf("basic auth = %q %q %v", u, p, ok)
	}
	sig := got.Header.Get("X-Storyflow-Signature")
	if want := webhook.Sign("s3cret", "1767225600", body); sig != want {
		t.Errorf("signature %s, want %s", sig, want)
	}
	if err := webhook.CheckSignature("s3cret", "1767225600", sig, body, now, 5*time.Minute); err != nil {
		t.Errorf("CheckSignature: %v", err)
	}
	if _, err := uuid.Parse(res.MessageID); err != nil {
		t.Errorf("messageId %q: %v", res.MessageID, err)
	}

	// Without a token: no signature headers.
	conn.Token = ""
	if _, err := c.Call(context.Background(), conn, &webhook.Request{}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"X-Storyflow-Timestamp", "X-Storyflow-Signature"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("without a token, %s = %q", h, v)
		}
	}
}

func TestCheckSignature(t *testing.T) {
	now := time.Unix(1767225600, 0)
	body := []byte(`{"chatId":"c1"}`)
	good := webhook.Sign("tok", "1767225600", body)
	tests := []struct {
		name, token, ts, sig string
		body                 []byte
		want                 error
	}{
		{"good", "tok", "1767225600", good, body, nil},
		{"other token", "other", "1767225600", good, body, webhook.ErrBadSignature},
		{"body changed", "tok", "1767225600", good, []byte(`{"chatId":"c2"}`), webhook.ErrBadSignature},
		{"timestamp changed", "tok", "1767225601", good, body, webhook.ErrBadSignature},
		{"stale", "tok", "1767225000", webhook.Sign("tok", "1767225000", body), body, webhook.ErrStale},
		{"missing", "tok", "", "", body, webhook.ErrNoSignature},
		{"no prefix", "tok", "1767225600", strings.TrimPrefix(good, "sha256="), body, webhook.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := webhook.CheckSignature(tt.token, tt.ts, tt.sig, tt.body, now, 5*time.Minute); err != tt.want {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		fails    int // answers 500 (or 404 when notFound) this many times first
		notFound bool
		retries  int
		attempts int
		reason   string
	}{
		{"500 twice then success", 2, false, 2, 3, ""},
		{"retries exhausted", 3, false, 2, 3, "Request failed with status code 500: boom"},
		{"no retries configured", 1, false, 0, 1, "Request failed with status code 500: boom"},
		{"404 is not retried", 1, true, 3, 1, "Request failed with status code 404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var ids []string
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				var req struct{ MessageID string }
				json.NewDecoder(r.Body).Decode(&req)
				mu.Lock()
				ids = append(ids, req.MessageID)
				n := len(ids)
				mu.Unlock()
				if r.Header.Get("X-Storyflow-Message-Id") != req.MessageID {
					t.Errorf("header message id %q, body %q", r.Header.Get("X-Storyflow-Message-Id"), req.MessageID)
				}
				switch {
				case n <= tt.fails && tt.notFound:
					http.NotFound(w, r)
				case n <= tt.fails:
					w.WriteHeader(500)
					io.WriteString(w, `{"error":"boom"}`)
				default:
					io.WriteString(w, `{"attributes":{"ok":true}}`)
				}
			})
			res, err := local.Call(context.Background(), &webhook.Connection{ID: "x", URL: srv.URL, Retries: tt.retries}, &webhook.Request{})
			if got := reason(err); got != tt.reason {
				t.Fatalf("reason %q, want %q", got, tt.reason)
			}
			if res.Attempts != tt.attempts || len(ids) != tt.attempts {
				t.Errorf("attempts %d, server saw %d, want %d", res.Attempts, len(ids), tt.attempts)
			}
			for _, id := range ids {
				if id != ids[0] || id != res.MessageID {
					t.Errorf("message ids %v differ (result %s)", ids, res.MessageID)
				}
			}
		})
	}
}

func TestRetryRefusedConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	res, err := local.Call(context.Background(), &webhook.Connection{ID: "x", URL: "http://" + addr, Retries: 2}, &webhook.Request{})
	if got := reason(err); got != "Connection refused" || res.Attempts != 3 {
		t.Errorf("reason %q after %d attempts", got, res.Attempts)
	}
}

// trickle answers 200 and then one byte of white space every 20ms for 5s.
func trickle(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"responses":[`)
	w.(http.Flusher).Flush()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < 250; i++ {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			io.WriteString(w, " ")
			w.(http.Flusher).Flush()
		}
	}
	io.WriteString(w, `]}`)
}

func bigBody(withLength bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		chunk := `{"attributes":{"x":"` + strings.Repeat("a", 5<<20) + `"}}`
		if withLength {
			w.Header().Set("Content-Length", fmt.Sprint(len(chunk)))
		}
		io.WriteString(w, chunk)
	}
}

func TestFailureReasons(t *testing.T) {
	slow := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	status := func(code int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			io.WriteString(w, body)
		}
	}
	closing := func(w http.ResponseWriter, r *http.Request) {
		c, _, _ := w.(http.Hijacker).Hijack()
		c.Close()
	}
	tests := []struct {
		name    string
		h       http.HandlerFunc
		timeout time.Duration
		reason  string
	}{
		{"404", status(404, "not here"), 0, "Request failed with status code 404"},
		{"401 with error text", status(401, `{"error":"Bad token","code":"auth"}`), 0, "Request failed with status code 401: Bad token"},
		{"openai style error", status(429, `{"error":{"message":"Rate limit\nreached","type":"x"}}`), 0, "Request failed with status code 429: Rate limit reached"},
		{"302 without location", status(302, ""), 0, "Request failed with status code 302"},
		{"slow answer", slow, 100 * time.Millisecond, "Request timed out after 100ms"},
		{"trickling body", trickle, 150 * time.Millisecond, "Request timed out after 150ms"},
		{"5 MB answer", bigBody(false), 0, "Response body exceeds 102400 bytes"},
		{"5 MB answer with length", bigBody(true), 0, "Response body exceeds 102400 bytes"},
		{"not JSON", status(200, "<html>oops</html>"), 0, "Response is not JSON"},
		{"truncated JSON", status(200, `{"responses":[`), 0, "Response is not JSON"},
		{"not an object", status(200, `[1,2]`), 0, "Invalid response: must be a JSON object"},
		{"responses not a list", status(200, `{"responses":{"type":"text"}}`), 0, "Invalid response: responses: must be a list, got object"},
		{"attributes not an object", status(200, `{"attributes":[1]}`), 0, "Invalid response: attributes: must be an object, got array"},
		{"response breaks §2", status(200, `{"responses":[{"type":"text","message":""}]}`), 0, "Invalid response: responses[0].message: is required"},
		{"connection closed", closing, 0, "Connection reset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := server(t, tt.h)
			start := time.Now()
			_, err := local.Call(context.Background(), &webhook.Connection{ID: "x", URL: srv.URL, Timeout: tt.timeout}, &webhook.Request{})
			if got := reason(err); got != tt.reason {
				t.Errorf("reason %q, want %q", got, tt.reason)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

func TestCallKeepsBodyAndStatus(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		io.WriteString(w, `{"responses":[{"type":"text","message":"hi"}]}`)
	})
	res, err := local.Call(context.Background(), &webhook.Connection{ID: "x", URL: srv.URL}, &webhook.Request{KeepBody: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 201 || string(res.Body) != `{"responses":[{"type":"text","message":"hi"}]}` || res.Duration <= 0 {
		t.Errorf("result %+v", res)
	}
	if r := res.Answer.Responses[0]; r.Message != "hi" || r.Delay != 1000 {
		t.Errorf("response %+v", r)
	}
}

func TestCallCanceled(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so the server notices the client leaving
		<-r.Context().Done()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := local.Call(ctx, &webhook.Connection{ID: "x", URL: srv.URL, Retries: 3}, &webhook.Request{})
	if err != context.DeadlineExceeded {
		t.Errorf("err = %v, want the context's", err)
	}
}

func TestVerify(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Query().Get("token") != "tok" || r.URL.Query().Get("keep") != "1" {
			http.Error(w, "bad", 403)
			return
		}
		io.WriteString(w, r.URL.Query().Get("challenge")+"\n")
	}
	tests := []struct {
		name, token string
		h           http.HandlerFunc
		reason      string
	}{
		{"echoes the challenge", "tok", echo, ""},
		{"wrong token", "nope", echo, "Verification failed: status code 403"},
		{"wrong body", "tok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }, "Verification failed: the answer is not the challenge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := server(t, tt.h)
			err := local.Verify(context.Background(), &webhook.Connection{ID: "x", URL: srv.URL + "/?keep=1", Token: tt.token})
			if got := reason(err); got != tt.reason {
				t.Errorf("reason %q, want %q", got, tt.reason)
			}
		})
	}
	// Verification goes through the guard too.
	guarded := webhook.NewClient(webhook.Options{})
	srv := server(t, echo)
	if got := reason(guarded.Verify(context.Background(), &webhook.Connection{URL: srv.URL, Token: "tok"})); got != "Address not allowed: 127.0.0.1 is a loopback address" {
		t.Errorf("guarded verify: %q", got)
	}
}

func TestConnectionCheck(t *testing.T) {
	headers := map[string]string{}
	for i := range 11 {
		headers[fmt.Sprintf("X-H%d", i)] = "v"
	}
	tests := []struct {
		name string
		conn webhook.Connection
		want string // first problem, "" when valid
	}{
		{"valid", webhook.Connection{URL: "https://crm.example.com/bot", Token: "t", Timeout: 120 * time.Second, Retries: 5}, ""},
		{"no url", webhook.Connection{}, "url: is required"},
		{"ftp url", webhook.Connection{URL: "ftp://x/"}, "url: must start with http:// or https://"},
		{"no host", webhook.Connection{URL: "http:///x"}, "url: has no host"},
		{"long url", webhook.Connection{URL: "https://x/" + strings.Repeat("a", 1020)}, "url: must be 1 to 1024 characters, got 1030"},
		{"long token", webhook.Connection{URL: "https://x/", Token: strings.Repeat("a", 1025)}, "token: must be 1 to 1024 characters"},
		{"11 headers", webhook.Connection{URL: "https://x/", Headers: headers}, "headers: must hold at most 10 headers, got 11"},
		{"bad header name", webhook.Connection{URL: "https://x/", Headers: map[string]string{"X Y": "v"}}, `headers.X Y: "X Y" is not a valid header name`},
		{"reserved header", webhook.Connection{URL: "https://x/", Headers: map[string]string{"x-storyflow-signature": "v"}}, "headers.x-storyflow-signature: header x-storyflow-signature is set by storyflow"},
		{"header with newline", webhook.Connection{URL: "https://x/", Headers: map[string]string{"X-A": "a\r\nb"}}, "headers.X-A: value must be one line"},
		{"auth without password", webhook.Connection{URL: "https://x/", Auth: &webhook.BasicAuth{Username: "u"}}, "auth.password: must be 1 to 1024 characters"},
		{"timeout too long", webhook.Connection{URL: "https://x/", Timeout: 121 * time.Second}, "timeout: must be more than 0 and at most 2m0s, got 2m1s"},
		{"too many retries", webhook.Connection{URL: "https://x/", Retries: 6}, "retries: must be 0 to 5, got 6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := tt.conn.Check()
			got := ""
			if len(ps) > 0 {
				got = ps[0].Error()
			}
			if got != tt.want {
				t.Errorf("Check() = %q, want %q", got, tt.want)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A redirect never carries the connection's token or headers elsewhere.
func TestRedirectsCarryNoSecrets(t *testing.T) {
	var seen []http.Header
	var seenURL []string
	other := server(t, func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Header.Clone())
		seenURL = append(seenURL, r.URL.String())
		io.WriteString(w, r.URL.Query().Get("challenge"))
	})
	// other is 127.0.0.1; redirect to it as localhost: another host.
	otherURL := strings.Replace(other.URL, "127.0.0.1", "localhost", 1)
	first := server(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherURL+"/next?"+r.URL.RawQuery, http.StatusTemporaryRedirect)
	})
	conn := &webhook.Connection{ID: "x", URL: first.URL + "/hook", Token: "s3cret", Headers: map[string]string{"X-Api-Key": "k3y"},
		Auth: &webhook.BasicAuth{Username: "u", Password: "p"}}
	if got := reason(local.Verify(context.Background(), conn)); !strings.Contains(got, "redirects (status code 307)") {
		t.Fatalf("verify through a redirect: %q", got)
	}
	if len(seen) != 0 {
		t.Fatalf("verification followed the redirect: %v", seenURL)
	}
	local.Call(context.Background(), conn, &webhook.Request{ChatID: "c"})
	if len(seen) != 1 {
		t.Fatalf("call did not follow the redirect: %d requests", len(seen))
	}
	for _, h := range []string{"Referer", "X-Api-Key", "Authorization", "X-Storyflow-Signature", "X-Storyflow-Timestamp"} {
		if v := seen[0].Get(h); v != "" {
			t.Errorf("redirected request carried %s: %q", h, v)
		}
	}
}

func TestFailureKind(t *testing.T) {
	type Error = webhook.Error
	FailureKind := webhook.FailureKind
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{context.Canceled, "canceled"},
		{errors.New("other"), "network"},
		{&Error{Reason: "Request timed out after 1s"}, "timeout"},
		{&Error{Reason: "Connection refused"}, "refused"},
		{&Error{Reason: "Address not allowed: 127.0.0.1"}, "blocked"},
		{&Error{Reason: "Response body exceeds 10 bytes", Status: 200}, "too_large"},
		{&Error{Reason: "Request failed with status code 502", Status: 502}, "status_5xx"},
		{&Error{Reason: "Request failed with status code 404", Status: 404}, "status_4xx"},
		{&Error{Reason: "Invalid response: responses[0].type: unknown", Status: 200}, "invalid_answer"},
		{&Error{Reason: "Response is not JSON", Status: 200}, "invalid_answer"},
		{&Error{Reason: "Connection reset"}, "network"},
		{&Error{Reason: "Too many calls in flight to this connection (64)", Err: webhook.ErrBusy}, "busy"},
		{&Error{Reason: "Circuit open", Err: webhook.ErrCircuitOpen}, "circuit_open"},
	} {
		if got := FailureKind(tc.err); got != tc.want {
			t.Errorf("FailureKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestClosedKeepAlive: a kept-alive connection the service closed between
// calls is dialled again, not reported as a failure (calls have no retries
// here).
func TestClosedKeepAlive(t *testing.T) {
	var n sync.Map
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		n.Store(r.Header.Get(webhook.HeaderMessageID), true)
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{}`)
	})
	c := webhook.NewClient(webhook.Options{AllowPrivate: true})
	conn := &webhook.Connection{ID: "x", URL: srv.URL}
	for i := range 20 {
		if _, err := c.Call(context.Background(), conn, &webhook.Request{}); err != nil {
			t.Fatalf("call %d after the service closed its connections: %v", i, err)
		}
		srv.CloseClientConnections()
		if i%2 == 1 {
			time.Sleep(5 * time.Millisecond) // let the close arrive first
		}
	}
}

// TestSeeOther: a 303 (and 301, 302) answer turns the POST into a GET
// without a body, as browsers and net/http do; 307 and 308 keep both.
func TestSeeOther(t *testing.T) {
	type seen struct {
		method string
		body   int
	}
	got := make(chan seen, 1)
	target := server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, len(b)}
		io.WriteString(w, `{}`)
	})
	for code, want := range map[int]seen{303: {"GET", 0}, 302: {"GET", 0}, 307: {"POST", 1}} {
		from := server(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/next", code)
		})
		if _, err := local.Call(context.Background(), &webhook.Connection{ID: "x", URL: from.URL}, &webhook.Request{ChatID: "c"}); err != nil {
			t.Fatalf("%d: %v", code, err)
		}
		s := <-got
		if s.method != want.method || (s.body > 0) != (want.body > 0) {
			t.Errorf("after %d: %s with %d bytes, want %s with body %v", code, s.method, s.body, want.method, want.body > 0)
		}
	}
}

// TestLargeHeaders: an answer's headers are bounded (16 KiB).
func TestLargeHeaders(t *testing.T) {
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Big", strings.Repeat("a", 20<<10))
		io.WriteString(w, `{}`)
	})
	_, err := local.Call(context.Background(), &webhook.Connection{ID: "x", URL: srv.URL, Retries: 2}, &webhook.Request{})
	if got := reason(err); got != "Response headers exceed 16384 bytes" {
		t.Errorf("reason %q", got)
	}
}

// TestTLS: https webhooks are verified against the configured roots.
func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"attributes":{"secure":true}}`)
	}))
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c := webhook.NewClient(webhook.Options{AllowPrivate: true, TLS: &tls.Config{RootCAs: roots}})
	res, err := c.Call(context.Background(), &webhook.Connection{ID: "x", URL: srv.URL}, &webhook.Request{})
	if err != nil || res.Answer.Attributes["secure"] != true {
		t.Fatalf("call over TLS: %v %+v", err, res)
	}
	_, err = local.Call(context.Background(), &webhook.Connection{ID: "x", URL: srv.URL}, &webhook.Request{})
	if got := reason(err); !strings.HasPrefix(got, "TLS error: ") {
		t.Errorf("unknown certificate: reason %q", got)
	}
}

// TestURLAsWritten: the connection's URL goes out as written (no path
// clean-up, encoded slashes kept), with what may not be raw on a request
// line encoded, and its user info as basic auth.
func TestURLAsWritten(t *testing.T) {
	got := make(chan string, 1)
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.RequestURI + " " + r.Header.Get("Authorization")
		io.WriteString(w, `{}`)
	})
	for u, want := range map[string]string{
		"/hook%2Fx/y%20z?q=a%20b&r=%2F#frag": "/hook%2Fx/y%20z?q=a%20b&r=%2F ",
		"/a/../b/./c//d":                     "/a/../b/./c//d ",
		"/ü":                                 "/%C3%BC ",
	} {
		if _, err := local.Call(context.Background(), &webhook.Connection{ID: "x", URL: srv.URL + u}, &webhook.Request{}); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if g := <-got; g != want {
			t.Errorf("%s: the service saw %q, want %q", u, g, want)
		}
	}
	withUser := strings.Replace(srv.URL, "http://", "http://bot:pw@", 1) + "/a"
	if _, err := local.Call(context.Background(), &webhook.Connection{ID: "x", URL: withUser}, &webhook.Request{}); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g != "/a Basic Ym90OnB3" {
		t.Errorf("user info: the service saw %q", g)
	}
}

// TestIdleBeyondTimeout: a kept-alive connection that idled longer than
// the last call's timeout is still open and is used again (the check must
// not read the deadline that call left on it).
func TestIdleBeyondTimeout(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := webhook.NewClient(webhook.Options{AllowPrivate: true})
	conn := &webhook.Connection{ID: "x", URL: srv.URL, Timeout: 100 * time.Millisecond}
	for i := range 3 {
		if _, err := c.Call(context.Background(), conn, &webhook.Request{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections for 3 calls, want 1 kept alive", n)
	}
}

// TestManyClosedKeepAlive: after the service closed every idle connection
// (a restart, an idle timeout), a call skips all of them.
func TestManyClosedKeepAlive(t *testing.T) {
	const n = 8
	var wg sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/hold" {
			wg.Done()
			wg.Wait() // n calls at once: n connections
		}
		io.WriteString(w, `{}`)
	}))
	srv.Config.IdleTimeout = 50 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	c := webhook.NewClient(webhook.Options{AllowPrivate: true})
	wg.Add(n)
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := c.Call(context.Background(), &webhook.Connection{ID: "x", URL: srv.URL + "/hold"}, &webhook.Request{})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // the service closes all n
	for i := range 3 {
		if res, err := c.Call(context.Background(), &webhook.Connection{ID: "x", URL: srv.URL}, &webhook.Request{}); err != nil || res.Attempts != 1 {
			t.Fatalf("call %d after the service closed %d idle connections: %v (%d attempts)", i, n, err, res.Attempts)
		}
	}
}

// TestIdleTimeout: a service that closes idle kept-alive connections (as
// Node.js does after 5 s) gets each call once, and no call fails; a service
// that closes the connection on a call gets that call once (no retries
// configured) and the call fails.
func TestIdleTimeout(t *testing.T) {
	var calls sync.Map
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(webhook.HeaderMessageID)
		if _, again := calls.LoadOrStore(id, true); again {
			t.Errorf("call %s received twice", id)
		}
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/close" {
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
			return
		}
		io.WriteString(w, `{}`)
	}))
	srv.Config.IdleTimeout = 20 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	c := webhook.NewClient(webhook.Options{AllowPrivate: true})
	conn := &webhook.Connection{ID: "x", URL: srv.URL}
	for i := range 4 {
		if _, err := c.Call(context.Background(), conn, &webhook.Request{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		time.Sleep(60 * time.Millisecond) // the service closes the idle connection
	}
	n := 0
	calls.Range(func(any, any) bool { n++; return true })
	if n != 4 {
		t.Errorf("%d calls received, want 4", n)
	}
	res, err := c.Call(context.Background(), &webhook.Connection{ID: "x", URL: srv.URL + "/close"}, &webhook.Request{})
	if reason(err) != "Connection reset" || res.Attempts != 1 {
		t.Errorf("closed on the call: %v after %d attempts", err, res.Attempts)
	}
}
