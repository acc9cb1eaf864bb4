// Package store keeps everything the relay must not lose in NATS JetStream:
// the per-operator event log, operators, statuses, call state, request ids,
// and the outbox with its dead letters; and, shared by the relay nodes of a
// cluster, which operators are connected to which node and the leases (the
// presence bucket, whose entries expire unless renewed). By default it
// embeds a nats-server with JetStream on local disk; given a URL it uses an
// external NATS through the same code path.
//
// The store speaks in verbs: load and save a call or a status (a lost
// compare-and-set is ErrConflict), append and tail the event log, remember
// replies and transcripts, record and read the call history, save the
// board's checkpoint, hold presence and leases. Its callers see bytes,
// keys, revisions and sequences, never a NATS or JetStream type, and every
// key of its buckets is made in keys.go. The relay's root package imports
// neither nats nor jetstream.
//
// Two parts are the exception, because they are built on JetStream's own
// semantics rather than on the store's records: package outbox is a
// JetStream work queue (a consumer's redelivery, naks with delay, message-id
// dedupe, the dead-letter stream), and package operators watches its
// bucket for every change (a revocation reaches every node that way). Each
// gets its own handles — Outbox, OperatorsBucket — owns the keys and
// values in them, and is the only one to touch them; the root only passes
// the handles from the store to the part at start.
//
// Goroutines: the store runs none of its own beyond the embedded server's
// and NATS's, but for SubscribeAhead's, which hands the cards other relays
// share to its callback until stopped. Its verbs run on their callers';
// the feeds (Tail, TailCalls, WatchPresence, WatchStatuses, ReadUploads)
// run on the goroutine that calls them — a part's Run — until its context
// ends.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Names of streams and buckets.
const (
	EventsStream   = "PULT_EVENTS"
	eventsPrefix   = "pult.ev."
	callsPrefix    = "pult.call." // a call's record, in EventsStream beside its cards
	OutboxStream   = "PULT_OUTBOX"
	OutboxPrefix   = "pult.outbox."
	DeadStream     = "PULT_DEAD"
	DeadPrefix     = "pult.dead."
	UploadsStream  = "PULT_CALL_UPLOADS"
	UploadsSubject = "pult.uploads"
	// formerQueueStream held the queue board's input (each call change,
	// as the whole record) until the board read the records themselves
	// (see retireFormerQueue).
	formerQueueStream = "PULT_QUEUE"
	bucketOperators   = "pult_operators"
	bucketStatus      = "pult_status"
	bucketCalls       = "pult_calls"
	bucketRequests    = "pult_requests"
	bucketOutbox      = "pult_outbox_state"
	bucketTrans       = "pult_transcripts"
	bucketQueue       = "pult_queue"
	bucketUploaded    = "pult_uploaded"
	bucketPresence    = "pult_presence"
)

// PresenceTTL is how long a relay node's presence record and a lease
// outlive their last renewal (Options.PresenceTTL's default): a node that
// dies is gone from every board, and its lease free, within it — and
// within 30 s, the server's expiry taking a moment more than the TTL.
const PresenceTTL = 25 * time.Second

// UploadedRetention is how long the external ids of the calls PBXes
// uploaded are remembered, so that an upload repeated any time within it is
// reported as a duplicate (retailCRM remembers them for good; a year is
// longer than any PBX retries or re-syncs).
const UploadedRetention = 366 * 24 * time.Hour

// MaxPayload is the largest message the embedded server accepts: a chat
// transcript of wire.MaxTranscript bytes, JSON-encoded for the QA platform
// and wrapped in an outbox job, needs more than NATS's default 1 MiB. An
// external NATS server needs max_payload set as high.
const MaxPayload = 8 << 20

// Headers of call-history records in UploadsStream.
const (
	hdrUploadSource = "Pult-Upload-Source" // uploadFromPBX or uploadFromCall
	uploadFromPBX   = "pbx"                // a PBX uploaded it (telephony/calls/upload)
	uploadFromCall  = "call"               // the relay made it from a finished call's events
)

// OutboxDedupeWindow is how long the outbox remembers a job id: enqueueing
// the same id again within it stores nothing (JetStream's Nats-Msg-Id
// dedupe). Later, the same id is a new job; partners' own idempotency keys
// cover that.
const OutboxDedupeWindow = time.Hour

// Event headers.
const (
	hdrType     = "Pult-Type"
	hdrReceived = "Pult-Received"
)

// JetStream's codes of a stream whose limits do not fit its server's or
// account's store.
const (
	jsInsufficientResources    jetstream.ErrorCode = 10023
	jsStorageResourcesExceeded jetstream.ErrorCode = 10047
)

// Options configure Open.
type Options struct {
	URL            string        // external NATS URL(s), comma-separated; "" embeds a server
	DataDir        string        // where the embedded server keeps JetStream
	EventRetention time.Duration // how long operator events are kept for resume
	CallRetention  time.Duration // how long call state is kept
	RequestWindow  time.Duration // how long request ids are remembered for dedupe
	// The embedded server's fsync: before every acknowledgement
	// (SyncAlways), or every SyncInterval (the server's default when 0).
	SyncInterval time.Duration
	SyncAlways   bool
	// MaxBytes is the storage budget: each stream and bucket gets its
	// share of it (Shares) as its byte limit, and the embedded server's
	// JetStream store is capped at it. 0: no byte limits.
	MaxBytes int64
	// DeadLetters is how many dead letters are kept; beyond it the oldest
	// go. 0: no count limit.
	DeadLetters int64
	// RequestIDsPerOperator bounds the answered request ids remembered per
	// operator (SaveReply); defaultRequestIDs when 0.
	RequestIDsPerOperator int
	Logger                *slog.Logger

	// PresenceTTL is the presence bucket's TTL (PresenceTTL when 0): the
	// nodes' records and the leases expire this long after their last
	// write. Every node of a cluster must use the same.
	PresenceTTL time.Duration
	// Replicas is how many copies JetStream keeps of every stream and
	// bucket (0: 1). It is applied to existing ones too: JetStream scales a
	// stream's replicas up or down with an update.
	Replicas int
	// Cluster, when set, joins the embedded server to a cluster (its
	// JetStream clustered); ignored with URL.
	Cluster *Cluster
	// An external server's credentials (a .creds file) and TLS: the CA
	// of its certificates and a client certificate (PEM files).
	CredsFile, TLSCA, TLSCert, TLSKey string
}

// Cluster is the embedded server's cluster.
type Cluster struct {
	Name       string   // the cluster's, the same on every node
	ServerName string   // this node's, unique and stable
	Listen     string   // host:port of its route listener
	Routes     []string // nats-route://host:port of the others
	// Secret, when set, is what every node's routes must present (the
	// same on every node): a route without it is refused.
	Secret string
	// TLSCA, TLSCert and TLSKey (PEM files), when set, make every route
	// TLS, both ways verified against TLSCA: a node must hold a
	// certificate the CA signed, valid for the host its peers dial.
	TLSCA, TLSCert, TLSKey string
}

// routeUser is the user name routes present with Cluster.Secret.
const routeUser = "pult-route"

// Shares are the parts of Options.MaxBytes each stream and bucket may use,
// in percent (they add up to 100). Streams that are logs (the events and
// the calls' records, the call history, the dead letters) drop their
// oldest messages when full, as they do at their age limit; the others
// (the outbox, the buckets) refuse new writes, which the relay prevents by
// refusing new work first (see Usage).
var Shares = map[string]int64{
	EventsStream:      35, // the events and the calls' records (the queue board's input)
	formerQueueStream: 1,  // while relays before the records were the board's input may write to it

	UploadsStream:   10,
	OutboxStream:    25,
	DeadStream:      8,
	bucketQueue:     8,
	bucketCalls:     1, // records from before they moved into EventsStream; read, not written
	bucketRequests:  5,
	bucketTrans:     2,
	bucketUploaded:  2,
	bucketOperators: 1,
	bucketStatus:    1,
	bucketOutbox:    1,
}

// share is name's byte limit out of the budget (0: none).
func share(budget int64, name string) int64 {
	if budget <= 0 {
		return 0
	}
	return budget / 100 * Shares[name]
}

// Store is an open connection to JetStream with the relay's streams and buckets.
type Store struct {
	log *slog.Logger
	ns  *server.Server // nil when external
	// clusterSize is how many servers the embedded cluster has (this one
	// and the others its routes name); 0 when not an embedded cluster.
	clusterSize int
	nc          *nats.Conn
	bulk        *nats.Conn // for large writes (see queueState)
	js          jetstream.JetStream

	events jetstream.Stream
	epoch  string

	outbox      jetstream.Stream   // outbound partner calls waiting (work queue)
	dead        jetstream.Stream   // outbox jobs given up, until retried or dropped
	outboxState jetstream.KeyValue // attempts and errors of waiting outbox jobs
	uploads     jetstream.Stream
	operators   jetstream.KeyValue
	status      jetstream.KeyValue
	calls       jetstream.KeyValue
	requests    jetstream.KeyValue
	transcripts jetstream.KeyValue // accepted transcript submissions, for dedupe
	uploaded    jetstream.KeyValue // external ids of calls PBXes uploaded (see PublishPBXUpload)
	// queueState holds the queue board's checkpoint: megabytes at a time,
	// written over a connection of its own so that the events queued behind
	// it on a shared one do not wait for it.
	queueState jetstream.KeyValue
	// presence holds, per relay node, the operators with an agent
	// connected to it ("node.<id>"), and the leases ("lease.<name>"); both
	// expire unless renewed.
	presence    jetstream.KeyValue
	presenceTTL time.Duration

	clustered     bool          // Options.clustered
	shared        bool          // other relays may use the same NATS (see ShareAhead)
	replicas      int           // Options.Replicas, at least 1
	maxBytes      int64         // Options.MaxBytes
	requestWindow time.Duration // Options.RequestWindow
	replyKeep     int           // replies kept per slot of an operator (SaveReply)
	limited       []limited     // every stream and bucket, for Usage
}

// limited is a stream or bucket with its byte limit, for Usage.
type limited struct {
	name    string
	stream  jetstream.Stream
	guarded bool // refuses writes when full (not a log dropping its oldest)
}

// Open connects (starting the embedded server when no URL is given) and makes
// sure every stream and bucket exists.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.EventRetention <= 0 {
		o.EventRetention = 7 * 24 * time.Hour
	}
	if o.CallRetention <= 0 {
		o.CallRetention = 48 * time.Hour
	}
	if o.RequestWindow <= 0 {
		o.RequestWindow = 24 * time.Hour
	}
	if o.RequestIDsPerOperator <= 0 {
		o.RequestIDsPerOperator = defaultRequestIDs
	}
	if o.PresenceTTL <= 0 {
		o.PresenceTTL = PresenceTTL
	}
	s := &Store{log: o.Logger.With("component", "store"), clustered: o.clustered(), shared: o.URL != "" || o.clustered(), replicas: max(o.Replicas, 1), maxBytes: o.MaxBytes, requestWindow: o.RequestWindow,
		replyKeep: max(1, (o.RequestIDsPerOperator+replySlots-1)/replySlots)}
	s.presenceTTL = o.PresenceTTL
	if o.URL == "" && o.Cluster != nil {
		s.clusterSize = clusterSize(o.Cluster)
	}
	var err error
	var token string // the embedded server's, when it listens for clients
	connect := func(name string) (*nats.Conn, error) {
		if s.ns != nil {
			return nats.Connect("", nats.InProcessServer(s.ns), nats.Name(name), nats.Token(token))
		}
		opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1),
			nats.ConnectHandler(func(*nats.Conn) {}),
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				s.log.Warn("nats disconnected", "name", name, "err", err)
			}),
			nats.ReconnectHandler(func(nc *nats.Conn) {
				s.log.Info("nats reconnected", "name", name, "server", nc.ConnectedServerName())
			}),
			// nats.go would print these on stderr.
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				s.log.Warn("nats error", "name", name, "err", err)
			})}
		if o.CredsFile != "" {
			opts = append(opts, nats.UserCredentials(o.CredsFile))
		}
		if o.TLSCA != "" {
			opts = append(opts, nats.RootCAs(o.TLSCA))
		}
		if o.TLSCert != "" {
			opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
		}
		return nats.Connect(o.URL, opts...)
	}
	var standalone string // a single node's store moved aside, to copy into the cluster
	if o.URL == "" {
		if o.Cluster != nil && o.DataDir != "" {
			if standalone, err = moveStandalone(o.DataDir); err != nil {
				return nil, err
			}
		}
		if s.ns, token, err = startEmbedded(o, o.Logger.With("component", "nats")); err != nil {
			return nil, err
		}
	}
	if s.nc, err = connect("pult-relay"); err == nil {
		s.bulk, err = connect("pult-relay-bulk")
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("store: connect to nats: %w", err)
	}
	if mp := s.nc.MaxPayload(); mp < MaxPayload {
		s.Close()
		return nil, fmt.Errorf("store: the NATS server at %s accepts messages of at most %d bytes (its max_payload), "+
			"but the relay sends up to %d (a chat transcript on its way to the QA platform): set max_payload: %dMB in the server's configuration",
			s.nc.ConnectedUrlRedacted(), mp, MaxPayload, MaxPayload>>20)
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		s.Close()
		return nil, fmt.Errorf("store: jetstream: %w", err)
	}
	if err := s.provisionWhenReady(ctx, o); err != nil {
		s.Close()
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jsStorageResourcesExceeded || apiErr.ErrorCode == jsInsufficientResources) {
			return nil, fmt.Errorf("%w: the streams' byte limits add up to [limits] max_store_bytes (%d bytes); lower it, or give NATS's JetStream that much store", err, o.MaxBytes)
		}
		return nil, err
	}
	if standalone != "" {
		s.log.Info("this node ran alone before: copying its data into the cluster", "from", standalone)
		if err := s.copyStandalone(ctx, o, standalone); err != nil {
			s.Close()
			return nil, fmt.Errorf("%w (the single node's store is kept in %s; move it back to %s to run alone again)", err, standalone, filepath.Join(o.DataDir, "jetstream"))
		}
		s.log.Warn("the single node's data is in the cluster now; its old store is kept: delete it once satisfied", "dir", standalone)
	}
	return s, nil
}

// Durability says when the embedded server makes writes durable on disk,
// as the server itself reports it, for the relay's start-up line; an
// external server decides that itself.
func (s *Store) Durability() string {
	if s.ns == nil {
		return "external server's own"
	}
	c := s.ns.JetStreamConfig()
	switch {
	case c == nil:
		return "unknown"
	case c.SyncAlways:
		return "fsync before every acknowledgement"
	}
	return "fsync every " + c.SyncInterval.String()
}

// startEmbedded starts the embedded server. Alone, it has no listener at
// all (the relay connects in-process). In a cluster it listens for routes
// on Cluster.Listen; nats-server then needs a client listener too (its
// routes start once that one is up), so it gets one on a random loopback
// port, guarded by a random token that only this process knows.
func startEmbedded(o Options, log *slog.Logger) (ns *server.Server, token string, err error) {
	if o.DataDir == "" {
		return nil, "", errors.New("store: data_dir is required for the embedded NATS server")
	}
	return startEmbeddedIn(o, filepath.Join(o.DataDir, "jetstream"), log)
}

// startEmbeddedIn is startEmbedded with the JetStream store in dir.
func startEmbeddedIn(o Options, dir string, log *slog.Logger) (ns *server.Server, token string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("store: %w", err)
	}
	opts := &server.Options{
		ServerName:   "pult-relay",
		DontListen:   true,
		JetStream:    true,
		StoreDir:     dir,
		NoSigs:       true,
		NoLog:        true,
		MaxPayload:   MaxPayload,
		SyncInterval: o.SyncInterval,
		SyncAlways:   o.SyncAlways,
		// The streams' byte limits add up to the budget; JetStream
		// reserves them against this.
		JetStreamMaxStore: max(o.MaxBytes, 0),
	}
	if c := o.Cluster; c != nil {
		host, port, err := splitHostPort(c.Listen)
		if err != nil {
			return nil, "", fmt.Errorf("store: cluster listen: %w", err)
		}
		var routes []*url.URL
		for _, r := range c.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, "", fmt.Errorf("store: cluster route %q: %w", r, err)
			}
			if c.Secret != "" {
				u.User = url.UserPassword(routeUser, c.Secret)
			}
			routes = append(routes, u)
		}
		token = randomToken()
		opts.ServerName = c.ServerName
		opts.DontListen = false
		opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
		opts.Authorization = token
		opts.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: port}
		if c.Secret != "" {
			opts.Cluster.Username, opts.Cluster.Password = routeUser, c.Secret
		}
		if c.TLSCert != "" {
			tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: c.TLSCert, KeyFile: c.TLSKey, CaFile: c.TLSCA, Verify: true})
			if err != nil {
				return nil, "", fmt.Errorf("store: cluster TLS: %w", err)
			}
			// A route is a client of its peer too: it verifies the
			// peer's certificate against the same CA.
			tc.RootCAs = tc.ClientCAs
			opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = tc, 5
		}
		opts.Routes = routes
	}
	ns, err = server.NewServer(opts)
	if err != nil {
		return nil, "", fmt.Errorf("store: embedded nats: %w", err)
	}
	ns.SetLoggerV2(natsLogger{log}, false, false, false)
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, "", errors.New("store: embedded nats did not start within 10s")
	}
	return ns, token, nil
}

func splitHostPort(hp string) (string, int, error) {
	host, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, port, nil
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// clustered reports whether JetStream may be clustered: it then takes a
// while to be ready (a meta leader elected, enough peers for the replicas).
func (o Options) clustered() bool {
	return o.Cluster != nil || o.Replicas > 1 || strings.Contains(o.URL, ",")
}

// provisionWhenReady provisions; a clustered JetStream that is not ready
// yet (no leader, too few nodes up for the replicas) is waited for, until
// ctx ends, saying so every 10 s.
func (s *Store) provisionWhenReady(ctx context.Context, o Options) error {
	if !o.clustered() {
		return s.provision(ctx, o)
	}
	started := time.Now()
	lastSaid := started
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.provision(actx, o)
		if err == nil {
			err = s.leadersElected(actx)
		}
		cancel()
		if err == nil {
			if time.Since(started) > time.Second {
				s.log.Info("JetStream cluster ready", "waited", time.Since(started).Round(time.Millisecond))
			}
			return nil
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && (apiErr.ErrorCode == jsStorageResourcesExceeded) {
			return err
		}
		if time.Since(lastSaid) >= 10*time.Second {
			s.log.Warn("waiting for the JetStream cluster (are enough nodes up for nats.replicas?)",
				"replicas", max(o.Replicas, 1), "waited", time.Since(started).Round(time.Second), "err", err)
			lastSaid = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("store: the JetStream cluster was not ready: %w (last: %v)", ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (s *Store) provision(ctx context.Context, o Options) error {
	var err error
	s.limited = nil
	replicas := max(o.Replicas, 1)
	// Direct gets are answered by any replica, which may not have the
	// latest writes yet; in a cluster, reads go to the leader instead, so
	// that a node reads what another wrote a moment ago (an agent resuming
	// on it, a request re-sent to it). Decided by the cluster, not by the
	// copies: raising replicas one node at a time must not switch direct
	// gets off under the nodes still running.
	direct := !o.clustered()
	if err := s.retireFormerQueue(ctx, o); err != nil {
		return err
	}
	s.events, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        EventsStream,
		MaxBytes:    share(o.MaxBytes, EventsStream),
		Discard:     jetstream.DiscardOld,
		Description: "per-operator event streams (call cards, statuses, notices)",
		Subjects:    []string{eventsPrefix + ">", callsPrefix + ">"},
		Storage:     jetstream.FileStorage,
		MaxAge:      o.EventRetention,
		Duplicates:  2 * time.Minute,
		AllowDirect: direct,
		Replicas:    replicas,
	})
	if err != nil {
		return fmt.Errorf("store: events stream: %w", err)
	}
	info, err := s.events.Info(ctx)
	if err != nil {
		return fmt.Errorf("store: events stream info: %w", err)
	}
	s.epoch = strconv.FormatInt(info.Created.UnixNano(), 36)

	s.outbox, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        OutboxStream,
		MaxBytes:    share(o.MaxBytes, OutboxStream),
		Discard:     jetstream.DiscardNew,
		Description: "outbound partner calls waiting to be delivered",
		Subjects:    []string{OutboxPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Duplicates:  OutboxDedupeWindow,
		Replicas:    replicas,
	})
	if err != nil {
		return fmt.Errorf("store: outbox stream: %w", err)
	}
	s.dead, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        DeadStream,
		MaxBytes:    share(o.MaxBytes, DeadStream),
		MaxMsgs:     max(o.DeadLetters, 0),
		Discard:     jetstream.DiscardOld,
		Description: "outbound partner calls given up (dead letters), kept until retried or dropped",
		Subjects:    []string{DeadPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Duplicates:  10 * time.Minute,
		Replicas:    replicas,
	})
	if err != nil {
		return fmt.Errorf("store: dead letter stream: %w", err)
	}
	s.uploads, err = s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        UploadsStream,
		MaxBytes:    share(o.MaxBytes, UploadsStream),
		Discard:     jetstream.DiscardOld,
		Description: "call history: received from PBXes (telephony/calls/upload) and made from finished calls",
		Subjects:    []string{UploadsSubject},
		Storage:     jetstream.FileStorage,
		MaxAge:      30 * 24 * time.Hour,
		Duplicates:  10 * time.Minute,
		Replicas:    replicas,
	})
	if err != nil {
		return fmt.Errorf("store: uploads stream: %w", err)
	}
	s.limited = append(s.limited,
		limited{name: EventsStream, stream: s.events},
		limited{name: UploadsStream, stream: s.uploads}, limited{name: DeadStream, stream: s.dead},
		limited{name: OutboxStream, stream: s.outbox, guarded: true})
	kv := func(name, desc string, ttl time.Duration) (jetstream.KeyValue, error) {
		cfg := jetstream.KeyValueConfig{
			Bucket: name, Description: desc, TTL: ttl, Storage: jetstream.FileStorage, History: 1,
			MaxBytes: share(o.MaxBytes, name), Replicas: replicas,
		}
		var b jetstream.KeyValue
		var st jetstream.Stream
		if direct {
			if b, err = s.js.CreateOrUpdateKeyValue(ctx, cfg); err == nil {
				st, err = s.js.Stream(ctx, "KV_"+name)
			}
		} else {
			st, err = s.kvLeaderReads(ctx, cfg)
			if err == nil {
				b, err = s.js.KeyValue(ctx, name)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("store: bucket %s: %w", name, err)
		}
		// The calls' former bucket is only read: however full, it refuses
		// nothing the relay writes.
		s.limited = append(s.limited, limited{name: name, stream: st, guarded: name != bucketCalls})
		return b, nil
	}
	if s.operators, err = kv(bucketOperators, "operators and their token hashes", 0); err != nil {
		return err
	}
	if s.status, err = kv(bucketStatus, "operator statuses", 0); err != nil {
		return err
	}
	if s.calls, err = kv(bucketCalls, "call records of earlier versions (read only)", o.CallRetention); err != nil {
		return err
	}
	if s.requests, err = kv(bucketRequests, "answered request ids, for dedupe", o.RequestWindow); err != nil {
		return err
	}
	if s.transcripts, err = kv(bucketTrans, "accepted transcript submissions by operator and id, for dedupe", 30*24*time.Hour); err != nil {
		return err
	}
	if s.uploaded, err = kv(bucketUploaded, "external ids of the calls PBXes uploaded, for duplicateCalls", UploadedRetention); err != nil {
		return err
	}
	if _, err = kv(bucketQueue, "the queue board's checkpoint", 0); err != nil {
		return err
	}
	bulk, err := jetstream.New(s.bulk)
	if err != nil {
		return fmt.Errorf("store: jetstream: %w", err)
	}
	if s.queueState, err = bulk.KeyValue(ctx, bucketQueue); err != nil {
		return fmt.Errorf("store: bucket %s: %w", bucketQueue, err)
	}
	// Records are rewritten at every attempt (at least hourly while a job
	// fails); the TTL only clears what a crash left behind.
	if s.outboxState, err = kv(bucketOutbox, "attempts and errors of waiting outbox jobs, by stream sequence", 30*24*time.Hour); err != nil {
		return err
	}
	// Presence and leases: a record lives PresenceTTL after its last
	// write, and its expiry leaves a marker that watchers see as a delete
	// (LimitMarkerTTL), so every node learns of a dead node's end. Held in
	// memory: it is rewritten every few seconds and worth nothing after a
	// restart of the whole cluster.
	if s.presence, err = s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bucketPresence, Description: "relay nodes' connected operators, and leases",
		TTL: o.PresenceTTL, LimitMarkerTTL: o.PresenceTTL, History: 1, Storage: jetstream.MemoryStorage, Replicas: replicas,
	}); err != nil {
		return fmt.Errorf("store: bucket %s: %w", bucketPresence, err)
	}
	return nil
}

// Usage is what a stream or bucket holds against its limits.
type Usage struct {
	Name            string // stream name, or bucket name for a bucket
	Bytes, MaxBytes uint64 // MaxBytes 0: no limit
	Msgs, MaxMsgs   uint64 // MaxMsgs 0: no limit
	// Guarded: writes are refused when it is full (the outbox, the
	// buckets), so the relay must stop taking work before that. The
	// others are logs that drop their oldest messages instead.
	Guarded bool
	// Largest is the largest message a new piece of work may add (a
	// transcript's outbox job, up to MaxPayload, for the outbox; 0 where
	// messages are small).
	Largest uint64
}

// Headroom is Ratio with room for one more Largest message: the share
// used once it is stored.
func (u Usage) Headroom() float64 {
	if u.MaxBytes == 0 || u.Largest == 0 {
		return u.Ratio()
	}
	return max(u.Ratio(), float64(u.Bytes+u.Largest)/float64(u.MaxBytes))
}

// Ratio is the larger of Bytes/MaxBytes and Msgs/MaxMsgs (0 without limits).
func (u Usage) Ratio() float64 {
	r := 0.0
	if u.MaxBytes > 0 {
		r = float64(u.Bytes) / float64(u.MaxBytes)
	}
	if u.MaxMsgs > 0 {
		r = max(r, float64(u.Msgs)/float64(u.MaxMsgs))
	}
	return r
}

// AccountName is the Usage entry of the whole JetStream account: its
// storage used against the budget (or the account's own limit, on an
// external server that sets one).
const AccountName = "account"

// Usage reports every stream and bucket, and the account, as JetStream
// sees them now (one round trip each).
func (s *Store) Usage(ctx context.Context) ([]Usage, error) {
	out := make([]Usage, 0, len(s.limited)+1)
	for _, l := range s.limited {
		info, err := l.stream.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("store: %s info: %w", l.name, err)
		}
		u := Usage{Name: l.name, Bytes: info.State.Bytes, Msgs: info.State.Msgs, Guarded: l.guarded}
		if l.name == OutboxStream {
			u.Largest = MaxPayload
		}
		if info.Config.MaxBytes > 0 {
			u.MaxBytes = uint64(info.Config.MaxBytes)
		}
		if info.Config.MaxMsgs > 0 {
			u.MaxMsgs = uint64(info.Config.MaxMsgs)
		}
		out = append(out, u)
	}
	ai, err := s.js.AccountInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: account info: %w", err)
	}
	acct := Usage{Name: AccountName, Bytes: ai.Store, Guarded: true}
	if ai.Limits.MaxStore > 0 {
		acct.MaxBytes = uint64(ai.Limits.MaxStore)
	}
	// JetStream counts an account's storage on every server: each copy of
	// a stream counts, so the budget is max_store_bytes for each.
	if budget := uint64(s.maxBytes) * uint64(s.replicas); s.maxBytes > 0 && (acct.MaxBytes == 0 || budget < acct.MaxBytes) {
		acct.MaxBytes = budget
	}
	return append(out, acct), nil
}

// Close disconnects and stops the embedded server, flushing it to disk.
func (s *Store) Close() {
	for _, nc := range []*nats.Conn{s.nc, s.bulk} {
		if nc != nil {
			// Everything sent reaches the server before it stops: a job's
			// delayed nak, say, which Drain (asynchronous) followed by Close
			// could lose, leaving the job to its ack deadline.
			nc.FlushTimeout(2 * time.Second)
			nc.Close()
		}
	}
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
}

// Connected reports whether the store's connection to NATS is up (the
// embedded server's, or the external one's).
func (s *Store) Connected() bool { return s.nc.IsConnected() }

// Epoch identifies this incarnation of the event log: it changes only if the
// log is recreated, which makes older sequence numbers meaningless.
func (s *Store) Epoch() string { return s.epoch }

// Event is one entry of an operator's event stream.
type Event struct {
	Seq      uint64
	Operator string
	Type     string
	Data     []byte
	Received time.Time // when the relay received what caused it (zero if unknown)
	MsgID    string    // the id it was appended with ("" when none)
}

func subject(op string) string { return eventsPrefix + op }

// Append adds an event to an operator's stream. msgID, when set, makes the
// append idempotent within the dedupe window.
func (s *Store) Append(ctx context.Context, op, typ string, data []byte, msgID string, received time.Time) (uint64, error) {
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ack, err := s.js.PublishMsg(ctx, eventMsg(op, typ, data, received), opts...)
	if err != nil {
		return 0, fmt.Errorf("store: append %s for %s: %w", typ, op, err)
	}
	return ack.Sequence, nil
}

// Acks are publishes sent without waiting for JetStream to store them, so
// that several are stored concurrently instead of one round trip after
// another; Wait waits for every one. Publishes from one connection are
// stored in the order they were sent, as waiting for each would store them.
type Acks struct {
	futures []jetstream.PubAckFuture
}

// ackWait bounds Wait when ctx has no deadline, as JetStream's default API
// timeout bounds a synchronous publish.
const ackWait = 5 * time.Second

// Wait returns once every publish is stored, with the first error if one
// was not.
func (a *Acks) Wait(ctx context.Context) error {
	if len(a.futures) == 0 {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ackWait)
		defer cancel()
	}
	for _, f := range a.futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("store: publish to %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return fmt.Errorf("store: publish to %s: %w", f.Msg().Subject, ctx.Err())
		}
	}
	return nil
}

func (s *Store) publishAsync(a *Acks, m *nats.Msg, msgID string) error {
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	f, err := s.js.PublishMsgAsync(m, opts...)
	if err != nil {
		return fmt.Errorf("store: publish to %s: %w", m.Subject, err)
	}
	a.futures = append(a.futures, f)
	return nil
}

// AppendAsync is Append without waiting: the event is stored once a.Wait
// returns nil.
func (s *Store) AppendAsync(a *Acks, op, typ string, data []byte, msgID string, received time.Time) error {
	return s.publishAsync(a, eventMsg(op, typ, data, received), msgID)
}

func eventMsg(op, typ string, data []byte, received time.Time) *nats.Msg {
	m := nats.NewMsg(subject(op))
	m.Data = data
	m.Header.Set(hdrType, typ)
	if !received.IsZero() {
		m.Header.Set(hdrReceived, strconv.FormatInt(received.UnixNano(), 10))
	}
	return m
}

// Next returns the operator's first event with a sequence > after, or nil.
func (s *Store) Next(ctx context.Context, op string, after uint64) (*Event, error) {
	m, err := s.events.GetMsg(ctx, after+1, jetstream.WithGetMsgSubject(subject(op)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read events of %s after %d: %w", op, after, err)
	}
	return &Event{
		Seq: m.Sequence, Operator: op, Type: m.Header.Get(hdrType), Data: m.Data,
		Received: parseNanos(m.Header.Get(hdrReceived)), MsgID: m.Header.Get(jetstream.MsgIDHeader),
	}, nil
}

// FirstSince returns the sequence of the operator's first event stored at
// or after t (by the log's own clock); ok is false when the operator has
// none. The caller bounds it with ctx.
//
// nats.go's Stream.GetMsg does not take a start time, so the JetStream API
// request is sent as it would send it: to the stream's leader (not a direct
// get: a cluster's followers may lag), under the default API prefix, which
// is the one s.js uses (jetstream.New, no domain).
func (s *Store) FirstSince(ctx context.Context, op string, t time.Time) (seq uint64, ok bool, err error) {
	req, err := json.Marshal(struct {
		NextFor   string    `json:"next_by_subj"`
		StartTime time.Time `json:"start_time"`
		NoHeaders bool      `json:"no_hdr"`
	}{subject(op), t.UTC(), true})
	if err != nil {
		return 0, false, err
	}
	m, err := s.nc.RequestWithContext(ctx, jetstream.DefaultAPIPrefix+"STREAM.MSG.GET."+EventsStream, req)
	if err != nil {
		return 0, false, fmt.Errorf("store: first event of %s since %s: %w", op, t.Format(time.RFC3339), err)
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Seq uint64 `json:"seq"`
		} `json:"message"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return 0, false, fmt.Errorf("store: first event of %s: %w", op, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return 0, false, nil
	case resp.Error != nil:
		return 0, false, fmt.Errorf("store: first event of %s: %w", op, resp.Error)
	case resp.Message == nil || resp.Message.Seq == 0:
		return 0, false, fmt.Errorf("store: first event of %s: %w", op, jetstream.ErrInvalidJetStreamResponse)
	}
	return resp.Message.Seq, true, nil
}

// LastStored returns the log's last sequence and when it was stored (zero
// for an empty log).
func (s *Store) LastStored(ctx context.Context) (last uint64, at time.Time, err error) {
	info, err := s.events.Info(ctx)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("store: events info: %w", err)
	}
	return info.State.LastSeq, info.State.LastTime, nil
}

// EventBounds returns the first and last sequence currently in the log.
func (s *Store) EventBounds(ctx context.Context) (first, last uint64, err error) {
	info, err := s.events.Info(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("store: events info: %w", err)
	}
	return info.State.FirstSeq, info.State.LastSeq, nil
}

// Tail delivers every event with a sequence >= from, in order, until ctx ends.
// It is the relay's single live feed, fanned out to connected agents.
func (s *Store) Tail(ctx context.Context, from uint64, fn func(Event)) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{eventsPrefix + ">"}}
	if from > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = from
	} else {
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	cons, err := s.js.OrderedConsumer(ctx, EventsStream, cfg)
	if err != nil {
		return fmt.Errorf("store: tail events: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		fn(Event{
			Seq:      md.Sequence.Stream,
			Operator: strings.TrimPrefix(m.Subject(), eventsPrefix),
			Type:     m.Headers().Get(hdrType),
			Data:     m.Data(),
			Received: parseNanos(m.Headers().Get(hdrReceived)),
			MsgID:    m.Headers().Get(jetstream.MsgIDHeader),
		})
	}, jetstream.PullMaxMessages(1024))
	if err != nil {
		return fmt.Errorf("store: tail events: %w", err)
	}
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	return nil
}

func parseNanos(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// publishUpload stores a call-history record; source is uploadFromPBX or
// uploadFromCall. It reports whether the same msgID was stored before
// (within the window).
func (s *Store) publishUpload(ctx context.Context, data []byte, msgID, source string) (duplicate bool, err error) {
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	m := nats.NewMsg(UploadsSubject)
	m.Data = data
	m.Header.Set(hdrUploadSource, source)
	ack, err := s.js.PublishMsg(ctx, m, opts...)
	if err != nil {
		return false, fmt.Errorf("store: store call upload: %w", err)
	}
	return ack.Duplicate, nil
}

// PublishPBXUpload stores a call a PBX uploaded (uploadFromPBX) unless a
// call with the same external id was uploaded before, at any time within
// UploadedRetention: it then stores nothing and reports a duplicate. An
// empty externalID is never a duplicate.
//
// The id is remembered after the record is stored: a crash in between
// leaves it unremembered, and the upload repeated within the stream's
// dedupe window is still found by its message id; later it is stored again
// and reaches retailCRM twice, which retailCRM reports as its own duplicate.
func (s *Store) PublishPBXUpload(ctx context.Context, data []byte, externalID string) (duplicate bool, err error) {
	if externalID == "" {
		return s.publishUpload(ctx, data, "", uploadFromPBX)
	}
	key := uploadedKey(externalID)
	if _, err := s.uploaded.Get(ctx, key); err == nil {
		return true, nil
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, fmt.Errorf("store: uploaded calls: %w", err)
	}
	dup, err := s.publishUpload(ctx, data, "upload."+key, uploadFromPBX)
	if err != nil {
		return false, err
	}
	if _, err := s.uploaded.Put(ctx, key, nil); err != nil {
		return false, fmt.Errorf("store: remember uploaded call: %w", err)
	}
	return dup, nil
}

// retireFormerQueue drops the queue board's former input, a stream that
// relays before this version wrote every call change to. On a single node
// it goes at once. In a cluster, upgraded one node at a time, the nodes
// not upgraded yet still write to it: it is kept, in its share of the
// budget, until nothing has been written to it for its whole age limit (it
// is empty), and the next start drops it.
func (s *Store) retireFormerQueue(ctx context.Context, o Options) error {
	st, err := s.js.Stream(ctx, formerQueueStream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("store: the former queue stream: %w", err)
	}
	info := st.CachedInfo()
	if !o.clustered() || info.State.Msgs == 0 {
		if err := s.js.DeleteStream(ctx, formerQueueStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("store: drop the former queue stream: %w", err)
		}
		s.log.Info("dropped the queue board's former input; the board reads the calls' records", "stream", formerQueueStream)
		return nil
	}
	cfg := info.Config
	if cfg.MaxBytes = share(o.MaxBytes, formerQueueStream); cfg.MaxBytes == 0 {
		cfg.MaxBytes = -1
	}
	if st, err = s.js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("store: the former queue stream: %w", err)
	}
	s.limited = append(s.limited, limited{name: formerQueueStream, stream: st})
	s.log.Info("keeping the queue board's former input while relays before this version may write to it", "stream", formerQueueStream)
	return nil
}

// CallsInfo describes the calls' records, the queue board's input: the
// sequence of the latest record and when it was stored (0 and the zero
// time when there is none), and when the events stream that holds them was
// created (its identity: a recreated stream restarts numbering).
func (s *Store) CallsInfo(ctx context.Context) (last uint64, lastStored, created time.Time, err error) {
	info, err := s.events.Info(ctx)
	if err != nil {
		return 0, time.Time{}, time.Time{}, fmt.Errorf("store: events stream info: %w", err)
	}
	m, err := s.events.GetLastMsgForSubject(ctx, callsPrefix+">")
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, time.Time{}, info.Created, nil
	case err != nil:
		return 0, time.Time{}, time.Time{}, fmt.Errorf("store: latest call record: %w", err)
	}
	return m.Sequence, m.Time, info.Created, nil
}

// TailCalls delivers every version of every call's record, in the order
// stored, until ctx ends: from sequence from, or when from is 0 those
// stored since since. fn gets the record (JSON), its sequence and when it
// was stored.
func (s *Store) TailCalls(ctx context.Context, from uint64, since time.Time, fn func(seq uint64, stored time.Time, data []byte)) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{callsPrefix + ">"},
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &since}
	if from > 0 {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartSequencePolicy, nil
		cfg.OptStartSeq = from
	}
	cons, err := s.js.OrderedConsumer(ctx, EventsStream, cfg)
	if err != nil {
		return fmt.Errorf("store: tail calls: %w", err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		fn(md.Sequence.Stream, md.Timestamp, m.Data())
	}, jetstream.PullMaxMessages(1024))
	if err != nil {
		return fmt.Errorf("store: tail calls: %w", err)
	}
	<-ctx.Done()
	cc.Stop()
	<-cc.Closed()
	return nil
}

// boardCheckpointKey is the queue board's checkpoint in the pult_queue
// bucket.
const boardCheckpointKey = "board"

// LoadBoardCheckpoint returns the queue board's last checkpoint, or nil
// when there is none.
func (s *Store) LoadBoardCheckpoint(ctx context.Context) ([]byte, error) {
	e, err := s.queueState.Get(ctx, boardCheckpointKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("store: read the board checkpoint: %w", err)
	}
	return e.Value(), nil
}

// SaveBoardCheckpoint replaces the queue board's checkpoint (over the bulk
// connection: megabytes at a time).
func (s *Store) SaveBoardCheckpoint(ctx context.Context, data []byte) error {
	if _, err := s.queueState.Put(ctx, boardCheckpointKey, data); err != nil {
		return fmt.Errorf("store: write the board checkpoint: %w", err)
	}
	return nil
}

// PresenceTTL is how long a presence record or a lease lives after its
// last write.
func (s *Store) PresenceTTL() time.Duration { return s.presenceTTL }

// PutPresence replaces a relay node's presence record (which operators
// have an agent connected to it), which lives PresenceTTL.
func (s *Store) PutPresence(ctx context.Context, node string, data []byte) error {
	if _, err := s.presence.Put(ctx, presenceNodePrefix+node, data); err != nil {
		return fmt.Errorf("store: write the presence of node %s: %w", node, err)
	}
	return nil
}

// DeletePresence removes a relay node's presence record (the node stops).
func (s *Store) DeletePresence(ctx context.Context, node string) error {
	if err := s.presence.Delete(ctx, presenceNodePrefix+node); err != nil {
		return fmt.Errorf("store: remove the presence of node %s: %w", node, err)
	}
	return nil
}

// WatchPresence calls fn with every node's presence record as it is now,
// then with every change (by any node) until ctx ends: data is nil when the
// record was removed or expired; at is when the server stored the change.
// synced, if set, is called once the records as they were are delivered.
// It returns nil when ctx ends, or an error if the watch broke.
func (s *Store) WatchPresence(ctx context.Context, fn func(node string, data []byte, at time.Time), synced func()) error {
	w, err := s.presence.Watch(ctx, presenceNodePrefix+">")
	if err != nil {
		return fmt.Errorf("store: watch presence: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			switch {
			case !ok:
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("store: the presence watch ended")
			case e == nil:
				if synced != nil {
					synced()
				}
			case e.Operation() == jetstream.KeyValuePut:
				fn(strings.TrimPrefix(e.Key(), presenceNodePrefix), e.Value(), e.Created())
			default:
				fn(strings.TrimPrefix(e.Key(), presenceNodePrefix), nil, e.Created())
			}
		}
	}
}

// TakeLease takes the lease name for holder if nobody holds it (it never
// was, was released, or expired PresenceTTL after its last renewal),
// returning its revision for RenewLease and ReleaseLease; 0 (and no error)
// when another holds it.
func (s *Store) TakeLease(ctx context.Context, name, holder string) (uint64, error) {
	rev, err := s.presence.Create(ctx, presenceLeasePrefix+name, []byte(holder))
	if lost(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: take the lease %s: %w", name, err)
	}
	return rev, nil
}

// RenewLease keeps the lease another PresenceTTL if it is still the one
// taken or last renewed at rev, returning the new revision; 0 (and no
// error) when it was lost (it expired, and maybe another took it).
func (s *Store) RenewLease(ctx context.Context, name, holder string, rev uint64) (uint64, error) {
	rev, err := s.presence.Update(ctx, presenceLeasePrefix+name, []byte(holder), rev)
	if lost(err) || errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: renew the lease %s: %w", name, err)
	}
	return rev, nil
}

// ReleaseLease gives the lease up, if it is still the one at rev.
func (s *Store) ReleaseLease(ctx context.Context, name string, rev uint64) error {
	err := s.presence.Delete(ctx, presenceLeasePrefix+name, jetstream.LastRevision(rev))
	if err != nil && !lost(err) {
		return fmt.Errorf("store: release the lease %s: %w", name, err)
	}
	return nil
}

// lost reports a compare-and-set that failed: the key is at another
// revision (code 10071, or 10164 on a replicated bucket).
func lost(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) ||
		(errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant))
}

// Statuses returns every operator's stored status (JSON), by operator id.
func (s *Store) Statuses(ctx context.Context) (map[string][]byte, error) {
	keys, err := s.status.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: list statuses: %w", err)
	}
	defer keys.Stop()
	out := map[string][]byte{}
	for k := range keys.Keys() {
		e, err := s.status.Get(ctx, k)
		if err != nil {
			continue // deleted meanwhile
		}
		out[k] = e.Value()
	}
	return out, nil
}

// WatchStatuses calls fn for every status stored from now on (by this node
// or another), until ctx ends; it returns nil then, or an error if the
// watch broke.
func (s *Store) WatchStatuses(ctx context.Context, fn func(opID string, data []byte)) error {
	w, err := s.status.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("store: watch statuses: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("store: the status watch ended")
			}
			if e != nil && e.Operation() == jetstream.KeyValuePut {
				fn(e.Key(), e.Value())
			}
		}
	}
}

// LoadTranscript returns what was remembered of a transcript submission
// under key, or nil.
func (s *Store) LoadTranscript(ctx context.Context, key string) ([]byte, error) {
	e, err := s.transcripts.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("store: read transcript %s: %w", key, err)
	}
	return e.Value(), nil
}

// SaveTranscript remembers a transcript submission under key.
func (s *Store) SaveTranscript(ctx context.Context, key string, data []byte) error {
	if _, err := s.transcripts.Put(ctx, key, data); err != nil {
		return fmt.Errorf("store: remember transcript %s: %w", key, err)
	}
	return nil
}

// CreateTranscript remembers a transcript submission under key unless one
// is there already; created says which.
func (s *Store) CreateTranscript(ctx context.Context, key string, data []byte) (created bool, err error) {
	_, err = s.transcripts.Create(ctx, key, data)
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("store: remember transcript %s: %w", key, err)
	}
	return true, nil
}

// ErrConflict is a compare-and-set that lost: the record changed (or was
// created) since the revision the caller read. Read it again and retry.
var ErrConflict = errors.New("store: changed concurrently")

// casError turns JetStream's "wrong last sequence" and "key exists" into
// ErrConflict.
// Refused reports whether err is the storage's refusal of a write (a
// stale revision, a limit, a bad request), which stored nothing, as
// opposed to a write whose outcome is not known (a timeout, a lost
// connection), which may have been stored.
func Refused(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, ErrConflict) || errors.As(err, &apiErr)
}

func casError(what string, err error) error {
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) || (errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
		return fmt.Errorf("%s: %w", what, ErrConflict)
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// load reads key from a bucket: nil and revision 0 when it is absent.
func load(ctx context.Context, kv jetstream.KeyValue, what, key string) ([]byte, uint64, error) {
	e, err := kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("store: load %s: %w", what, err)
	}
	return e.Value(), e.Revision(), nil
}

// save stores data under key if the stored revision is still rev (0: if
// there is none), returning the new revision or ErrConflict.
func save(ctx context.Context, kv jetstream.KeyValue, what, key string, data []byte, rev uint64) (uint64, error) {
	var err error
	if rev == 0 {
		rev, err = kv.Create(ctx, key, data)
	} else {
		rev, err = kv.Update(ctx, key, data, rev)
	}
	if err != nil {
		return 0, casError("save "+what, err)
	}
	return rev, nil
}

// LoadStatus returns an operator's status (JSON) and its revision; nil and 0
// when none was ever set.
func (s *Store) LoadStatus(ctx context.Context, opID string) ([]byte, uint64, error) {
	return load(ctx, s.status, "status", opID)
}

// SaveStatus stores an operator's status if it is still at revision rev
// (0: if there is none); otherwise ErrConflict.
func (s *Store) SaveStatus(ctx context.Context, opID string, data []byte, rev uint64) (uint64, error) {
	return save(ctx, s.status, "status", opID, data, rev)
}

// Answered request ids are remembered per operator in replySlots keys of
// the requests bucket, "s.<operator>.<slot>", the slot chosen by the id's
// hash; each holds the last replyKeep answers of its slot (oldest dropped
// first), so an operator keeps about RequestIDsPerOperator answers and a
// flood of ids from one operator evicts only its own.
const (
	replySlots        = 16
	defaultRequestIDs = 1024
)

// replySlot is the value of a slot key.
type replySlot struct {
	Replies []slotReply `json:"r"` // oldest first
}

type slotReply struct {
	ID   string          `json:"id"` // the request id's hash
	At   int64           `json:"at"` // when it was answered, Unix seconds
	Data json.RawMessage `json:"d"`
}

func (s *Store) loadSlot(ctx context.Context, key string) (replySlot, uint64, error) {
	var slot replySlot
	data, rev, err := load(ctx, s.requests, "replies", key)
	if err != nil || data == nil {
		return slot, rev, err
	}
	if err := json.Unmarshal(data, &slot); err != nil {
		s.log.Warn("unreadable remembered replies; starting the slot over", "key", key, "err", err)
		return replySlot{}, rev, nil
	}
	return slot, rev, nil
}

// LoadReply returns the answer given to an operator's request id (within
// RequestWindow, and among the operator's last RequestIDsPerOperator), or
// nil.
func (s *Store) LoadReply(ctx context.Context, opID, requestID string) ([]byte, error) {
	key, id := replySlotKey(opID, requestID)
	slot, _, err := s.loadSlot(ctx, key)
	if err != nil {
		return nil, err
	}
	since := time.Now().Add(-s.requestWindow).Unix()
	for _, r := range slot.Replies {
		if r.ID == id && r.At >= since {
			return r.Data, nil
		}
	}
	return nil, nil
}

// SaveReply remembers the answer to an operator's request id, so that the
// request sent again is answered the same. data must be JSON.
func (s *Store) SaveReply(ctx context.Context, opID, requestID string, data []byte) error {
	key, id := replySlotKey(opID, requestID)
	for range 8 {
		slot, rev, err := s.loadSlot(ctx, key)
		if err != nil {
			return err
		}
		now := time.Now()
		since := now.Add(-s.requestWindow).Unix()
		kept := slot.Replies[:0]
		for _, r := range slot.Replies {
			if r.ID != id && r.At >= since {
				kept = append(kept, r)
			}
		}
		kept = append(kept, slotReply{ID: id, At: now.Unix(), Data: data})
		if n := len(kept) - s.replyKeep; n > 0 {
			kept = kept[n:]
		}
		b, err := json.Marshal(replySlot{Replies: kept})
		if err != nil {
			return fmt.Errorf("store: remember reply: %w", err)
		}
		if _, err = save(ctx, s.requests, "reply", key, b, rev); !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("store: remember reply: %w", ErrConflict)
}

// OutboxHandles are the streams and bucket the outbox works on. The outbox
// is JetStream's work queue by design (package outbox), so it gets them as
// they are; nothing else does (see the package doc).
type OutboxHandles struct {
	JS    jetstream.JetStream
	Jobs  jetstream.Stream   // the work queue, subjects OutboxPrefix+kind
	Dead  jetstream.Stream   // dead letters, subjects DeadPrefix+kind
	State jetstream.KeyValue // attempts and errors of waiting jobs
}

// Outbox returns the outbox's streams and bucket.
func (s *Store) Outbox() OutboxHandles {
	return OutboxHandles{JS: s.js, Jobs: s.outbox, Dead: s.dead, State: s.outboxState}
}

// OperatorsBucket is the operators' bucket; package operators owns its keys
// and values, and watches it for changes (see the package doc).
func (s *Store) OperatorsBucket() jetstream.KeyValue { return s.operators }

// StreamReplicas says how many copies JetStream keeps of each stream and
// bucket (by stream name), as it reports them now.
func (s *Store) StreamReplicas(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	for _, l := range s.limited {
		info, err := l.stream.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("store: %s info: %w", l.name, err)
		}
		out[info.Config.Name] = info.Config.Replicas
	}
	return out, nil
}

// kvLeaderReads makes or updates a bucket whose reads go to its stream's
// leader (not AllowDirect, which nats.go sets on every bucket it makes or
// updates): it is made once as nats.go makes it, then only its stream is
// updated, so that no node of a cluster starting sets AllowDirect again
// after another has bound the bucket without it.
func (s *Store) kvLeaderReads(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.Stream, error) {
	st, err := s.js.Stream(ctx, "KV_"+cfg.Bucket)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err = s.js.CreateKeyValue(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			return nil, err
		}
		st, err = s.js.Stream(ctx, "KV_"+cfg.Bucket)
	}
	if err != nil {
		return nil, err
	}
	c := st.CachedInfo().Config
	c.Description, c.MaxAge, c.MaxBytes, c.Replicas, c.AllowDirect = cfg.Description, cfg.TTL, cfg.MaxBytes, cfg.Replicas, false
	return s.js.UpdateStream(ctx, c)
}

// leadersElected reports an error unless every stream and bucket has a
// leader: until then reading it finds no responders.
func (s *Store) leadersElected(ctx context.Context) error {
	for _, l := range s.limited {
		info, err := l.stream.Info(ctx)
		if err != nil {
			return fmt.Errorf("store: %s: %w", l.name, err)
		}
		if info.Cluster != nil && info.Cluster.Leader == "" {
			return fmt.Errorf("store: %s has no leader yet", l.name)
		}
	}
	return nil
}

// Clustered reports whether JetStream may be a cluster (several servers or
// copies), where a node can be cut off from the majority.
func (s *Store) Clustered() bool { return s.clustered }

// Available asks JetStream for the account's usage: in a cluster that only
// succeeds with a majority of the servers in reach.
func (s *Store) Available(ctx context.Context) error {
	if _, err := s.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("store: jetstream: %w", err)
	}
	return nil
}

// clusterSize counts the servers of an embedded cluster: this one and the
// distinct others its routes name.
func clusterSize(c *Cluster) int {
	others := map[string]bool{}
	for _, r := range c.Routes {
		if u, err := url.Parse(r); err == nil && u.Host != c.Listen {
			others[u.Host] = true
		}
	}
	return 1 + len(others)
}

// ReachesMajority reports an error unless this node reaches a majority of
// its cluster. With an embedded cluster it counts the servers its routes
// are connected to (losing routes says so at once, while a leader
// election, which also makes JetStream unavailable for a while, does
// not); otherwise it asks JetStream (Available).
func (s *Store) ReachesMajority(ctx context.Context) error {
	if s.ns == nil || s.clusterSize == 0 {
		return s.Available(ctx)
	}
	rz, err := s.ns.Routez(nil)
	if err != nil {
		return fmt.Errorf("store: routes: %w", err)
	}
	peers := map[string]bool{}
	for _, r := range rz.Routes {
		if r.RemoteName != "" {
			peers[r.RemoteName] = true
		}
	}
	if reached, quorum := 1+len(peers), s.clusterSize/2+1; reached < quorum {
		return fmt.Errorf("store: this node reaches %d of the cluster's %d servers; a majority is %d", reached, s.clusterSize, quorum)
	}
	return nil
}
