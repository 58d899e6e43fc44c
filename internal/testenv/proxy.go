package testenv

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
)

// ProxyTrap sets a proxy in every proxy variable of the environment (HTTP_PROXY,
// HTTPS_PROXY and their lower-case forms; NO_PROXY emptied), for a test that a client
// never uses one. The proxy answers 502 and counts what reaches it. Go never proxies
// loopback addresses, so endpoint must name a host that is not loopback and does not
// resolve (a .invalid name, RFC 2606): through a proxy the request would reach the
// trap, without one it fails. ProxyTrap first checks that a client using the proxy
// is seen, then returns the number of requests seen after that check.
//
// Go reads the proxy environment once per process: call it in a fresh one
// (InFreshProcess).
func ProxyTrap(t *testing.T, endpoint string) (hits func() int32) {
	t.Helper()
	var n atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(proxy.Close)
	for _, k := range []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"} {
		t.Setenv(k, proxy.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	// The check itself works: a client that does use the proxy is seen.
	via, err := url.Parse(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxied := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(via)}}
	resp, err := proxied.Get(endpoint)
	if err != nil {
		t.Fatalf("GET through the proxy: %v", err)
	}
	resp.Body.Close()
	if n.Load() != 1 {
		t.Fatalf("proxy saw %d requests, want 1: the check cannot see a proxied request", n.Load())
	}
	return func() int32 { return n.Load() - 1 }
}
