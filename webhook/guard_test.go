package webhook_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/storyflow/storyflow/webhook"
)

func TestRefused(t *testing.T) {
	tests := []struct {
		ip   string
		kind string // "" when allowed
	}{
		{"127.0.0.1", "loopback"},
		{"127.9.9.9", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"10.0.0.1", "private"},
		{"172.16.5.4", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"fc00::1", "private"},
		{"fd12:3456::1", "private"},
		{"169.254.1.1", "link-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"::1%lo", "loopback"},
		{"169.254.169.254", "cloud metadata"},
		{"fd00:ec2::254", "cloud metadata"},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"100.64.0.1", "shared (CGNAT)"},
		{"100.127.255.254", "shared (CGNAT)"},
		{"224.0.0.1", "multicast"},
		{"ff02::1", "multicast"},
		{"64:ff9b::a00:1", "private"},   // NAT64 of 10.0.0.1
		{"2002:7f00:1::1", "loopback"},  // 6to4 of 127.0.0.1
		{"::ffff:0:7f00:1", "loopback"}, // IPv4-translated 127.0.0.1
		{"::ffff:0:a00:1", "private"},   // IPv4-translated 10.0.0.1
		{"192.0.2.1", "documentation"},
		{"198.51.100.7", "documentation"},
		{"203.0.113.9", "documentation"},
		{"198.18.0.1", "reserved"},
		{"198.19.255.254", "reserved"},
		{"2001:db8::1", "documentation"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
		{"8.8.8.8", ""},
		{"93.184.216.34", ""},
		{"100.128.0.1", ""},
		{"172.32.0.1", ""},
		{"2606:4700::1111", ""},
		{"64:ff9b::808:808", ""},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			kind, refused := webhook.Refused(netip.MustParseAddr(tt.ip))
			if refused != (tt.kind != "") || kind != tt.kind {
				t.Errorf("Refused(%s) = %q, %v; want %q", tt.ip, kind, refused, tt.kind)
			}
		})
	}
}

// counting is a loopback server that counts the requests it gets.
func counting(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if h != nil {
			h(w, r)
			return
		}
		io.WriteString(w, `{}`)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func addrOf(t *testing.T, srv *httptest.Server) netip.AddrPort {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return netip.MustParseAddrPort(u.Host)
}

func call(t *testing.T, c *webhook.Client, conn *webhook.Connection) (*webhook.Result, error) {
	t.Helper()
	return c.Call(context.Background(), conn, &webhook.Request{ChatID: "c1"})
}

func reason(err error) string {
	var e *webhook.Error
	if errors.As(err, &e) {
		return e.Reason
	}
	if err == nil {
		return ""
	}
	return "not a *webhook.Error: " + err.Error()
}

func TestGuard(t *testing.T) {
	target, hits := counting(t, nil)
	redirect, redirectHits := counting(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/direct" {
			io.WriteString(w, `{}`)
			return
		}
		http.Redirect(w, r, target.URL+"/landed", http.StatusTemporaryRedirect)
	})
	// Nothing may be sent to 10.0.0.1: the resolver answers from a map and
	// the guard refuses the address before any socket exists.
	resolver := webhook.MapResolver(map[string][]netip.Addr{
		"intranet.test": {netip.MustParseAddr("10.0.0.1")},
		"meta.test":     {netip.MustParseAddr("169.254.169.254")},
		"mixed.test":    {netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("192.168.0.1")},
	})
	guarded := webhook.NewClient(webhook.Options{Resolver: resolver, Allow: []netip.AddrPort{addrOf(t, redirect)}})
	systemResolver := webhook.NewClient(webhook.Options{})
	tests := []struct {
		name   string
		client *webhook.Client
		url    string
		reason string
	}{
		{"host resolving to 10.0.0.1", guarded, "http://intranet.test:8080/hook", "Address not allowed: 10.0.0.1 is a private address"},
		{"host resolving to metadata", guarded, "http://meta.test/latest", "Address not allowed: 169.254.169.254 is a cloud metadata address"},
		{"every address refused", guarded, "http://mixed.test/", "Address not allowed: 10.0.0.1 is a private address"},
		{"private literal", guarded, "http://10.0.0.1/", "Address not allowed: 10.0.0.1 is a private address"},
		{"loopback literal (dialer control)", systemResolver, target.URL, "Address not allowed: 127.0.0.1 is a loopback address"},
		{"unknown host", guarded, "http://nowhere.test/", "Host not found: nowhere.test"},
		{"redirect to 127.0.0.1 elsewhere", guarded, redirect.URL + "/hook", "Address not allowed: 127.0.0.1 is a loopback address"},
		{"allowed exception", guarded, redirect.URL + "/direct", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := call(t, tt.client, &webhook.Connection{ID: "x", URL: tt.url})
			if got := reason(err); got != tt.reason {
				t.Errorf("reason = %q, want %q", got, tt.reason)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("refused target got %d requests", n)
	}
	if n := redirectHits.Load(); n != 2 {
		t.Errorf("redirecting server got %d requests, want 2", n)
	}
}

func TestRedirects(t *testing.T) {
	target, hits := counting(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || len(b) == 0 {
			t.Errorf("redirected request: %s with %d bytes", r.Method, len(b))
		}
		io.WriteString(w, `{"attributes":{"landed":true}}`)
	})
	var loop *httptest.Server
	loop, _ = counting(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, loop.URL+r.URL.Path+"x", http.StatusTemporaryRedirect)
	})
	once, _ := counting(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusPermanentRedirect)
	})
	c := webhook.NewClient(webhook.Options{AllowPrivate: true})
	res, err := call(t, c, &webhook.Connection{ID: "x", URL: once.URL})
	if err != nil || res.Answer.Attributes["landed"] != true || hits.Load() != 1 {
		t.Fatalf("followed redirect: %v, %+v, %d hits", err, res, hits.Load())
	}
	_, err = call(t, c, &webhook.Connection{ID: "x", URL: loop.URL + "/"})
	if got := reason(err); got != "Too many redirects" {
		t.Errorf("redirect loop: reason %q", got)
	}
}
