package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildRelay builds cmd/pult-relay into a temporary folder. A test binary
// is not the relay, so Run cannot exec itself here.
func buildRelay(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH; cannot build cmd/pult-relay for the benchmark test")
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not inside a module")
	}
	bin := filepath.Join(t.TempDir(), "pult-relay")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/pult-relay")
	cmd.Dir = filepath.Dir(gomod)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pult-relay: %v\n%s", err, b)
	}
	return bin
}

func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a relay process")
	}
	bin := buildRelay(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress strings.Builder
	profiles := t.TempDir()
	rep, err := Run(ctx, Options{
		Operators: 5, Rate: 20, Duration: 2 * time.Second, Ring: 2,
		Drain: 2 * time.Second, Settle: 200 * time.Millisecond, Supervisors: 1,
		RelayBin: bin, Progress: &progress, ProfileDir: profiles,
	})
	if err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	// Heap, goroutines and profiles come from the relay's metrics_listen.
	if rep.HeapBefore <= 0 || rep.GoroutinesBefore <= 0 {
		t.Errorf("relay heap and goroutines not read from /metrics: %d %d", rep.HeapBefore, rep.GoroutinesBefore)
	}
	for _, name := range []string{"heap-settled", "goroutine-settled", "cpu-firing"} {
		if fi, err := os.Stat(filepath.Join(profiles, name+".pprof")); err != nil || fi.Size() == 0 {
			t.Errorf("profile %s: %v", name, err)
		}
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Logf("report:\n%s", text.String())

	if rep.EventsPosted < 30 || rep.HTTPErrors != 0 {
		t.Errorf("posted %d events with %d HTTP errors (%s); want about 40 and none", rep.EventsPosted, rep.HTTPErrors, rep.FirstError)
	}
	if rep.Expected != 2*rep.EventsPosted {
		t.Errorf("expected deliveries %d, want 2 per event (%d)", rep.Expected, 2*rep.EventsPosted)
	}
	if rep.Lost != 0 || rep.Duplicated != 0 || rep.Unexpected != 0 {
		t.Errorf("lost %d, duplicated %d, unexpected %d; want none", rep.Lost, rep.Duplicated, rep.Unexpected)
	}
	if rep.Delivered != rep.Expected || rep.Latency.N != rep.Delivered {
		t.Errorf("delivered %d of %d with %d latencies", rep.Delivered, rep.Expected, rep.Latency.N)
	}
	if rep.Latency.Min <= 0 || rep.Latency.Max < rep.Latency.P50 {
		t.Errorf("latencies %+v; want all > 0", rep.Latency)
	}
	if rep.Disconnects != 0 || rep.OutOfOrder != 0 {
		t.Errorf("disconnects %d (%s), out of order %d", rep.Disconnects, rep.FirstClose, rep.OutOfOrder)
	}
	if rep.RSSBefore <= 0 || rep.RSSIdle <= 0 || rep.RSSEnd <= 0 {
		t.Errorf("relay RSS not measured: %d %d %d", rep.RSSBefore, rep.RSSIdle, rep.RSSEnd)
	}
	if b := rep.Board; b == nil || b.Supervisors != 1 || b.Missing != 0 || b.Gaps != 0 || b.Disconnects != 0 ||
		b.Latency.N != rep.EventsPosted || b.Latency.Min <= 0 || b.SnapshotBytes == 0 {
		t.Errorf("board: %+v", rep.Board)
	}
	if rep.RelayWarnings != 0 {
		t.Errorf("the relay logged %d warnings: %q", rep.RelayWarnings, rep.RelayLog)
	}
}

func TestSummarise(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := summarise(ds)
	if l.N != 100 || l.Min != 1 || l.P50 != 50 || l.P90 != 90 || l.P99 != 99 || l.Max != 100 {
		t.Errorf("summarise = %+v", l)
	}
	if (summarise(nil) != Latency{}) {
		t.Error("summarise(nil) is not zero")
	}
}

func TestCallNumber(t *testing.T) {
	for id, want := range map[string]int{"b-0": 0, "b-42": 42} {
		if n, ok := callNumber(id); !ok || n != want {
			t.Errorf("callNumber(%q) = %d, %v", id, n, ok)
		}
	}
	for _, id := range []string{"", "b-", "x-1", "b--1", "b-1a"} {
		if _, ok := callNumber(id); ok {
			t.Errorf("callNumber(%q) accepted", id)
		}
	}
}

func TestPickDistinct(t *testing.T) {
	for range 100 {
		p := pick(5, 5)
		seen := map[int32]bool{}
		for _, i := range p {
			if i < 0 || i >= 5 || seen[i] {
				t.Fatalf("pick(5,5) = %v", p)
			}
			seen[i] = true
		}
	}
}

// TestRunRestartAndBaseline keeps the reconnect storm and the gorilla
// baseline working (a smoke run, no timing asserted).
func TestRunRestartAndBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts relay processes")
	}
	bin := buildRelay(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{
		Operators: 5, Rate: 20, Duration: 3 * time.Second, Ring: 2, Restart: true,
		Drain: 2 * time.Second, Settle: 200 * time.Millisecond, Idle: 300 * time.Millisecond,
		RelayBin: bin,
	})
	if err != nil {
		t.Fatalf("Run with --restart: %v", err)
	}
	if s := rep.Storm; s == nil || s.Reconnected != 5 || s.NotResumed != 0 || rep.Lost != 0 || rep.Duplicated != 0 || rep.OutOfOrder != 0 {
		t.Errorf("restart: storm %+v, lost %d, duplicated %d, out of order %d", rep.Storm, rep.Lost, rep.Duplicated, rep.OutOfOrder)
	}
	if rep.IdleS <= 0 || rep.RSSSteady <= 0 {
		t.Errorf("idle window not measured: %v s, RSS %d", rep.IdleS, rep.RSSSteady)
	}
	base, err := Run(ctx, Options{
		Operators: 5, Rate: 20, Duration: time.Second, Ring: 2, Target: TargetGorilla,
		Drain: time.Second, Settle: 200 * time.Millisecond, RelayBin: bin,
	})
	if err != nil {
		t.Fatalf("Run --target gorilla: %v", err)
	}
	if base.HTTPErrors != 0 || base.Lost != 0 || base.Delivered != base.Expected || base.Expected == 0 {
		t.Errorf("baseline: %d HTTP errors (%s), delivered %d of %d, lost %d", base.HTTPErrors, base.FirstError, base.Delivered, base.Expected, base.Lost)
	}
	var b strings.Builder
	if err := WriteComparison(&b, rep, base); err != nil || !strings.Contains(b.String(), "latency p99") {
		t.Errorf("comparison: %v\n%s", err, b.String())
	}
}
