package firewall

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Set and map names in berth's tables.
const (
	setBridges  = "bridges"  // every berth bridge
	setInternal = "internal" // bridges of internal networks
	// Bridges whose IPv4 or IPv6 traffic out of the host is masqueraded
	// ("masquerade" is a keyword nft cannot name a set by).
	setMasquerade4 = "masq4"
	setMasquerade6 = "masq6"
	// Bridges of a routed family, and the ports opened on their
	// containers' addresses: address . proto . port.
	setRouted4 = "routed4"
	setRouted6 = "routed6"
	setOpen4   = "open4"
	setOpen6   = "open6"
	// Bridges whose containers' ports are all open from outside, per
	// family.
	setUnprotected4 = "unprot4"
	setUnprotected6 = "unprot6"
	setIsolated     = "isolated"   // ports of bridges with enable_icc=false (bridge table)
	setIntra        = "intra"      // bridge . bridge of networks whose containers talk to each other
	mapPorts4       = "ports4"     // proto . port → address . port, on every host address
	mapHostPorts4   = "hostports4" // host address . proto . port → address . port
	mapPorts6       = "ports6"
	mapHostPorts6   = "hostports6"
	// Anti-spoofing, in the bridge table: containers' ports and what each
	// may send as.
	setGuarded    = "guarded"    // containers' ports
	setGuardMAC   = "guardmac"   // port . MAC
	setGuard4     = "guard4"     // port . IPv4 address
	setGuard6     = "guard6"     // port . IPv6 address
	setEtherTypes = "ethertypes" // what a guarded port may carry: IPv4, ARP, IPv6
)

// The ether types a container may send.
var etherTypes = []uint16{unix.ETH_P_IP, unix.ETH_P_ARP, unix.ETH_P_IPV6}

// Firewall is berth's two tables in one network namespace.
type Firewall struct {
	// opts are the caller's options for every connection (a test dialer).
	opts   []nftables.ConnOption
	mu     sync.Mutex
	conn   *nftables.Conn
	inet   *nftables.Table
	bridge *nftables.Table
	sets   map[string]*nftables.Set
}

// New prepares berth's tables named name in the calling thread's
// namespace (nothing is written until Rebuild). opts apply to every
// netlink connection the firewall opens (nftables.WithTestDial).
func New(name string, opts ...nftables.ConnOption) (*Firewall, error) {
	conn, err := nftables.New(append([]nftables.ConnOption{nftables.AsLasting()}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("open nftables: %w", err)
	}
	f := &Firewall{
		opts:   opts,
		conn:   conn,
		inet:   &nftables.Table{Name: name, Family: nftables.TableFamilyINet},
		bridge: &nftables.Table{Name: name, Family: nftables.TableFamilyBridge},
	}
	f.sets = f.newSets()
	return f, nil
}

// Close releases the netlink connection; the tables stay.
func (f *Firewall) Close() error { return f.conn.CloseLasting() }

func (f *Firewall) newSets() map[string]*nftables.Set {
	ifset := func(t *nftables.Table, name string) *nftables.Set {
		// Host byte order is how nft itself declares ifname keys, so
		// `nft list` shows the names.
		return &nftables.Set{Table: t, Name: name, KeyType: nftables.TypeIFName, KeyByteOrder: binaryutil.NativeEndian}
	}
	portMap := func(name string, key ...nftables.SetDatatype) *nftables.Set {
		addr := nftables.TypeIPAddr
		if name == mapPorts6 || name == mapHostPorts6 {
			addr = nftables.TypeIP6Addr
		}
		return &nftables.Set{
			Table: f.inet, Name: name, IsMap: true, Concatenation: true,
			KeyType:  nftables.MustConcatSetType(key...),
			DataType: nftables.MustConcatSetType(addr, nftables.TypeInetService),
		}
	}
	pp := []nftables.SetDatatype{nftables.TypeInetProto, nftables.TypeInetService}
	openSet := func(name string, addr nftables.SetDatatype) *nftables.Set {
		return &nftables.Set{Table: f.inet, Name: name, Concatenation: true,
			KeyType: nftables.MustConcatSetType(addr, nftables.TypeInetProto, nftables.TypeInetService)}
	}
	guard := func(name string, t nftables.SetDatatype) *nftables.Set {
		return &nftables.Set{Table: f.bridge, Name: name, Concatenation: true, KeyByteOrder: binaryutil.NativeEndian,
			KeyType: nftables.MustConcatSetType(nftables.TypeIFName, t)}
	}
	return map[string]*nftables.Set{
		setGuarded:    ifset(f.bridge, setGuarded),
		setGuardMAC:   guard(setGuardMAC, nftables.TypeEtherAddr),
		setGuard4:     guard(setGuard4, nftables.TypeIPAddr),
		setGuard6:     guard(setGuard6, nftables.TypeIP6Addr),
		setEtherTypes: {Table: f.bridge, Name: setEtherTypes, Constant: true, KeyType: nftables.TypeEtherType},
		setIntra: {Table: f.inet, Name: setIntra, Concatenation: true, KeyByteOrder: binaryutil.NativeEndian,
			KeyType: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIFName)},
		setBridges:      ifset(f.inet, setBridges),
		setInternal:     ifset(f.inet, setInternal),
		setMasquerade4:  ifset(f.inet, setMasquerade4),
		setMasquerade6:  ifset(f.inet, setMasquerade6),
		setRouted4:      ifset(f.inet, setRouted4),
		setRouted6:      ifset(f.inet, setRouted6),
		setUnprotected4: ifset(f.inet, setUnprotected4),
		setUnprotected6: ifset(f.inet, setUnprotected6),
		setOpen4:        openSet(setOpen4, nftables.TypeIPAddr),
		setOpen6:        openSet(setOpen6, nftables.TypeIP6Addr),
		setIsolated:     ifset(f.bridge, setIsolated),
		mapPorts4:       portMap(mapPorts4, pp...),
		mapHostPorts4:   portMap(mapHostPorts4, append([]nftables.SetDatatype{nftables.TypeIPAddr}, pp...)...),
		mapPorts6:       portMap(mapPorts6, pp...),
		mapHostPorts6:   portMap(mapHostPorts6, append([]nftables.SetDatatype{nftables.TypeIP6Addr}, pp...)...),
	}
}

// elements is the content of every set and map for a state.
type elements map[string][]nftables.SetElement

func (e elements) addNetwork(n Network) {
	bridge := nftables.SetElement{Key: ifname(n.Bridge)}
	for _, s := range []struct {
		set string
		in  bool
	}{
		{setBridges, true},
		{setInternal, n.Internal},
		{setMasquerade4, n.Masquerade && !n.Internal && !n.Routed4},
		{setMasquerade6, n.Masquerade && !n.Internal && !n.Routed6},
		{setRouted4, n.Routed4 && !n.Internal},
		{setRouted6, n.Routed6 && !n.Internal},
		{setUnprotected4, n.Unprotected4 && !n.Internal},
		{setUnprotected6, n.Unprotected6 && !n.Internal},
	} {
		if s.in {
			e[s.set] = append(e[s.set], bridge)
		}
	}
	if n.Isolated {
		for _, p := range n.Ports {
			e[setIsolated] = append(e[setIsolated], nftables.SetElement{Key: ifname(p)})
		}
	} else {
		e[setIntra] = append(e[setIntra], nftables.SetElement{Key: append(ifname(n.Bridge), ifname(n.Bridge)...)})
	}
}

func (e elements) addBinding(b Binding) error {
	el, ok := bindingElement(b)
	if !ok {
		return fmt.Errorf("unknown protocol %q", b.Proto)
	}
	var m string
	switch {
	case b.Routed && b.IP.Is4():
		m = setOpen4
	case b.Routed:
		m = setOpen6
	case b.IP.Is4() && b.HostIP.IsValid():
		m = mapHostPorts4
	case b.IP.Is4():
		m = mapPorts4
	case b.HostIP.IsValid():
		m = mapHostPorts6
	default:
		m = mapPorts6
	}
	e[m] = append(e[m], el)
	return nil
}

// merge adds o's elements to e.
func (e elements) merge(o elements) {
	for name, els := range o {
		e[name] = append(e[name], els...)
	}
}

// Rebuild replaces berth's tables with the ones the state asks for, in
// one transaction: packets see the old ruleset or the new one, never none.
// Connections already tracked keep their translations.
func (f *Firewall) Rebuild(nets []Network, binds []Binding, guards []Guard) error {
	want := elements{}
	for _, t := range etherTypes {
		want[setEtherTypes] = append(want[setEtherTypes], nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(t)})
	}
	for _, n := range nets {
		want.addNetwork(n)
	}
	for _, g := range guards {
		want.merge(guardElements(g))
	}
	for _, b := range binds {
		if err := want.addBinding(b); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range []*nftables.Table{f.inet, f.bridge} {
		// Adding first makes the delete safe when the table is new.
		f.conn.AddTable(t)
		f.conn.DelTable(t)
		f.conn.AddTable(t)
	}
	f.sets = f.newSets()
	// In the order of their names: one state, one batch.
	for _, name := range slices.Sorted(maps.Keys(f.sets)) {
		if err := f.conn.AddSet(f.sets[name], want[name]); err != nil {
			return fmt.Errorf("firewall set %s: %w", name, err)
		}
	}
	f.addChains()
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("write the firewall: %w", err)
	}
	return nil
}

// Change is one operation's worth of element updates, applied in one
// transaction.
type Change struct {
	AddNetworks, RemoveNetworks []Network
	Publish, Unpublish          []Binding
	// Isolate and Unisolate add and remove ports of networks whose
	// containers must not talk to each other.
	Isolate, Unisolate []string
	// Guard and Unguard add and remove containers' ports that may send
	// only as their container.
	Guard, Unguard []Guard
}

// Apply makes a change.
func (f *Firewall) Apply(c Change) error {
	add, del := elements{}, elements{}
	for _, n := range c.AddNetworks {
		add.addNetwork(n)
	}
	for _, n := range c.RemoveNetworks {
		del.addNetwork(n)
	}
	for _, b := range c.Publish {
		if err := add.addBinding(b); err != nil {
			return err
		}
	}
	for _, b := range c.Unpublish {
		if err := del.addBinding(b); err != nil {
			return err
		}
	}
	for _, p := range c.Isolate {
		add[setIsolated] = append(add[setIsolated], nftables.SetElement{Key: ifname(p)})
	}
	for _, p := range c.Unisolate {
		del[setIsolated] = append(del[setIsolated], nftables.SetElement{Key: ifname(p)})
	}
	for _, g := range c.Guard {
		add.merge(guardElements(g))
	}
	for _, g := range c.Unguard {
		del.merge(guardElements(g))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range slices.Sorted(maps.Keys(del)) {
		if err := f.conn.SetDeleteElements(f.sets[name], del[name]); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(add)) {
		if err := f.conn.SetAddElements(f.sets[name], add[name]); err != nil {
			return err
		}
	}
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("update the firewall: %w", err)
	}
	return nil
}

// Registers as nftables numbers them: the 16-byte NFT_REG_1 holds the
// first four 4-byte registers, NFT_REG32_00 to 03.
const (
	reg2    = unix.NFT_REG_2
	reg1    = unix.NFT_REG_1
	reg3201 = unix.NFT_REG32_01
	reg3202 = unix.NFT_REG32_02
	reg3204 = unix.NFT_REG32_04
	reg3205 = unix.NFT_REG32_05
)

func (f *Firewall) addChains() {
	nat := func(name string, hook *nftables.ChainHook, prio *nftables.ChainPriority) *nftables.Chain {
		return f.conn.AddChain(&nftables.Chain{Name: name, Table: f.inet, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: prio})
	}
	accept := nftables.ChainPolicyAccept
	pre := nat("prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest)
	out := nat("output", nftables.ChainHookOutput, nftables.ChainPriorityNATDest)
	post := nat("postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource)
	fwd := f.conn.AddChain(&nftables.Chain{Name: "forward", Table: f.inet, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	bfwd := f.conn.AddChain(&nftables.Chain{Name: "forward", Table: f.bridge, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})

	// Published ports: traffic to one of the host's own addresses, from
	// outside (prerouting) or from the host itself (output), is sent to
	// the container.
	for _, c := range []*nftables.Chain{pre, out} {
		for _, r := range publishRules(f.sets) {
			f.conn.AddRule(&nftables.Rule{Table: f.inet, Chain: c, Exprs: r})
		}
	}
	addRule := func(c *nftables.Chain, t *nftables.Table, exprs ...expr.Any) {
		f.conn.AddRule(&nftables.Rule{Table: t, Chain: c, Exprs: exprs})
	}
	masq := &expr.Masq{}
	// The host's own connections to containers, 127.0.0.1 ones included,
	// leave with the bridge's address.
	addRule(post, f.inet, concat(inSet(unix.NFT_META_OIFNAME, f.sets[setBridges], false), fibLocal(true), masq)...)
	// Traffic between containers through a published port (hairpin, and
	// from other networks) comes back through the host.
	addRule(post, f.inet, concat(ctStatusDNAT(), inSet(unix.NFT_META_IIFNAME, f.sets[setBridges], false),
		inSet(unix.NFT_META_OIFNAME, f.sets[setBridges], false), masq)...)
	// Containers' traffic out of the host, in the families their
	// networks translate.
	addRule(post, f.inet, concat(nfproto(unix.NFPROTO_IPV4), inSet(unix.NFT_META_IIFNAME, f.sets[setMasquerade4], false),
		inSet(unix.NFT_META_OIFNAME, f.sets[setBridges], true), masq)...)
	addRule(post, f.inet, concat(nfproto(unix.NFPROTO_IPV6), inSet(unix.NFT_META_IIFNAME, f.sets[setMasquerade6], false),
		inSet(unix.NFT_META_OIFNAME, f.sets[setBridges], true), masq)...)

	acceptV := &expr.Verdict{Kind: expr.VerdictAccept}
	dropV := &expr.Verdict{Kind: expr.VerdictDrop}
	addRule(fwd, f.inet, concat(ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), acceptV)...)
	// With br_netfilter on (the kernel's default), frames between two
	// containers of one bridge pass here too, in and out on the bridge.
	addRule(fwd, f.inet,
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1},
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: reg2},
		&expr.Lookup{SourceRegister: reg1, SetName: f.sets[setIntra].Name, SetID: f.sets[setIntra].ID},
		acceptV)
	// Internal networks are sealed: nothing is routed in or out of them,
	// translated or not. A container of one reaching a port published on
	// the host's or the gateway's address is translated on the way in and
	// would otherwise leave through the other network.
	addRule(fwd, f.inet, concat(inSet(unix.NFT_META_IIFNAME, f.sets[setInternal], false), dropV)...)
	addRule(fwd, f.inet, concat(inSet(unix.NFT_META_OIFNAME, f.sets[setInternal], false), dropV)...)
	addRule(fwd, f.inet, concat(ctStatusDNAT(), acceptV)...)
	// Routed families: the ports containers publish are open at their
	// own addresses, from outside and from other networks, and ICMP
	// (errors, path MTU discovery, echo) gets through.
	for _, r := range openRules(f.sets) {
		addRule(fwd, f.inet, concat(r, acceptV)...)
	}
	// Isolation: nothing is routed from one network to another, and
	// nothing from outside reaches a container but through a published
	// port or as an answer, but for networks whose containers are open
	// to the outside (nat-unprotected).
	addRule(fwd, f.inet, concat(inSet(unix.NFT_META_IIFNAME, f.sets[setBridges], false),
		inSet(unix.NFT_META_OIFNAME, f.sets[setBridges], false), dropV)...)
	addRule(fwd, f.inet, concat(nfproto(unix.NFPROTO_IPV4), inSet(unix.NFT_META_OIFNAME, f.sets[setUnprotected4], false), acceptV)...)
	addRule(fwd, f.inet, concat(nfproto(unix.NFPROTO_IPV6), inSet(unix.NFT_META_OIFNAME, f.sets[setUnprotected6], false), acceptV)...)
	addRule(fwd, f.inet, concat(inSet(unix.NFT_META_OIFNAME, f.sets[setBridges], false), dropV)...)

	// enable_icc=false: no frames between two ports of such a network.
	addRule(bfwd, f.bridge, concat(inSet(unix.NFT_META_IIFNAME, f.sets[setIsolated], false),
		inSet(unix.NFT_META_OIFNAME, f.sets[setIsolated], false), dropV)...)

	// Anti-spoofing: every frame a container sends, bridged or to the
	// host, leaves its port as the container itself or not at all.
	bpre := f.conn.AddChain(&nftables.Chain{Name: "prerouting", Table: f.bridge, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	for _, r := range guardRules(f.sets) {
		addRule(bpre, f.bridge, r...)
	}
}

// guardRules drop, and count, what a guarded port sends as someone else:
// another MAC; a protocol but IPv4, ARP and IPv6 (no VLAN tags); an IPv4
// or ARP sender address, or an ARP sender MAC, not the container's; an
// IPv6 source address not the container's, but for link-local ones and
// the unspecified one, which neighbour discovery needs.
func guardRules(sets map[string]*nftables.Set) [][]expr.Any {
	guarded := inSet(unix.NFT_META_IIFNAME, sets[setGuarded], false)
	drop := []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}
	proto := func(p uint16) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.BigEndian.PutUint16(p)},
		}
	}
	// notAs is: iifname . <field> not in set.
	notAs := func(set string, base expr.PayloadBase, offset, length uint32) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1},
			&expr.Payload{DestRegister: reg3204, Base: base, Offset: offset, Len: length},
			&expr.Lookup{SourceRegister: reg1, SetName: sets[set].Name, SetID: sets[set].ID, Invert: true},
		}
	}
	ll, nh := expr.PayloadBaseLLHeader, expr.PayloadBaseNetworkHeader
	linkLocal6 := []expr.Any{
		&expr.Payload{DestRegister: reg1, Base: nh, Offset: 8, Len: 16},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 16,
			Mask: netip.MustParseAddr("ffc0::").AsSlice(), Xor: make([]byte, 16)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: netip.MustParseAddr("fe80::").AsSlice()},
		&expr.Payload{DestRegister: reg1, Base: nh, Offset: 8, Len: 16},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 16)},
	}
	return [][]expr.Any{
		concat(guarded, notAs(setGuardMAC, ll, 6, 6), drop),
		concat(guarded, &expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: reg1},
			&expr.Lookup{SourceRegister: reg1, SetName: sets[setEtherTypes].Name, SetID: sets[setEtherTypes].ID, Invert: true}, drop),
		concat(guarded, proto(unix.ETH_P_IP), notAs(setGuard4, nh, 12, 4), drop),
		concat(guarded, proto(unix.ETH_P_ARP), notAs(setGuard4, nh, 14, 4), drop),
		concat(guarded, proto(unix.ETH_P_ARP), notAs(setGuardMAC, nh, 8, 6), drop),
		concat(guarded, proto(unix.ETH_P_IPV6), linkLocal6, notAs(setGuard6, nh, 8, 16), drop),
	}
}

// openRules match what a routed network lets in: a packet to a port
// opened on a container's address, and ICMP to the network.
func openRules(sets map[string]*nftables.Set) [][]expr.Any {
	l4proto := func(reg uint32) expr.Any { return &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg} }
	dport := &expr.Payload{DestRegister: reg3202, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	open := func(set *nftables.Set) expr.Any {
		return &expr.Lookup{SourceRegister: reg1, SetName: set.Name, SetID: set.ID}
	}
	icmp := func(proto byte) []expr.Any {
		return []expr.Any{l4proto(reg1), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{proto}}}
	}
	daddr4 := &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
	daddr6 := &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16}
	dport6 := &expr.Payload{DestRegister: reg3205, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	return [][]expr.Any{
		concat(nfproto(unix.NFPROTO_IPV4), daddr4, l4proto(reg3201), dport, open(sets[setOpen4])),
		concat(nfproto(unix.NFPROTO_IPV6), daddr6, l4proto(reg3204), dport6, open(sets[setOpen6])),
		concat(nfproto(unix.NFPROTO_IPV4), icmp(unix.IPPROTO_ICMP), inSet(unix.NFT_META_OIFNAME, sets[setRouted4], false)),
		concat(nfproto(unix.NFPROTO_IPV6), icmp(unix.IPPROTO_ICMPV6), inSet(unix.NFT_META_OIFNAME, sets[setRouted6], false)),
	}
}

// publishRules are the DNAT rules: bindings on a given host address first,
// then those on every address, for IPv4 and IPv6. IPv6's leave ::1 alone:
// the kernel cannot carry a connection from ::1 to a container (the
// answer, addressed to ::1, arrives on the bridge and is dropped), so the
// port's reservation forwards those.
func publishRules(sets map[string]*nftables.Set) [][]expr.Any {
	dnat := func(family uint32, addrReg, portReg uint32) *expr.NAT {
		return &expr.NAT{Type: expr.NATTypeDestNAT, Family: family, RegAddrMin: addrReg, RegProtoMin: portReg, Specified: true}
	}
	l4proto := func(reg uint32) expr.Any { return &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg} }
	dport := func(reg uint32) expr.Any {
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	}
	lookup := func(set *nftables.Set) expr.Any {
		return &expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: set.Name, SetID: set.ID}
	}
	daddr4 := &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
	daddr6 := &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 24, Len: 16}
	notLoopback6 := []expr.Any{daddr6, &expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: netip.IPv6Loopback().AsSlice()}}
	return [][]expr.Any{
		concat(fibLocal(false), nfproto(unix.NFPROTO_IPV4), daddr4, l4proto(reg3201), dport(reg3202), lookup(sets[mapHostPorts4]), dnat(unix.NFPROTO_IPV4, reg1, reg3201)),
		concat(fibLocal(false), nfproto(unix.NFPROTO_IPV4), l4proto(reg1), dport(reg3201), lookup(sets[mapPorts4]), dnat(unix.NFPROTO_IPV4, reg1, reg3201)),
		concat(fibLocal(false), nfproto(unix.NFPROTO_IPV6), notLoopback6, daddr6, l4proto(reg3204), dport(reg3205), lookup(sets[mapHostPorts6]), dnat(unix.NFPROTO_IPV6, reg1, reg3204)),
		concat(fibLocal(false), nfproto(unix.NFPROTO_IPV6), notLoopback6, l4proto(reg1), dport(reg3201), lookup(sets[mapPorts6]), dnat(unix.NFPROTO_IPV6, reg1, reg3204)),
	}
}

func concat(parts ...any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		switch v := p.(type) {
		case []expr.Any:
			out = append(out, v...)
		case expr.Any:
			out = append(out, v)
		}
	}
	return out
}

// fibLocal matches packets whose destination (or, with saddr, source) is
// an address of the host.
func fibLocal(saddr bool) []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: reg1, FlagDADDR: !saddr, FlagSADDR: saddr, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

func nfproto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{p}},
	}
}

func inSet(key uint32, set *nftables.Set, invert bool) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKey(key), Register: reg1},
		&expr.Lookup{SourceRegister: reg1, SetName: set.Name, SetID: set.ID, Invert: invert},
	}
}

func ctBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: reg1, Key: key},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

func ctState(bits uint32) []expr.Any { return ctBits(expr.CtKeySTATE, bits) }

// ctStatusDNAT matches connections whose destination was translated (the
// kernel's IPS_DST_NAT status bit).
func ctStatusDNAT() []expr.Any { return ctBits(expr.CtKeySTATUS, 1<<5) }

// ForwardDrops names the base chains of other tables that drop forwarded
// packets by policy (iptables' FORWARD with policy DROP, as Docker sets
// it). An accept in berth's table cannot overrule them: nftables runs
// every base chain of a hook, and a drop in any is final. So berth can
// only say so; it never edits another table.
func (f *Firewall) ForwardDrops() ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	chains, err := f.conn.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	var out []string
	for _, c := range chains {
		if c.Table.Name == f.inet.Name || c.Hooknum == nil || *c.Hooknum != *nftables.ChainHookForward {
			continue
		}
		// Bridge and ARP chains on the forward hook see other traffic.
		if c.Policy != nil && *c.Policy == nftables.ChainPolicyDrop && c.Table.Family != nftables.TableFamilyBridge && c.Table.Family != nftables.TableFamilyARP {
			out = append(out, fmt.Sprintf("%s %s %s", familyName(c.Table.Family), c.Table.Name, c.Name))
		}
	}
	return out, nil
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	}
	return fmt.Sprint(f)
}
