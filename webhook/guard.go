package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
)

// RefusedError is a connection to an address outbound calls may not reach.
type RefusedError struct {
	Addr netip.Addr
	// Kind says why: "loopback", "private", "link-local", "cloud metadata"…
	Kind string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s is %s", e.Addr, article(e.Kind))
}

func article(kind string) string {
	switch kind[0] {
	case 'a', 'e', 'i', 'o', 'u':
		return "an " + kind + " address"
	}
	return "a " + kind + " address"
}

var (
	metadata4 = netip.MustParseAddr("169.254.169.254")
	metadata6 = netip.MustParseAddr("fd00:ec2::254")

	refusedPrefixes = []struct {
		p    netip.Prefix
		kind string
	}{
		{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
		{netip.MustParsePrefix("10.0.0.0/8"), "private"},
		{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT)"},
		{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
		{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
		{netip.MustParsePrefix("172.16.0.0/12"), "private"},
		{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},
		{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
		{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
		{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
		{netip.MustParsePrefix("192.168.0.0/16"), "private"},
		{netip.MustParsePrefix("198.18.0.0/15"), "reserved"},
		{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
		{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
		{netip.MustParsePrefix("::/128"), "unspecified"},
		{netip.MustParsePrefix("::1/128"), "loopback"},
		{netip.MustParsePrefix("fc00::/7"), "private"},
		{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
		{netip.MustParsePrefix("2001::/32"), "Teredo"},
		{netip.MustParsePrefix("100::/64"), "discard-only"},
		{netip.MustParsePrefix("64:ff9b:1::/48"), "local NAT64"},
		{netip.MustParsePrefix("fe80::/10"), "link-local"},
		{netip.MustParsePrefix("ff00::/8"), "multicast"},
	}
	nat64   = netip.MustParsePrefix("64:ff9b::/96")
	sixto4  = netip.MustParsePrefix("2002::/16")
	compat4 = netip.MustParsePrefix("::/96")
	// translated4 is SIIT's IPv4-translated ::ffff:0:a.b.c.d.
	translated4 = netip.MustParsePrefix("::ffff:0:0:0/96")
)

// Refused tells whether outbound calls may not reach ip, and why. IPv4
// addresses embedded in IPv6 (mapped, NAT64, 6to4) are checked as IPv4.
func Refused(ip netip.Addr) (kind string, refused bool) {
	ip = ip.Unmap().WithZone("") // a zoned address never matches a prefix
	if !ip.IsValid() {
		return "invalid", true
	}
	if ip == metadata4 || ip == metadata6 {
		return "cloud metadata", true
	}
	if ip.Is6() {
		b := ip.As16()
		switch {
		case nat64.Contains(ip), translated4.Contains(ip), compat4.Contains(ip) && ip != netip.IPv6Unspecified() && ip != netip.IPv6Loopback():
			if k, r := Refused(netip.AddrFrom4([4]byte(b[12:16]))); r {
				return k, true
			}
		case sixto4.Contains(ip):
			if k, r := Refused(netip.AddrFrom4([4]byte(b[2:6]))); r {
				return k, true
			}
		}
	}
	for _, rp := range refusedPrefixes {
		if rp.p.Contains(ip) {
			return rp.kind, true
		}
	}
	return "", false
}

// guard checks addresses at connect time.
type guard struct {
	allowPrivate bool
	// allow are exact addresses allowed anyway (tests).
	allow []netip.AddrPort
}

// check returns a *RefusedError when the client may not connect to ap.
func (g *guard) check(ap netip.AddrPort) error {
	if g.allowPrivate {
		return nil
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if slices.Contains(g.allow, ap) {
		return nil
	}
	if kind, refused := Refused(ap.Addr()); refused {
		return &RefusedError{Addr: ap.Addr(), Kind: kind}
	}
	return nil
}

// control is the net.Dialer Control func: it runs after the address is
// resolved and before connect, for every address tried.
func (g *guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("check address %q: %w", address, err)
	}
	return g.check(ap)
}

// Resolver resolves a host name to addresses (tests answer from a map).
type Resolver func(ctx context.Context, host string) ([]netip.Addr, error)

// dialer dials through the guard, resolving with resolve when set.
type dialer struct {
	net     net.Dialer
	g       *guard
	resolve Resolver
}

func (d *dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if d.resolve == nil {
		return d.net.DialContext(ctx, network, address)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = d.resolve(ctx, host); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if len(ips) == 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
	}
	var first error
	for _, ip := range ips {
		target := net.JoinHostPort(ip.String(), port)
		if ap, err := netip.ParseAddrPort(target); err == nil {
			// Checked here too, so a refused address is not even a socket.
			if err := d.g.check(ap); err != nil {
				first = cmpErr(first, &net.OpError{Op: "dial", Net: network, Err: err})
				continue
			}
		}
		c, err := d.net.DialContext(ctx, network, target)
		if err == nil {
			return c, nil
		}
		first = cmpErr(first, err)
	}
	return nil, first
}

func cmpErr(first, err error) error {
	if first == nil {
		return err
	}
	return first
}

// MapResolver answers from a map of host names; an unknown name is not found.
func MapResolver(hosts map[string][]netip.Addr) Resolver {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		if ips, ok := hosts[host]; ok {
			return ips, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
}

// isRefused reports the RefusedError inside err.
func isRefused(err error) (*RefusedError, bool) {
	var re *RefusedError
	ok := errors.As(err, &re)
	return re, ok
}
