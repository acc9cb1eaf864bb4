package agent

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// ParseWhen reads when a callback should happen, as people write it, in
// local time unless it says otherwise: "15:30" (today), "2026-11-22 10:00"
// or RFC 3339. It must be after now and at most 30 days ahead.
func ParseWhen(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		if t, err = time.ParseInLocation("2006-01-02 15:04", s, time.Local); err != nil {
			hm, err2 := time.ParseInLocation("15:04", s, time.Local)
			if err2 != nil {
				return time.Time{}, fmt.Errorf("%q: want 15:04, 2006-01-02 15:04 or RFC 3339", s)
			}
			y, m, d := now.In(time.Local).Date()
			t = time.Date(y, m, d, hm.Hour(), hm.Minute(), 0, 0, time.Local)
		}
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("%s is in the past", t.Local().Format("2006-01-02 15:04"))
	}
	if t.After(now.Add(30 * 24 * time.Hour)) {
		return time.Time{}, errors.New("more than 30 days ahead")
	}
	return t, nil
}

// Clock shows a duration as a running timer does: "m:ss", or "h:mm:ss" from
// an hour on; a negative one as 0:00.
func Clock(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Truncate(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}
