package outbox

import (
	"testing"
	"time"
)

func TestBackoffIsCappedFullJitter(t *testing.T) {
	base, max := 100*time.Millisecond, 2*time.Second
	for attempt := uint64(1); attempt < 100; attempt++ {
		ceil := max
		if attempt < 10 {
			if c := base << (attempt - 1); c < max {
				ceil = c
			}
		}
		var lo, hi time.Duration = time.Hour, 0
		for i := 0; i < 2000; i++ {
			d := Backoff(attempt, base, max)
			if d < time.Millisecond || d > ceil {
				t.Fatalf("attempt %d: %s outside [1ms, %s]", attempt, d, ceil)
			}
			lo, hi = min(lo, d), maxDur(hi, d)
		}
		// Full jitter spreads over the whole range, not just near the top.
		if lo > ceil/4 || hi < ceil*3/4 {
			t.Fatalf("attempt %d: delays %s..%s do not spread over [0, %s]", attempt, lo, hi, ceil)
		}
	}
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}
