package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/storyflow/storyflow/engine"
)

// DefaultMaxBody is the largest answer body read (100 KiB).
const DefaultMaxBody = 100 << 10

// Options configure a Client.
type Options struct {
	// AllowPrivate lets calls reach loopback, private, link-local and
	// metadata addresses (development and tests).
	AllowPrivate bool
	// Allow lists exact addresses reachable anyway (tests).
	Allow []netip.AddrPort
	// Resolver resolves host names (default: the system resolver).
	Resolver Resolver
	// MaxBody is the largest answer body read (default 100 KiB).
	MaxBody int64
	// Backoff is the wait before the first retry; it doubles per retry up
	// to 5s (default 250ms).
	Backoff time.Duration
	// MaxRedirects is how many redirects a call follows (default 3).
	MaxRedirects int
	// Now is the clock of signature timestamps (default time.Now).
	Now func() time.Time
	// TLS configures TLS (default: system roots).
	TLS *tls.Config
	// Transport, when set, replaces the network: every call goes to it
	// (story tests answer with mocks). The address guard does not apply;
	// CallConnection tells the transport which connection a request is for.
	Transport http.RoundTripper
	// MaxInFlight bounds the calls in flight per connection that sets no
	// bound of its own (default 64, none with a Transport; < 0: no bound).
	MaxInFlight int
	// QueueWait is how long a call waits for a slot of its connection
	// before it fails, at most the connection's timeout (default 1s).
	QueueWait time.Duration
	// BreakerFailures is how many failed calls in a row open a
	// connection's circuit (default 5, none with a Transport; < 0: no
	// circuit breaker).
	BreakerFailures int
	// BreakerOpen is how long an open circuit fails calls fast before it
	// lets probes through (default 30s).
	BreakerOpen time.Duration
	// BreakerProbes is how many calls a half-open circuit lets through;
	// that many successes close it (default 3).
	BreakerProbes int
	// Logger logs circuits opening and closing (default slog.Default()).
	Logger *slog.Logger
	// Observer is told about every finished call (metrics); optional.
	Observer CallObserver
}

// CallObserver watches a Client's calls. It is called on the caller's
// goroutine and must be quick.
type CallObserver interface {
	// CallEnded is called once per Call, retries included, with the time
	// it took and its error (nil on success).
	CallEnded(conn *Connection, d time.Duration, err error)
}

// FailureKind names the kind of a failed call for metrics: timeout,
// refused, blocked, status_4xx, status_5xx, invalid_answer, too_large,
// busy (too many in flight), circuit_open, canceled or network.
func FailureKind(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrBusy):
		return "busy"
	case errors.Is(err, ErrCircuitOpen):
		return "circuit_open"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	case !errors.As(err, &e):
		return "network"
	case strings.HasPrefix(e.Reason, "Request timed out"):
		return "timeout"
	case strings.HasPrefix(e.Reason, "Connection refused"):
		return "refused"
	case strings.HasPrefix(e.Reason, "Address not allowed"):
		return "blocked"
	case strings.HasPrefix(e.Reason, "Response body exceeds"):
		return "too_large"
	case e.Status >= 500:
		return "status_5xx"
	case e.Status >= 300 || (e.Status > 0 && e.Status < 200):
		return "status_4xx"
	case strings.HasPrefix(e.Reason, "Invalid response"), strings.HasPrefix(e.Reason, "Response is not JSON"):
		return "invalid_answer"
	case strings.HasPrefix(e.Reason, "Request canceled"):
		return "canceled"
	}
	return "network"
}

// Client calls webhooks. It holds one fasthttp client for the calls and one
// http.Client for other requests (HTTP); both keep connections alive and
// dial through the outbound address guard. It is safe for concurrent use;
// share one.
type Client struct {
	fast         *fasthttp.Client
	maxRedirects int
	http         *http.Client
	// verify sends verification GETs: it follows no redirect, so the
	// token in the URL goes nowhere else.
	verify  *http.Client
	maxBody int64
	backoff time.Duration
	now     func() time.Time
	bufs    sync.Pool
	// tagConn puts the connection in each request's context (Options.Transport).
	tagConn bool
	limits  *limits
	obs     CallObserver
}

type connKey struct{}

// CallConnection returns the connection a request of Client.Call is for,
// when the client has an Options.Transport (nil otherwise).
func CallConnection(r *http.Request) *Connection {
	c, _ := r.Context().Value(connKey{}).(*Connection)
	return c
}

var errTooManyRedirects = errors.New("too many redirects")

// Header values shared by every request (never modified).
var (
	jsonType  = []string{"application/json"}
	userAgent = []string{"storyflow-webhook/1"}
)

// NewClient returns a client.
func NewClient(o Options) *Client {
	if o.MaxBody <= 0 {
		o.MaxBody = DefaultMaxBody
	}
	if o.Backoff <= 0 {
		o.Backoff = 250 * time.Millisecond
	}
	if o.MaxRedirects <= 0 {
		o.MaxRedirects = 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	g := &guard{allowPrivate: o.AllowPrivate, allow: o.Allow}
	d := &dialer{g: g, resolve: o.Resolver, net: net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}}
	if !o.AllowPrivate {
		d.net.Control = g.control
	}
	fast := newFastClient(d, o)
	tr := &http.Transport{
		Proxy:                  nil, // a proxy would dial around the guard
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    256,
		MaxConnsPerHost:        0,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		TLSClientConfig:        o.TLS,
	}
	maxRedirects := o.MaxRedirects
	var rt http.RoundTripper = tr
	if o.Transport != nil {
		rt = o.Transport
	}
	c := &Client{
		maxBody: o.MaxBody, backoff: o.Backoff, now: o.Now, tagConn: o.Transport != nil, limits: newLimits(o), obs: o.Observer,
		fast: fast, maxRedirects: maxRedirects,
		http: &http.Client{
			Transport: rt,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) > maxRedirects {
					return errTooManyRedirects
				}
				stripRedirect(req, via[0])
				return nil
			},
		},
		verify: &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
	c.bufs.New = func() any { return new(bytes.Buffer) }
	return c
}

// stripRedirect keeps a redirected request from carrying what was meant for
// the first host: no Referer (its URL may hold a token), and to another
// host none of the connection's headers, auth or signature.
func stripRedirect(req, first *http.Request) {
	req.Header.Del("Referer")
	if req.URL.Host == first.URL.Host {
		return
	}
	for k := range req.Header {
		switch k {
		case "User-Agent", "Content-Type", "Accept", "Content-Length":
		default:
			req.Header.Del(k)
		}
	}
}

// Close closes idle connections.
func (c *Client) Close() {
	c.fast.CloseIdleConnections()
	c.http.CloseIdleConnections()
}

// Error is a failed call. Its message is a one-line reason for designers
// ("Request failed with status code 404").
type Error struct {
	Reason string
	// Status is the HTTP status of the answer (0 when there was none).
	Status int
	// Problems are the contract breaches of an invalid answer.
	Problems []Problem
	Err      error
	retry    bool
	after    time.Duration // the answer's Retry-After
	// down: the call counts against the connection's circuit (no answer
	// came, or a 5xx; see limits.go).
	down bool
}

// Problem is one breach of the answer contract, at a JSON path.
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Reason }
func (e *Error) Unwrap() error { return e.Err }

// Result is a completed call.
type Result struct {
	MessageID string
	Status    int
	Attempts  int
	Duration  time.Duration
	Answer    *Answer
	// Body is the raw answer, kept when Request.KeepBody is set.
	Body []byte
}

// SetObserver sets the client's observer when Options gave none; call it
// before the first call.
func (c *Client) SetObserver(o CallObserver) {
	if c.obs == nil {
		c.obs = o
	}
}

// Call sends r to conn and decodes the answer. Network errors and 5xx
// answers are retried conn.Retries times with the same message id. A
// failure is an *Error (with a Result holding what is known), or the
// context's error when ctx ends. A call waits for a slot of its
// connection and is refused fast while the connection's circuit is open
// (ErrBusy, ErrCircuitOpen).
func (c *Client) Call(ctx context.Context, conn *Connection, r *Request) (*Result, error) {
	if c.obs == nil {
		return c.call(ctx, conn, r)
	}
	start := time.Now()
	res, err := c.call(ctx, conn, r)
	c.obs.CallEnded(conn, time.Since(start), err)
	return res, err
}

func (c *Client) call(ctx context.Context, conn *Connection, r *Request) (*Result, error) {
	if r.MessageID == "" {
		r.MessageID = uuid.NewString()
	}
	res := &Result{MessageID: r.MessageID}
	w, werr := wireOf(r.Format)
	if werr != nil {
		return res, &Error{Reason: "Cannot encode request: " + werr.Error(), Err: werr}
	}
	body := c.buf()
	defer c.put(body)
	if err := encode(body, conn, r); err != nil {
		reason := "Cannot encode request: " + oneLine(err.Error())
		if errors.Is(err, ErrNoInput) || errors.Is(err, ErrPromptTooLong) {
			reason = capitalize(err.Error())
		}
		return res, &Error{Reason: reason, Err: err}
	}
	target := endpoint(w, conn.URL)
	timeout := conn.Timeout
	if timeout <= 0 {
		timeout = w.timeout
	}
	start := time.Now()
	admitted, aerr := c.limits.admit(ctx, conn, timeout)
	if aerr != nil {
		res.Duration = time.Since(start)
		return res, aerr
	}
	answer := c.buf()
	defer c.put(answer)
	var err *Error
	for attempt := 0; ; attempt++ {
		answer.Reset()
		res.Attempts++
		res.Status, err = c.attempt(ctx, conn, w, r, target, timeout, body.Bytes(), answer)
		if err == nil || !err.retry || attempt >= conn.Retries || ctx.Err() != nil {
			break
		}
		wait, ok := retryWait(c.backoff, attempt, err.after, timeout)
		if !ok {
			err.Reason += fmt.Sprintf(" (the service asks to retry after %s, longer than the timeout)", err.after)
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	if err != nil {
		admitted.finish(ctx, err)
	} else {
		admitted.finish(ctx, nil)
	}
	res.Duration = time.Since(start)
	if r.KeepBody {
		res.Body = bytes.Clone(answer.Bytes())
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if err != nil {
		return res, err
	}
	a, derr := decode(answer.Bytes(), r)
	if derr != nil {
		return res, answerError(res.Status, derr)
	}
	res.Answer = a
	return res, nil
}

func answerError(status int, err error) *Error {
	e := &Error{Status: status, Err: err}
	var ie *InvalidError
	switch {
	case errors.Is(err, ErrNotJSON):
		e.Reason = "Response is not JSON"
	case errors.As(err, &ie):
		e.Reason = "Invalid response"
		if len(ie.Problems) > 0 {
			e.Reason += ": " + oneLine(ie.Problems[0].Error())
		}
		for _, p := range ie.Problems {
			e.Problems = append(e.Problems, Problem{Path: p.Path, Message: p.Message})
		}
	default:
		e.Reason = "Invalid response: " + oneLine(err.Error())
	}
	return e
}

// attempt makes one request, following redirects, and reads its answer
// into out.
func (c *Client) attempt(ctx context.Context, conn *Connection, w *wire, r *Request, target string, timeout time.Duration, body []byte, out *bytes.Buffer) (int, *Error) {
	deadline := time.Now().Add(timeout)
	ctxDeadline, byCtx := ctx.Deadline()
	if byCtx = byCtx && ctxDeadline.Before(deadline); byCtx {
		deadline = ctxDeadline
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(escapeURL(target))
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.SetUserAgent(userAgent[0])
	req.Header.Set(HeaderMessageID, r.MessageID)
	for k, v := range w.headers {
		req.Header.Set(k, v)
	}
	for k, v := range conn.Headers {
		req.Header.Set(k, v)
	}
	if conn.Auth != nil {
		req.Header.Set("Authorization", basicAuth(conn.Auth.Username, conn.Auth.Password))
	}
	if conn.Token != "" {
		if w.auth != nil {
			req.Header.Set(w.auth(conn.Token))
		}
		if w.sign {
			ts := strconv.FormatInt(c.now().Unix(), 10)
			req.Header.Set(HeaderTimestamp, ts)
			req.Header.Set(HeaderSignature, Sign(conn.Token, ts, body))
		}
	}
	req.SetBodyRaw(body)
	if err := c.follow(ctx, conn, req, resp, deadline); err != nil {
		if _, perr := url.Parse(target); perr != nil {
			return 0, &Error{Reason: "Invalid URL: " + oneLine(unwrapURLError(perr).Error()), Err: perr}
		}
		if byCtx && !time.Now().Before(deadline) {
			<-ctx.Done() // the caller's deadline: its context ends now
		}
		if errors.Is(err, fasthttp.ErrBodyTooLarge) {
			return resp.StatusCode(), c.tooLarge(resp.StatusCode())
		}
		return 0, classify(err, time.Now().After(deadline), ctx, timeout)
	}
	status := resp.StatusCode()
	answer := resp.Body()
	if len(answer) > int(c.maxBody) {
		return status, c.tooLarge(status)
	}
	out.Write(answer)
	if status < 200 || status > 299 {
		reason := fmt.Sprintf("Request failed with status code %d", status)
		if t := errorText(answer); t != "" {
			reason += ": " + t
		}
		retry, after := retryAdvice(func(k string) string { return string(resp.Header.Peek(k)) }, w.retry(status), c.now())
		return status, &Error{Reason: reason, Status: status, retry: retry, after: after, down: status >= 500}
	}
	return status, nil
}

func (c *Client) tooLarge(status int) *Error {
	return &Error{Reason: fmt.Sprintf("Response body exceeds %d bytes", c.maxBody), Status: status}
}

// classify turns a transport error into an *Error with a one-line reason.
// late tells that the attempt's deadline has passed.
func classify(err error, late bool, ctx context.Context, timeout time.Duration) *Error {
	e := &Error{Err: err, down: true}
	var dns *net.DNSError
	var ne net.Error
	var small *fasthttp.ErrSmallBuffer
	switch re, refused := isRefused(err); {
	case refused:
		e.Reason = "Address not allowed: " + re.Error()
		e.down = false
	case ctx.Err() != nil:
		e.Reason = "Request canceled"
		e.down = false
	case errors.As(err, &small):
		e.Reason = fmt.Sprintf("Response headers exceed %d bytes", readBufferSize)
		e.down = false
	case errors.Is(err, errTooManyRedirects):
		e.Reason = "Too many redirects"
		e.down = false
	case late || errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, fasthttp.ErrTLSHandshakeTimeout) || (errors.As(err, &ne) && ne.Timeout()):
		e.Reason = "Request timed out after " + timeout.String()
		e.retry = true
	case errors.As(err, &dns):
		if dns.IsNotFound {
			e.Reason = "Host not found: " + dns.Name
		} else {
			e.Reason = "DNS lookup failed for " + dns.Name
			e.retry = true
		}
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Reason = "Connection refused"
		e.retry = true
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed):
		e.Reason = "Connection reset"
		e.retry = true
	case isTLS(err):
		e.Reason = "TLS error: " + oneLine(innermost(err).Error())
	default:
		e.Reason = "Request failed: " + oneLine(innermost(err).Error())
		e.retry = true
	}
	return e
}

func isTLS(err error) bool {
	var re *tls.RecordHeaderError
	var ce *tls.CertificateVerificationError
	return errors.As(err, &re) || errors.As(err, &ce) || strings.Contains(err.Error(), "tls: ")
}

func innermost(err error) error {
	for {
		var u *url.Error
		if errors.As(err, &u) && u.Err != nil && u.Err != err {
			err = u.Err
			continue
		}
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil && error(op) != op.Err {
			err = op.Err
			continue
		}
		return err
	}
}

func oneLine(s string) string {
	return engine.Cut(strings.Join(strings.Fields(s), " "), 300)
}

func (c *Client) buf() *bytes.Buffer {
	b := c.bufs.Get().(*bytes.Buffer)
	b.Reset()
	return b
}

func (c *Client) put(b *bytes.Buffer) {
	if b.Cap() <= 256<<10 {
		c.bufs.Put(b)
	}
}

// Verify sends the verification request of a connection made or changed
// through the API: GET <url>?challenge=<random>&token=<token>. It succeeds
// when a 2xx answer's body (trimmed of white space) equals the challenge.
func (c *Client) Verify(ctx context.Context, conn *Connection) error {
	var rb [16]byte
	rand.Read(rb[:])
	challenge := hex.EncodeToString(rb[:])
	u, err := url.Parse(conn.URL)
	if err != nil {
		return &Error{Reason: "Invalid URL: " + oneLine(unwrapURLError(err).Error()), Err: err}
	}
	q := u.Query()
	q.Set("challenge", challenge)
	if conn.Token != "" {
		q.Set("token", conn.Token)
	}
	u.RawQuery = q.Encode()
	timeout := conn.timeout()
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodGet, u.String(), nil)
	if err != nil {
		return &Error{Reason: "Invalid URL: " + oneLine(err.Error()), Err: err}
	}
	req.Header.Set("User-Agent", "storyflow-webhook/1")
	for k, v := range conn.Headers {
		req.Header.Set(k, v)
	}
	if conn.Auth != nil {
		req.SetBasicAuth(conn.Auth.Username, conn.Auth.Password)
	}
	resp, err := c.verify.Do(req)
	if err != nil {
		return classify(err, actx.Err() != nil, ctx, timeout)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 && resp.StatusCode <= 399 {
		return &Error{Reason: fmt.Sprintf("Verification failed: the URL redirects (status code %d); give the final URL", resp.StatusCode), Status: resp.StatusCode}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return classify(err, actx.Err() != nil, ctx, timeout)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &Error{Reason: fmt.Sprintf("Verification failed: status code %d", resp.StatusCode), Status: resp.StatusCode}
	}
	if string(bytes.TrimSpace(body)) != challenge {
		return &Error{Reason: "Verification failed: the answer is not the challenge", Status: resp.StatusCode}
	}
	return nil
}
