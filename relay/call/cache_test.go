package call

import (
	"fmt"
	"testing"
)

func TestCallCacheGenerations(t *testing.T) {
	c := NewCache(2)
	put := func(key string) { c.Put(key, &Record{Key: key, Legs: map[string]*Leg{}}, 1) }
	has := func(key string) bool { _, _, ok := c.Get(key); return ok }
	put("a")
	put("b")
	put("c")       // a and b move to prev
	if !has("a") { // back to cur, with c
		t.Fatal("a forgotten a generation early")
	}
	put("d") // cur (c, a) moves to prev: b is forgotten
	if has("b") {
		t.Error("b kept beyond two generations")
	}
	for _, k := range []string{"a", "c", "d"} {
		if !has(k) {
			t.Errorf("%s forgotten", k)
		}
	}
	c.Drop("a")
	if has("a") {
		t.Error("a kept after drop")
	}
}

func TestCallCacheCopies(t *testing.T) {
	c := NewCache(4)
	rec := &Record{Key: "k", Legs: map[string]*Leg{"op1": {Code: "100"}}}
	c.Put("k", rec, 7)
	rec.Legs["op1"].Stopped = true // the caller's record changes after put
	rec.Legs["op2"] = &Leg{Code: "101"}
	got, rev, ok := c.Get("k")
	if !ok || rev != 7 || len(got.Legs) != 1 || got.Legs["op1"].Stopped {
		t.Fatalf("cached %v rev %d: changed with the caller's record", fmt.Sprint(got.Legs), rev)
	}
	got.Legs["op1"].Stopped = true // and the copy handed out
	again, _, _ := c.Get("k")
	if again.Legs["op1"].Stopped {
		t.Error("cached record changed through a copy handed out")
	}
}

func BenchmarkCallCacheGet(b *testing.B) {
	c := NewCache(CacheGeneration)
	c.Put("k", &Record{Key: "k", Legs: map[string]*Leg{"op1": {Code: "100", Name: "Anna"}, "op2": {Code: "101", Name: "Boris"}}}, 1)
	b.ReportAllocs()
	for b.Loop() {
		c.Get("k")
	}
}
