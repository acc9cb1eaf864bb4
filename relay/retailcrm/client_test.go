package retailcrm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func jsonEqual(t testing.TB, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return cmp.Equal(x, y)
}

// setup is go-github's: a mux behind a test server and a client aimed at it.
func setup(t *testing.T) (*Client, *http.ServeMux) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &Client{BaseURL: srv.URL, APIKey: "test-key", HTTP: srv.Client()}, mux
}

// managerHandler checks the request retailCRM would get and answers with a
// fixture.
func managerHandler(t *testing.T, status int, file string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			t.Errorf("method %s", r.Method)
		}
		if got := r.Header.Get("X-API-KEY"); got != "test-key" {
			t.Errorf("X-API-KEY = %q", got)
		}
		want := url.Values{"phone": {"+79121234567"}, "details": {"1"}, "ignoreStatus": {"1"}}
		if diff := cmp.Diff(want, r.URL.Query()); diff != "" {
			t.Errorf("query (-want +got)\n%s", diff)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(fixture(t, file))
	}
}

func TestManager(t *testing.T) {
	full := &ManagerResult{
		Manager: &Manager{ID: "12", FirstName: "Анна", LastName: "Смирнова", Patronymic: "Игоревна", Email: "a.smirnova@example.ru", Code: "100"},
		Customer: &Customer{ID: "3456", ExternalID: "ext-3456", FirstName: "Ольга", LastName: "Кузнецова", Email: "olga.k@example.ru",
			Phones: []string{"+7 (912) 123-45-67", "84951234567"}},
		Links: Links{
			NewOrder:    "https://example.retailcrm.ru/orders/add?customerId=3456",
			LastOrder:   "https://example.retailcrm.ru/orders/987/edit",
			NewCustomer: "https://example.retailcrm.ru/customers/add",
			Customer:    "https://example.retailcrm.ru/customers/3456",
		},
	}
	tests := []struct {
		file string
		want *ManagerResult
	}{
		{"manager_full.json", full},
		{"manager_string_ids.json", &ManagerResult{
			Manager:  &Manager{ID: "12", FirstName: "Анна", LastName: "Смирнова", Code: "100"},
			Customer: &Customer{ID: "3456", FirstName: "Ольга"},
			Links:    Links{Customer: "https://example.retailcrm.ru/customers/3456"},
		}},
		{"manager_none.json", &ManagerResult{}},
		{"manager_null.json", &ManagerResult{}},
		{"manager_php_empty.json", &ManagerResult{Customer: &Customer{ID: "77", FirstName: "Иван"}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, mux := setup(t)
			mux.HandleFunc("/api/v5/telephony/manager", managerHandler(t, http.StatusOK, tt.file))
			got, err := c.Manager(context.Background(), "+79121234567")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
	if got := full.Manager.FullName(); got != "Смирнова Анна Игоревна" {
		t.Errorf("manager FullName = %q", got)
	}
	if got := full.Customer.FullName(); got != "Кузнецова Ольга" {
		t.Errorf("customer FullName = %q", got)
	}
	var nm *Manager
	var nc *Customer
	if nm.FullName() != "" || nc.FullName() != "" {
		t.Error("nil FullName")
	}
}

func TestClientBaseURL(t *testing.T) {
	for _, suffix := range []string{"", "/", "/api/v5", "/api/v5/", "//"} {
		c, mux := setup(t)
		mux.HandleFunc("/api/v5/telephony/manager", managerHandler(t, http.StatusOK, "manager_none.json"))
		c.BaseURL += suffix
		if _, err := c.Manager(context.Background(), "+79121234567"); err != nil {
			t.Errorf("base %q: %v", c.BaseURL, err)
		}
	}
	for _, base := range []string{"", "example.retailcrm.ru", "ftp://x", "https://x.retailcrm.ru/?apiKey=1", "https://u:p@x.retailcrm.ru"} {
		c := &Client{BaseURL: base, APIKey: "k"}
		if _, err := c.Manager(context.Background(), "1"); err == nil {
			t.Errorf("base %q accepted", base)
		}
	}
	c := &Client{BaseURL: "https://x.retailcrm.ru"}
	if _, err := c.Manager(context.Background(), "1"); err == nil {
		t.Error("empty API key accepted")
	}
	c.APIKey = "k"
	for _, p := range []string{"", "  ", strings.Repeat("1", 65), "1\n2"} {
		if _, err := c.Manager(context.Background(), p); err == nil {
			t.Errorf("phone %q accepted", p)
		}
	}
}

func TestManagerErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		body       string
		header     map[string]string
		want       *APIError
		temporary  bool
		badAnswer  bool
		retryAfter time.Duration
	}{
		{name: "wrong key", status: 403, body: `{"success": false, "errorMsg": "Wrong \"apiKey\" value."}`,
			want: &APIError{StatusCode: 403, Msg: `Wrong "apiKey" value.`}},
		{name: "validation", status: 400, body: `{"success":false,"errorMsg":"Errors in the input parameters","errors":{"phone":"This value should not be blank."}}`,
			want: &APIError{StatusCode: 400, Msg: "Errors in the input parameters", Errors: map[string]string{"phone": "This value should not be blank."}}},
		{name: "error list", status: 400, body: `{"success": false, "errorMsg": "Errors in the input parameters", "errors": ["Phone is blank", {"nested": true}]}`,
			want: &APIError{StatusCode: 400, Msg: "Errors in the input parameters", Errors: map[string]string{"0": "Phone is blank", "1": `{"nested": true}`}}},
		{name: "success false on 200", status: 200, body: `{"success":false,"errorMsg":"Not found"}`,
			want: &APIError{StatusCode: 200, Msg: "Not found"}},
		{name: "rate limited", status: 429, body: `{"success":false,"errorMsg":"Too many requests"}`, header: map[string]string{"Retry-After": "3"},
			want: &APIError{StatusCode: 429, Msg: "Too many requests", RetryAfter: 3 * time.Second}, temporary: true},
		{name: "maintenance html", status: 503, body: `<html>down for maintenance</html>`, header: map[string]string{"Retry-After": "99999999"},
			want: &APIError{StatusCode: 503, Msg: "Service Unavailable", RetryAfter: time.Hour}, temporary: true},
		{name: "server error", status: 500, body: ``,
			want: &APIError{StatusCode: 500, Msg: "Internal Server Error"}, temporary: true},
		{name: "not implemented", status: 501, body: `{"success":false,"errorMsg":"Not implemented"}`,
			want: &APIError{StatusCode: 501, Msg: "Not implemented"}},
		{name: "redirect", status: 302, header: map[string]string{"Location": "https://evil.example.com/steal"},
			want: &APIError{StatusCode: 302, Msg: "unexpected redirect"}},
		{name: "garbage", status: 200, body: `<html>hello</html>`, badAnswer: true},
		{name: "truncated", status: 200, body: `{"success":true,"manager":{`, badAnswer: true},
		{name: "no success", status: 200, body: `{"manager":null}`, badAnswer: true},
		{name: "success string", status: 200, body: `{"success":"true"}`, badAnswer: true},
		{name: "manager string", status: 200, body: `{"success":true,"manager":"Анна"}`, badAnswer: true},
		{name: "manager id bool", status: 200, body: `{"success":true,"manager":{"id":true}}`, badAnswer: true},
		{name: "huge", status: 200, body: `{"success":true,"x":"` + strings.Repeat("a", MaxResponseBody) + `"}`, badAnswer: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, mux := setup(t)
			mux.HandleFunc("/api/v5/telephony/manager", func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			})
			res, err := c.Manager(context.Background(), "+79121234567")
			if err == nil {
				t.Fatalf("no error, result %+v", res)
			}
			if tt.badAnswer {
				if !errors.Is(err, ErrBadResponse) {
					t.Errorf("err = %v, want ErrBadResponse", err)
				}
				return
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %T %v, want *APIError", err, err)
			}
			if diff := cmp.Diff(tt.want, apiErr); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if apiErr.Temporary() != tt.temporary {
				t.Errorf("Temporary = %v", apiErr.Temporary())
			}
			if strings.Contains(err.Error(), "test-key") {
				t.Errorf("error leaks the key: %v", err)
			}
		})
	}
}

func TestManagerNeverLeaksKey(t *testing.T) {
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("followed a redirect; key %q", r.Header.Get("X-API-KEY"))
	}))
	defer evil.Close()
	c, mux := setup(t)
	mux.HandleFunc("/api/v5/telephony/manager", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("apiKey") || strings.Contains(r.URL.RawQuery, "test-key") {
			t.Errorf("key in URL: %s", r.URL)
		}
		http.Redirect(w, r, evil.URL+"/api/v5/telephony/manager", http.StatusTemporaryRedirect)
	})
	if _, err := c.Manager(context.Background(), "+79121234567"); err == nil {
		t.Error("redirect treated as success")
	}
}

func TestManagerContext(t *testing.T) {
	c, mux := setup(t)
	release := make(chan struct{})
	defer close(release)
	mux.HandleFunc("/api/v5/telephony/manager", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Manager(ctx, "+79121234567")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
}

func TestAPIErrorMessage(t *testing.T) {
	e := &APIError{StatusCode: 400, Msg: "Errors in the input parameters", Errors: map[string]string{"b": "2", "a": "1"}}
	if got, want := e.Error(), "retailcrm: 400: Errors in the input parameters (a: 1; b: 2)"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

func compactEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return cmp.Equal(x, y)
}
