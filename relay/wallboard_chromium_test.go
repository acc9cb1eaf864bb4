//go:build unix

package relay_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/operators"
)

// The wallboard in a real headless Chromium, driven over the Chrome
// DevTools Protocol: it shows the operators, a call waiting appears live,
// and a wrong token gets a plain error.
func TestWallboardInChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed (apt-get install chromium; make deps does it)")
		}
		t.Skip("chromium is not installed (apt-get install chromium): the wallboard's browser test is skipped")
	}
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	_, supTok := r.addSupervisor("Sofia Volkova", "900", "9")
	_, annaTok := r.addOperator("Anna Smirnova", "100", "1")
	r.addOperator("Boris Orlov", "101", "2")
	anna := startAgent(t, r.URL, annaTok, nil)
	anna.waitOnline()

	cdp := startChromium(t, bin)
	page := cdp.newPage()
	page.call("Emulation.setDeviceMetricsOverride", map[string]any{"width": 1920, "height": 1080, "deviceScaleFactor": 1, "mobile": false}, nil)

	page.navigate(r.URL + "/board#token=" + supTok)
	page.waitText("the operators", "Anna Smirnova", "Boris Orlov", "Sofia Volkova", "No calls waiting")

	r.callEvent(map[string]any{"type": "in", "phone": "+79121234567", "codes": []string{"100", "101"}, "callExternalId": "tv1", "site": "shop1"})
	text := page.waitText("the call waiting", "8 (912) 123-45-67", "ringing 100, 101")
	if strings.Contains(text, "No calls waiting") {
		t.Errorf("the board still says no calls are waiting:\n%s", text)
	}
	// The wait timer runs on the page, between deltas: it shows m:ss and
	// moves on by itself.
	timer := func() string { return page.eval(`document.querySelector('#waiting .t').textContent`) }
	first := timer()
	deadline := time.Now().Add(10 * time.Second)
	for now := timer(); !regexp.MustCompile(`^0:0[1-9]$`).MatchString(now) || now == first; now = timer() {
		if time.Now().After(deadline) {
			t.Fatalf("the wait timer went from %q to %q", first, now)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if path := os.Getenv("PULT_BOARD_SCREENSHOT"); path != "" {
		page.screenshot(path)
	}

	// In Russian, as the browser asks (Accept-Language and
	// navigator.languages both follow this override).
	ua := page.eval(`navigator.userAgent`)
	page.call("Network.setUserAgentOverride", map[string]any{"userAgent": ua, "acceptLanguage": "ru-RU,ru"}, nil)
	page.navigate("about:blank")
	page.navigate(r.URL + "/board#token=" + supTok)
	page.waitText("the board in Russian", "Очередь", "Звонки в очереди", "8 (912) 123-45-67", "звонит у 100, 101",
		"звонок ждёт", "Не в сети", "отвечено 0 · пропущено 0 · исх. 0")
	if lang := page.eval(`document.documentElement.lang`); lang != "ru" {
		t.Errorf("the Russian page's lang is %q", lang)
	}
	if path := os.Getenv("PULT_BOARD_SCREENSHOT"); path != "" {
		page.screenshot(strings.TrimSuffix(path, ".png") + "-ru.png")
	}
	page.navigate("about:blank")
	page.navigate(r.URL + "/board?lang=ru#token=pult_wrong_token")
	page.waitText("the error for a wrong token, in Russian", "Сервер не знает этот токен.", "Токен руководителя или табло")
	// ?lang=en wins over the browser's Russian.
	page.navigate("about:blank")
	page.navigate(r.URL + "/board?lang=en#token=" + supTok)
	page.waitText("?lang=en in a Russian browser", "Calls waiting", "ringing 100, 101", "Offline")
	page.call("Network.setUserAgentOverride", map[string]any{"userAgent": ua, "acceptLanguage": "en-US,en"}, nil)

	page.navigate("about:blank")
	page.navigate(r.URL + "/board#token=pult_wrong_token")
	page.waitText("the error for a wrong token", "The relay does not know this token.", "Supervisor or wallboard token")
	page.navigate("about:blank")
	page.navigate(r.URL + "/board#token=" + annaTok)
	page.waitText("the error for an operator's token", "the board needs a supervisor's")

	// A wallboard's token: once read, it is neither in the address bar nor
	// in the history, and a reload of the screen keeps the board.
	added, err := r.admin().AddOperator(context.Background(), operators.NewOperator{Name: "Hall TV", Role: wire.RoleWallboard})
	if err != nil {
		t.Fatal(err)
	}
	page.navigate("about:blank")
	page.navigate(r.URL + "/board#token=" + added.Token)
	page.waitText("the board on a wallboard's token", "Anna Smirnova", "ringing 100, 101")
	if href := page.eval(`location.href`); href != r.URL+"/board" {
		t.Errorf("the address bar shows %q", href)
	}
	var hist struct {
		Entries []struct{ URL string } `json:"entries"`
	}
	page.call("Page.getNavigationHistory", nil, &hist)
	for _, e := range hist.Entries {
		if strings.Contains(e.URL, added.Token) || strings.Contains(e.URL, supTok) {
			t.Errorf("a token is in the history: %s", e.URL)
		}
	}
	page.call("Page.reload", nil, nil)
	page.waitText("the board after a reload", "Anna Smirnova", "ringing 100, 101")
	if text := page.text(); strings.Contains(text, "Hall TV") {
		t.Errorf("the wallboard is on the board:\n%s", text)
	}
}

// cdpClient is a minimal Chrome DevTools Protocol client over gorilla's
// websocket: commands with ids, answers matched by id, events ignored.
type cdpClient struct {
	t    *testing.T
	conn *websocket.Conn
	done chan struct{}

	mu      sync.Mutex
	next    int
	waiting map[int]chan cdpAnswer
}

type cdpAnswer struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

type cdpPage struct {
	c       *cdpClient
	session string
}

// startChromium runs a headless Chromium with its own profile and reads
// the DevTools websocket address it prints.
func startChromium(t *testing.T, bin string) *cdpClient {
	t.Helper()
	profile := t.TempDir()
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir="+profile, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	exited := make(chan struct{})
	found := make(chan string, 1)
	var logMu sync.Mutex
	var log strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			logMu.Lock()
			log.WriteString(line + "\n")
			logMu.Unlock()
			if u, ok := strings.CutPrefix(line, "DevTools listening on "); ok {
				select {
				case found <- strings.TrimSpace(u):
				default:
				}
			}
		}
		cmd.Wait()
		close(exited)
	}()
	stop := func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) // the group this test started
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	var wsURL string
	select {
	case wsURL = <-found:
	case <-exited:
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("chromium exited at start:\n%s", log.String())
	case <-time.After(30 * time.Second):
		stop()
		t.Fatal("chromium did not print its DevTools address within 30s")
	}
	if !strings.HasPrefix(wsURL, "ws://127.0.0.1:") {
		stop()
		t.Fatalf("DevTools address %q is not on loopback", wsURL)
	}
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, nil)
	if err != nil {
		stop()
		t.Fatalf("DevTools: %v", err)
	}
	conn.SetReadLimit(64 << 20)
	c := &cdpClient{t: t, conn: conn, done: make(chan struct{}), waiting: map[int]chan cdpAnswer{}}
	go c.read()
	t.Cleanup(func() {
		c.conn.Close()
		<-c.done
		stop()
	})
	return c
}

func (c *cdpClient) read() {
	defer close(c.done)
	for {
		var msg struct {
			ID int `json:"id"`
			cdpAnswer
		}
		if err := c.conn.ReadJSON(&msg); err != nil {
			return
		}
		if msg.ID == 0 {
			continue // an event
		}
		c.mu.Lock()
		ch := c.waiting[msg.ID]
		delete(c.waiting, msg.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- msg.cdpAnswer
		}
	}
}

func (c *cdpClient) call(session, method string, params, out any) error {
	c.mu.Lock()
	c.next++
	id := c.next
	ch := make(chan cdpAnswer, 1)
	c.waiting[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	c.mu.Lock()
	err := c.conn.WriteJSON(msg)
	c.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case a := <-ch:
		if a.Error != nil {
			return fmt.Errorf("%s: %s", method, a.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(a.Result, out)
		}
		return nil
	case <-time.After(15 * time.Second):
		return fmt.Errorf("%s: no answer within 15s", method)
	case <-c.done:
		return errors.New(method + ": DevTools connection closed")
	}
}

// newPage opens a tab and attaches to it (a flat session).
func (c *cdpClient) newPage() *cdpPage {
	c.t.Helper()
	var target struct {
		TargetID string `json:"targetId"`
	}
	if err := c.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target); err != nil {
		c.t.Fatal(err)
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := c.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att); err != nil {
		c.t.Fatal(err)
	}
	return &cdpPage{c: c, session: att.SessionID}
}

func (p *cdpPage) call(method string, params, out any) {
	p.c.t.Helper()
	if err := p.c.call(p.session, method, params, out); err != nil {
		p.c.t.Fatal(err)
	}
}

func (p *cdpPage) navigate(url string) {
	p.c.t.Helper()
	var res struct {
		ErrorText string `json:"errorText"`
	}
	p.call("Page.navigate", map[string]any{"url": url}, &res)
	if res.ErrorText != "" {
		p.c.t.Fatalf("navigate: %s", res.ErrorText)
	}
}

// text is document.body.innerText ("" while there is no body).
func (p *cdpPage) text() string {
	p.c.t.Helper()
	return p.eval("document.body ? document.body.innerText : ''")
}

// eval evaluates a JavaScript expression to a string ("" if it is not one).
func (p *cdpPage) eval(expr string) string {
	p.c.t.Helper()
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
	}
	p.call("Runtime.evaluate", map[string]any{"expression": "(() => { try { return " + expr + " } catch (e) { return '' } })()", "returnByValue": true}, &res)
	s, _ := res.Result.Value.(string)
	return s
}

// waitText waits until the page shows every one of wants, and returns it.
func (p *cdpPage) waitText(what string, wants ...string) string {
	p.c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		s := p.text()
		ok := true
		for _, w := range wants {
			ok = ok && strings.Contains(s, w)
		}
		if ok {
			return s
		}
		select {
		case <-ctx.Done():
			p.c.t.Fatalf("the page did not show %s (%q); it shows:\n%s", what, wants, s)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *cdpPage) screenshot(path string) {
	p.c.t.Helper()
	var res struct {
		Data string `json:"data"`
	}
	p.call("Page.captureScreenshot", map[string]any{"format": "png"}, &res)
	b, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		p.c.t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		p.c.t.Fatal(err)
	}
}
