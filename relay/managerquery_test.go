package relay_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/config"
	"github.com/pult/pult/relay/retailcrm"
)

// managerQuery asks the relay GET /api/v5/telephony/manager as a PBX does
// (the key in the X-API-KEY header) and returns the status and the JSON.
func managerQuery(t *testing.T, base string, q url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+retailcrm.PathManager+"?"+q.Encode(), nil)
	req.Header.Set("X-API-KEY", testPBXKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != retailcrm.ContentTypeJSON {
		t.Errorf("Content-Type %q: %s", ct, b)
	}
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, b)
	}
	return resp.StatusCode, body
}

// The PBX asks the relay whom to route a caller to. The relay answers from
// its lookup in retailCRM and applies retailCRM's rule with its own facts:
// the manager is named only when signed in to pult, free, and with an
// extension code, unless ignoreStatus=1.
func TestManagerQueryForThePBX(t *testing.T) {
	checkGoroutines(t)
	w := newWorld(t, nil)
	// A client whose manager has no extension code, one without a manager,
	// and one whose manager is not a pult operator (only the CRM knows them).
	for _, c := range []struct {
		phone string
		cu    retailcrm.Customer
		m     *retailcrm.Manager
	}{
		{"+7 903 000-00-01", retailcrm.Customer{ID: "78", FirstName: "Olga"}, &retailcrm.Manager{ID: "9", FirstName: "Nina"}},
		{"+7 903 000-00-02", retailcrm.Customer{ID: "79", FirstName: "Petr"}, nil},
		{"+7 903 000-00-03", retailcrm.Customer{ID: "80", FirstName: "Sergey"}, &retailcrm.Manager{ID: "10", FirstName: "Igor", Code: "300"}},
	} {
		if err := w.crm.AddClient(c.phone, c.cu, c.m); err != nil {
			t.Fatal(err)
		}
	}
	ask := func(phone, details, ignore string) (int, map[string]any) {
		q := url.Values{"phone": {phone}}
		if details != "" {
			q.Set("details", details)
		}
		if ignore != "" {
			q.Set("ignoreStatus", ignore)
		}
		return managerQuery(t, w.r.URL, q)
	}
	boris := map[string]any{"id": float64(2), "firstName": "Boris", "lastName": "Orlov", "code": "101"}

	// Free and signed in: named, with the client and links on details=1.
	status, body := ask("8 (912) 123-45-67", "1", "0")
	if status != 200 || body["success"] != true {
		t.Fatalf("free: %d %v", status, body)
	}
	if d := cmp.Diff(boris, body["manager"]); d != "" {
		t.Errorf("free manager (-want +got):\n%s", d)
	}
	cu, _ := body["customer"].(map[string]any)
	links, _ := body["links"].(map[string]any)
	if cu["id"] != float64(77) || cu["firstName"] != "Ivan" || links["customerLink"] == nil {
		t.Errorf("details: customer %v links %v", cu, links)
	}
	// details=0: the manager alone.
	status, body = ask("+79121234567", "0", "")
	if status != 200 || body["customer"] != nil || body["links"] != nil || body["manager"] == nil {
		t.Errorf("details=0: %d %v", status, body)
	}

	// Busy in pult: not named, unless ignoreStatus=1.
	ctx := context.Background()
	if _, err := w.boris.a.SetStatus(ctx, wire.StatusBusy); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the busy manager left out", func() bool {
		_, body := ask("+79121234567", "1", "0")
		return body["manager"] == nil && body["customer"] != nil
	})
	if _, body := ask("+79121234567", "1", "1"); cmp.Diff(boris, body["manager"]) != "" {
		t.Errorf("busy, ignoreStatus=1: %v", body)
	}
	// Python's client sends True for both flags.
	if _, body := ask("+79121234567", "True", "True"); cmp.Diff(boris, body["manager"]) != "" || body["customer"] == nil {
		t.Errorf("details=True&ignoreStatus=True: %v", body)
	}

	// Free again, then signed out: not named, unless ignoreStatus=1.
	if _, err := w.boris.a.SetStatus(ctx, wire.StatusFree); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the free manager named", func() bool {
		_, body := ask("+79121234567", "0", "0")
		return body["manager"] != nil
	})
	w.boris.stop()
	waitUntil(t, "the signed-out manager left out", func() bool {
		_, body := ask("+79121234567", "0", "0")
		return body["manager"] == nil
	})
	if _, body := ask("+79121234567", "0", "1"); cmp.Diff(boris, body["manager"]) != "" {
		t.Errorf("offline, ignoreStatus=1: %v", body)
	}

	// No extension code: never named.
	for _, ignore := range []string{"0", "1"} {
		if status, body := ask("+79030000001", "1", ignore); status != 200 || body["manager"] != nil || body["customer"] == nil {
			t.Errorf("no code, ignoreStatus=%s: %d %v", ignore, status, body)
		}
	}
	// No manager at all.
	if status, body := ask("+79030000002", "1", "1"); status != 200 || body["manager"] != nil || body["customer"] == nil {
		t.Errorf("no manager: %d %v", status, body)
	}
	// A manager pult does not know: not signed in to pult, so only with
	// ignoreStatus=1.
	if _, body := ask("+79030000003", "0", "0"); body["manager"] != nil {
		t.Errorf("unknown to pult: %v", body)
	}
	if _, body := ask("+79030000003", "0", "1"); body["manager"] == nil {
		t.Errorf("unknown to pult, ignoreStatus=1: %v", body)
	}

	// A number retailCRM does not know (its 404) and one that is no number:
	// the answer for "no manager".
	for _, p := range []string{"+79990000000", "anonymous"} {
		status, body := ask(p, "1", "1")
		if status != 200 || cmp.Diff(map[string]any{"success": true}, body) != "" {
			t.Errorf("unknown %s: %d %v", p, status, body)
		}
	}

	// Refusals, in retailCRM's words.
	for _, tt := range []struct {
		name   string
		q      url.Values
		status int
		msg    string
	}{
		{"no phone", url.Values{"details": {"1"}}, 400, "Parameter 'phone' is missing"},
		{"bad flag", url.Values{"phone": {"+79121234567"}, "details": {"yes"}}, 400, retailcrm.MsgInvalidEntity},
		{"two phones", url.Values{"phone": {"1", "2"}}, 400, retailcrm.MsgInvalidEntity},
	} {
		status, body := managerQuery(t, w.r.URL, tt.q)
		if status != tt.status || body["success"] != false || body["errorMsg"] != tt.msg {
			t.Errorf("%s: %d %v", tt.name, status, body)
		}
	}
}

// retailCRM down: the PBX gets retailCRM's error shape with 503, not a
// made-up "no manager", and decodes it as JSON.
func TestManagerQueryCRMDown(t *testing.T) {
	checkGoroutines(t)
	w := newWorld(t, func(c *config.Config) { c.RetailCRM.Timeout = config.Duration{Duration: 500 * time.Millisecond} })
	w.crm.SetFailure(503)
	status, body := managerQuery(t, w.r.URL, url.Values{"phone": {"+79121234567"}, "details": {"1"}})
	if status != 503 || body["success"] != false || body["errorMsg"] == "" {
		t.Errorf("CRM down: %d %v", status, body)
	}
	// Hanging: the relay's own deadline answers.
	w.crm.SetFailure(0)
	w.crm.SetHang(true)
	defer w.crm.SetHang(false)
	start := time.Now()
	status, _ = managerQuery(t, w.r.URL, url.Values{"phone": {"+79121234567"}})
	if status != 503 || time.Since(start) > 5*time.Second {
		t.Errorf("CRM hanging: %d after %s", status, time.Since(start))
	}
}

// Without retailCRM configured the relay answers "no manager".
func TestManagerQueryWithoutCRM(t *testing.T) {
	checkGoroutines(t)
	r := startRelay(t, testConfig(t))
	status, body := managerQuery(t, r.URL, url.Values{"phone": {"+79121234567"}, "details": {"1"}, "ignoreStatus": {"1"}})
	if status != 200 || cmp.Diff(map[string]any{"success": true}, body) != "" {
		t.Errorf("no CRM: %d %v", status, body)
	}
}
