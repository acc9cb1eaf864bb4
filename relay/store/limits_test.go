package store

import (
	"context"
	"fmt"
	"testing"
)

func openTest(t *testing.T, dir string, o Options) *Store {
	t.Helper()
	o.DataDir = dir
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRepliesBoundedPerOperator: a flood of request ids from one operator
// evicts only that operator's oldest answers; another operator's stay, and
// so do the flooder's latest.
func TestRepliesBoundedPerOperator(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), Options{RequestIDsPerOperator: 64})
	defer s.Close()
	for i := range 20 {
		if err := s.SaveReply(ctx, "alice", fmt.Sprintf("a-%d", i), []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	const flood = 2000
	for i := range flood {
		if err := s.SaveReply(ctx, "mallory", fmt.Sprintf("m-%d", i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		got, err := s.LoadReply(ctx, "alice", fmt.Sprintf("a-%d", i))
		if err != nil || string(got) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Errorf("alice's a-%d after mallory's flood: %q, %v", i, got, err)
		}
	}
	kept := 0
	for i := range flood {
		if got, _ := s.LoadReply(ctx, "mallory", fmt.Sprintf("m-%d", i)); got != nil {
			kept++
		}
	}
	if kept > 64+replySlots || kept < 32 {
		t.Errorf("mallory has %d answers remembered; want about 64", kept)
	}
	if got, _ := s.LoadReply(ctx, "mallory", fmt.Sprintf("m-%d", flood-1)); got == nil {
		t.Error("mallory's latest answer was not remembered")
	}
	// A repeat is answered the same: saving it again keeps one entry.
	if err := s.SaveReply(ctx, "alice", "a-0", []byte(`{"n":0}`)); err != nil {
		t.Fatal(err)
	}
}

// TestLimitsAppliedToExistingData: a data directory made without byte
// limits opens with them, every stream and bucket gets its share, and the
// dead letters their count.
func TestLimitsAppliedToExistingData(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, Options{})
	if err := s.SaveReply(ctx, "alice", "x", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	const budget = 256 << 20
	s = openTest(t, dir, Options{MaxBytes: budget, DeadLetters: 100})
	defer s.Close()
	if got, _ := s.LoadReply(ctx, "alice", "x"); string(got) != `{}` {
		t.Errorf("reply kept across the reopen: %q", got)
	}
	us, err := s.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	seen := map[string]bool{}
	for _, u := range us {
		seen[u.Name] = true
		if u.Name == AccountName {
			if u.MaxBytes != budget {
				t.Errorf("account: max %d, want %d", u.MaxBytes, budget)
			}
			continue
		}
		if u.MaxBytes == 0 || u.MaxBytes != uint64(share(budget, u.Name)) {
			t.Errorf("%s: max bytes %d, want %d", u.Name, u.MaxBytes, share(budget, u.Name))
		}
		total += u.MaxBytes
		if u.Name == DeadStream && u.MaxMsgs != 100 {
			t.Errorf("dead letters: max %d messages, want 100", u.MaxMsgs)
		}
	}
	if total > budget {
		t.Errorf("limits add up to %d, over the budget %d", total, budget)
	}
	for name := range Shares {
		if !seen[name] && name != formerQueueStream { // only where an earlier relay left it
			t.Errorf("%s is not in Usage", name)
		}
	}
}

// TestDeadLettersBounded: beyond DeadLetters the oldest dead letters go.
func TestDeadLettersBounded(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), Options{MaxBytes: 128 << 20, DeadLetters: 10})
	defer s.Close()
	for i := range 25 {
		if _, err := s.js.Publish(ctx, DeadPrefix+"pbx.status", []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	info, err := s.dead.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 10 || info.State.FirstSeq != 16 {
		t.Errorf("dead letters: %d kept from seq %d; want the last 10 (from 16)", info.State.Msgs, info.State.FirstSeq)
	}
}
