package agent

import (
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                          "0:00",
		0:                                     "0:00",
		59*time.Second + 900*time.Millisecond: "0:59",
		83 * time.Second:                      "1:23",
		time.Hour + 2*time.Minute + 3*time.Second: "1:02:03",
	} {
		if got := Clock(d); got != want {
			t.Errorf("Clock(%s) = %q, want %q", d, got, want)
		}
	}
}
