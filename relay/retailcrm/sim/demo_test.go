package sim

import (
	"context"
	"testing"

	"github.com/pult/pult/agent/phone"
	"github.com/pult/pult/relay/retailcrm"
)

func TestDemoData(t *testing.T) {
	clients := DemoClients()
	if len(clients) < 12 {
		t.Fatalf("only %d demo clients", len(clients))
	}
	seen := map[string]bool{}
	ids := map[string]bool{}
	var withManager, without int
	for _, c := range clients {
		n, err := phone.Parse(c.Phone, "RU")
		if err != nil {
			t.Errorf("%s: %v", c.Phone, err)
			continue
		}
		if seen[n.E164] || ids[c.Customer.ID] {
			t.Errorf("duplicate client %s / %s", n.E164, c.Customer.ID)
		}
		seen[n.E164], ids[c.Customer.ID] = true, true
		if c.Customer.FullName() == "" || c.Site == "" {
			t.Errorf("incomplete client %+v", c)
		}
		if c.Manager != nil {
			withManager++
		} else {
			without++
		}
	}
	if withManager == 0 || without == 0 {
		t.Errorf("%d clients with a manager, %d without", withManager, without)
	}
	// DemoClients hands out copies.
	clients[0].Manager.FirstName = "changed"
	if DemoClients()[0].Manager.FirstName == "changed" || DemoManagers()[0].Manager.FirstName == "changed" {
		t.Error("demo data shared between calls")
	}
}

func TestDemoCRM(t *testing.T) {
	crm, err := NewDemoCRM("demo")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewCRMServer(crm)
	defer srv.Close()
	c := &retailcrm.Client{BaseURL: srv.URL, APIKey: "demo"}
	ctx := context.Background()

	byCode := map[string]string{} // what the lookup says for a client of each manager code
	for _, dc := range DemoClients() {
		res, err := c.Manager(ctx, dc.Phone)
		if err != nil {
			t.Fatalf("%s: %v", dc.Phone, err)
		}
		if res.Customer == nil || res.Customer.ID != dc.Customer.ID {
			t.Errorf("%s: customer %+v", dc.Phone, res.Customer)
		}
		code := "none"
		if dc.Manager != nil {
			code = dc.Manager.Code
		}
		got := "nil"
		if res.Manager != nil {
			got = res.Manager.Code
		}
		byCode[code] = got
	}
	// The lookup ignores the managers' status (the relay judges it), so
	// 103, not free, is named too.
	want := map[string]string{"100": "100", "101": "101", "102": "102", "103": "103", "": "nil", "none": "nil"}
	for k, v := range want {
		if byCode[k] != v {
			t.Errorf("client of manager %q: lookup returned manager %q, want %q", k, byCode[k], v)
		}
	}
}
