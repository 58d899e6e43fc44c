package imds

import (
	"context"
	"errors"
	"net"
	"reflect"
	"testing"
	"time"

	"github.com/firstrun/firstrun/test/imdsmock"
)

// Tests against AWS's amazon-ec2-metadata-mock (test/imdsmock), which requires
// IMDSv2: a GET without a valid token gets 401, and the SDK would answer that with a
// new PUT and a retry, so an exact request list with one PUT shows that every GET
// carried the token.

const (
	mockRegion   = "ap-southeast-2"
	mockInstance = "i-0fedcba9876543210"
)

var (
	tokenPUT = "PUT /latest/api/token"
	docGET   = "GET " + docPath
	listGET  = "GET " + listingPath
)

func tagGET(key string) string { return "GET " + tagPath + key }

func TestDiscoverMock(t *testing.T) {
	tests := []struct {
		name         string
		tags         map[string]string
		clusterTag   string
		want         Info
		wantRequests []string
	}{
		{"all four tags", map[string]string{
			TagStackName: "prod-ecs", TagLogicalID: "ContainerInstances", TagAutoscalingGroup: "prod-ecs-asg",
			DefaultClusterTag: "prod", "Name": "ecs-host", "team": "platform",
		}, "", Info{Region: mockRegion, InstanceID: mockInstance, StackName: "prod-ecs", LogicalID: "ContainerInstances",
			AutoscalingGroup: "prod-ecs-asg", Cluster: "prod", TagsExposed: true, Requests: 7},
			[]string{tokenPUT, docGET, listGET, tagGET(TagStackName), tagGET(TagLogicalID), tagGET(TagAutoscalingGroup), tagGET(DefaultClusterTag)}},
		{"tags not exposed", nil, "",
			Info{Region: mockRegion, InstanceID: mockInstance, Requests: 3},
			[]string{tokenPUT, docGET, listGET}},
		{"some tags", map[string]string{TagStackName: "prod-ecs", "Name": "ecs-host"}, "",
			Info{Region: mockRegion, InstanceID: mockInstance, StackName: "prod-ecs", TagsExposed: true, Requests: 4},
			[]string{tokenPUT, docGET, listGET, tagGET(TagStackName)}},
		{"own cluster tag", map[string]string{"team:ecs-cluster": "blue", DefaultClusterTag: "prod"}, "team:ecs-cluster",
			Info{Region: mockRegion, InstanceID: mockInstance, Cluster: "blue", TagsExposed: true, Requests: 4},
			[]string{tokenPUT, docGET, listGET, tagGET("team:ecs-cluster")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			endpoint, requests := imdsmock.Start(t, imdsmock.Config{Region: mockRegion, InstanceID: mockInstance, Tags: tt.tags})
			start := time.Now()
			got, err := Discover(context.Background(), NewClient(Options{Endpoint: endpoint}), tt.clusterTag)
			t.Logf("discovery: %v, %d requests", time.Since(start).Round(time.Microsecond), got.Requests)
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			if got != tt.want {
				t.Errorf("Discover =\n%+v\nwant\n%+v", got, tt.want)
			}
			if r := requests(); !reflect.DeepEqual(r, tt.wantRequests) {
				t.Errorf("requests =\n%q\nwant exactly\n%q", r, tt.wantRequests)
			}
		})
	}
}

func TestDiscoverMockTokenReused(t *testing.T) {
	endpoint, requests := imdsmock.Start(t, imdsmock.Config{Region: mockRegion, InstanceID: mockInstance,
		Tags: map[string]string{DefaultClusterTag: "prod"}})
	c := NewClient(Options{Endpoint: endpoint})
	for range 2 {
		if _, err := Discover(context.Background(), c, ""); err != nil {
			t.Fatal(err)
		}
	}
	run := []string{docGET, listGET, tagGET(DefaultClusterTag)}
	want := append(append([]string{tokenPUT}, run...), run...)
	if r := requests(); !reflect.DeepEqual(r, want) {
		t.Errorf("requests =\n%q\nwant one token PUT for the Client's life\n%q", r, want)
	}
}

func TestDiscoverMockDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	c := NewClient(Options{Endpoint: endpoint})
	start := time.Now()
	got, err := Discover(context.Background(), c, "")
	elapsed := time.Since(start)
	t.Logf("closed port: %v after %v and %d requests", err, elapsed.Round(time.Millisecond), got.Requests)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("error = %v, want ErrUnavailable", err)
	}
	if got != (Info{Requests: DefaultMaxAttempts}) {
		t.Errorf("Discover = %+v, want nothing learned after %d token PUT attempts", got, DefaultMaxAttempts)
	}
	if elapsed > 3*time.Second {
		t.Errorf("Discover took %v against a closed port, want it quick (well under the %v timeout)", elapsed, DefaultTimeout)
	}
}

func BenchmarkDiscoverMock(b *testing.B) {
	for _, bb := range []struct {
		name string
		tags map[string]string
	}{
		{"tags", map[string]string{TagStackName: "s", TagLogicalID: "l", TagAutoscalingGroup: "a", DefaultClusterTag: "c"}},
		{"no-tags", nil},
	} {
		b.Run(bb.name, func(b *testing.B) {
			endpoint, _ := imdsmock.Start(b, imdsmock.Config{Tags: bb.tags})
			requests := 0
			for b.Loop() {
				info, err := Discover(context.Background(), NewClient(Options{Endpoint: endpoint}), "")
				if err != nil {
					b.Fatal(err)
				}
				requests = info.Requests
			}
			b.ReportMetric(float64(requests), "requests/op")
		})
	}
}
