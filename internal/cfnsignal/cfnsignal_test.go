package cfnsignal

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Signal)
		want []string // the problems named; none: valid
	}{
		{"valid success", func(*Signal) {}, nil},
		{"valid failure", func(s *Signal) { s.Status = Failure }, nil},
		{"no reason is fine", func(s *Signal) { s.Reason = "" }, nil},
		{"empty stack", func(s *Signal) { s.StackName = "" }, []string{"StackName is empty"}},
		{"blank logical id", func(s *Signal) { s.LogicalResourceID = "  " }, []string{"LogicalResourceID is empty"}},
		{"empty unique id", func(s *Signal) { s.UniqueID = "" }, []string{"UniqueID is empty"}},
		{"lower-case status", func(s *Signal) { s.Status = "success" }, []string{`Status "success" is neither SUCCESS nor FAILURE`}},
		{"zero signal", func(s *Signal) { *s = Signal{} },
			[]string{"StackName is empty", "LogicalResourceID is empty", "UniqueID is empty", `Status ""`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := testSignal
			tc.edit(&s)
			err := s.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Validate: %v, want ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestFunc(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "v")
	boom := errors.New("boom")
	var got Signal
	var s Signaler = Func(func(c context.Context, sig Signal) error {
		if c.Value(key{}) != "v" {
			t.Error("Func did not pass the context on")
		}
		got = sig
		return boom
	})
	if err := s.Send(ctx, testSignal); err != boom {
		t.Errorf("Send = %v, want the function's error", err)
	}
	if got != testSignal {
		t.Errorf("the function got %+v, want %+v", got, testSignal)
	}
}

func TestAttemptsOfOtherErrors(t *testing.T) {
	for _, err := range []error{nil, errors.New("other"), context.Canceled} {
		if n := Attempts(err); n != 0 {
			t.Errorf("Attempts(%v) = %d, want 0", err, n)
		}
	}
}
