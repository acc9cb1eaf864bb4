package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pult/pult/relay/store"
)

// The store's part of a card's way, one step at a time (issue 16's "where
// the time goes"): a call record stored with its card (CommitCall), an event appended, and
// the live feed's delivery after the append's acknowledgement. Each is
// measured back to back (warm) and after 2 ms idle, as at 200 events/s,
// where every event finds the relay's goroutines asleep. They report p50
// and p99 in µs besides ns/op:
//
//	go test -run '^$' -bench . -benchtime 2000x ./relay/store/
func BenchmarkStoreSteps(b *testing.B) {
	for _, idle := range []time.Duration{0, 2 * time.Millisecond} {
		name := "warm"
		if idle > 0 {
			name = "after-idle"
		}
		b.Run("commit-call/"+name, func(b *testing.B) {
			st := openBench(b)
			measure(b, idle, func(i int) {
				card := []store.Append{{Operator: "op1", Type: "call", Data: []byte(`{"v":1}`), MsgID: fmt.Sprintf("c.%d.op1.1", i)}}
				if _, err := st.CommitCall(context.Background(), fmt.Sprintf("c.%d", i), []byte(`{"v":1}`), 0, card); err != nil {
					b.Fatal(err)
				}
			})
		})
		b.Run("append/"+name, func(b *testing.B) {
			st := openBench(b)
			measure(b, idle, func(i int) {
				if _, err := st.Append(context.Background(), "op1", "call", []byte(`{"v":1}`), fmt.Sprintf("m%d", i), time.Time{}); err != nil {
					b.Fatal(err)
				}
			})
		})
		// From the append's acknowledgement to the live feed's delivery
		// (negative: the feed had it before the publisher).
		b.Run("tail-after-ack/"+name, func(b *testing.B) {
			st := openBench(b)
			ctx, cancel := context.WithCancel(context.Background())
			var mu sync.Mutex
			got := map[uint64]time.Time{}
			done := make(chan struct{})
			go func() {
				defer close(done)
				st.Tail(ctx, 1, func(ev store.Event) { mu.Lock(); got[ev.Seq] = time.Now(); mu.Unlock() })
			}()
			defer func() { cancel(); <-done }()
			acked := make(map[uint64]time.Time, b.N)
			b.ResetTimer()
			for i := range b.N {
				if idle > 0 {
					time.Sleep(idle)
				}
				seq, err := st.Append(ctx, "op1", "call", []byte(`{"v":1}`), "", time.Time{})
				if err != nil {
					b.Fatal(err)
				}
				acked[seq] = time.Now()
				_ = i
			}
			b.StopTimer()
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			var d []time.Duration
			for seq, at := range acked {
				if t, ok := got[seq]; ok {
					d = append(d, t.Sub(at))
				}
			}
			mu.Unlock()
			report(b, d)
		})
	}
}

func openBench(b *testing.B) *store.Store {
	b.Helper()
	st, err := store.Open(context.Background(), store.Options{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	return st
}

// measure times op b.N times, after idle each time, and reports the
// quantiles.
func measure(b *testing.B, idle time.Duration, op func(i int)) {
	b.Helper()
	d := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		if idle > 0 {
			b.StopTimer()
			time.Sleep(idle)
			b.StartTimer()
		}
		t := time.Now()
		op(i)
		d = append(d, time.Since(t))
	}
	b.StopTimer()
	report(b, d)
}

func report(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	us := func(q float64) float64 { return float64(d[min(len(d)-1, int(q*float64(len(d))))].Nanoseconds()) / 1e3 }
	b.ReportMetric(us(0.5), "p50-µs")
	b.ReportMetric(us(0.99), "p99-µs")
}
