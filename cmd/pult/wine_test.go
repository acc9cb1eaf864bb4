//go:build wine

// The Windows test: the Windows app and its MSI, cross-built on Debian, run
// under Wine 10 and Xvfb in a Debian 13 root against the demo relay (with its
// simulated PBX) on the host's 127.0.0.1. `make test-windows` builds the MSI,
// makes the root once (.ci/wine-root) and runs this as root (it mounts /proc
// and /dev into the root and chroots).
//
// Environment: PULT_WINE_ROOT (the root), PULT_WINE_MSI (the MSI),
// PULT_WINE_OUT (a folder that keeps the screenshot and the figures).
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pult/pult/relay/looptest"
)

// wine runs Windows programs in one Wine prefix inside the root.
type wine struct {
	t       *testing.T
	root    string   // the Debian 13 root, on the host
	dir     string   // the test's folder, seen from inside the root
	env     []string // the environment inside the root
	display string
}

// host is where path (inside the root) is on the host.
func (w *wine) host(path string) string { return filepath.Join(w.root, path) }

// drive is Windows' name for path (inside the root): Wine maps / to Z:.
func (w *wine) drive(path string) string { return `Z:` + strings.ReplaceAll(path, "/", `\`) }

// cDrive is where path (on C:, with or without the drive) is on the host.
func (w *wine) cDrive(path string) string {
	rel := strings.ReplaceAll(strings.TrimPrefix(path, `C:\`), `\`, "/")
	return w.host(filepath.Join(w.dir, "prefix", "drive_c", filepath.FromSlash(rel)))
}

// command is args run inside the root, in the test's environment.
func (w *wine) command(ctx context.Context, extraEnv []string, args ...string) *exec.Cmd {
	all := append([]string{w.root, "env", "-i"}, w.env...)
	all = append(append(all, extraEnv...), args...)
	return exec.CommandContext(ctx, "chroot", all...)
}

// run runs a program (inside the root) to its end and returns its output.
func (w *wine) run(timeout time.Duration, extraEnv []string, args ...string) (string, error) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out bytes.Buffer
	cmd := w.command(ctx, extraEnv, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	return out.String(), err
}

// win runs a Windows program to its end.
func (w *wine) win(timeout time.Duration, extraEnv []string, args ...string) (string, error) {
	w.t.Helper()
	return w.run(timeout, extraEnv, append([]string{"/usr/lib/wine/wine64"}, args...)...)
}

// mustWin runs a Windows program and fails the test unless it exits 0.
func (w *wine) mustWin(timeout time.Duration, extraEnv []string, args ...string) string {
	w.t.Helper()
	out, err := w.win(timeout, extraEnv, args...)
	if err != nil {
		w.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// reg is the value of a registry key's value (name "" for the default),
// or ok=false when there is none.
func (w *wine) reg(key, name string) (value string, ok bool) {
	w.t.Helper()
	args := []string{"reg", "query", key}
	if name == "" {
		args = append(args, "/ve")
	} else {
		args = append(args, "/v", name)
	}
	out, err := w.win(time.Minute, nil, args...)
	if err != nil {
		return "", false
	}
	// "    (Default)    REG_SZ    value" or "    URL Protocol    REG_SZ    "
	re := regexp.MustCompile(`^\s+.*?\s+REG_[A-Z_]+(?:\s+(.*))?$`)
	for _, line := range strings.Split(strings.ReplaceAll(out, "\r", ""), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			return strings.TrimSpace(m[1]), true
		}
	}
	return "", false
}

// window is the X id of the window titled title, or "".
func (w *wine) window(title string) string {
	out, _ := w.run(20*time.Second, nil, "xwininfo", "-root", "-tree")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `"`+title+`"`) {
			return strings.Fields(line)[0]
		}
	}
	return ""
}

// screenshot saves X window win ("root": the whole screen) as to.
func (w *wine) screenshot(t *testing.T, win, to string) {
	t.Helper()
	in := w.dir + "/" + filepath.Base(to)
	if out, err := w.run(time.Minute, nil, "import", "-window", win, in); err != nil {
		t.Errorf("screenshot of %s: %v %s", win, err, out)
		return
	}
	copyFile(t, w.host(in), to)
}

// mount mounts into the root for the test's lifetime (unless it is mounted
// already).
func mount(t *testing.T, target string, args ...string) {
	t.Helper()
	if exec.Command("mountpoint", "-q", target).Run() == nil {
		return
	}
	if b, err := exec.Command("mount", append(args, target)...).CombinedOutput(); err != nil {
		t.Fatalf("mount %v %s: %v\n%s", args, target, err, b)
	}
	t.Cleanup(func() {
		if b, err := exec.Command("umount", target).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", target, err, b)
		}
	})
}

func TestWine(t *testing.T) {
	root, msi := os.Getenv("PULT_WINE_ROOT"), os.Getenv("PULT_WINE_MSI")
	if root == "" || msi == "" {
		t.Fatal("PULT_WINE_ROOT and PULT_WINE_MSI are not set: run through `make test-windows`")
	}
	if _, err := os.Stat(filepath.Join(root, ".pult-root")); err != nil {
		t.Fatalf("%s is not a finished Wine root (.ci/wine-root makes one): %v", root, err)
	}
	outDir := os.Getenv("PULT_WINE_OUT")
	if outDir == "" {
		outDir = t.TempDir()
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	msiInfo, err := os.Stat(msi)
	if err != nil {
		t.Fatal(err)
	}

	mount(t, filepath.Join(root, "proc"), "-t", "proc", "proc")
	mount(t, filepath.Join(root, "dev"), "--bind", "/dev")

	inside, err := os.MkdirTemp(filepath.Join(root, "tmp"), "pult-wine-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(inside) })
	w := &wine{t: t, root: root, dir: "/tmp/" + filepath.Base(inside)}
	prefix := w.dir + "/prefix"

	// An X server inside the root; it picks a free display itself.
	dpr, dpw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	xvfb := exec.Command("chroot", root, "Xvfb", "-displayfd", "3", "-noreset", "-screen", "0", "1280x800x24", "-nolisten", "tcp")
	xvfb.ExtraFiles = []*os.File{dpw}
	xvfb.Stderr = os.Stderr
	if err := xvfb.Start(); err != nil {
		t.Fatalf("Xvfb: %v", err)
	}
	dpw.Close()
	xvfbDone := make(chan struct{})
	go func() { xvfb.Wait(); close(xvfbDone) }()
	t.Cleanup(func() {
		xvfb.Process.Signal(syscall.SIGTERM) // it removes its lock file
		select {
		case <-xvfbDone:
		case <-time.After(10 * time.Second):
			xvfb.Process.Kill()
			<-xvfbDone
		}
	})
	num := make([]byte, 16)
	n, _ := dpr.Read(num)
	t.Cleanup(func() { dpr.Close() }) // Xvfb writes it again on a reset
	w.display = ":" + strings.TrimSpace(string(num[:n]))
	if w.display == ":" {
		t.Fatal("Xvfb did not say its display")
	}

	w.env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "USER=root", "LANG=C.UTF-8",
		"DISPLAY=" + w.display, "WINEPREFIX=" + prefix, "WINEDEBUG=-all",
		"WINEDLLOVERRIDES=mscoree,mshtml=", // no Mono or Gecko installer dialogs
	}
	t.Cleanup(func() {
		// Every Windows process of the prefix, before the mounts go.
		w.run(30*time.Second, nil, "/usr/lib/wine/wineserver", "-k")
		w.run(30*time.Second, nil, "/usr/lib/wine/wineserver", "-w")
	})
	began := time.Now()
	w.mustWin(3*time.Minute, nil, "wineboot", "--init")
	t.Logf("Wine prefix made in %s (display %s)", time.Since(began).Round(time.Millisecond), w.display)

	// The unit tests of the Windows code, built for Windows and run in the
	// prefix: the named pipe and the command line (cmd/pult), the Credential
	// Manager (agent/credentials, its real-keyring test included).
	for _, pkg := range []struct{ path, run string }{
		{"./cmd/pult", "Instance|Usage|Credentials|Login|Status|Watch|Queue|Callback|StartFailure|StartLogPath"},
		{"./agent/credentials", "."},
	} {
		exe := w.dir + "/" + filepath.Base(pkg.path) + ".test.exe"
		compile := exec.Command("go", "test", "-c", "-tags", "ci", "-o", w.host(exe), pkg.path)
		compile.Dir = "../.."
		compile.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
		if b, err := compile.CombinedOutput(); err != nil {
			t.Fatalf("building %s's tests for Windows: %v\n%s", pkg.path, err, b)
		}
		out, err := w.win(5*time.Minute, []string{"PULT_TEST_KEYRING=1", "CI=true"}, exe, "-test.v", "-test.run", pkg.run)
		if err != nil {
			t.Errorf("%s's tests under Wine: %v\n%s", pkg.path, err, out)
			continue
		}
		t.Logf("%s's tests under Wine: %d passed, %d skipped", pkg.path,
			strings.Count(out, "--- PASS"), strings.Count(out, "--- SKIP"))
	}

	// The demo relay on the host; its PBX rings operator 100 every 2 s.
	dir := t.TempDir()
	relayBin := build(t, filepath.Join(dir, "bin"), "./cmd/pult-relay")
	addr := looptest.Addr(t)
	demoDir := filepath.Join(dir, "demo")
	env := append(os.Environ(), "LANG=en_US.UTF-8")
	demo := start(t, env, relayBin, "demo", "--listen", addr, "--data-dir", demoDir, "--every", "2s")
	demo.out.wait(t, 30*time.Second, regexp.MustCompile(`pult demo: relay at`))
	relayURL := "http://" + addr

	// (a) The MSI installs silently, per user, and registers tel: and callto:.
	msiIn := w.dir + "/" + filepath.Base(msi)
	copyFile(t, msi, w.host(msiIn))
	began = time.Now()
	w.mustWin(3*time.Minute, nil, "msiexec", "/i", w.drive(msiIn), "/qn")
	t.Logf("silent install: %s", time.Since(began).Round(time.Millisecond))
	installDir := `C:\users\root\AppData\Local\Programs\pult`
	for _, f := range []string{"pult.exe", "pult-cli.exe", "pult.ico"} {
		if _, err := os.Stat(w.cDrive(installDir + `\` + f)); err != nil {
			t.Fatalf("not installed: %v", err)
		}
	}
	pultExe, cliExe := installDir+`\pult.exe`, installDir+`\pult-cli.exe`
	for _, scheme := range []string{"tel", "callto"} {
		cmd, ok := w.reg(`HKCU\Software\Classes\`+scheme+`\shell\open\command`, "")
		if want := `"` + pultExe + `" "%1"`; !ok || !strings.EqualFold(cmd, want) {
			t.Errorf("%s: open command %q (found %v), want %q", scheme, cmd, ok, want)
		}
		if _, ok := w.reg(`HKCU\Software\Classes\`+scheme, "URL Protocol"); !ok {
			t.Errorf("%s is not marked as a URL protocol", scheme)
		}
	}
	if v, ok := w.reg(`HKCU\Software\Microsoft\Windows\CurrentVersion\Run`, "pult"); ok {
		t.Errorf("started at logon without AUTOSTART=1: %q", v)
	}
	shortcut := w.cDrive(`users\root\AppData\Roaming\Microsoft\Windows\Start Menu\Programs\pult.lnk`)
	if _, err := os.Stat(shortcut); err != nil {
		t.Errorf("no Start-menu shortcut: %v", err)
	}
	// The notifications' app id (fyne's toasts name io.github.pult).
	const aumid = `HKCU\Software\Classes\AppUserModelId\io.github.pult`
	if v, ok := w.reg(aumid, "DisplayName"); !ok || v != "pult" {
		t.Errorf("%s DisplayName %q (found %v)", aumid, v, ok)
	}
	if v, ok := w.reg(aumid, "IconUri"); !ok || !strings.EqualFold(v, installDir+`\pult.ico`) {
		t.Errorf("%s IconUri %q (found %v)", aumid, v, ok)
	}

	// A start that fails says why in %LOCALAPPDATA%\pult\pult.log (and a
	// message box, which the test skips: nobody would close it), as
	// pult.exe has no console: a link without a number, a bad PULT_RELAY.
	noBox := []string{"PULT_TEST_NO_MESSAGEBOX=1", "PULT_LANG=ru"}
	if out, err := w.win(time.Minute, noBox, pultExe, "tel:"); err == nil {
		t.Errorf("pult.exe tel: exited 0: %s", out)
	}
	if out, err := w.win(time.Minute, append(noBox, "PULT_RELAY=ftp://relay.example", "PULT_TOKEN=t"), pultExe); err == nil {
		t.Errorf("pult.exe with PULT_RELAY=ftp://… exited 0: %s", out)
	}
	startLog, err := os.ReadFile(w.cDrive(`users\root\AppData\Local\pult\pult.log`))
	if err != nil {
		t.Errorf("no start log: %v", err)
	} else if lines := strings.Split(strings.TrimSpace(string(startLog)), "\n"); len(lines) != 2 ||
		!strings.Contains(lines[0], `pult did not start: the link "tel:" has no number`) ||
		!strings.Contains(lines[1], "pult did not start: PULT_RELAY: ") {
		t.Errorf("the start log:\n%s", startLog)
	}

	// (b) The command line signs in into the Windows credential store;
	// status and watch use it, with no PULT_TOKEN.
	tokenIn := w.dir + "/100.token"
	copyFile(t, filepath.Join(demoDir, "100.token"), w.host(tokenIn))
	token, _ := os.ReadFile(filepath.Join(demoDir, "100.token"))
	out := w.mustWin(time.Minute, nil, cliExe, "login", "--relay", relayURL, "--token-file", w.drive(tokenIn))
	t.Logf("pult-cli login: %s", strings.TrimSpace(out))
	os.Remove(w.host(tokenIn))
	cfgFile := w.cDrive(`users\root\AppData\Roaming\pult\config.json`)
	cfg, err := os.ReadFile(cfgFile)
	if err != nil || !strings.Contains(string(cfg), relayURL) {
		t.Fatalf("the relay URL is not in %%APPDATA%%\\pult\\config.json: %v %s", err, cfg)
	}
	filepath.WalkDir(w.host(prefix), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") {
			if b, _ := os.ReadFile(p); bytes.Contains(b, bytes.TrimSpace(token)) {
				t.Errorf("the token is written in %s", p)
			}
		}
		return nil
	})
	// The token is in Wine's credential store, as go-keyring names it
	// (service "pult", the relay URL as the user), encrypted there.
	credKey := `HKCU\Software\Wine\Credential Manager`
	creds, err := w.win(time.Minute, nil, "reg", "query", credKey, "/s")
	if err != nil || !strings.Contains(creds, "pult:"+relayURL) {
		t.Errorf("no pult:%s in %s: %v\n%s", relayURL, credKey, err, creds)
	}
	if strings.Contains(creds, strings.TrimSpace(string(token))) {
		t.Errorf("the token is readable in %s", credKey)
	}
	out = w.mustWin(time.Minute, nil, cliExe, "status")
	if !strings.Contains(out, "(code 100)") {
		t.Errorf("pult-cli status: %q", out)
	}
	w.mustWin(time.Minute, nil, cliExe, "status", "busy")
	demo.out.wait(t, 15*time.Second, regexp.MustCompile(`PBX: extension 100 is now busy`))
	w.mustWin(time.Minute, nil, cliExe, "status", "free")
	watch := start(t, env, "chroot", append(append([]string{root, "env", "-i"}, w.env...), "/usr/lib/wine/wine64", cliExe, "watch")...)
	watch.out.wait(t, 30*time.Second, regexp.MustCompile(`^\{"event":"hello".*"code":"100"`))
	watch.cmd.Process.Kill()

	// (c) The tray app starts and stays up.
	appEnv := append(append([]string{}, w.env...), "PULT_DEBUG=1")
	began = time.Now()
	app := start(t, env, "chroot", append(append([]string{root, "env", "-i"}, appEnv...), "/usr/lib/wine/wine64", pultExe)...)
	app.out.wait(t, 60*time.Second, regexp.MustCompile(`msg="tray menu ready"`))
	trayReady := time.Since(began)

	// (d) An incoming call draws a card.
	shownRe := regexp.MustCompile(`msg="card shown".*latency=([0-9.]+[µm]?s)`)
	app.out.wait(t, 30*time.Second, shownRe)
	var cardWin string
	eventually(t, 20*time.Second, "the calls window", func() bool {
		cardWin = w.window("pult — calls")
		return cardWin != ""
	})
	time.Sleep(time.Second) // let the card draw
	w.screenshot(t, "root", filepath.Join(outDir, "wine-desktop.png"))
	w.screenshot(t, cardWin, filepath.Join(outDir, "wine-card.png"))

	// (e) A second pult.exe with a tel: link hands it to the first and
	// exits 0; the first opens its dialer with the number.
	from := app.out.count()
	out, err = w.win(time.Minute, nil, pultExe, "tel:+79161234567")
	if err != nil {
		t.Fatalf("the second pult.exe: %v\n%s", err, out)
	}
	app.out.waitFrom(t, from, 20*time.Second, regexp.MustCompile(`msg="handed over by another pult" .*dial=true`))
	var dialWin string
	eventually(t, 20*time.Second, "the dialer", func() bool {
		dialWin = w.window("pult — dial")
		return dialWin != ""
	})
	time.Sleep(time.Second) // let it draw
	w.screenshot(t, dialWin, filepath.Join(outDir, "wine-dialer.png"))
	select {
	case <-app.done:
		t.Fatalf("the app ended:\n%s", app.out.text())
	default:
	}
	if strings.Contains(app.out.text(), "another pult is running") || strings.Contains(app.out.text(), "panic") {
		t.Errorf("the app's log:\n%s", app.out.text())
	}
	app.cmd.Process.Kill()
	<-app.done
	w.run(30*time.Second, nil, "/usr/lib/wine/wineserver", "-w")

	// Signing out takes the token out of the credential store.
	w.mustWin(time.Minute, nil, cliExe, "logout", "--discard")
	if creds, _ := w.win(time.Minute, nil, "reg", "query", credKey, "/s"); strings.Contains(creds, "pult:"+relayURL) {
		t.Errorf("pult:%s is still in %s after logout:\n%s", relayURL, credKey, creds)
	}

	// Figures: start to tray and idle CPU of the supervisor, whom the
	// demo PBX never rings (the loop parks with no window shown).
	sup, _ := os.ReadFile(filepath.Join(demoDir, "102.token"))
	supEnv := append(append([]string{}, appEnv...), "PULT_RELAY="+relayURL, "PULT_TOKEN="+strings.TrimSpace(string(sup)))
	began = time.Now()
	app = start(t, env, "chroot", append(append([]string{root, "env", "-i"}, supEnv...), "/usr/lib/wine/wine64", pultExe)...)
	app.out.wait(t, 60*time.Second, regexp.MustCompile(`msg="tray menu ready"`))
	trayReady2 := time.Since(began)
	app.out.wait(t, 30*time.Second, regexp.MustCompile(`msg="loop parked`))
	rss, cpu := idle(t, app.cmd.Process.Pid, 10*time.Second)
	server := wineserverPID(t, root)
	var serverCPU float64
	if server > 0 {
		_, serverCPU = idle(t, server, 10*time.Second)
	}
	if !strings.Contains(lastLine(app.out.text(), `msg="loop `), `msg="loop parked`) {
		t.Errorf("the loop did not stay parked while idle:\n%s", app.out.text())
	}
	// A link handed over while the loop is parked wakes it.
	from = app.out.count()
	w.mustWin(time.Minute, nil, pultExe, "callto:+74951234567")
	app.out.waitFrom(t, from, 20*time.Second, regexp.MustCompile(`msg="loop woken"`))
	eventually(t, 20*time.Second, "the dialer", func() bool { return w.window("pult — dial") != "" })
	app.cmd.Process.Kill()
	<-app.done
	w.run(30*time.Second, nil, "/usr/lib/wine/wineserver", "-w")

	// (f) Uninstalling removes the files and the registration.
	w.mustWin(3*time.Minute, nil, "msiexec", "/x", w.drive(msiIn), "/qn")
	for _, scheme := range []string{"tel", "callto"} {
		if _, ok := w.reg(`HKCU\Software\Classes\`+scheme+`\shell\open\command`, ""); ok {
			t.Errorf("%s: is still registered after uninstalling", scheme)
		}
	}
	if _, ok := w.reg(aumid, "DisplayName"); ok {
		t.Errorf("%s is still there after uninstalling", aumid)
	}
	if _, err := os.Stat(shortcut); err == nil {
		t.Error("the Start-menu shortcut is still there after uninstalling")
	}
	if _, err := os.Stat(w.cDrive(installDir + `\pult.exe`)); err == nil {
		t.Error("pult.exe is still there after uninstalling")
	}

	// (g) AUTOSTART=1 starts pult at logon, until uninstalled.
	w.mustWin(3*time.Minute, nil, "msiexec", "/i", w.drive(msiIn), "/qn", "AUTOSTART=1")
	if v, ok := w.reg(`HKCU\Software\Microsoft\Windows\CurrentVersion\Run`, "pult"); !ok || !strings.EqualFold(v, `"`+pultExe+`"`) {
		t.Errorf("AUTOSTART=1: Run value %q (found %v)", v, ok)
	}
	w.mustWin(3*time.Minute, nil, "msiexec", "/x", w.drive(msiIn), "/qn")
	if _, ok := w.reg(`HKCU\Software\Microsoft\Windows\CurrentVersion\Run`, "pult"); ok {
		t.Error("the Run value is still there after uninstalling")
	}

	figures := fmt.Sprintf("MSI: %d bytes (%.1f MB)\n"+
		"start to tray menu ready: %s (operator, first start in the prefix), %s (supervisor)\n"+
		"tray only, idle (loop parked), 10 s: pult.exe RSS %d KiB, CPU %.2f%% of a core; wineserver CPU %.2f%%\n",
		msiInfo.Size(), float64(msiInfo.Size())/1e6, trayReady.Round(time.Millisecond), trayReady2.Round(time.Millisecond),
		rss, cpu, serverCPU)
	t.Log("\n" + figures)
	os.WriteFile(filepath.Join(outDir, "figures.txt"), []byte(figures), 0o644)
	t.Logf("screenshots and figures in %s", outDir)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// wineserverPID is the pid of the wineserver running in root, or 0.
func wineserverPID(t *testing.T, root string) int {
	realRoot, _ := filepath.EvalSymlinks(root)
	ms, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, m := range ms {
		exe, err := os.Readlink(m)
		if err != nil || !(strings.HasSuffix(exe, "/wineserver") || strings.HasSuffix(exe, "/wineserver64")) {
			continue
		}
		if r, _ := os.Readlink(filepath.Join(filepath.Dir(m), "root")); r == root || r == realRoot {
			var pid int
			fmt.Sscanf(filepath.Base(filepath.Dir(m)), "%d", &pid)
			return pid
		}
	}
	return 0
}
