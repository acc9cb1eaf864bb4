//go:build !linux

package bench

import (
	"errors"
	"syscall"
)

const clockTicks = 100

var errNoProc = errors.New("process figures need Linux /proc")

func childAttr() *syscall.SysProcAttr { return nil }
func rss(pid int) (int64, error)      { return 0, errNoProc }
func cpuTicks(pid int) (int64, error) { return 0, errNoProc }
