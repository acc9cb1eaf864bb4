//go:build unix

package demo

import (
	"os/exec"
	"syscall"
)

// ownGroup puts cmd in a process group of its own: the terminal's Ctrl+C
// reaches the demo alone, which stops its relays in order.
func ownGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }
