package firewall

import (
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"golang.org/x/sys/unix"
)

// Table is the name of berth's tables (inet and bridge).
func (f *Firewall) Table() string { return f.inet.Name }

// Drift is how berth's sets in the kernel differ from a model: elements
// the model asks for that the kernel lacks, elements the kernel holds
// that no part of the model accounts for (a published port, a bridge or a
// guard of an endpoint that is gone), and berth's tables the kernel lacks
// ("bridge berth"). Elements are shown as nft lists them:
// `inet berth ports4 { tcp . 8080 : 172.18.0.2 . 80 }`.
type Drift struct {
	Missing, Extra, Gone []string
}

// wantElements are the elements of every set for a model, as Rebuild
// writes them.
func wantElements(m Model) (elements, error) {
	want := elements{}
	for _, t := range etherTypes {
		want[setEtherTypes] = append(want[setEtherTypes], nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(t)})
	}
	for _, n := range m.Networks {
		want.addNetwork(n)
	}
	for _, g := range m.Guards {
		want.merge(guardElements(g))
	}
	for _, b := range m.Bindings {
		if err := want.addBinding(b); err != nil {
			return nil, err
		}
	}
	return want, nil
}

// Compare reads berth's sets from the kernel and tells how they differ
// from the model. It changes nothing.
func (f *Firewall) Compare(m Model) (Drift, error) {
	want, err := wantElements(m)
	if err != nil {
		return Drift{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	tables, err := f.conn.ListTables()
	if err != nil {
		return Drift{}, fmt.Errorf("list tables: %w", err)
	}
	present := map[nftables.TableFamily]bool{}
	for _, t := range tables {
		if t.Name == f.inet.Name {
			present[t.Family] = true
		}
	}
	var d Drift
	for _, name := range slices.Sorted(maps.Keys(f.sets)) {
		set := f.sets[name]
		fam := familyName(set.Table.Family)
		if set.Table.Family == nftables.TableFamilyBridge {
			fam = "bridge"
		}
		if !present[set.Table.Family] {
			if table := fam + " " + set.Table.Name; !slices.Contains(d.Gone, table) {
				d.Gone = append(d.Gone, table)
			}
			continue
		}
		where := fmt.Sprintf("%s %s %s", fam, set.Table.Name, name)
		have, err := f.conn.GetSetElements(set)
		if err != nil {
			return Drift{}, fmt.Errorf("read %s: %w", where, err)
		}
		show := func(e nftables.SetElement) string { return fmt.Sprintf("%s { %s }", where, describe(name, e)) }
		inKernel := map[string]bool{}
		for _, e := range have {
			inKernel[elementKey(e)] = true
		}
		wanted := map[string]bool{}
		for _, e := range want[name] {
			wanted[elementKey(e)] = true
			if !inKernel[elementKey(e)] {
				d.Missing = append(d.Missing, show(e))
			}
		}
		for _, e := range have {
			if !wanted[elementKey(e)] {
				d.Extra = append(d.Extra, show(e))
			}
		}
	}
	return d, nil
}

func elementKey(e nftables.SetElement) string { return fmt.Sprintf("%x:%x", e.Key, e.Val) }

// describe shows an element of one of berth's sets as nft lists it.
func describe(set string, e nftables.SetElement) string {
	k, v := e.Key, e.Val
	var out string
	switch set {
	case setBridges, setInternal, setMasquerade4, setMasquerade6, setRouted4, setRouted6,
		setUnprotected4, setUnprotected6, setIsolated, setGuarded:
		out = showIfname(k)
	case setOpen4:
		out = showFields(k, fIPv4, fProto, fPort)
	case setOpen6:
		out = showFields(k, fIPv6, fProto, fPort)
	case setIntra:
		out = showFields(k, fIfname, fIfname)
	case setGuardMAC:
		out = showFields(k, fIfname, fMAC)
	case setGuard4:
		out = showFields(k, fIfname, fIPv4)
	case setGuard6:
		out = showFields(k, fIfname, fIPv6)
	case setEtherTypes:
		out = showEtherType(k)
	case mapPorts4:
		out = mapping(k, v, []part{fProto, fPort}, []part{fIPv4, fPort})
	case mapHostPorts4:
		out = mapping(k, v, []part{fIPv4, fProto, fPort}, []part{fIPv4, fPort})
	case mapPorts6:
		out = mapping(k, v, []part{fProto, fPort}, []part{fIPv6, fPort})
	case mapHostPorts6:
		out = mapping(k, v, []part{fIPv6, fProto, fPort}, []part{fIPv6, fPort})
	}
	if out == "" {
		out = fmt.Sprintf("0x%x", k)
		if len(v) > 0 {
			out += fmt.Sprintf(" : 0x%x", v)
		}
	}
	return out
}

// mapping shows a map element, or "" when it is not of the map's shape.
func mapping(k, v []byte, key, val []part) string {
	ks, vs := showFields(k, key...), showFields(v, val...)
	if ks == "" || vs == "" {
		return ""
	}
	return ks + " : " + vs
}

// part is one field of a concatenation: its length in the element's
// registers and how it is shown.
type part struct {
	size int
	show func([]byte) string
}

var (
	fIfname = part{unix.IFNAMSIZ, showIfname}
	fMAC    = part{8, func(b []byte) string { return net.HardwareAddr(b[:6]).String() }}
	fIPv4   = part{4, showAddr}
	fIPv6   = part{16, showAddr}
	fProto  = part{4, func(b []byte) string { return protoName(b[0]) }}
	fPort   = part{4, func(b []byte) string { return fmt.Sprint(binary.BigEndian.Uint16(b)) }}
)

// showFields shows a concatenation, or "" when b is not one of fields.
func showFields(b []byte, fields ...part) string {
	var parts []string
	for _, f := range fields {
		if len(b) < f.size {
			return ""
		}
		parts = append(parts, f.show(b[:f.size]))
		b = b[f.size:]
	}
	if len(b) != 0 {
		return ""
	}
	return strings.Join(parts, " . ")
}

func showIfname(b []byte) string { return fmt.Sprintf("%q", strings.TrimRight(string(b), "\x00")) }

func showAddr(b []byte) string {
	a, _ := netip.AddrFromSlice(b)
	return a.String()
}

func protoName(p byte) string {
	for _, name := range []string{"tcp", "udp", "sctp"} {
		if n, _ := protoNumber(name); n == p {
			return name
		}
	}
	return fmt.Sprint(p)
}

func showEtherType(b []byte) string {
	if len(b) != 2 {
		return ""
	}
	switch binary.BigEndian.Uint16(b) {
	case unix.ETH_P_IP:
		return "ip"
	case unix.ETH_P_ARP:
		return "arp"
	case unix.ETH_P_IPV6:
		return "ip6"
	}
	return fmt.Sprintf("0x%04x", binary.BigEndian.Uint16(b))
}
