package retryafter

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-5":                            0,
		"5":                             5 * time.Second,
		"120":                           2 * time.Minute,
		"soon":                          0,
		"99999999":                      time.Hour,
		"99999999999999999999999":       0,
		"Fri, 01 Mar 2024 12:00:30 GMT": 30 * time.Second,
		"Fri, 01 Mar 2024 12:01:30 GMT": 90 * time.Second,
		"Fri, 01 Mar 2024 11:00:00 GMT": 0,
		"Sat, 01 Mar 2025 12:00:00 GMT": time.Hour,
	} {
		if got := Parse(in, now, time.Hour); got != want {
			t.Errorf("Parse(%q) = %v, want %v", in, got, want)
		}
	}
	// The outbox's wider limit.
	if got := Parse("Sat, 01 Mar 2025 12:00:00 GMT", now, 365*24*time.Hour); got != 365*24*time.Hour {
		t.Errorf("a year ahead with a year's limit = %v", got)
	}
}
