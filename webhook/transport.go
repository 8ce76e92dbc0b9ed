package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/valyala/fasthttp"
)

// Webhook calls go out through fasthttp's client: it writes the request and
// reads the answer on the calling goroutine, where net/http's transport
// hands each call to two goroutines of its own. On the load test that is
// about 40 µs less CPU per call (docs/operations.md, Performance). net/http
// stays for event deliveries and verification (Client.HTTP, Verify).

// readBufferSize is each connection's read buffer, which also bounds an
// answer's status line and headers.
const readBufferSize = 16 << 10

// maxConnsPerHost bounds the connections open to one host; a call beyond it
// waits for one to be free, within its deadline.
const maxConnsPerHost = 1024

func newFastClient(d *dialer, o Options) *fasthttp.Client {
	fc := &fasthttp.Client{
		DialTimeout: func(addr string, timeout time.Duration) (net.Conn, error) {
			if timeout <= 0 {
				timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return newLiveConn(c), nil
		},
		TLSConfig:                o.TLS,
		MaxConnsPerHost:          maxConnsPerHost,
		MaxConnWaitTimeout:       time.Hour, // calls' own deadlines bound the wait
		MaxIdleConnDuration:      90 * time.Second,
		ReadBufferSize:           readBufferSize,
		MaxResponseBodySize:      int(o.MaxBody),
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true, // the path goes as the connection gives it
		// A call is sent again only when nothing of it went out: the kept-alive
		// connection it was to use turned out closed (liveconn.go). Each such
		// attempt drops one idle connection, and there are at most
		// maxConnsPerHost: after a service restart all of them may be closed.
		// Any other failure is the call's, retried only by the connection's
		// retries.
		MaxIdemponentCallAttempts: maxConnsPerHost + 1,
		RetryIfErr: func(_ *fasthttp.Request, _ int, err error) (bool, bool) {
			return false, errors.Is(err, errStaleConn)
		},
	}
	if o.Transport != nil {
		fc.Transport = mockTransport{o.Transport}
	}
	return fc
}

// follow sends req and follows up to the client's redirects, all before
// deadline. A redirect to another host carries none of the connection's
// headers, auth or signature; 301, 302 and 303 turn the POST into a GET
// without a body, as browsers and net/http do.
func (c *Client) follow(ctx context.Context, conn *Connection, req *fasthttp.Request, resp *fasthttp.Response, deadline time.Time) error {
	var first []byte
	for hops := 0; ; hops++ {
		if c.tagConn {
			req.SetUserValue(callKey{}, call{ctx, conn, deadline})
		}
		if err := c.fast.DoDeadline(req, resp, deadline); err != nil {
			return err
		}
		status := resp.StatusCode()
		loc := resp.Header.Peek("Location")
		if !fasthttp.StatusCodeIsRedirect(status) || len(loc) == 0 {
			return nil
		}
		if hops >= c.maxRedirects {
			return errTooManyRedirects
		}
		if first == nil {
			first = append([]byte(nil), req.URI().Host()...)
		}
		req.URI().UpdateBytes(loc)
		if !bytes.Equal(req.URI().Host(), first) {
			stripHeaders(&req.Header)
		}
		if status == http.StatusMovedPermanently || status == http.StatusFound || status == http.StatusSeeOther {
			req.Header.SetMethod(fasthttp.MethodGet)
			req.Header.Del("Content-Length")
			req.Header.Del("Content-Type")
			req.ResetBody()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// stripHeaders keeps only the headers that say nothing of the caller.
func stripHeaders(h *fasthttp.RequestHeader) {
	var drop []string
	for k := range h.All() {
		switch string(k) {
		case "User-Agent", "Content-Type", "Accept", "Content-Length", "Host":
		default:
			drop = append(drop, string(k))
		}
	}
	for _, k := range drop {
		h.Del(k)
	}
}

// escapeURL percent-encodes what may not go raw on a request line (spaces,
// bytes beyond ASCII), as net/http does; the rest of the URL goes as written.
func escapeURL(raw string) string {
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f {
			if u, err := url.Parse(raw); err == nil {
				return u.String()
			}
			return raw
		}
	}
	return raw
}

func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// mockTransport sends the client's requests to an Options.Transport (story
// tests answer with mocks) through net/http's types.
type mockTransport struct{ rt http.RoundTripper }

// call is what a mock request carries: its caller's context, connection and
// deadline.
type call struct {
	ctx      context.Context
	conn     *Connection
	deadline time.Time
}

type callKey struct{}

func (m mockTransport) RoundTrip(hc *fasthttp.HostClient, req *fasthttp.Request, resp *fasthttp.Response) (bool, error) {
	cl, _ := req.UserValue(callKey{}).(call)
	if cl.ctx == nil {
		cl.ctx = context.Background()
	}
	ctx := context.WithValue(cl.ctx, connKey{}, cl.conn)
	if !cl.deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, cl.deadline)
		defer cancel()
	}
	scheme := "http://"
	if hc.IsTLS {
		scheme = "https://"
	}
	uri := scheme + string(req.Host()) + string(req.RequestURI())
	hr, err := http.NewRequestWithContext(ctx, string(req.Header.Method()), uri, bytes.NewReader(req.Body()))
	if err != nil {
		return false, err
	}
	for k, v := range req.Header.All() {
		hr.Header.Add(string(k), string(v))
	}
	res, err := m.rt.RoundTrip(hr)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	resp.SetStatusCode(res.StatusCode)
	for k, vs := range res.Header {
		for _, v := range vs {
			resp.Header.Add(k, v)
		}
	}
	limit := int64(hc.MaxResponseBodySize)
	body, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		return false, err
	}
	if limit > 0 && int64(len(body)) > limit {
		return false, fasthttp.ErrBodyTooLarge
	}
	resp.SetBody(body)
	return false, nil
}
