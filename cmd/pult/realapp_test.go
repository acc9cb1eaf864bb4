//go:build desktop || wine

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Helpers of the tests that run the real app: desktop_test.go (Linux, Xvfb)
// and wine_test.go (Windows, Wine).

// lines collects a process's output and lets a test wait for a line.
type lines struct {
	mu   sync.Mutex
	all  []string
	wake chan struct{}
}

func newLines(r io.Reader) *lines {
	l := &lines{wake: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			l.all = append(l.all, sc.Text())
			l.mu.Unlock()
			select {
			case l.wake <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

func (l *lines) wait(t *testing.T, timeout time.Duration, re *regexp.Regexp) []string {
	t.Helper()
	return l.waitFrom(t, 0, timeout, re)
}

// waitFrom is wait for a line after the first from.
func (l *lines) waitFrom(t *testing.T, from int, timeout time.Duration, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(timeout)
	seen := from
	for {
		l.mu.Lock()
		for ; seen < len(l.all); seen++ {
			if m := re.FindStringSubmatch(l.all[seen]); m != nil {
				l.mu.Unlock()
				return m
			}
		}
		l.mu.Unlock()
		select {
		case <-l.wake:
		case <-deadline:
			t.Fatalf("no line matching %q within %s", re, timeout)
		}
	}
}

// count is how many lines there are so far.
func (l *lines) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

func (l *lines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

type proc struct {
	cmd  *exec.Cmd
	out  *lines
	done chan struct{} // closed when it has exited
}

// start runs a process for the test's lifetime.
func start(t *testing.T, env []string, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); pw.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return &proc{cmd, newLines(pr), done}
}

func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// procStats reads RSS (KiB) and CPU ticks (user+system) of pid.
func procStats(t *testing.T, pid int) (rssKiB int, ticks int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			rssKiB, _ = strconv.Atoi(strings.Fields(line)[1])
		}
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(st[strings.LastIndexByte(string(st), ')')+2:]))
	u, _ := strconv.Atoi(fields[11])
	s, _ := strconv.Atoi(fields[12])
	return rssKiB, u + s
}

// idle measures RSS and CPU over d.
func idle(t *testing.T, pid int, d time.Duration) (rssKiB int, cpuPct float64) {
	_, t0 := procStats(t, pid)
	time.Sleep(d)
	rss, t1 := procStats(t, pid)
	const hz = 100 // USER_HZ
	return rss, float64(t1-t0) / hz / d.Seconds() * 100
}

// lastLine is the last line of out containing s.
func lastLine(out, s string) string {
	lines := strings.Split(out, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}
