package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A relay that ran alone and is started in a cluster has its data in a
// standalone JetStream store, which a clustered server would not adopt (it
// deletes what its cluster does not know). So the store is moved aside
// first (standaloneDir), and once the cluster's streams exist, what it held
// is copied into them (copyStandalone) and the old store is kept for the
// administrator to delete.

// standaloneDir is where a standalone store is kept once moved aside.
const standaloneDir = "jetstream-standalone"

// isStandalone reports whether dir (a server's StoreDir) holds a standalone
// JetStream store: an account's streams, and no cluster's metadata.
func isStandalone(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "jetstream", "$G", "streams")); err != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, "jetstream", "$SYS", "_js_"))
	return errors.Is(err, os.ErrNotExist)
}

// moveStandalone moves a standalone store in dataDir aside and returns
// where to, or "" when there is none.
func moveStandalone(dataDir string) (string, error) {
	dir := filepath.Join(dataDir, "jetstream")
	if !isStandalone(dir) {
		return "", nil
	}
	to := filepath.Join(dataDir, standaloneDir)
	if _, err := os.Stat(to); err == nil {
		to += "-" + time.Now().UTC().Format("20060102-150405")
	}
	if err := os.Rename(dir, to); err != nil {
		return "", fmt.Errorf("store: move the single node's JetStream store aside: %w", err)
	}
	return to, nil
}

// migrated are the streams copied from a standalone store. Not the
// outbox's attempt records and the board's checkpoint: they name stream
// sequences, which the copies do not keep (jobs start their attempts over,
// the board rebuilds from the records).
var migrated = []string{EventsStream, UploadsStream, OutboxStream, DeadStream,
	"KV_" + bucketOperators, "KV_" + bucketStatus, "KV_" + bucketCalls, "KV_" + bucketRequests,
	"KV_" + bucketTrans, "KV_" + bucketUploaded}

// copyStandalone copies the streams of the standalone store in dir (a
// JetStream store directory) into the cluster's, each into an empty one
// only.
func (s *Store) copyStandalone(ctx context.Context, o Options, dir string) error {
	old := o
	old.Cluster = nil
	ns, _, err := startEmbeddedIn(old, dir, s.log.With("component", "nats-standalone"))
	if err != nil {
		return err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	nc, err := nats.Connect("", nats.InProcessServer(ns), nats.Name("pult-relay-migrate"))
	if err != nil {
		return fmt.Errorf("store: connect to the single node's store: %w", err)
	}
	defer nc.Close()
	ojs, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	for _, name := range migrated {
		src, err := ojs.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		} else if err != nil {
			return fmt.Errorf("store: the single node's %s: %w", name, err)
		}
		dst, err := s.js.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("store: the cluster's %s: %w", name, err)
		}
		si, di := src.CachedInfo(), dst.CachedInfo()
		if di.State.Msgs > 0 {
			s.log.Warn("not copying the single node's stream: the cluster's has data already", "stream", name)
			continue
		}
		n := 0
		for seq := si.State.FirstSeq; si.State.Msgs > 0 && seq <= si.State.LastSeq; seq++ {
			m, err := src.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			} else if err != nil {
				return fmt.Errorf("store: read the single node's %s at %d: %w", name, seq, err)
			}
			msg := &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
			if _, err := s.js.PublishMsg(ctx, msg); err != nil {
				return fmt.Errorf("store: copy %s at %d: %w", name, seq, err)
			}
			n++
		}
		s.log.Info("copied the single node's stream into the cluster", "stream", name, "messages", n)
	}
	return nil
}
