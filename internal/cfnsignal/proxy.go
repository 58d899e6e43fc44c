package cfnsignal

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// imdsIPv6 is the instance metadata service's IPv6 address on Nitro instances.
var imdsIPv6 = netip.MustParseAddr("fd00:ec2::254")

// proxyFunc returns the transport's Proxy function: every request goes through proxy,
// but for hosts on the instance itself, which a proxy cannot reach or must not see
// (the instance role's credentials come from IMDS); with a nil proxy every request
// goes direct, whatever HTTP_PROXY says.
func proxyFunc(proxy *url.URL) func(*http.Request) (*url.URL, error) {
	return func(req *http.Request) (*url.URL, error) {
		if proxy == nil || isLocal(req.URL.Hostname()) {
			return nil, nil
		}
		return proxy, nil
	}
}

// isLocal reports whether host is on the instance: localhost and its subdomains, a
// loopback address (127.0.0.0/8, ::1), a link-local one (169.254.0.0/16, which holds
// IMDS at 169.254.169.254 and the ECS task endpoint at 169.254.170.2, and fe80::/10),
// or IMDS's IPv6 address fd00:ec2::254.
func isLocal(host string) bool {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(h)
	if err != nil {
		return false // a name
	}
	ip = ip.Unmap().WithZone("")
	return ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip == imdsIPv6
}
