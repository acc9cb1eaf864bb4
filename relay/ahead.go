package relay

import (
	"github.com/pult/pult/relay/hub"
	"github.com/pult/pult/relay/store"
)

// aheadEverywhere sends the cards of a change, while they are being
// stored, to the agents connected to this relay (the hub) and, through the
// store, to the other relays' (see shareAhead). An agent on another relay
// would otherwise wait for the card to be stored, replicated and read back
// by its relay's live feed. A card goes to the relays that presence says
// hold its operator, or to every relay while no relay is known to.
type aheadEverywhere struct {
	hub   *hub.Hub
	store *store.Store
	where holders
	node  string
}

// holders says which other relays have an agent of an operator connected
// (presence.Tracker).
type holders interface {
	Elsewhere(opID string, nodes []string) ([]string, bool)
}

func (a aheadEverywhere) SendAhead(cards []store.Ahead) {
	a.hub.SendAhead(cards)
	a.share(cards, false)
}

func (a aheadEverywhere) Withdraw(cards []store.Ahead) {
	a.hub.Withdraw(cards)
	a.share(cards, true)
}

func (a aheadEverywhere) share(cards []store.Ahead, withdrawn bool) {
	if !a.store.Shared() {
		return
	}
	var nodes []string
	for _, c := range cards {
		var known bool
		nodes, known = a.where.Elsewhere(c.Operator, nodes[:0])
		switch {
		case !known:
			a.store.ShareAhead(a.node, nil, withdrawn, c)
		case len(nodes) > 0:
			a.store.ShareAhead(a.node, nodes, withdrawn, c)
		}
	}
}

// shareAhead hands the cards other relays send ahead, or withdraw, to this
// relay's agents, until stop is called.
func shareAhead(st *store.Store, h *hub.Hub, node string) (stop func(), err error) {
	return st.SubscribeAhead(node, func(c store.Ahead, withdrawn bool) {
		if withdrawn {
			h.Withdraw([]store.Ahead{c})
		} else {
			h.SendAhead([]store.Ahead{c})
		}
	})
}
