package cfnsignal

import (
	"net/http"
	"net/url"
	"testing"
)

func TestProxyFunc(t *testing.T) {
	proxy, _ := url.Parse("http://user:pass@proxy.internal:3128")
	cases := []struct {
		url    string
		direct bool
	}{
		{"https://cloudformation.us-east-1.amazonaws.com/", false},
		{"https://cloudformation.cn-north-1.amazonaws.com.cn/", false},
		{"http://cloudformation.us-east-1.test.invalid/", false},
		{"https://52.94.0.1/", false},
		{"http://10.0.0.1:8080/", false},
		{"https://[2600:1f18::1]/", false},
		{"http://169.254.169.254/latest/api/token", true},
		{"http://169.254.169.254:80/latest/meta-data/", true},
		{"http://169.254.170.2/v2/credentials/abc", true},
		{"http://[fd00:ec2::254]/latest/api/token", true},
		{"http://[FD00:EC2:0::254]/latest/api/token", true},
		{"http://[fe80::1%25eth0]/", true},
		{"http://localhost:51678/v1/metadata", true},
		{"http://LOCALHOST./", true},
		{"http://agent.localhost/", true},
		{"http://127.0.0.1:51678/v1/metadata", true},
		{"http://127.1.2.3/", true},
		{"http://[::1]:8080/", true},
		{"http://[::ffff:127.0.0.1]/", true},
		{"http://localhost.example.com/", false},
		{"http://127.0.0.1.nip.io/", false},
	}
	via := proxyFunc(proxy)
	direct := proxyFunc(nil)
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := proxy
			if tc.direct {
				want = nil
			}
			if got, err := via(req); got != want || err != nil {
				t.Errorf("with a proxy: %v, %v; want %v", got, err, want)
			}
			if got, err := direct(req); got != nil || err != nil {
				t.Errorf("without a proxy: %v, %v; want direct", got, err)
			}
		})
	}
}
