package firewall

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Registers as the kernel numbers them: reg1 is the first 128-bit
// register, reg9 and reg10 the second and third 32-bit words of it.
const (
	regVerdict = 0
	reg1       = 1
	reg2       = 2
	reg9       = 9
	reg10      = 10
)

// Conntrack bits (include/uapi/linux/netfilter/nf_conntrack_common.h).
const (
	ctStatusDNAT      = 0x20 // IPS_DST_NAT
	ctStateEstRelated = 0x02 | 0x04
)

// ifnameKey is ifname padded with zeros to IFNAMSIZ, as nft stores
// interface names in sets and compares them in rules.
func ifnameKey(ifname string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, ifname)
	return b
}

// ifnameFromKey is the inverse of ifnameKey.
func ifnameFromKey(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func comment(s string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, s)
}

func commentOf(r *nftables.Rule) string {
	s, _ := userdata.GetString(r.UserData, userdata.TypeComment)
	return s
}

// The expressions below are built exactly as the kernel dumps them back,
// so that a rule read from the kernel renders (render) the same as the
// rule berth would write.

func loadIPDaddr(reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
}

func loadIPSaddr(reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
}

func loadTHDport(reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
}

func loadMeta(key expr.MetaKey, reg uint32) expr.Any {
	return &expr.Meta{Key: key, Register: reg}
}

// notLoopbackDst is `ip daddr != 127.0.0.0/8` as nft compiles it: the
// first byte of the destination address.
func notLoopbackDst() []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: []byte{127}},
	}
}

// isLoopbackDst is `ip daddr 127.0.0.0/8`.
func isLoopbackDst() []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{127}},
	}
}

// isLoopbackSrc is `ip saddr 127.0.0.0/8`.
func isLoopbackSrc() []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{127}},
	}
}

// fibDaddrLocal is `fib daddr type local`.
func fibDaddrLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

// ifname is `iifname NAME` or `oifname NAME` (op eq or neq).
func ifname(key expr.MetaKey, op expr.CmpOp, name string) []expr.Any {
	return []expr.Any{
		loadMeta(key, reg1),
		&expr.Cmp{Op: op, Register: reg1, Data: ifnameKey(name)},
	}
}

// inSet is `<key> @set` for an interface name key.
func ifnameInSet(key expr.MetaKey, set string) []expr.Any {
	return []expr.Any{
		loadMeta(key, reg1),
		&expr.Lookup{SourceRegister: reg1, SetName: set},
	}
}

// ctStatusDNAT is `ct status dnat` (is true) or `ct status ! dnat`.
func ctStatusDNATIs(set bool) []expr.Any {
	op := expr.CmpOpNeq
	if !set {
		op = expr.CmpOpEq
	}
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ctStatusDNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: op, Register: reg1, Data: make([]byte, 4)},
	}
}

// ctStateEstablished is `ct state established,related`.
func ctStateEstablished() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ctStateEstRelated), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
	}
}

// vmap is a verdict map lookup of register reg1 in set.
func vmap(set string) expr.Any {
	return &expr.Lookup{SourceRegister: reg1, DestRegister: regVerdict, IsDestRegSet: true, SetName: set}
}

func verdict(kind expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: kind} }

func jump(chain string) expr.Any { return &expr.Verdict{Kind: expr.VerdictJump, Chain: chain} }

func masquerade() expr.Any { return &expr.Masq{} }

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func one(e ...expr.Any) []expr.Any { return e }

// protoMatch is `meta l4proto <proto>`.
func protoMatch(proto uint8) []expr.Any {
	return []expr.Any{
		loadMeta(expr.MetaKeyL4PROTO, reg1),
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{proto}},
	}
}

// dnatOne is `meta l4proto P dnat to A:port`.
func dnatOne(proto uint8, b Backend) []expr.Any {
	a := b.Addr.As4()
	return cat(protoMatch(proto), one(
		&expr.Immediate{Register: reg1, Data: a[:]},
		&expr.Immediate{Register: reg2, Data: binaryutil.BigEndian.PutUint16(b.Port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4,
			RegAddrMin: reg1, RegAddrMax: reg1, RegProtoMin: reg2, RegProtoMax: reg2, Specified: true},
	))
}

// dnatRules are the rules of a port's chain. One backend: `meta l4proto
// P dnat to A:port`. Several: rule i but the last sends every (n-i)-th
// connection that reaches it to backend i, counting with a counter of its
// own (`meta l4proto P numgen inc mod n-i 0 dnat to A:port`), and the last
// takes the rest, so that new connections go to the backends in turn.
// (A `numgen inc mod n map {...}` rule would do the same with one rule,
// but google/nftables cannot write a map that nft can print and read
// back: its anonymous maps are marked big endian, its named maps cannot
// carry the typeof that nft needs for numgen's integers.)
func dnatRules(proto uint8, bs []Backend) [][]expr.Any {
	out := make([][]expr.Any, len(bs))
	for i, b := range bs {
		if i == len(bs)-1 {
			out[i] = dnatOne(proto, b)
			break
		}
		out[i] = cat(protoMatch(proto), one(
			&expr.Numgen{Register: reg1, Modulus: uint32(len(bs) - i), Type: unix.NFT_NG_INCREMENTAL},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(0)},
		), dnatOne(proto, b)[2:])
	}
	return out
}

// backendOf returns the backend of a rule of dnatRules from its two
// immediates, the last three expressions but one.
func backendOf(exprs []expr.Any) (Backend, bool) {
	if len(exprs) < 3 {
		return Backend{}, false
	}
	a, ok1 := exprs[len(exprs)-3].(*expr.Immediate)
	p, ok2 := exprs[len(exprs)-2].(*expr.Immediate)
	if !ok1 || !ok2 || len(a.Data) != 4 || len(p.Data) != 2 {
		return Backend{}, false
	}
	return Backend{Addr: netip.AddrFrom4([4]byte(a.Data)), Port: binaryutil.BigEndian.Uint16(p.Data)}, true
}

// render is a canonical text of a rule's expressions, used to compare a
// live rule with the one berth would write. Set IDs are ignored: the
// kernel does not keep them.
func render(exprs []expr.Any) string {
	var sb strings.Builder
	for i, e := range exprs {
		if i > 0 {
			sb.WriteString(" ; ")
		}
		switch e := e.(type) {
		case *expr.Lookup:
			c := *e
			c.SetID = 0
			fmt.Fprintf(&sb, "%T%+v", &c, c)
		case *expr.Verdict:
			fmt.Fprintf(&sb, "verdict{%d %q}", e.Kind, e.Chain)
		default:
			fmt.Fprintf(&sb, "%T%+v", e, e)
		}
	}
	return sb.String()
}

// ruleSpec is a rule as berth writes it: expressions and a comment.
type ruleSpec struct {
	exprs   []expr.Any
	comment string
}

func (r ruleSpec) String() string {
	return render(r.exprs) + " # " + r.comment
}

// sameRule reports whether the live rule is r.
func sameRule(live *nftables.Rule, r ruleSpec) bool {
	return render(live.Exprs) == render(r.exprs) && commentOf(live) == r.comment
}

// verdictOf decodes the value of a verdict map element as
// google/nftables returns it (the attributes nested in NFTA_DATA_VERDICT:
// NFTA_VERDICT_CODE and NFTA_VERDICT_CHAIN).
func verdictOf(b []byte) (kind expr.VerdictKind, chain string, ok bool) {
	haveCode := false
	for len(b) >= 4 {
		l := int(binaryutil.NativeEndian.Uint16(b[0:2]))
		t := binaryutil.NativeEndian.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < 4 || l > len(b) {
			return 0, "", false
		}
		v := b[4:l]
		switch t {
		case unix.NFTA_VERDICT_CODE:
			if len(v) != 4 {
				return 0, "", false
			}
			kind = expr.VerdictKind(int32(binaryutil.BigEndian.Uint32(v)))
			haveCode = true
		case unix.NFTA_VERDICT_CHAIN:
			if i := strings.IndexByte(string(v), 0); i >= 0 {
				v = v[:i]
			}
			chain = string(v)
		}
		adv := (l + 3) &^ 3
		if adv > len(b) {
			adv = len(b)
		}
		b = b[adv:]
	}
	return kind, chain, haveCode
}
