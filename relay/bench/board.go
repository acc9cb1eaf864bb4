package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pult/pult/agent/wire"
	"github.com/pult/pult/relay/admin"
	"github.com/pult/pult/relay/operators"
)

// The queue board under load: supervisors subscribed to the board while
// the operators are connected and calls are fired. For each call, the
// board latency is from the moment its webhook POST started to the moment
// a supervisor's reader has the first "queue" delta that shows it waiting.

// supervisor is one subscribed board connection with its own reader.
type supervisor struct {
	idx     int
	conn    *websocket.Conn
	done    chan struct{}
	seen    map[int]time.Time // call number → first delta showing it waiting
	deltas  int
	gaps    int // deltas whose version was not the last + 1
	version uint64
	bytes   int64
	snapSz  int
	err     error
}

// BoardReport is the board part of a Report.
type BoardReport struct {
	Supervisors   int     `json:"supervisors"`
	SnapshotBytes int     `json:"snapshotBytes"` // the first snapshot, with every operator
	Deltas        int     `json:"deltas"`        // per supervisor, on average
	DeltaBytes    float64 `json:"deltaBytesAvg"`
	Gaps          int     `json:"versionGaps"`
	Missing       int     `json:"missing"` // (call, supervisor) pairs never shown waiting
	Disconnects   int     `json:"disconnects"`
	FirstClose    string  `json:"firstDisconnect,omitempty"`
	Latency       Latency `json:"latencyMs"` // POST start → delta at the supervisor
	Within100ms   float64 `json:"within100msPercent"`
}

// addSupervisors adds n supervisors (codes 9000…) and returns their tokens.
func addSupervisors(ctx context.Context, rp *relayProc, n int) ([]string, error) {
	ac := &admin.Client{Socket: rp.adminSocket}
	tokens := make([]string, n)
	for i := range n {
		added, err := ac.AddOperator(ctx, operators.NewOperator{
			Name: "Bench supervisor " + strconv.Itoa(i+1), Code: strconv.Itoa(9000 + i), UserID: strconv.Itoa(900000 + i),
			Role: wire.RoleSupervisor,
		})
		if err != nil {
			return nil, fmt.Errorf("bench: add supervisor %d: %w", 9000+i, err)
		}
		tokens[i] = added.Token
	}
	return tokens, nil
}

// subscribeBoards connects each supervisor, subscribes to the board and
// starts its reader.
func subscribeBoards(ctx context.Context, rp *relayProc, tokens []string, stopping *atomic.Bool) ([]*supervisor, error) {
	wsURL := "ws" + strings.TrimPrefix(rp.baseURL, "http") + wire.Path
	d := &websocket.Dialer{HandshakeTimeout: 15 * time.Second}
	var sups []*supervisor
	for i, tok := range tokens {
		h := http.Header{}
		h.Set("Authorization", "Bearer "+tok)
		h.Set(wire.HeaderProtocol, strconv.Itoa(wire.ProtocolVersion))
		conn, _, err := d.DialContext(ctx, wsURL, h)
		if err != nil {
			return sups, fmt.Errorf("bench: connect supervisor %d: %w", 9000+i, err)
		}
		s := &supervisor{idx: i, conn: conn, done: make(chan struct{}), seen: map[int]time.Time{}}
		conn.SetReadDeadline(time.Now().Add(15 * time.Second))
		var env wire.Envelope
		if err := conn.ReadJSON(&env); err != nil || env.Type != wire.TypeHello {
			conn.Close()
			return sups, fmt.Errorf("bench: supervisor %d hello: %v %q", 9000+i, err, env.Type)
		}
		req, _ := wire.Encode(wire.TypeQueueSubscribe, "sub", 0, nil)
		if err := conn.WriteMessage(websocket.TextMessage, req); err != nil {
			conn.Close()
			return sups, fmt.Errorf("bench: supervisor %d subscribe: %w", 9000+i, err)
		}
		_, b, err := conn.ReadMessage()
		if err == nil {
			err = json.Unmarshal(b, &env)
		}
		var snap wire.QueueSnapshot
		if err == nil && (env.Type != wire.TypeReply || env.ID != "sub") {
			err = fmt.Errorf("answer %q %s", env.Type, env.Data)
		}
		if err == nil {
			err = json.Unmarshal(env.Data, &snap)
		}
		if err != nil {
			conn.Close()
			return sups, fmt.Errorf("bench: supervisor %d subscribe: %w", 9000+i, err)
		}
		conn.SetReadDeadline(time.Time{})
		s.version, s.snapSz = snap.Version, len(b)
		sups = append(sups, s)
		go s.read(stopping)
	}
	return sups, nil
}

func (s *supervisor) read(stopping *atomic.Bool) {
	defer close(s.done)
	var d struct {
		Version uint64 `json:"version"`
		Waiting []struct {
			ID string `json:"id"`
		} `json:"waiting"`
	}
	for {
		_, b, err := s.conn.ReadMessage()
		now := time.Now()
		if err != nil {
			if !stopping.Load() {
				s.err = err
			}
			return
		}
		var env wire.Envelope
		if json.Unmarshal(b, &env) != nil || env.Type != wire.TypeQueue {
			continue
		}
		d.Version, d.Waiting = 0, d.Waiting[:0]
		if json.Unmarshal(env.Data, &d) != nil {
			continue
		}
		s.deltas++
		s.bytes += int64(len(b))
		if d.Version != s.version+1 {
			s.gaps++
		}
		s.version = d.Version
		for _, w := range d.Waiting {
			if n, ok := callNumber(w.ID); ok {
				if _, had := s.seen[n]; !had {
					s.seen[n] = now
				}
			}
		}
	}
}

func closeSupervisors(sups []*supervisor) bool {
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bench done")
	for _, s := range sups {
		s.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		s.conn.Close()
	}
	deadline := time.After(10 * time.Second)
	for _, s := range sups {
		select {
		case <-s.done:
		case <-deadline:
			return false
		}
	}
	return true
}

// tallyBoard matches the deltas the supervisors got against the calls
// fired. Every reader must have finished.
func tallyBoard(calls []call, sups []*supervisor) BoardReport {
	br := BoardReport{Supervisors: len(sups)}
	var lat []time.Duration
	var bytes int64
	for _, s := range sups {
		br.Deltas += s.deltas
		bytes += s.bytes
		br.Gaps += s.gaps
		br.SnapshotBytes = max(br.SnapshotBytes, s.snapSz)
		if s.err != nil {
			br.Disconnects++
			if br.FirstClose == "" {
				br.FirstClose = fmt.Sprintf("supervisor %d: %v", 9000+s.idx, s.err)
			}
		}
		for n, c := range calls {
			if !c.ok {
				continue
			}
			at, ok := s.seen[n]
			if !ok {
				br.Missing++
				continue
			}
			lat = append(lat, at.Sub(c.sent))
		}
	}
	if br.Deltas > 0 {
		br.DeltaBytes = float64(bytes) / float64(br.Deltas)
	}
	if len(sups) > 0 {
		br.Deltas /= len(sups)
	}
	in := 0
	for _, d := range lat {
		if d <= 100*time.Millisecond {
			in++
		}
	}
	if len(lat) > 0 {
		br.Within100ms = 100 * float64(in) / float64(len(lat))
	}
	br.Latency = summarise(lat)
	return br
}

var errSupervisorsStuck = errors.New("bench: supervisor readers did not stop within 10s of closing")
