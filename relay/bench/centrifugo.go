package bench

// Centrifugo as a comparison target (--target centrifugo): the same
// operators, rates and measurements against Centrifugo v6 with a memory
// engine and channel history with forced recovery, its closest mode to
// the relay's resume.
//
// Protocol flow (Centrifugo's client protocol v2, JSON over websocket):
//
//	operator → {"id":1,"connect":{"token":JWT,"name":"pult-bench"}}
//	         ← {"id":1,"connect":{"client":…,"ping":25,"pong":true,…}}
//	operator → {"id":2,"subscribe":{"channel":"op:#1000","recover":true}}
//	         ← {"id":2,"subscribe":{"recoverable":true,"epoch":…,"offset":N,…}}
//	         ← {"push":{"channel":"op:#1000","pub":{"data":CARD,"offset":N+1}}}
//	         ← {}   (ping) → {} (pong)
//
// A message may hold several replies separated by newlines. The JWT is
// HS256 with "sub" the operator's code, and "op:#1000" is a user-limited
// channel: only user 1000 may subscribe to it, like the relay's bearer
// token that opens only its operator's stream. A call event is one HTTP
// API broadcast to the rung operators' channels, one request per event as
// the relay's webhook is, however many operators it rings.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pult/pult/agent/wire"
)

// CentrifugoVersion is the Centrifugo the bench installs and compares with.
const CentrifugoVersion = "v6.9.1"

// CentrifugoModule is what InstallCentrifugo builds with go install.
const CentrifugoModule = "github.com/centrifugal/centrifugo/v6"

// CentrifugoBinIn is where InstallCentrifugo puts the binary under a user
// cache folder (os.UserCacheDir).
func CentrifugoBinIn(cacheDir string) string {
	return filepath.Join(cacheDir, "pult", "centrifugo-"+CentrifugoVersion, "centrifugo")
}

// InstallCentrifugo builds Centrifugo with "go install" into the folder of
// bin (GOBIN) unless bin is already there. It needs the go command and the
// module proxy; the first build takes minutes. Centrifugo is not a
// dependency of this module.
func InstallCentrifugo(ctx context.Context, bin string, progress io.Writer) error {
	if st, err := os.Stat(bin); err == nil && !st.IsDir() {
		return nil
	}
	gobin := filepath.Dir(bin)
	if filepath.Base(bin) != "centrifugo" {
		return fmt.Errorf("bench: install Centrifugo: %s: go install names the binary centrifugo", bin)
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("bench: installing Centrifugo %s needs the go command (or pass --centrifugo-bin): %w", CentrifugoVersion, err)
	}
	if err := os.MkdirAll(gobin, 0o755); err != nil {
		return fmt.Errorf("bench: install Centrifugo: %w", err)
	}
	fmt.Fprintf(progress, "installing Centrifugo %s into %s (first time, a few minutes)…\n", CentrifugoVersion, gobin)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, goCmd, "install", CentrifugoModule+"@"+CentrifugoVersion)
	cmd.Dir = gobin // outside any module: go install pkg@version ignores it anyway
	cmd.Env = append(os.Environ(), "GOBIN="+gobin)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("bench: go install %s@%s failed (%w):\n%s", CentrifugoModule, CentrifugoVersion, err, tail(out.String(), 20))
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("bench: go install %s@%s succeeded but left no %s", CentrifugoModule, CentrifugoVersion, bin)
	}
	return nil
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-lines):], "\n")
}

// Centrifugo's channel options for the operators' namespace: history long
// enough for a resume, recovery forced for every subscriber.
const (
	cfNamespace   = "op"
	cfHistorySize = 100
	cfHistoryTTL  = "300s"
)

func cfChannel(op int) string { return cfNamespace + ":#" + strconv.Itoa(1000+op) }

// centrifugoConfig is Centrifugo v6's JSON config for a run: loopback
// only, memory engine, HMAC-signed connection tokens, HTTP API with a
// key, /healthz and /metrics (Prometheus, for its heap and goroutines),
// no usage statistics sent anywhere.
func centrifugoConfig(port int, hmacSecret, apiKey string) ([]byte, error) {
	cfg := map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": port},
		"log":         map[string]any{"level": "warn"},
		"engine":      map[string]any{"type": "memory"},
		"client": map[string]any{
			"token": map[string]any{"hmac_secret_key": hmacSecret},
		},
		"channel": map[string]any{
			"namespaces": []any{map[string]any{
				"name":                        cfNamespace,
				"history_size":                cfHistorySize,
				"history_ttl":                 cfHistoryTTL,
				"force_recovery":              true,
				"allow_user_limited_channels": true,
			}},
		},
		"http_api":    map[string]any{"key": apiKey},
		"health":      map[string]any{"enabled": true, "handler_prefix": "/healthz"},
		"prometheus":  map[string]any{"enabled": true},
		"usage_stats": map[string]any{"disabled": true},
	}
	return json.MarshalIndent(cfg, "", "  ")
}

// startCentrifugo writes a config into dir, starts Centrifugo with it and
// waits until /healthz answers. The caller must call stop.
func startCentrifugo(ctx context.Context, o Options, dir string) (*relayProc, error) {
	if o.CentrifugoBin == "" {
		return nil, errors.New("bench: --target centrifugo needs the Centrifugo binary (Options.CentrifugoBin)")
	}
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("bench: no free port: %w", err)
	}
	p := &relayProc{
		baseURL:    "http://127.0.0.1:" + strconv.Itoa(port),
		pbxKey:     "bench-api-" + secret(),
		hmacSecret: "bench-hmac-" + secret(),
		logPath:    filepath.Join(dir, "centrifugo.log"),
		exited:     make(chan struct{}),
		centrifugo: true,
	}
	p.metricsURL = p.baseURL
	cfg, err := centrifugoConfig(port, p.hmacSecret, p.pbxKey)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	cfgPath := filepath.Join(dir, "centrifugo.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	p.newCmd = func() *exec.Cmd {
		cmd := exec.Command(o.CentrifugoBin, "--config", cfgPath)
		cmd.Dir = dir
		cmd.Env = childEnv()
		cmd.SysProcAttr = childAttr()
		return cmd
	}
	if p.logFile, err = os.Create(p.logPath); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if err := p.launch(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// centrifugoTokens signs a connection token per operator: "sub" is the
// operator's code, valid for a day.
func centrifugoTokens(secret string, n int) []string {
	exp := time.Now().Add(24 * time.Hour).Unix()
	tokens := make([]string, n)
	for i := range n {
		claims, _ := json.Marshal(struct {
			Sub string `json:"sub"`
			Exp int64  `json:"exp"`
		}{strconv.Itoa(1000 + i), exp})
		tokens[i] = signHS256(claims, []byte(secret))
	}
	return tokens
}

// jwtB64 is JWS's base64url without padding.
var jwtB64 = base64.RawURLEncoding

// jwtHeaderHS256 is the encoded {"alg":"HS256","typ":"JWT"}.
var jwtHeaderHS256 = jwtB64.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

// signHS256 makes a compact JWS (RFC 7515) of the claims, HMAC-SHA256.
func signHS256(claims, key []byte) string {
	s := jwtHeaderHS256 + "." + jwtB64.EncodeToString(claims)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return s + "." + jwtB64.EncodeToString(m.Sum(nil))
}

// cfReply is one reply or push of Centrifugo's JSON protocol, as far as
// the bench reads it.
type cfReply struct {
	ID        uint32           `json:"id"`
	Error     *cfError         `json:"error"`
	Connect   *json.RawMessage `json:"connect"`
	Subscribe *struct {
		Recoverable bool   `json:"recoverable"`
		Epoch       string `json:"epoch"`
		Offset      uint64 `json:"offset"`
	} `json:"subscribe"`
	Push *struct {
		Channel string `json:"channel"`
		Pub     *struct {
			Data   json.RawMessage `json:"data"`
			Offset uint64          `json:"offset"`
		} `json:"pub"`
		Disconnect *cfError `json:"disconnect"`
	} `json:"push"`
}

type cfError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
}

func (e *cfError) Error() string {
	return fmt.Sprintf("centrifugo error %d: %s%s", e.Code, e.Message, e.Reason)
}

// cfPush is what one line of a Centrifugo message is to the operator.
type cfPush struct {
	ping    bool   // an empty command: answer with one
	call    string // the card's id, when a publication
	offset  uint64 // the publication's offset in the channel
	other   bool   // anything else
	discErr error  // a disconnect push
}

// parseCentrifugo splits a websocket message into its replies and reads
// each one.
func parseCentrifugo(msg []byte) []cfPush {
	var out []cfPush
	for line := range bytes.SplitSeq(msg, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if string(line) == "{}" {
			out = append(out, cfPush{ping: true})
			continue
		}
		var r cfReply
		if json.Unmarshal(line, &r) != nil || r.Push == nil {
			out = append(out, cfPush{other: true})
			continue
		}
		switch {
		case r.Push.Pub != nil:
			var card struct {
				ID string `json:"id"`
			}
			json.Unmarshal(r.Push.Pub.Data, &card)
			out = append(out, cfPush{call: card.ID, offset: r.Push.Pub.Offset})
		case r.Push.Disconnect != nil:
			out = append(out, cfPush{discErr: r.Push.Disconnect})
		default:
			out = append(out, cfPush{other: true})
		}
	}
	return out
}

// dialCentrifugo connects, authenticates with the token and subscribes to
// the operator's channel with recovery (from op.last and op.epoch when
// known), then makes the connection the operator's.
func (op *operator) dialCentrifugo(ctx context.Context, rp *relayProc, token string) error {
	u := "ws" + strings.TrimPrefix(rp.baseURL, "http") + "/connection/websocket"
	conn, resp, err := dialer.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %d)", err, resp.StatusCode)
		}
		return err
	}
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	sub := map[string]any{"channel": cfChannel(op.idx), "recover": true}
	if op.epoch != "" {
		sub["epoch"], sub["offset"] = op.epoch, op.last
	}
	connect, _ := json.Marshal(map[string]any{"id": 1, "connect": map[string]any{"token": token, "name": "pult-bench"}})
	subscribe, _ := json.Marshal(map[string]any{"id": 2, "subscribe": sub})
	err = conn.WriteMessage(websocket.TextMessage, append(append(connect, '\n'), subscribe...))
	var connected, subscribed bool
	for err == nil && !(connected && subscribed) {
		var b []byte
		if _, b, err = conn.ReadMessage(); err != nil {
			break
		}
		for line := range bytes.SplitSeq(b, []byte("\n")) {
			var r cfReply
			if len(bytes.TrimSpace(line)) == 0 || json.Unmarshal(line, &r) != nil {
				continue
			}
			switch {
			case r.Error != nil:
				err = r.Error
			case r.ID == 1 && r.Connect != nil:
				connected = true
			case r.ID == 2 && r.Subscribe != nil:
				subscribed = true
				if op.epoch != "" && op.epoch != r.Subscribe.Epoch {
					op.notResumed++
				}
				op.epoch = r.Subscribe.Epoch
				if op.last == 0 {
					op.last = r.Subscribe.Offset
				}
				if !r.Subscribe.Recoverable {
					err = errors.New("subscription is not recoverable: history or recovery is off")
				}
			}
		}
	}
	if err != nil {
		conn.Close()
		return fmt.Errorf("connect and subscribe: %w", err)
	}
	conn.SetReadDeadline(time.Time{})
	op.mu.Lock()
	defer op.mu.Unlock()
	if op.stopping.Load() {
		conn.Close()
		return errStopping
	}
	op.conn = conn
	return nil
}

// readCentrifugo reads until the connection fails: it answers pings and
// records each card's first arrival, as readConn does for the relay.
func (op *operator) readCentrifugo() error {
	op.mu.Lock()
	conn := op.conn
	op.mu.Unlock()
	for {
		_, b, err := conn.ReadMessage()
		now := time.Now()
		if err != nil {
			return err
		}
		for _, p := range parseCentrifugo(b) {
			switch {
			case p.ping:
				if err := conn.WriteMessage(websocket.TextMessage, []byte("{}")); err != nil {
					return err
				}
			case p.discErr != nil:
				return p.discErr
			case p.other:
				op.other++
			default:
				if p.offset <= op.last {
					op.order++
				}
				op.last = p.offset
				op.receive(p.call, now)
			}
		}
	}
}

// postCentrifugo broadcasts call n's card to the rung operators' channels
// with one HTTP API request.
func postCentrifugo(ctx context.Context, hc *http.Client, rp *relayProc, n int, c *call) {
	phone := fmt.Sprintf("+79%09d", rand.IntN(1_000_000_000))
	card, _ := json.Marshal(wire.Call{
		ID: callPrefix + strconv.Itoa(n), Direction: "in", State: wire.CallRinging,
		Phone: phone, PhoneDisplay: "8 " + phone[2:], ManagerState: wire.ManagerOff, StartedAt: time.Now().UTC(),
	})
	channels := make([]string, len(c.ops))
	for i, op := range c.ops {
		channels[i] = cfChannel(int(op))
	}
	body, _ := json.Marshal(map[string]any{"channels": channels, "data": json.RawMessage(card)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rp.baseURL+"/api/broadcast", bytes.NewReader(body))
	if err != nil {
		c.sent, c.err = time.Now(), err.Error()
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", rp.pbxKey)
	c.sent = time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		c.post = time.Since(c.sent)
		c.err = err.Error()
		return
	}
	ans, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	c.post = time.Since(c.sent)
	c.ok, c.err = checkBroadcast(resp.StatusCode, ans, len(channels))
}

// checkBroadcast reads the HTTP API's answer to a broadcast: one response
// per channel, each with a result or an error.
func checkBroadcast(status int, body []byte, channels int) (ok bool, why string) {
	var ans struct {
		Error  *cfError `json:"error"`
		Result *struct {
			Responses []struct {
				Error *cfError `json:"error"`
			} `json:"responses"`
		} `json:"result"`
	}
	err := json.Unmarshal(body, &ans)
	switch {
	case status != http.StatusOK || err != nil:
		return false, fmt.Sprintf("HTTP %d: %.200s", status, strings.TrimSpace(string(body)))
	case ans.Error != nil:
		return false, ans.Error.Error()
	case ans.Result == nil || len(ans.Result.Responses) != channels:
		return false, fmt.Sprintf("want %d responses: %.200s", channels, strings.TrimSpace(string(body)))
	}
	for _, r := range ans.Result.Responses {
		if r.Error != nil {
			return false, r.Error.Error()
		}
	}
	return true, ""
}
