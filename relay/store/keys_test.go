package store

import "testing"

func TestCallKey(t *testing.T) {
	if CallKey("x", "+7") == CallKey("", "+7") || CallKey("x", "") != CallKey("x", "+7") {
		t.Fatal("call keys: by id when given, by number otherwise")
	}
}
