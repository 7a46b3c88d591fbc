package firewall

import (
	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// Names of the objects of berth's table.
const (
	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainPostrouting = "postrouting"
	chainForward     = "forward"
	chainInput       = "input"
	chainPorts       = "ports"

	setBridges   = "bridges"    // ifname: every berth bridge
	mapFwdOut    = "fwd_out"    // iifname : jump net_<name>_out
	mapFwdIn     = "fwd_in"     // oifname : jump net_<name>_in
	mapNatSrc    = "nat_src"    // ip saddr (intervals) : jump net_<name>_nat
	mapPortsAddr = "ports_addr" // ip daddr . l4proto . dport : goto port chain
	mapPortsAny  = "ports_any"  // l4proto . dport : goto port chain
)

// ifname keys are strings, which nft keeps in host byte order: the sets
// say so (in their user data), or `nft list` shows the names reversed.

// Set IDs within one batch. The kernel resolves a set created in the same
// batch by its ID; existing sets are found by name.
const (
	idBridges uint32 = iota + 1
	idFwdOut
	idFwdIn
	idNatSrc
	idPortsAddr
	idPortsAny
)

// Comments berth writes.
const (
	tagDispatch = "berth:dispatch"
	tagLoopback = "berth:loopback"
	tagSet      = "berth"
)

var (
	typePortsAddr = nftables.MustConcatSetType(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
	typePortsAny  = nftables.MustConcatSetType(nftables.TypeInetProto, nftables.TypeInetService)
)

// sets returns berth's named sets and maps, empty, as Ensure creates them.
func (f *Firewall) sets() []*nftables.Set {
	t := f.tbl()
	return []*nftables.Set{
		{Table: t, ID: idBridges, Name: setBridges, KeyType: nftables.TypeIFName,
			KeyByteOrder: binaryutil.NativeEndian, Comment: tagSet},
		{Table: t, ID: idFwdOut, Name: mapFwdOut, IsMap: true, KeyType: nftables.TypeIFName,
			KeyByteOrder: binaryutil.NativeEndian, DataType: nftables.TypeVerdict, Comment: tagSet},
		{Table: t, ID: idFwdIn, Name: mapFwdIn, IsMap: true, KeyType: nftables.TypeIFName,
			KeyByteOrder: binaryutil.NativeEndian, DataType: nftables.TypeVerdict, Comment: tagSet},
		{Table: t, ID: idNatSrc, Name: mapNatSrc, IsMap: true, Interval: true, KeyType: nftables.TypeIPAddr,
			DataType: nftables.TypeVerdict, KeyByteOrder: binaryutil.BigEndian, Comment: tagSet},
		{Table: t, ID: idPortsAddr, Name: mapPortsAddr, IsMap: true, Concatenation: true, KeyType: typePortsAddr,
			DataType: nftables.TypeVerdict, Comment: tagSet},
		{Table: t, ID: idPortsAny, Name: mapPortsAny, IsMap: true, Concatenation: true, KeyType: typePortsAny,
			DataType: nftables.TypeVerdict, Comment: tagSet},
	}
}

func (f *Firewall) set(name string) *nftables.Set {
	for _, s := range f.sets() {
		if s.Name == name {
			return s
		}
	}
	panic("firewall: no set " + name)
}

// baseChain is one chain of the skeleton with the rules it holds.
type baseChain struct {
	chain *nftables.Chain
	rules []ruleSpec
}

func (f *Firewall) chain(name string) *nftables.Chain {
	return &nftables.Chain{Table: f.tbl(), Name: name}
}

func hooked(f *Firewall, name string, typ nftables.ChainType, hook nftables.ChainHook, prio nftables.ChainPriority) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return &nftables.Chain{
		Table:    f.tbl(),
		Name:     name,
		Type:     typ,
		Hooknum:  nftables.ChainHookRef(hook),
		Priority: nftables.ChainPriorityRef(prio),
		Policy:   &accept,
	}
}

// skeleton is the base of the table: every chain that is not a network's
// or a port's, in the order Ensure creates them (regular chains that
// others jump to first).
func (f *Firewall) skeleton() []baseChain {
	return []baseChain{
		{f.chain(chainPorts), []ruleSpec{
			{cat(one(loadIPDaddr(reg1), loadMeta(expr.MetaKeyL4PROTO, reg9), loadTHDport(reg10), vmap(mapPortsAddr))), tagDispatch},
			{cat(one(loadMeta(expr.MetaKeyL4PROTO, reg1), loadTHDport(reg9), vmap(mapPortsAny))), tagDispatch},
		}},
		{hooked(f, chainPrerouting, nftables.ChainTypeNAT, hookPrerouting, -100), []ruleSpec{
			{cat(notLoopbackDst(), fibDaddrLocal(), one(jump(chainPorts))), tagDispatch},
		}},
		{hooked(f, chainOutput, nftables.ChainTypeNAT, hookOutput, -100), []ruleSpec{
			{cat(fibDaddrLocal(), one(jump(chainPorts))), tagDispatch},
		}},
		{hooked(f, chainPostrouting, nftables.ChainTypeNAT, hookPostrouting, 100), []ruleSpec{
			{cat(isLoopbackSrc(), ifnameInSet(expr.MetaKeyOIFNAME, setBridges), ctStatusDNATIs(true), one(masquerade())), tagLoopback},
			{cat(one(loadIPSaddr(reg1), vmap(mapNatSrc))), tagDispatch},
		}},
		{hooked(f, chainForward, nftables.ChainTypeFilter, hookForward, 0), []ruleSpec{
			{cat(one(loadMeta(expr.MetaKeyIIFNAME, reg1), vmap(mapFwdOut))), tagDispatch},
			{cat(one(loadMeta(expr.MetaKeyOIFNAME, reg1), vmap(mapFwdIn))), tagDispatch},
		}},
		{hooked(f, chainInput, nftables.ChainTypeFilter, hookInput, 0), []ruleSpec{
			// Replies to the host's own connections to 127.0.0.1
			// translated to a container come back this way, with
			// ct status dnat; nothing else from a bridge may.
			{cat(ifnameInSet(expr.MetaKeyIIFNAME, setBridges), isLoopbackDst(), ctStatusDNATIs(false), one(verdict(expr.VerdictDrop))), tagLoopback},
		}},
	}
}

// Hook numbers (include/uapi/linux/netfilter.h).
const (
	hookPrerouting  nftables.ChainHook = 0
	hookInput       nftables.ChainHook = 1
	hookForward     nftables.ChainHook = 2
	hookOutput      nftables.ChainHook = 3
	hookPostrouting nftables.ChainHook = 4
)
