//go:build unix

package main

import "syscall"

// raiseNoFile lifts the soft RLIMIT_NOFILE to the hard limit: every agent
// holds a connection (a file descriptor) for as long as it runs. (Go's os
// package already does this at start on Linux; done here explicitly so the
// relay logs the limit it serves with.)
func raiseNoFile() (uint64, error) {
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
