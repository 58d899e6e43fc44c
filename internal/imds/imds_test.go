package imds

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeAPI is an API whose methods call its func fields; a nil field fails the test
// when called. It records the tags asked for and the deadline of every call.
type fakeAPI struct {
	t        *testing.T
	identity func(ctx context.Context) (string, string, error)
	tagKeys  func(ctx context.Context) ([]string, error)
	tag      func(ctx context.Context, key string) (string, error)

	asked     []string      // GetTag's keys, in order
	deadlines []time.Time   // each call's ctx deadline (zero: none)
	timeout   time.Duration // what Timeout() returns (see timedFake)
}

func (f *fakeAPI) record(ctx context.Context) {
	d, _ := ctx.Deadline()
	f.deadlines = append(f.deadlines, d)
}

func (f *fakeAPI) GetIdentity(ctx context.Context) (string, string, error) {
	f.record(ctx)
	if f.identity == nil {
		f.t.Fatal("GetIdentity called")
	}
	return f.identity(ctx)
}

func (f *fakeAPI) GetTagKeys(ctx context.Context) ([]string, error) {
	f.record(ctx)
	if f.tagKeys == nil {
		f.t.Fatal("GetTagKeys called")
	}
	return f.tagKeys(ctx)
}

func (f *fakeAPI) GetTag(ctx context.Context, key string) (string, error) {
	f.record(ctx)
	f.asked = append(f.asked, key)
	if f.tag == nil {
		f.t.Fatalf("GetTag(%q) called", key)
	}
	return f.tag(ctx, key)
}

// timedFake is a fakeAPI with a Timeout method and a request count of one per call.
type timedFake struct{ *fakeAPI }

func (f timedFake) Timeout() time.Duration { return f.timeout }
func (f timedFake) Requests() int          { return len(f.deadlines) }

// instance returns a fake of an instance in eu-west-1 with tags (nil: not exposed).
func instance(t *testing.T, tags map[string]string) *fakeAPI {
	f := &fakeAPI{t: t}
	f.identity = func(context.Context) (string, string, error) { return "eu-west-1", "i-0abc", nil }
	f.tagKeys = func(context.Context) ([]string, error) {
		if tags == nil {
			return nil, fmt.Errorf("listing the instance's tags: %w (HTTP 404)", ErrNotFound)
		}
		var keys []string
		for k := range tags {
			keys = append(keys, k)
		}
		return keys, nil
	}
	f.tag = func(_ context.Context, key string) (string, error) {
		v, ok := tags[key]
		if !ok {
			return "", fmt.Errorf("reading tag %s: %w (HTTP 404)", key, ErrNotFound)
		}
		return v, nil
	}
	return f
}

var allTags = map[string]string{
	TagStackName:        "stack",
	TagLogicalID:        "Instances",
	TagAutoscalingGroup: "asg",
	DefaultClusterTag:   "prod",
	"Name":              "web", // not read
}

func TestDiscover(t *testing.T) {
	tests := []struct {
		name       string
		tags       map[string]string
		clusterTag string
		want       Info
		wantAsked  []string
	}{
		{"all tags", allTags, "",
			Info{Region: "eu-west-1", InstanceID: "i-0abc", StackName: "stack", LogicalID: "Instances", AutoscalingGroup: "asg", Cluster: "prod", TagsExposed: true},
			[]string{TagStackName, TagLogicalID, TagAutoscalingGroup, DefaultClusterTag}},
		{"tags not exposed", nil, "",
			Info{Region: "eu-west-1", InstanceID: "i-0abc"}, nil},
		{"no tags at all", map[string]string{}, "",
			Info{Region: "eu-west-1", InstanceID: "i-0abc", TagsExposed: true}, nil},
		{"only some tags", map[string]string{TagStackName: "stack", "Name": "web"}, "",
			Info{Region: "eu-west-1", InstanceID: "i-0abc", StackName: "stack", TagsExposed: true},
			[]string{TagStackName}},
		{"own cluster tag", map[string]string{"team:cluster": "blue", DefaultClusterTag: "prod"}, "team:cluster",
			Info{Region: "eu-west-1", InstanceID: "i-0abc", Cluster: "blue", TagsExposed: true},
			[]string{"team:cluster"}},
		{"cluster tag is the stack tag", map[string]string{TagStackName: "stack"}, TagStackName,
			Info{Region: "eu-west-1", InstanceID: "i-0abc", StackName: "stack", Cluster: "stack", TagsExposed: true},
			[]string{TagStackName}},
		{"empty values", map[string]string{TagStackName: "", DefaultClusterTag: ""}, "",
			Info{Region: "eu-west-1", InstanceID: "i-0abc", TagsExposed: true},
			[]string{TagStackName, DefaultClusterTag}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := instance(t, tt.tags)
			got, err := Discover(context.Background(), f, tt.clusterTag)
			if err != nil {
				t.Fatalf("Discover: %v", err)
			}
			if got != tt.want {
				t.Errorf("Discover =\n%+v\nwant\n%+v", got, tt.want)
			}
			if !reflect.DeepEqual(f.asked, tt.wantAsked) {
				t.Errorf("tags fetched = %q, want %q (only the listed ones firstrun reads, each once)", f.asked, tt.wantAsked)
			}
		})
	}
}

func TestDiscoverListedTagGone(t *testing.T) {
	f := instance(t, map[string]string{TagStackName: "stack"})
	f.tagKeys = func(context.Context) ([]string, error) { return []string{TagStackName, TagLogicalID}, nil }
	got, err := Discover(context.Background(), f, "")
	if err != nil {
		t.Fatalf("a listed tag removed before it was read should be absent, not an error: %v", err)
	}
	if got.StackName != "stack" || got.LogicalID != "" {
		t.Errorf("Discover = %+v, want the stack name and no logical id", got)
	}
}

func TestDiscoverUnavailable(t *testing.T) {
	down := errors.New("dial tcp 169.254.169.254:80: connect: connection refused")
	failing := fmt.Errorf("HTTP 500: %w", errors.New("internal error"))
	tests := []struct {
		name      string
		set       func(f *fakeAPI)
		want      Info
		wantAsked []string
		wantCause error
	}{
		{"identity fails", func(f *fakeAPI) {
			f.identity = func(context.Context) (string, string, error) { return "", "", down }
			f.tagKeys, f.tag = nil, nil // never asked
		}, Info{}, nil, down},
		{"listing fails", func(f *fakeAPI) {
			f.tagKeys = func(context.Context) ([]string, error) { return nil, failing }
			f.tag = nil
		}, Info{Region: "eu-west-1", InstanceID: "i-0abc"}, nil, failing},
		{"a tag fails with other than 404", func(f *fakeAPI) {
			f.tag = func(_ context.Context, key string) (string, error) {
				if key == TagAutoscalingGroup {
					return "", failing
				}
				return allTags[key], nil
			}
		}, Info{Region: "eu-west-1", InstanceID: "i-0abc", TagsExposed: true, StackName: "stack", LogicalID: "Instances"},
			[]string{TagStackName, TagLogicalID, TagAutoscalingGroup}, failing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := instance(t, allTags)
			tt.set(f)
			got, err := Discover(context.Background(), f, "")
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, tt.wantCause) {
				t.Errorf("error = %v, want ErrUnavailable wrapping %v", err, tt.wantCause)
			}
			if errors.Is(err, ErrNotFound) {
				t.Errorf("error = %v wraps ErrNotFound", err)
			}
			if got != tt.want {
				t.Errorf("Discover =\n%+v\nwant what was learned before the failure\n%+v", got, tt.want)
			}
			if !reflect.DeepEqual(f.asked, tt.wantAsked) {
				t.Errorf("tags fetched = %q, want %q: nothing after the failure", f.asked, tt.wantAsked)
			}
			if !strings.HasPrefix(err.Error(), ErrUnavailable.Error()+": ") {
				t.Errorf("error = %q, want it to start with %q", err, ErrUnavailable)
			}
		})
	}
}

func TestDiscoverDeadline(t *testing.T) {
	tests := []struct {
		name   string
		api    func(f *fakeAPI) API
		parent time.Duration // the caller's own deadline, 0 for none
		want   time.Duration // how long after its start the discovery's deadline is
	}{
		{"default", func(f *fakeAPI) API { return f }, 0, DefaultTimeout},
		{"the API's timeout", func(f *fakeAPI) API { f.timeout = time.Minute; return timedFake{f} }, 0, time.Minute},
		{"a zero timeout is the default", func(f *fakeAPI) API { return timedFake{f} }, 0, DefaultTimeout},
		{"the caller's earlier deadline", func(f *fakeAPI) API { f.timeout = time.Minute; return timedFake{f} }, 2 * time.Second, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := instance(t, allTags)
			api := tt.api(f)
			start := time.Now()
			ctx := context.Background()
			if tt.parent > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.parent)
				defer cancel()
			}
			if _, err := Discover(ctx, api, ""); err != nil {
				t.Fatal(err)
			}
			end := time.Now()
			if len(f.deadlines) != 6 {
				t.Fatalf("%d calls, want 6", len(f.deadlines))
			}
			for i, d := range f.deadlines {
				// The deadline was set between start and end: want after whichever.
				if d.IsZero() || d.Sub(start) < tt.want || d.Sub(end) > tt.want {
					t.Errorf("call %d: deadline %v (start %v, end %v), want %v after the start", i, d, start, end, tt.want)
				}
				if d != f.deadlines[0] {
					t.Errorf("call %d: deadline %v, want the first call's %v: one deadline for the whole discovery", i, d, f.deadlines[0])
				}
			}
		})
	}
}

func TestDiscoverRequests(t *testing.T) {
	f := instance(t, allTags)
	f.deadlines = make([]time.Time, 3) // requests made before this discovery
	got, err := Discover(context.Background(), timedFake{f}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got.Requests != 6 {
		t.Errorf("Requests = %d, want the 6 of this discovery", got.Requests)
	}

	g := instance(t, allTags)
	if got, _ := Discover(context.Background(), g, ""); got.Requests != 0 {
		t.Errorf("Requests = %d with an API that does not count, want 0", got.Requests)
	}
}

func TestDiscoverCancelled(t *testing.T) {
	f := instance(t, allTags)
	f.identity = func(ctx context.Context) (string, string, error) {
		<-ctx.Done()
		return "", "", fmt.Errorf("reading the instance identity document: %w", ctx.Err())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Discover(ctx, f, "")
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want ErrUnavailable wrapping context.Canceled", err)
	}
}
