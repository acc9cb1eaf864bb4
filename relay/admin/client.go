package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/outbox"
	"github.com/pult/pult/relay/retailcrm"
)

// Client talks to a running relay's admin API: on its unix socket (Socket),
// or on its admin_listen address (BaseURL, with Token).
type Client struct {
	// Socket is the path of the relay's admin socket (admin.sock in its
	// data_dir); when set, BaseURL and Token are not used.
	Socket  string
	BaseURL string // the relay's admin_listen: http://127.0.0.1:8701, https://… with TLS
	Token   string
	// HTTP, if set, makes the requests to BaseURL (a test's trust, a
	// timeout); a Socket is always dialled by a client of its own.
	HTTP *http.Client
}

// socketHost names the relay in requests over its socket.
const socketHost = "http://pult-relay"

// httpClient is the client a request goes through, and the base URL.
func (c *Client) httpClient() (*http.Client, string) {
	if c.Socket != "" {
		var d net.Dialer
		return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "unix", c.Socket)
			},
			DisableKeepAlives: true, // one connection per request: none left idle
		}}, socketHost
	}
	if c.HTTP != nil {
		return c.HTTP, strings.TrimRight(c.BaseURL, "/")
	}
	return &http.Client{Timeout: 15 * time.Second}, strings.TrimRight(c.BaseURL, "/")
}

// unreachable says why the relay could not be reached, and what to do.
func (c *Client) unreachable(err error) error {
	if c.Socket == "" {
		return fmt.Errorf("relay at %s is not reachable: %w", c.BaseURL, err)
	}
	path := c.Socket
	if abs, aerr := filepath.Abs(path); aerr == nil {
		path = abs
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("is the relay running? no admin socket at %s (it is made in the relay's data_dir when it starts)", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("permission denied on the admin socket %s: run this as the user the relay runs as", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("is the relay running? nothing answers on the admin socket %s (a relay killed without a clean stop leaves it behind)", path)
	}
	return fmt.Errorf("the relay's admin socket %s: %w", path, err)
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	hc, base := c.httpClient()
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return fmt.Errorf("relay URL: %w", err)
	}
	if c.Socket == "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return c.unreachable(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("reading the relay's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if resp.StatusCode == http.StatusNotFound && e.Error == "" && json.Unmarshal(b, &e) == nil && e.Error == NoSuchEndpoint {
			return fmt.Errorf("relay: %s does not serve the admin API: give --relay the relay's admin_listen address", c.BaseURL)
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("relay: %s", e.Error)
		}
		return fmt.Errorf("relay: HTTP %d", resp.StatusCode)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return errors.New("relay: the answer is not what a pult relay sends; is the URL right?")
		}
	}
	return nil
}

// AddOperator creates an operator and returns it with its token.
func (c *Client) AddOperator(ctx context.Context, n operators.NewOperator) (AddedOperator, error) {
	var out AddedOperator
	err := c.do(ctx, http.MethodPost, "/admin/v1/operators", n, &out)
	return out, err
}

// ListOperators lists every operator.
func (c *Client) ListOperators(ctx context.Context) ([]OperatorView, error) {
	var out []OperatorView
	err := c.do(ctx, http.MethodGet, "/admin/v1/operators", nil, &out)
	return out, err
}

// RevokeOperator revokes by id or code.
func (c *Client) RevokeOperator(ctx context.Context, ref string) (OperatorView, error) {
	var out OperatorView
	err := c.do(ctx, http.MethodPost, "/admin/v1/operators/"+url.PathEscape(ref)+"/revoke", nil, &out)
	return out, err
}

// ListPending lists up to limit waiting outbox jobs (0: the relay's default).
func (c *Client) ListPending(ctx context.Context, limit int) ([]outbox.PendingJob, error) {
	var out []outbox.PendingJob
	err := c.do(ctx, http.MethodGet, "/admin/v1/outbox?"+listQuery("pending", limit), nil, &out)
	return out, err
}

// ListDead lists up to limit dead letters (0: the relay's default).
func (c *Client) ListDead(ctx context.Context, limit int) ([]outbox.DeadJob, error) {
	var out []outbox.DeadJob
	err := c.do(ctx, http.MethodGet, "/admin/v1/outbox?"+listQuery("dead", limit), nil, &out)
	return out, err
}

func listQuery(state string, limit int) string {
	q := url.Values{"state": {state}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	return q.Encode()
}

// RetryJob puts a dead letter back in the queue.
func (c *Client) RetryJob(ctx context.Context, id string) (RetriedJob, error) {
	var out RetriedJob
	err := c.do(ctx, http.MethodPost, "/admin/v1/outbox/"+url.PathEscape(id)+"/retry", nil, &out)
	return out, err
}

// DropJob removes a pending job or a dead letter for good.
func (c *Client) DropJob(ctx context.Context, id string) (DroppedJob, error) {
	var out DroppedJob
	err := c.do(ctx, http.MethodDelete, "/admin/v1/outbox/"+url.PathEscape(id), nil, &out)
	return out, err
}

// RegisterRetailCRM registers (or updates) the telephony in retailCRM and
// returns the integration module the relay sent.
func (c *Client) RegisterRetailCRM(ctx context.Context) (retailcrm.IntegrationModule, error) {
	var out retailcrm.IntegrationModule
	err := c.do(ctx, http.MethodPost, "/admin/v1/retailcrm/register", nil, &out)
	return out, err
}

// RetailCRMModule reads the telephony's registration back from retailCRM.
func (c *Client) RetailCRMModule(ctx context.Context) (retailcrm.IntegrationModule, error) {
	var out retailcrm.IntegrationModule
	err := c.do(ctx, http.MethodGet, "/admin/v1/retailcrm/module", nil, &out)
	return out, err
}
