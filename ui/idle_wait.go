//go:build ci || !windows

package ui

import (
	"context"
	"time"
)

// waitForWork blocks until hasWork (checked after each wake-up), ctx ends
// (false) or, with a limit, the limit passes (true).
func waitForWork(ctx context.Context, wake <-chan struct{}, hasWork func() bool, limit time.Duration) (expired bool) {
	var expire <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		expire = t.C
	}
	for !hasWork() {
		select {
		case <-wake:
		case <-ctx.Done():
			return false
		case <-expire:
			return true
		}
	}
	return false
}
