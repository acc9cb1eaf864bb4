package relay_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pult/pult/agent"
	"github.com/pult/pult/agent/wire"
)

// BenchmarkCallEventToCard is one call's way through the whole relay, one
// call at a time: the PBX's webhook over HTTP, the record and the card
// stored in JetStream (embedded, file storage), the card delivered over a
// websocket to a connected agent. ns/op is that latency; allocs/op counts
// the whole process, agent and HTTP client included. `pult-relay bench`
// measures the same path under load.
func BenchmarkCallEventToCard(b *testing.B) {
	r := startRelay(b, testConfig(b))
	_, token := r.addOperator("Anna", "100", "1")
	cards := make(chan string, 16)
	a, err := agent.New(agent.Config{
		RelayURL: r.URL, Token: token, Logger: testLogger(b),
		OnEvent: func(e agent.Event) {
			if e.Kind == agent.EventCall && e.Call.State == wire.CallRinging {
				cards <- e.Call.ID
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	// The first call also waits for the agent to be connected: its card is
	// delivered when it is.
	call := func(i int) {
		id := fmt.Sprintf("bench-%d", i)
		status, body := r.callEvent(map[string]any{
			"type": "in", "phone": fmt.Sprintf("+7916%07d", i%10_000_000), "codes": []string{"100"}, "callExternalId": id,
		})
		if status != http.StatusOK {
			b.Fatalf("webhook answered %d: %v", status, body)
		}
		for {
			select {
			case got := <-cards:
				if got == id {
					return
				}
			case <-time.After(10 * time.Second):
				b.Fatalf("no card for %s within 10s", id)
			}
		}
	}
	call(0)
	b.ReportAllocs()
	for i := 1; b.Loop(); i++ {
		call(i)
	}
}
