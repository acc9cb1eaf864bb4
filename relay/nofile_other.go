//go:build !unix

package relay

// RaiseNoFile: no such limit to raise here.
func RaiseNoFile() (uint64, error) { return 0, nil }
