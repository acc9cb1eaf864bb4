//go:build !windows

package main

import "testing"

// newTestEndpoint is an endpoint of the test's own.
func newTestEndpoint(t *testing.T) instanceEndpoint {
	t.Helper()
	dir := t.TempDir()
	env := func(k string) string {
		if k == "XDG_RUNTIME_DIR" {
			return dir
		}
		return ""
	}
	ep, err := newInstanceEndpoint(env, dir)
	if err != nil {
		t.Fatal(err)
	}
	return ep
}
