package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/retailcrm"
)

// ServeBaseline runs the baseline the bench compares the relay with
// (--target gorilla): a minimal hub in the design of gorilla/websocket's
// chat example — one hub goroutine owning the client set, a read pump and
// a write pump goroutine per connection with a 256-frame send channel and
// a ping ticker each, 1 KiB read and write buffers. No persistence, no
// authentication: the bearer token is the operator's code. A PBX event
// posted to the relay's webhook path is parsed and each rung code's
// clients get a call frame; the answer is retailCRM's {"success":true}.
// It serves until ctx ends. It listens on loopback only.
func ServeBaseline(ctx context.Context, listen string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("baseline: listen: %w", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return errors.New("baseline: listen on a loopback address only")
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	h := &baseHub{
		clients:    map[string]map[*baseClient]bool{},
		register:   make(chan *baseClient),
		unregister: make(chan *baseClient),
		broadcast:  make(chan baseMsg, 256),
	}
	go h.run(ctx)
	up := websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}
	var seq struct {
		sync.Mutex
		n uint64
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Fprintf(w, "go_goroutines %d\ngo_memstats_heap_inuse_bytes %d\n", runtime.NumGoroutine(), ms.HeapInuse)
	})
	mux.HandleFunc("GET "+wire.Path, func(w http.ResponseWriter, r *http.Request) {
		code, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &baseClient{hub: h, code: code, conn: conn, send: make(chan []byte, 256)}
		c.send <- []byte(`{"v":1,"type":"hello","seq":0,"data":{}}`)
		h.register <- c
		go c.writePump()
		go c.readPump()
	})
	mux.HandleFunc("POST "+retailcrm.PathCallEvent, func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Phone string   `json:"phone"`
			Codes []string `json:"codes"`
			ID    string   `json:"callExternalId"`
		}
		if err := json.Unmarshal([]byte(r.PostFormValue("event")), &ev); err != nil {
			http.Error(w, `{"success":false}`, http.StatusBadRequest)
			return
		}
		data, _ := json.Marshal(map[string]string{"id": ev.ID, "phone": ev.Phone})
		for _, code := range ev.Codes {
			seq.Lock()
			seq.n++
			frame := fmt.Appendf(nil, `{"v":1,"type":"call","seq":%d,"data":%s}`, seq.n, data)
			seq.Unlock()
			h.broadcast <- baseMsg{code: code, frame: frame}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"success":true}`))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

type baseMsg struct {
	code  string
	frame []byte
}

type baseHub struct {
	clients    map[string]map[*baseClient]bool
	register   chan *baseClient
	unregister chan *baseClient
	broadcast  chan baseMsg
}

func (h *baseHub) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-h.register:
			if h.clients[c.code] == nil {
				h.clients[c.code] = map[*baseClient]bool{}
			}
			h.clients[c.code][c] = true
		case c := <-h.unregister:
			if set := h.clients[c.code]; set[c] {
				delete(set, c)
				close(c.send)
			}
		case m := <-h.broadcast:
			for c := range h.clients[m.code] {
				select {
				case c.send <- m.frame:
				default:
					close(c.send)
					delete(h.clients[m.code], c)
				}
			}
		}
	}
}

type baseClient struct {
	hub  *baseHub
	code string
	conn *websocket.Conn
	send chan []byte
}

func (c *baseClient) readPump() {
	defer func() {
		c.hub.unregister <- c
		c.conn.Close()
	}()
	c.conn.SetReadLimit(wire.DefaultMaxFrame)
	c.conn.SetReadDeadline(time.Now().Add(wire.PongWait))
	c.conn.SetPongHandler(func(string) error { c.conn.SetReadDeadline(time.Now().Add(wire.PongWait)); return nil })
	for {
		if _, _, err := c.conn.ReadMessage(); err != nil {
			return
		}
	}
}

func (c *baseClient) writePump() {
	ticker := time.NewTicker(wire.PingPeriod)
	defer func() {
		ticker.Stop()
		c.conn.Close()
	}()
	for {
		select {
		case frame, ok := <-c.send:
			c.conn.SetWriteDeadline(time.Now().Add(wire.WriteWait))
			if !ok {
				c.conn.WriteMessage(websocket.CloseMessage, []byte{})
				return
			}
			if err := c.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
				return
			}
		case <-ticker.C:
			c.conn.SetWriteDeadline(time.Now().Add(wire.WriteWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				return
			}
		}
	}
}

// baselineCommand is how Run starts the baseline: the same binary's hidden
// "bench-baseline" command.
func baselineArgs(port int) []string {
	return []string{"bench-baseline", "--listen", "127.0.0.1:" + strconv.Itoa(port)}
}
