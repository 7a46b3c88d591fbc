package gossip

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// joinParallel bounds the join attempts made at once.
const joinParallel = 8

// maintainLoop joins the seeds and, whenever no other member is alive
// (startup, or after a partition), keeps retrying the seeds and every member
// known, with a backoff from the probe interval up to 15 times it. While
// connected, it tries to reach one dead member every 30 probe intervals, so
// that the two sides of a healed partition find each other even when
// neither is alone. It also reaps members long dead or left. It stops at
// Leave, at Shutdown, or when New's context is done.
func (g *Gossip) maintainLoop() {
	defer g.wg.Done()
	defer close(g.joinDone)
	base := g.interval
	maxWait := 15 * base
	reconnectEvery := 30 * base
	wait := base
	lastReconnect := time.Now()
	failing := false
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-g.joinCtx.Done():
			return
		case <-timer.C:
		}
		g.mu.Lock()
		left := g.left
		g.mu.Unlock()
		if left {
			return
		}
		g.reap()
		if g.bcast.NumQueued() > maxQueuedBroadcasts {
			// (Prune panics on a queue never used.)
			g.bcast.Prune(maxQueuedBroadcasts)
		}

		if g.alive.Load() > 0 {
			wait = base
			failing = false
			if time.Since(lastReconnect) >= reconnectEvery {
				lastReconnect = time.Now()
				if t := g.randomDead(); t != "" {
					g.join([]string{t})
				}
			}
		} else if targets := g.joinTargets(); len(targets) > 0 {
			ok := g.join(targets)
			switch {
			case ok > 0 && g.alive.Load() > 0:
				g.log.Info("gossip: joined", "contacted", ok, "alive", g.alive.Load()+1)
				wait, failing = base, false
			default:
				if !failing {
					g.log.Warn("gossip: no other member reachable; retrying", "tried", len(targets))
					failing = true
				}
				wait = min(2*wait, maxWait)
			}
		}
		timer.Reset(wait)
	}
}

// joinTargets lists the seeds and the addresses of the known members that
// did not leave, without this node's own address.
func (g *Gossip) joinTargets() []string {
	seen := map[string]bool{g.addr: true}
	var out []string
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, s := range g.seeds {
		add(s)
	}
	g.mu.Lock()
	for _, rec := range g.members {
		if rec.state != StateLeft {
			add(rec.addr)
		}
	}
	g.mu.Unlock()
	return out
}

func (g *Gossip) randomDead() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var dead []string
	for _, rec := range g.members {
		if rec.state == StateDead {
			dead = append(dead, rec.addr)
		}
	}
	if len(dead) == 0 {
		return ""
	}
	return dead[rand.IntN(len(dead))]
}

// join tries every address, a few at a time, and returns how many answered.
// It returns early, leaving attempts in flight, when joining stops.
func (g *Gossip) join(addrs []string) int {
	var ok atomic.Int32
	var wg sync.WaitGroup
	sem := make(chan struct{}, joinParallel)
	done := make(chan struct{})
	go func() {
		for _, a := range addrs {
			select {
			case sem <- struct{}{}:
			case <-g.joinCtx.Done():
			}
			if g.joinCtx.Err() != nil {
				break
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				g.attempts.Add(1)
				if n, err := g.ml.Join([]string{a}); err != nil {
					g.log.Debug("gossip: join failed", "addr", a, "err", err)
				} else if n > 0 {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-g.joinCtx.Done():
	}
	return int(ok.Load())
}

// reap forgets members dead or left for long, and statuses of nodes that
// are not members.
func (g *Gossip) reap() {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	for name, rec := range g.members {
		if rec.state == StateDead && now.Sub(rec.since) > deadReap ||
			rec.state == StateLeft && now.Sub(rec.since) > leftReap {
			delete(g.members, name)
			delete(g.statuses, name)
		}
	}
	for name, e := range g.statuses {
		if g.members[name] == nil && now.Sub(e.at) > 30*g.interval {
			delete(g.statuses, name)
		}
	}
}

// bigStatusLoop sends statuses too large for gossip packets to every alive
// member over TCP.
func (g *Gossip) bigStatusLoop() {
	defer g.wg.Done()
	for {
		select {
		case <-g.ctx.Done():
			return
		case raw := <-g.big:
			for _, n := range g.aliveNodes() {
				if g.ctx.Err() != nil {
					return
				}
				if err := g.ml.SendReliable(n, raw); err != nil {
					g.log.Debug("gossip: status not sent", "to", n.Name, "err", err)
				}
			}
		}
	}
}

// aliveNodes returns memberlist nodes (name and address only) for the alive
// members, built from this package's own records.
func (g *Gossip) aliveNodes() []*memberlist.Node {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []*memberlist.Node
	for _, rec := range g.members {
		if rec.state != StateAlive {
			continue
		}
		host, port, err := net.SplitHostPort(rec.addr)
		if err != nil {
			continue
		}
		p, err := strconv.ParseUint(port, 10, 16)
		ip := net.ParseIP(host)
		if err != nil || ip == nil {
			continue
		}
		out = append(out, &memberlist.Node{Name: rec.name, Addr: ip, Port: uint16(p)})
	}
	return out
}
