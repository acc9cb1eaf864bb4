package relay

import (
	"github.com/pult/pult/relay/hub"
	"github.com/pult/pult/relay/store"
)

// aheadEverywhere sends the cards of a change, while they are being
// stored, to the agents connected to this relay (the hub) and, through the
// store, to the other relays' (see shareAhead). An agent on another relay
// would otherwise wait for the card to be stored, replicated and read back
// by its relay's live feed.
type aheadEverywhere struct {
	hub   *hub.Hub
	store *store.Store
	node  string
}

func (a aheadEverywhere) SendAhead(cards []store.Ahead) {
	a.hub.SendAhead(cards)
	a.store.ShareAhead(a.node, cards, false)
}

func (a aheadEverywhere) Withdraw(cards []store.Ahead) {
	a.hub.Withdraw(cards)
	a.store.ShareAhead(a.node, cards, true)
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
