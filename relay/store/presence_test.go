package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pult/pult/relay/store"
)

// A lease is held by one holder at a time: taken by a create, renewed at
// its revision, free again when released or when it expires; presence
// records reach watchers, and so does their expiry.
func TestLeaseAndPresence(t *testing.T) {
	ctx := context.Background()
	const ttl = time.Second
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir(), PresenceTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	rev, err := st.TakeLease(ctx, "l", "a")
	if err != nil || rev == 0 {
		t.Fatalf("take: %d %v", rev, err)
	}
	if r, err := st.TakeLease(ctx, "l", "b"); err != nil || r != 0 {
		t.Fatalf("taken again while held: %d %v", r, err)
	}
	if rev, err = st.RenewLease(ctx, "l", "a", rev); err != nil || rev == 0 {
		t.Fatalf("renew: %d %v", rev, err)
	}
	if r, err := st.RenewLease(ctx, "l", "b", rev-1); err != nil || r != 0 {
		t.Fatalf("renewed at an old revision: %d %v", r, err)
	}
	if err := st.ReleaseLease(ctx, "l", rev); err != nil {
		t.Fatal(err)
	}
	if rev, err = st.TakeLease(ctx, "l", "b"); err != nil || rev == 0 {
		t.Fatalf("take after release: %d %v", rev, err)
	}
	// b stops renewing: the lease expires.
	deadline := time.Now().Add(ttl + 3*time.Second)
	for {
		r, err := st.TakeLease(ctx, "l", "c")
		if err != nil {
			t.Fatal(err)
		}
		if r != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lease did not expire")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r, err := st.RenewLease(ctx, "l", "b", rev); err != nil || r != 0 {
		t.Fatalf("b renewed a lease that expired and c took: %d %v", r, err)
	}

	var mu sync.Mutex
	seen := map[string][]string{}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	synced := make(chan struct{})
	go func() {
		done <- st.WatchPresence(wctx, func(node string, data []byte, _ time.Time) {
			mu.Lock()
			seen[node] = append(seen[node], string(data))
			mu.Unlock()
		}, func() { close(synced) })
	}()
	<-synced
	if err := st.PutPresence(ctx, "n1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := st.PutPresence(ctx, "n2", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if err := st.DeletePresence(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	// Removals may be told twice (the delete, then the expiry of the
	// delete marker), and a record replaced before the watch reached it
	// is skipped (the bucket keeps one revision a key): the watcher takes
	// each record as the whole truth.
	removed := func(seen []string, first string) bool {
		if len(seen) == 0 || seen[len(seen)-1] != "" || (first != "" && seen[0] != first) {
			return false
		}
		return true
	}
	deadline = time.Now().Add(ttl + 3*time.Second)
	for {
		mu.Lock()
		n1, n2 := append([]string(nil), seen["n1"]...), append([]string(nil), seen["n2"]...)
		mu.Unlock()
		if removed(n1, "x") && removed(n2, "") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("seen: n1 %q, n2 %q; want n2 removed and n1 expired", n1, n2)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
