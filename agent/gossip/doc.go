// Package gossip carries what berth agents tell each other over an encrypted
// hashicorp/memberlist cluster: membership (with each agent's labels, version
// and API address), each host's status summary, and news of new git
// revisions.
//
// Membership and failure detection are memberlist's. Node metadata and the
// package's own messages have compact, versioned binary encodings that are
// strictly validated on receipt (see Decode). Incoming data is copied and
// handed to bounded queues, so a slow Handler never blocks the gossip: when a
// queue is full the item is dropped and counted (see Stats).
package gossip
