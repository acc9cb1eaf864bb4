package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pult/pult/relay/operators"
	"github.com/pult/pult/relay/outbox"
	"github.com/pult/pult/relay/retailcrm"
)

// Client talks to a running relay's admin API.
type Client struct {
	BaseURL string // http://127.0.0.1:8700
	Token   string
	HTTP    *http.Client
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
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return fmt.Errorf("relay URL: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("relay at %s is not reachable: %w", c.BaseURL, err)
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
