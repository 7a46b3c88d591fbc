package gossip

import (
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// delegate implements memberlist's Delegate, EventDelegate and
// AliveDelegate. Its methods never block: they copy what they are given and
// queue the work.
type delegate struct {
	g *Gossip
}

var (
	_ memberlist.Delegate      = (*delegate)(nil)
	_ memberlist.EventDelegate = (*delegate)(nil)
	_ memberlist.AliveDelegate = (*delegate)(nil)
)

func (d *delegate) NodeMeta(limit int) []byte {
	if len(d.g.meta) > limit {
		return nil // cannot happen: New checks the size
	}
	return d.g.meta
}

func (d *delegate) NotifyMsg(b []byte) { d.g.enqueue(b, false) }

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.g.bcast.GetBroadcasts(overhead, limit)
}

func (d *delegate) LocalState(join bool) []byte {
	if d.g.closed.Load() {
		return nil
	}
	return d.g.localState()
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	if len(buf) == 0 {
		return
	}
	d.g.enqueue(buf, true)
}

func (d *delegate) NotifyJoin(n *memberlist.Node)   { d.g.onNode(n, StateAlive) }
func (d *delegate) NotifyLeave(n *memberlist.Node)  { d.g.onNode(n, StateDead) }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.g.onNode(n, StateAlive) }

// NotifyAlive refuses nodes whose name or metadata is malformed. Metadata of
// a newer version is accepted (the node is listed without its labels).
func (d *delegate) NotifyAlive(n *memberlist.Node) error {
	if n.Name == d.g.name {
		return nil
	}
	err := validNodeName(n.Name)
	if err == nil {
		if _, err = decodeMeta(n.Meta); errors.Is(err, errMetaVersion) {
			err = nil
		}
	}
	if err != nil {
		d.g.rejected.Add(1)
		return fmt.Errorf("berth gossip: node refused: %w", err)
	}
	return nil
}
