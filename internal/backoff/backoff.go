// Package backoff holds the retry wait of firstrun's AWS clients (cfnsignal for
// CloudFormation, secrets for SSM and Secrets Manager): the "full jitter" backoff (AWS
// Architecture Blog, "Exponential Backoff And Jitter").
package backoff

import (
	"math/rand/v2"
	"time"
)

// FullJitter waits, after attempt n, a random time in [0, min(Cap, Base·2^n)). Spread
// uniformly down to zero, the retries of many instances throttled at once do not come
// back together. It is an aws-sdk-go-v2 retry.BackoffDelayer.
type FullJitter struct {
	Base, Cap time.Duration
	// Rand returns a number in [0, 1); nil: math/rand/v2's Float64.
	Rand func() float64
}

// BackoffDelay returns the wait after attempt (1 for the first request).
func (j FullJitter) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	ceiling := j.Cap
	if attempt < 62 && j.Base < j.Cap>>attempt { // Base·2^n below the cap, without overflow
		ceiling = j.Base << attempt
	}
	r := j.Rand
	if r == nil {
		r = rand.Float64
	}
	return time.Duration(r() * float64(ceiling)), nil
}
