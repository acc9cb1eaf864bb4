//go:build !unix

package sockfile

// lock: no flock here; Listen relies on probing the socket alone.
func lock(string) (func(), error) { return func() {}, nil }
