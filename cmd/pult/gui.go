package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"

	"fyne.io/fyne/v2/app"
	"github.com/jeandeaual/go-locale"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/ui"
)

// appID is the desktop app's id (FyneApp.toml, the .desktop file).
const appID = "io.github.pult"

// isLink reports whether arg is a tel: or callto: link (from a browser or
// the CRM, through the .desktop file's URL handler).
func isLink(arg string) bool {
	l := strings.ToLower(arg)
	return strings.HasPrefix(l, "tel:") || strings.HasPrefix(l, "callto:")
}

// linkNumber returns the number in a tel: or callto: link.
func linkNumber(link string) (string, error) {
	if len(link) > 256 {
		return "", fmt.Errorf("link too long")
	}
	i := strings.IndexByte(link, ':')
	rest := link[i+1:]
	rest = strings.TrimPrefix(rest, "//")
	if j := strings.IndexAny(rest, ";?"); j >= 0 {
		rest = rest[:j] // ;phone-context=…, ?call
	}
	num, err := url.PathUnescape(rest)
	if err != nil {
		return "", fmt.Errorf("bad link %q: %v", link, err)
	}
	num = strings.TrimSpace(num)
	if num == "" {
		return "", fmt.Errorf("the link %q has no number", link)
	}
	return num, nil
}

// gui runs the desktop app: the tray (or a main window where there is no
// tray) until Quit or a signal.
func (c *cli) gui(ctx context.Context, args []string) int {
	dialNumber := ""
	if len(args) > 0 {
		n, err := linkNumber(args[0])
		if err != nil {
			fmt.Fprintf(c.stderr, "pult: %v\n", err)
			if c.report != nil {
				c.report.report(c.languages(), args[0], err.Error())
			}
			return exitUsage
		}
		dialNumber = n
	}
	region := c.env("PULT_REGION")
	if region == "" {
		region = phone.DefaultRegion
	}

	stateDir, err := c.configDir()
	if err != nil {
		return c.fail(exitError, "%v", err)
	}

	cfg := ui.Config{
		Credentials: c.store,
		StateDir:    stateDir,
		Region:      region,
		Languages:   c.languages(),
		DialNumber:  dialNumber,
		Logger:      c.guiLogger(),
	}
	url, token := strings.TrimSpace(c.env("PULT_RELAY")), strings.TrimSpace(c.env("PULT_TOKEN"))
	switch {
	case url != "" && token != "":
		login, code := c.credentials() // PULT_INSECURE too
		if code != 0 {
			return code
		}
		if _, err := agent.ParseRelayURL(url); err != nil {
			return c.fail(exitUsage, "PULT_RELAY: %v", err)
		}
		cfg.Fixed = &login
	case url != "" || token != "":
		return c.fail(exitUsage, "set both PULT_RELAY and PULT_TOKEN, or neither to use the stored sign-in")
	}

	// One app per user session: a second start (a tel: link, the menu
	// entry) hands its request to the running one.
	ep, err := newInstanceEndpoint(c.env, stateDir)
	if err != nil {
		return c.fail(exitError, "cannot set up the single-instance endpoint: %v", err)
	}
	l, handed, err := claimInstance(ep, dialNumber)
	switch {
	case err != nil:
		return c.fail(exitError, "%v", err)
	case handed:
		c.log.Info("handed to the running pult", "endpoint", ep.String())
		fmt.Fprintln(c.stdout, "pult is already running: passed on to it.")
		return exitOK
	}
	defer l.Close()

	if err := ui.TrayHost(c.env("DBUS_SESSION_BUS_ADDRESS")); err != nil {
		c.log.Info("running with a window instead of a tray icon", "why", err)
		fmt.Fprintf(c.stderr, "pult: %v: running with a window instead of a tray icon\n", err)
	} else {
		cfg.Tray = true
	}

	if path := c.env("PULT_CPUPROFILE"); path != "" {
		// For BENCHMARKS.md: where an idle app spends its CPU.
		f, err := os.Create(path)
		if err != nil {
			return c.fail(exitUsage, "PULT_CPUPROFILE: %v", err)
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}

	fa := app.NewWithID(appID)
	fa.SetIcon(ui.AppIcon)
	a := ui.New(fa, cfg)

	ictx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveInstance(ictx, l, a.Open, cfg.Logger)
	}()
	defer func() { cancel(); <-done }()
	if err := a.Run(ctx); err != nil {
		return c.fail(exitError, "%v", err)
	}
	return exitOK
}

// configDir is PULT_CONFIG_DIR, or <user config dir>/pult: the stored
// relay URL, the agent's state per sign-in and the recent calls.
func (c *cli) configDir() (string, error) {
	if dir := c.env("PULT_CONFIG_DIR"); dir != "" {
		return dir, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory: %w", err)
	}
	return filepath.Join(dir, "pult"), nil
}

// languages are the operator's languages for the desktop app: PULT_LANG
// (ru or en), else the OS's (on Linux LANGUAGE, LC_ALL, LC_MESSAGES and
// LANG; on Windows the user's display languages).
func (c *cli) languages() []string {
	if l := strings.TrimSpace(c.env("PULT_LANG")); l != "" {
		return []string{l}
	}
	all, err := locale.GetLocales()
	if err != nil {
		c.log.Warn("the OS's languages are unknown: using English", "err", err)
	}
	return all
}

// guiLogger logs to stderr: warnings, or everything with PULT_DEBUG.
func (c *cli) guiLogger() *slog.Logger {
	level := slog.LevelWarn
	if c.env("PULT_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: level}))
}
