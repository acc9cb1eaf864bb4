//go:build unix

package relay

import "syscall"

// RaiseNoFile lifts the soft RLIMIT_NOFILE to the hard limit and returns
// it: every agent holds a connection (a file descriptor) for as long as it
// runs, and the load tool holds one per simulated operator, its relay
// inheriting the limit. (Go's os package raises it at start on Linux too;
// done explicitly so both can say the limit they work with.)
func RaiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return uint64(lim.Cur), nil
}
