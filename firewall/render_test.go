package firewall

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// The golden files show netlink messages in the notation of
// `nft --debug=netlink` (libnftnl's): a rule is its [ expression ] lines,
// data is shown as 32-bit words read little-endian, set elements as
// "element <key> : <data> <flags> [end]". So a golden file can be read
// next to what nft sends for the same ruleset.
//
// Nothing on the wire is left out: every attribute is shown, in wire
// order, and one the printer does not know is shown as attr#<type> with
// its bytes, as is an NLA_F_NESTED flag where it is not expected (or
// missing where it is). Only what changes from run to run is replaced:
// sequence numbers are not shown, and set IDs (a counter global to the
// nftables package) are shown as @<name of the set they were given to>.

// attr is one netlink attribute as it is on the wire.
type attr struct {
	typ    uint16 // without NLA_F_NESTED and NLA_F_NET_BYTEORDER
	nested bool
	netBO  bool
	data   []byte
}

// parseAttrs splits b into attributes, in host byte order as netlink
// carries them.
func parseAttrs(b []byte) ([]attr, error) {
	var out []attr
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, fmt.Errorf("%d stray bytes after the attributes", len(b))
		}
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		t := binary.NativeEndian.Uint16(b[2:4])
		if l < 4 || l > len(b) {
			return nil, fmt.Errorf("attribute of length %d in %d bytes", l, len(b))
		}
		out = append(out, attr{typ: t &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER),
			nested: t&unix.NLA_F_NESTED != 0, netBO: t&unix.NLA_F_NET_BYTEORDER != 0, data: b[4:l]})
		next := min(nlmsgAlign(l), len(b))
		if bytes.ContainsFunc(b[l:next], func(r rune) bool { return r != 0 }) {
			return nil, fmt.Errorf("attribute padding not zero: % x", b[l:next])
		}
		b = b[next:]
	}
	return out, nil
}

// kind is how an attribute's value is shown.
type kind int

const (
	kStr       kind = iota // NUL-terminated string
	kU32                   // big-endian
	kS32                   // big-endian, signed
	kU64                   // big-endian
	kHex                   // raw bytes
	kNested                // attributes, with NLA_F_NESTED
	kList                  // attributes without NLA_F_NESTED (old kernel encodings)
	kSetID                 // big-endian set ID, shown as the set's name
	kSetFlags              // NFT_SET_* bits
	kDatatype              // nft datatype, concatenations split
	kHook                  // hook number, named for the message's family
	kVerdict               // NF_ACCEPT, NF_DROP, NFT_JUMP...
	kUserdata              // libnftnl's type-length-value user data
	kTableFlag             // NFT_TABLE_F_* bits
)

type field struct {
	name string
	kind kind
	sub  schema
}

// schema names the attributes of one nesting level by type.
type schema map[uint16]field

var (
	tableSchema = schema{
		unix.NFTA_TABLE_NAME:  {"name", kStr, nil},
		unix.NFTA_TABLE_FLAGS: {"flags", kTableFlag, nil},
		unix.NFTA_TABLE_USE:   {"use", kU32, nil},
	}
	chainSchema = schema{
		unix.NFTA_CHAIN_TABLE:  {"table", kStr, nil},
		unix.NFTA_CHAIN_HANDLE: {"handle", kU64, nil},
		unix.NFTA_CHAIN_NAME:   {"name", kStr, nil},
		unix.NFTA_CHAIN_HOOK: {"hook", kNested, schema{
			unix.NFTA_HOOK_HOOKNUM:  {"hooknum", kHook, nil},
			unix.NFTA_HOOK_PRIORITY: {"priority", kS32, nil},
			unix.NFTA_HOOK_DEV:      {"dev", kStr, nil},
		}},
		unix.NFTA_CHAIN_POLICY: {"policy", kVerdict, nil},
		unix.NFTA_CHAIN_USE:    {"use", kU32, nil},
		unix.NFTA_CHAIN_TYPE:   {"type", kStr, nil},
	}
	setSchema = schema{
		unix.NFTA_SET_TABLE:     {"table", kStr, nil},
		unix.NFTA_SET_NAME:      {"name", kStr, nil},
		unix.NFTA_SET_FLAGS:     {"flags", kSetFlags, nil},
		unix.NFTA_SET_KEY_TYPE:  {"key_type", kDatatype, nil},
		unix.NFTA_SET_KEY_LEN:   {"key_len", kU32, nil},
		unix.NFTA_SET_DATA_TYPE: {"data_type", kDatatype, nil},
		unix.NFTA_SET_DATA_LEN:  {"data_len", kU32, nil},
		unix.NFTA_SET_POLICY:    {"policy", kU32, nil},
		unix.NFTA_SET_DESC: {"desc", kNested, schema{
			unix.NFTA_SET_DESC_SIZE: {"size", kU32, nil},
			2: {"concat", kNested, schema{ // NFTA_SET_DESC_CONCAT
				unix.NFTA_LIST_ELEM: {"field", kList, schema{1: {"len", kU32, nil}}}, // NFTA_SET_FIELD_LEN
			}},
		}},
		unix.NFTA_SET_ID:       {"id", kSetID, nil},
		unix.NFTA_SET_TIMEOUT:  {"timeout", kU64, nil},
		unix.NFTA_SET_USERDATA: {"userdata", kUserdata, nil},
	}
	elemListSchema = schema{
		unix.NFTA_SET_ELEM_LIST_TABLE:  {"table", kStr, nil},
		unix.NFTA_SET_ELEM_LIST_SET:    {"set", kStr, nil},
		unix.NFTA_SET_ELEM_LIST_SET_ID: {"id", kSetID, nil},
	}
	ruleSchema = schema{
		unix.NFTA_RULE_TABLE:    {"table", kStr, nil},
		unix.NFTA_RULE_CHAIN:    {"chain", kStr, nil},
		unix.NFTA_RULE_HANDLE:   {"handle", kU64, nil},
		unix.NFTA_RULE_POSITION: {"position", kU64, nil},
		unix.NFTA_RULE_USERDATA: {"userdata", kHex, nil},
	}
)

var msgNames = []string{"NEWTABLE", "GETTABLE", "DELTABLE", "NEWCHAIN", "GETCHAIN", "DELCHAIN",
	"NEWRULE", "GETRULE", "DELRULE", "NEWSET", "GETSET", "DELSET", "NEWSETELEM", "GETSETELEM",
	"DELSETELEM", "NEWGEN", "GETGEN"}

var familyNames = map[byte]string{unix.NFPROTO_UNSPEC: "unspec", unix.NFPROTO_INET: "inet",
	unix.NFPROTO_IPV4: "ip", unix.NFPROTO_ARP: "arp", unix.NFPROTO_NETDEV: "netdev",
	unix.NFPROTO_BRIDGE: "bridge", unix.NFPROTO_IPV6: "ip6"}

// printer renders requests. It keeps the set IDs it has seen across the
// requests it is given.
type printer struct {
	b    strings.Builder
	sets map[uint32]string
}

func newPrinter() *printer { return &printer{sets: map[uint32]string{}} }

func (p *printer) String() string { return p.b.String() }

func (p *printer) line(format string, args ...any) {
	fmt.Fprintf(&p.b, format+"\n", args...)
}

func (p *printer) request(msgs []netlink.Message) {
	for _, m := range msgs {
		p.message(m)
	}
}

func (p *printer) message(m netlink.Message) {
	if len(m.Data) < 4 {
		p.line("type %#04x flags %#x: %d bytes, no nfgenmsg header", uint16(m.Header.Type), uint16(m.Header.Flags), len(m.Data))
		return
	}
	fam, version, resID := m.Data[0], m.Data[1], binary.BigEndian.Uint16(m.Data[2:4])
	head := famName(fam)
	if version != unix.NFNETLINK_V0 {
		head += fmt.Sprintf(" version %d", version)
	}
	switch m.Header.Type {
	case unix.NFNL_MSG_BATCH_BEGIN, unix.NFNL_MSG_BATCH_END:
		name := map[netlink.HeaderType]string{unix.NFNL_MSG_BATCH_BEGIN: "BATCH_BEGIN", unix.NFNL_MSG_BATCH_END: "BATCH_END"}[m.Header.Type]
		sub := "nftables"
		if resID != unix.NFNL_SUBSYS_NFTABLES {
			sub = fmt.Sprintf("subsystem %d", resID)
		}
		p.line("%s %s %s %s", name, head, flagNames(m.Header.Flags, false), sub)
		p.rest(m.Data[4:], nil, fam)
		return
	}
	if resID != 0 {
		head += fmt.Sprintf(" res_id %d", resID)
	}
	msg := int(m.Header.Type & 0xff)
	if m.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES || msg >= len(msgNames) {
		p.line("type %#04x %s %s", uint16(m.Header.Type), head, flagNames(m.Header.Flags, false))
		p.rest(m.Data[4:], nil, fam)
		return
	}
	name := msgNames[msg]
	p.line("%s %s %s", name, head, flagNames(m.Header.Flags, strings.HasPrefix(name, "GET")))
	attrs, err := parseAttrs(m.Data[4:])
	if err != nil {
		p.line("  malformed: %v: % x", err, m.Data[4:])
		return
	}
	switch msg {
	case unix.NFT_MSG_NEWTABLE, unix.NFT_MSG_DELTABLE, unix.NFT_MSG_GETTABLE:
		p.attrs(attrs, tableSchema, fam)
	case unix.NFT_MSG_NEWCHAIN, unix.NFT_MSG_DELCHAIN, unix.NFT_MSG_GETCHAIN:
		p.attrs(attrs, chainSchema, fam)
	case unix.NFT_MSG_NEWSET, unix.NFT_MSG_DELSET:
		p.newSet(attrs)
		p.attrs(attrs, setSchema, fam)
	case unix.NFT_MSG_NEWSETELEM, unix.NFT_MSG_DELSETELEM:
		p.elements(attrs, fam)
	case unix.NFT_MSG_NEWRULE, unix.NFT_MSG_DELRULE:
		p.rule(attrs, fam)
	default:
		p.attrs(attrs, nil, fam)
	}
}

// newSet names the ID the set is given, so that lookups and elements can
// be checked against it.
func (p *printer) newSet(attrs []attr) {
	var name string
	var id uint32
	for _, a := range attrs {
		switch {
		case a.typ == unix.NFTA_SET_NAME:
			name = cstr(a.data)
		case a.typ == unix.NFTA_SET_ID && len(a.data) == 4:
			id = binary.BigEndian.Uint32(a.data)
		}
	}
	if _, taken := p.sets[id]; id != 0 && !taken {
		p.sets[id] = name
	}
}

// rest shows b as attributes of an unknown schema.
func (p *printer) rest(b []byte, s schema, fam byte) {
	if len(b) == 0 {
		return
	}
	attrs, err := parseAttrs(b)
	if err != nil {
		p.line("  malformed: %v: % x", err, b)
		return
	}
	p.attrs(attrs, s, fam)
}

func (p *printer) attrs(attrs []attr, s schema, fam byte) {
	for _, a := range attrs {
		p.line("  %s", p.attr(a, s, fam))
	}
}

// attr is "name value" for one attribute, nested ones inline in braces.
func (p *printer) attr(a attr, s schema, fam byte) string {
	f, known := s[a.typ]
	if !known {
		return fmt.Sprintf("attr#%d%s 0x%x", a.typ, nestMark(a, a.nested), a.data)
	}
	name := f.name + nestMark(a, f.kind == kNested)
	if a.netBO {
		name += "(net-byteorder)"
	}
	return name + " " + p.value(a, f, fam)
}

func nestMark(a attr, want bool) string {
	switch {
	case a.nested && !want:
		return "(nested-flag)"
	case !a.nested && want:
		return "(no-nested-flag)"
	}
	return ""
}

func (p *printer) value(a attr, f field, fam byte) string {
	d := a.data
	fixed := map[kind]int{kU32: 4, kS32: 4, kU64: 8, kSetID: 4, kSetFlags: 4, kDatatype: 4, kHook: 4, kVerdict: 4, kTableFlag: 4}
	if n, ok := fixed[f.kind]; ok && len(d) != n {
		return fmt.Sprintf("(%d bytes) 0x%x", len(d), d)
	}
	switch f.kind {
	case kStr:
		if len(d) == 0 || d[len(d)-1] != 0 || bytes.IndexByte(d, 0) != len(d)-1 {
			return fmt.Sprintf("(not NUL-terminated) %q", d)
		}
		return cstr(d)
	case kU32:
		return fmt.Sprint(binary.BigEndian.Uint32(d))
	case kS32:
		return fmt.Sprint(int32(binary.BigEndian.Uint32(d)))
	case kU64:
		return fmt.Sprint(binary.BigEndian.Uint64(d))
	case kNested, kList:
		attrs, err := parseAttrs(d)
		if err != nil {
			return fmt.Sprintf("malformed(%v) 0x%x", err, d)
		}
		parts := make([]string, len(attrs))
		for i, sa := range attrs {
			parts[i] = p.attr(sa, f.sub, fam)
		}
		return "{" + strings.Join(parts, " ") + "}"
	case kSetID:
		return p.setID(binary.BigEndian.Uint32(d))
	case kSetFlags:
		return bitNames(binary.BigEndian.Uint32(d), []string{"anonymous", "constant", "interval", "map", "timeout", "eval", "object", "concat", "expr"})
	case kTableFlag:
		return bitNames(binary.BigEndian.Uint32(d), []string{"dormant", "owner", "persist"})
	case kDatatype:
		return datatype(binary.BigEndian.Uint32(d))
	case kHook:
		return hookName(fam, binary.BigEndian.Uint32(d))
	case kVerdict:
		return verdictName(int32(binary.BigEndian.Uint32(d)))
	case kUserdata:
		return userdata(d)
	}
	return fmt.Sprintf("0x%x", d)
}

func (p *printer) setID(id uint32) string {
	if id == 0 {
		return "0"
	}
	if name, ok := p.sets[id]; ok {
		return "@" + name
	}
	return "(an ID no set of these requests was given)"
}

// elements shows a NEWSETELEM or DELSETELEM: its attributes, then one line
// per element.
func (p *printer) elements(attrs []attr, fam byte) {
	var set string
	for _, a := range attrs {
		if a.typ == unix.NFTA_SET_ELEM_LIST_SET {
			set = cstr(a.data)
		}
	}
	for _, a := range attrs {
		if a.typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS || !a.nested {
			p.attrs([]attr{a}, elemListSchema, fam)
			continue
		}
		els, err := parseAttrs(a.data)
		if err != nil {
			p.line("  elements malformed: %v", err)
			continue
		}
		for i, el := range els {
			// nft numbers every element NFTA_LIST_ELEM, google/nftables
			// by position; the kernel reads neither.
			mark := ""
			if (el.typ != unix.NFTA_LIST_ELEM && int(el.typ) != i+1) || !el.nested {
				mark = fmt.Sprintf("(attr#%d%s) ", el.typ, nestMark(el, true))
			}
			p.line("  %s%s", mark, p.element(el.data, set))
		}
	}
}

// element is libnftnl's "element <key> : <data> <flags> [end]", the
// elements' meaning as a comment, and any other attribute after it.
func (p *printer) element(b []byte, set string) string {
	attrs, err := parseAttrs(b)
	if err != nil {
		return fmt.Sprintf("element malformed: %v", err)
	}
	var key, data []byte
	var flags uint32
	var extra []string
	for _, a := range attrs {
		switch a.typ {
		case unix.NFTA_SET_ELEM_KEY, unix.NFTA_SET_ELEM_DATA:
			v, ok := dataValue(a)
			if !ok {
				extra = append(extra, fmt.Sprintf("attr#%d%s 0x%x", a.typ, nestMark(a, true), a.data))
				continue
			}
			if a.typ == unix.NFTA_SET_ELEM_KEY {
				key = v
			} else {
				data = v
			}
		case unix.NFTA_SET_ELEM_FLAGS:
			if len(a.data) == 4 {
				flags = binary.BigEndian.Uint32(a.data)
				continue
			}
			extra = append(extra, fmt.Sprintf("flags(%d bytes) 0x%x", len(a.data), a.data))
		default:
			extra = append(extra, fmt.Sprintf("attr#%d%s 0x%x", a.typ, nestMark(a, a.nested), a.data))
		}
	}
	var s strings.Builder
	s.WriteString("element ")
	for _, w := range words(key) {
		s.WriteString(w + " ")
	}
	s.WriteString(" : ")
	for _, w := range words(data) {
		s.WriteString(w + " ")
	}
	fmt.Fprintf(&s, "%d [end]", flags)
	for _, e := range extra {
		s.WriteString(" + " + e)
	}
	return s.String() + "  # " + meaning(set, key, data)
}

// dataValue is the value of an NFTA_DATA_VALUE nested in a.
func dataValue(a attr) ([]byte, bool) {
	in, err := parseAttrs(a.data)
	if err != nil || !a.nested || len(in) != 1 || in[0].typ != unix.NFTA_DATA_VALUE || in[0].nested {
		return nil, false
	}
	return in[0].data, true
}

// meaning reads an element of one of berth's sets back, by the set's
// declared types (as nft would show them), independently of how the
// firewall encodes them.
func meaning(set string, key, data []byte) string {
	ifname := func(b []byte) (string, []byte, bool) {
		if len(b) < unix.IFNAMSIZ {
			return "", nil, false
		}
		return fmt.Sprintf("%q", bytes.TrimRight(b[:unix.IFNAMSIZ], "\x00")), b[unix.IFNAMSIZ:], true
	}
	addr := func(n int) func([]byte) (string, []byte, bool) {
		return func(b []byte) (string, []byte, bool) {
			if len(b) < n {
				return "", nil, false
			}
			a, _ := netip.AddrFromSlice(b[:n])
			return a.String(), b[n:], true
		}
	}
	proto := func(b []byte) (string, []byte, bool) {
		if len(b) < 4 {
			return "", nil, false
		}
		names := map[byte]string{unix.IPPROTO_TCP: "tcp", unix.IPPROTO_UDP: "udp", unix.IPPROTO_SCTP: "sctp"}
		n, ok := names[b[0]]
		if !ok {
			n = fmt.Sprint(b[0])
		}
		return n, b[4:], true
	}
	port := func(b []byte) (string, []byte, bool) {
		if len(b) < 4 {
			return "", nil, false
		}
		return fmt.Sprint(binary.BigEndian.Uint16(b)), b[4:], true
	}
	type part = func([]byte) (string, []byte, bool)
	read := func(b []byte, parts ...part) string {
		var out []string
		for _, f := range parts {
			s, r, ok := f(b)
			if !ok {
				return "(does not fit the set's type)"
			}
			out, b = append(out, s), r
		}
		if len(b) != 0 {
			return "(longer than the set's type)"
		}
		return strings.Join(out, " . ")
	}
	switch set {
	case setBridges, setInternal, setMasquerade4, setMasquerade6, setRouted4, setRouted6, setUnprotected4, setUnprotected6, setIsolated:
		return read(key, ifname)
	case setOpen4:
		return read(key, addr(4), proto, port)
	case setOpen6:
		return read(key, addr(16), proto, port)
	case setIntra:
		return read(key, ifname, ifname)
	case mapPorts4:
		return read(key, proto, port) + " : " + read(data, addr(4), port)
	case mapHostPorts4:
		return read(key, addr(4), proto, port) + " : " + read(data, addr(4), port)
	case mapPorts6:
		return read(key, proto, port) + " : " + read(data, addr(16), port)
	case mapHostPorts6:
		return read(key, addr(16), proto, port) + " : " + read(data, addr(16), port)
	}
	return "?"
}

// rule shows a NEWRULE: its attributes, its expressions one per line.
func (p *printer) rule(attrs []attr, fam byte) {
	for _, a := range attrs {
		if a.typ != unix.NFTA_RULE_EXPRESSIONS || !a.nested {
			p.attrs([]attr{a}, ruleSchema, fam)
			continue
		}
		exprs, err := parseAttrs(a.data)
		if err != nil {
			p.line("  expressions malformed: %v", err)
			continue
		}
		for _, e := range exprs {
			if e.typ != unix.NFTA_LIST_ELEM || !e.nested {
				p.line("  attr#%d%s 0x%x", e.typ, nestMark(e, true), e.data)
				continue
			}
			p.line("  %s", p.expr(e.data))
		}
	}
}

// exprData is an expression's attributes; each is taken once, and what no
// one took is shown after the expression.
type exprData struct {
	attrs []attr
	taken []bool
}

func (x *exprData) take(typ uint16) ([]byte, bool) {
	for i, a := range x.attrs {
		if a.typ == typ && !x.taken[i] && !a.nested {
			x.taken[i] = true
			return a.data, true
		}
	}
	return nil, false
}

func (x *exprData) u32(typ uint16) (uint32, bool) {
	for i, a := range x.attrs {
		if a.typ == typ && !x.taken[i] && !a.nested && len(a.data) == 4 {
			x.taken[i] = true
			return binary.BigEndian.Uint32(a.data), true
		}
	}
	return 0, false
}

// value is the NFTA_DATA_VALUE in the nested attribute typ.
func (x *exprData) value(typ uint16) ([]byte, bool) {
	for i, a := range x.attrs {
		if a.typ == typ && !x.taken[i] {
			if v, ok := dataValue(a); ok {
				x.taken[i] = true
				return v, true
			}
		}
	}
	return nil, false
}

func (x *exprData) leftover() string {
	var out []string
	for i, a := range x.attrs {
		if !x.taken[i] {
			out = append(out, fmt.Sprintf("attr#%d%s 0x%x", a.typ, map[bool]string{true: "(nested)"}[a.nested], a.data))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return " + " + strings.Join(out, " + ")
}

// expr is one expression in libnftnl's notation.
func (p *printer) expr(b []byte) string {
	outer, err := parseAttrs(b)
	if err != nil {
		return fmt.Sprintf("[ malformed expression: %v ]", err)
	}
	var name string
	var data []attr
	var extra []string
	for _, a := range outer {
		switch {
		case a.typ == unix.NFTA_EXPR_NAME && !a.nested:
			name = cstr(a.data)
		case a.typ == unix.NFTA_EXPR_DATA && a.nested:
			if data, err = parseAttrs(a.data); err != nil {
				return fmt.Sprintf("[ %s: malformed data: %v ]", name, err)
			}
		default:
			extra = append(extra, fmt.Sprintf("attr#%d 0x%x", a.typ, a.data))
		}
	}
	x := &exprData{attrs: data, taken: make([]bool, len(data))}
	s := p.exprBody(name, x)
	s += x.leftover()
	for _, e := range extra {
		s += " + " + e
	}
	return s
}

func (p *printer) exprBody(name string, x *exprData) string {
	// num and named show a missing attribute as "?", so that leaving one
	// out changes the line even where its value would be 0.
	num := func(typ uint16) string {
		if v, ok := x.u32(typ); ok {
			return fmt.Sprint(v)
		}
		return "?"
	}
	named := func(typ uint16, names map[uint32]string) string {
		v, ok := x.u32(typ)
		if !ok {
			return "?"
		}
		if n, ok := names[v]; ok {
			return n
		}
		return fmt.Sprint(v)
	}
	switch name {
	case "payload":
		dreg := num(unix.NFTA_PAYLOAD_DREG)
		base := named(unix.NFTA_PAYLOAD_BASE, map[uint32]string{0: "link", 1: "network", 2: "transport", 3: "inner"})
		off, l := num(unix.NFTA_PAYLOAD_OFFSET), num(unix.NFTA_PAYLOAD_LEN)
		return fmt.Sprintf("[ payload load %sb @ %s header + %s => reg %s ]", l, base, off, dreg)
	case "cmp":
		r := num(unix.NFTA_CMP_SREG)
		op := named(unix.NFTA_CMP_OP, map[uint32]string{0: "eq", 1: "neq", 2: "lt", 3: "lte", 4: "gt", 5: "gte"})
		d, _ := x.value(unix.NFTA_CMP_DATA)
		return fmt.Sprintf("[ cmp %s reg %s %s]", op, r, hexWords(d))
	case "meta":
		key := named(unix.NFTA_META_KEY, map[uint32]string{unix.NFT_META_LEN: "len", unix.NFT_META_PROTOCOL: "protocol",
			unix.NFT_META_MARK: "mark", unix.NFT_META_IIF: "iif", unix.NFT_META_OIF: "oif",
			unix.NFT_META_IIFNAME: "iifname", unix.NFT_META_OIFNAME: "oifname",
			unix.NFT_META_NFPROTO: "nfproto", unix.NFT_META_L4PROTO: "l4proto"})
		return fmt.Sprintf("[ meta load %s => reg %s ]", key, num(unix.NFTA_META_DREG))
	case "lookup":
		s := "[ lookup reg " + num(unix.NFTA_LOOKUP_SREG)
		set, _ := x.take(unix.NFTA_LOOKUP_SET)
		s += " set " + cstr(set)
		if d, ok := x.u32(unix.NFTA_LOOKUP_DREG); ok {
			s += fmt.Sprintf(" dreg %d", d)
		}
		if f, ok := x.u32(unix.NFTA_LOOKUP_FLAGS); ok {
			s += fmt.Sprintf(" 0x%x", f)
		}
		s += " ]"
		// libnftnl does not print the set ID; it is checked here against
		// the ID the set was declared with.
		if id, ok := x.u32(unix.NFTA_LOOKUP_SET_ID); ok {
			s += " + id " + p.setID(id)
		}
		return s
	case "immediate":
		r := num(unix.NFTA_IMMEDIATE_DREG)
		if d, ok := x.value(unix.NFTA_IMMEDIATE_DATA); ok {
			return fmt.Sprintf("[ immediate reg %s %s]", r, hexWords(d))
		}
		for i, a := range x.attrs {
			if a.typ != unix.NFTA_IMMEDIATE_DATA || x.taken[i] || !a.nested {
				continue
			}
			in, err := parseAttrs(a.data)
			if err != nil || len(in) != 1 || in[0].typ != unix.NFTA_DATA_VERDICT || !in[0].nested {
				continue
			}
			v, err := parseAttrs(in[0].data)
			if err != nil || len(v) != 1 || v[0].typ != unix.NFTA_VERDICT_CODE || len(v[0].data) != 4 {
				continue
			}
			x.taken[i] = true
			return fmt.Sprintf("[ immediate reg %s %s ]", r, verdictName(int32(binary.BigEndian.Uint32(v[0].data))))
		}
		return fmt.Sprintf("[ immediate reg %s ]", r)
	case "nat":
		t := named(unix.NFTA_NAT_TYPE, map[uint32]string{unix.NFT_NAT_SNAT: "snat", unix.NFT_NAT_DNAT: "dnat"})
		f, ok := x.u32(unix.NFTA_NAT_FAMILY)
		fam := "?"
		if ok {
			fam = famName(byte(f))
		}
		s := "[ nat " + t + " " + fam
		for _, r := range []struct {
			typ  uint16
			name string
		}{{unix.NFTA_NAT_REG_ADDR_MIN, "addr_min"}, {unix.NFTA_NAT_REG_ADDR_MAX, "addr_max"},
			{unix.NFTA_NAT_REG_PROTO_MIN, "proto_min"}, {unix.NFTA_NAT_REG_PROTO_MAX, "proto_max"}} {
			if v, ok := x.u32(r.typ); ok {
				s += fmt.Sprintf(" %s reg %d", r.name, v)
			}
		}
		if v, ok := x.u32(unix.NFTA_NAT_FLAGS); ok {
			s += fmt.Sprintf(" flags 0x%x", v)
		}
		return s + " ]"
	case "masq":
		s := "[ masq"
		if v, ok := x.u32(unix.NFTA_MASQ_FLAGS); ok {
			s += fmt.Sprintf(" flags 0x%x", v)
		}
		return s + " ]"
	case "fib":
		r := num(unix.NFTA_FIB_DREG)
		fs := "?"
		if f, ok := x.u32(unix.NFTA_FIB_FLAGS); ok {
			var names []string
			for i, n := range []string{"saddr", "daddr", "mark", "iif", "oif", "present"} {
				if f&(1<<i) != 0 {
					names = append(names, n)
				}
			}
			fs = strings.Join(names, " . ")
		}
		res := named(unix.NFTA_FIB_RESULT, map[uint32]string{unix.NFT_FIB_RESULT_OIF: "oif", unix.NFT_FIB_RESULT_OIFNAME: "oifname", unix.NFT_FIB_RESULT_ADDRTYPE: "type"})
		return fmt.Sprintf("[ fib %s %s => reg %s ]", fs, res, r)
	case "ct":
		key := named(unix.NFTA_CT_KEY, map[uint32]string{unix.NFT_CT_STATE: "state", unix.NFT_CT_DIRECTION: "direction",
			unix.NFT_CT_STATUS: "status", unix.NFT_CT_MARK: "mark"})
		return fmt.Sprintf("[ ct load %s => reg %s ]", key, num(unix.NFTA_CT_DREG))
	case "bitwise":
		src, dst, l := num(unix.NFTA_BITWISE_SREG), num(unix.NFTA_BITWISE_DREG), num(unix.NFTA_BITWISE_LEN)
		mask, _ := x.value(unix.NFTA_BITWISE_MASK)
		xor, _ := x.value(unix.NFTA_BITWISE_XOR)
		// libnftnl does not print the length.
		return fmt.Sprintf("[ bitwise reg %s = ( reg %s & %s) ^ %s] + len %s", dst, src, hexWords(mask), hexWords(xor), l)
	}
	return "[ " + name + " ]"
}

// words are b as libnftnl prints data: 32-bit words read little-endian.
func words(b []byte) []string {
	var out []string
	for i := 0; i < len(b); i += 4 {
		var w [4]byte
		copy(w[:], b[i:])
		out = append(out, fmt.Sprintf("%08x", binary.LittleEndian.Uint32(w[:])))
	}
	return out
}

func hexWords(b []byte) string {
	var s string
	for _, w := range words(b) {
		s += "0x" + w + " "
	}
	return s
}

func cstr(b []byte) string { return string(bytes.TrimSuffix(b, []byte{0})) }

func famName(f byte) string {
	if n, ok := familyNames[f]; ok {
		return n
	}
	return fmt.Sprintf("family(%d)", f)
}

// flagNames are the header flags; their upper bits mean one thing on a
// GET, another on the rest.
func flagNames(f netlink.HeaderFlags, get bool) string {
	names := []string{"request", "multi", "ack", "echo", "dump_intr", "dump_filtered"}
	upper := []string{"replace", "excl", "create", "append"}
	if get {
		upper = []string{"root", "match", "atomic"}
	}
	var out []string
	for i, n := range names {
		if f&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	for i, n := range upper {
		if f&(0x100<<i) != 0 {
			out = append(out, n)
		}
	}
	if rest := f &^ (1<<len(names) - 1) &^ (0x100<<len(upper) - 0x100); rest != 0 {
		out = append(out, fmt.Sprintf("%#x", uint16(rest)))
	}
	if len(out) == 0 {
		return "0"
	}
	return strings.Join(out, "|")
}

func bitNames(v uint32, names []string) string {
	var out []string
	for i, n := range names {
		if v&(1<<i) != 0 {
			out = append(out, n)
			v &^= 1 << i
		}
	}
	if v != 0 {
		out = append(out, fmt.Sprintf("%#x", v))
	}
	if len(out) == 0 {
		return "0"
	}
	return strings.Join(out, "|")
}

// datatype names nft's datatypes; a concatenation is 6 bits a type, the
// first type highest.
func datatype(t uint32) string {
	names := map[uint32]string{7: "ipv4_addr", 8: "ipv6_addr", 12: "inet_proto", 13: "inet_service", 41: "ifname"}
	var parts []string
	for v := t; v != 0; v >>= 6 {
		n, ok := names[v&0x3f]
		if !ok {
			n = fmt.Sprint(v & 0x3f)
		}
		parts = append([]string{n}, parts...)
	}
	return fmt.Sprintf("%s (%#x)", strings.Join(parts, " . "), t)
}

func hookName(fam byte, h uint32) string {
	names := []string{"prerouting", "input", "forward", "output", "postrouting", "ingress"}
	switch fam {
	case unix.NFPROTO_ARP:
		names = []string{"input", "output", "forward"}
	case unix.NFPROTO_NETDEV:
		names = []string{"ingress", "egress"}
	}
	if int(h) < len(names) {
		return names[h]
	}
	return fmt.Sprint(h)
}

func verdictName(v int32) string {
	names := map[int32]string{0: "drop", 1: "accept", -1: "continue", -2: "break", -3: "jump", -4: "goto", -5: "return"}
	if n, ok := names[v]; ok {
		return n
	}
	return fmt.Sprint(v)
}

// userdata is libnftnl's user data: a byte of type, a byte of length, the
// value (integers in host order).
func userdata(b []byte) string {
	names := []string{"keybyteorder", "databyteorder", "merge_elements", "key_typeof", "data_typeof", "expr", "data_interval", "comment"}
	var out []string
	for len(b) > 0 {
		if len(b) < 2 || int(b[1]) > len(b)-2 {
			return strings.Join(append(out, fmt.Sprintf("malformed 0x%x", b)), " ")
		}
		t, v := b[0], b[2:2+int(b[1])]
		n := fmt.Sprintf("udata#%d", t)
		if int(t) < len(names) {
			n = names[t]
		}
		if len(v) == 4 {
			out = append(out, fmt.Sprintf("%s=%d", n, binary.LittleEndian.Uint32(v)))
		} else {
			out = append(out, fmt.Sprintf("%s=0x%x", n, v))
		}
		b = b[2+int(b[1]):]
	}
	return strings.Join(out, " ")
}

// canonical puts the messages of a request in an order that does not
// depend on Go's map iteration, which the firewall's loops over sets
// follow: within a run of consecutive set declarations (each with its
// elements) or of element updates of one kind, by family and set name.
// Nothing else moves, so the order of tables, chains and rules, and of
// deletions before additions, is still what the firewall sent. With
// sortRules, consecutive rules of one chain are ordered by their bytes
// too (for RedirectDNS, whose two rules come from a map).
func canonical(msgs []netlink.Message, sortRules bool) []netlink.Message {
	type unit struct {
		kind string
		key  string
		msgs []netlink.Message
	}
	var units []unit
	for _, m := range msgs {
		kind, key := "", ""
		switch m.Header.Type {
		case nftType(unix.NFT_MSG_NEWSET):
			kind, key = "set", setKey(m, unix.NFTA_SET_NAME)
		case nftType(unix.NFT_MSG_NEWSETELEM):
			key = setKey(m, unix.NFTA_SET_ELEM_LIST_SET)
			if n := len(units); n > 0 && units[n-1].kind == "set" && units[n-1].key == key {
				units[n-1].msgs = append(units[n-1].msgs, m)
				continue
			}
			kind = "add"
		case nftType(unix.NFT_MSG_DELSETELEM):
			kind, key = "del", setKey(m, unix.NFTA_SET_ELEM_LIST_SET)
		case nftType(unix.NFT_MSG_NEWRULE):
			if sortRules {
				kind, key = "rule "+ruleChain(m), string(m.Data)
			}
		}
		units = append(units, unit{kind: kind, key: key, msgs: []netlink.Message{m}})
	}
	for i := 0; i < len(units); {
		j := i + 1
		for j < len(units) && units[i].kind != "" && units[j].kind == units[i].kind {
			j++
		}
		slices.SortStableFunc(units[i:j], func(a, b unit) int { return cmp.Compare(a.key, b.key) })
		i = j
	}
	var out []netlink.Message
	for _, u := range units {
		out = append(out, u.msgs...)
	}
	return out
}

// ruleChain is family, table and chain of a rule.
func ruleChain(m netlink.Message) string {
	attrs, _ := parseAttrs(m.Data[4:])
	s := famName(m.Data[0])
	for _, a := range attrs {
		if a.typ == unix.NFTA_RULE_TABLE || a.typ == unix.NFTA_RULE_CHAIN {
			s += " " + cstr(a.data)
		}
	}
	return s
}

// setKey is family and set name of a set message, for sorting.
func setKey(m netlink.Message, nameAttr uint16) string {
	attrs, _ := parseAttrs(m.Data[4:])
	for _, a := range attrs {
		if a.typ == nameAttr {
			return famName(m.Data[0]) + " " + cstr(a.data)
		}
	}
	return famName(m.Data[0])
}

// The golden files are only as strict as their rendering: what the
// printer does not know must show, not vanish.
func TestRenderingShowsWhatItDoesNotKnow(t *testing.T) {
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	attrs := nltest.MustMarshalAttributes
	expr := func(name string, data []netlink.Attribute) netlink.Attribute {
		return netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: attrs([]netlink.Attribute{
			{Type: unix.NFTA_EXPR_NAME, Data: []byte(name + "\x00")},
			{Type: unix.NLA_F_NESTED | unix.NFTA_EXPR_DATA, Data: attrs(data)},
		})}
	}
	msg := func(typ int, a []netlink.Attribute) netlink.Message {
		return netlink.Message{Header: netlink.Header{Type: nftType(typ), Flags: netlink.Request},
			Data: append([]byte{unix.NFPROTO_INET, 0, 0, 0}, attrs(a)...)}
	}
	rule := msg(unix.NFT_MSG_NEWRULE, []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: []byte("t\x00")},
		{Type: unix.NFTA_RULE_CHAIN, Data: []byte("c\x00")},
		{Type: unix.NLA_F_NESTED | unix.NFTA_RULE_EXPRESSIONS, Data: attrs([]netlink.Attribute{
			expr("cmp", []netlink.Attribute{
				{Type: unix.NFTA_CMP_SREG, Data: be32(1)},
				{Type: unix.NFTA_CMP_OP, Data: be32(unix.NFT_CMP_EQ)},
				{Type: unix.NLA_F_NESTED | unix.NFTA_CMP_DATA, Data: attrs([]netlink.Attribute{{Type: unix.NFTA_DATA_VALUE, Data: []byte{2}}})},
				{Type: 9, Data: []byte{0xab}},
			}),
			expr("meta", []netlink.Attribute{{Type: unix.NFTA_META_DREG, Data: be32(1)}}),
			expr("lookup", []netlink.Attribute{
				{Type: unix.NFTA_LOOKUP_SREG, Data: be32(1)},
				{Type: unix.NFTA_LOOKUP_SET, Data: []byte("s\x00")},
				{Type: unix.NFTA_LOOKUP_SET_ID, Data: be32(77)},
			}),
			expr("counter", nil),
		})},
		{Type: 42, Data: []byte{1, 2, 3, 4}},
	})
	chain := msg(unix.NFT_MSG_NEWCHAIN, []netlink.Attribute{
		{Type: unix.NFTA_CHAIN_HOOK, Data: attrs([]netlink.Attribute{
			{Type: unix.NFTA_HOOK_HOOKNUM, Data: be32(2)},
			{Type: unix.NFTA_HOOK_PRIORITY, Data: be32(0)},
		})},
		{Type: unix.NFTA_CHAIN_NAME, Data: []byte("no NUL")},
	})
	p := newPrinter()
	p.request([]netlink.Message{rule, chain})
	out := p.String()
	for _, want := range []string{
		"[ cmp eq reg 1 0x00000002 ] + attr#9 0xab",
		"[ meta load ? => reg 1 ]",
		"[ lookup reg 1 set s ] + id (an ID no set of these requests was given)",
		"[ counter ]",
		"attr#42 0x01020304",
		"hook(no-nested-flag) {hooknum forward priority 0}",
		`name (not NUL-terminated) "no NUL"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rendering lacks %q:\n%s", want, out)
		}
	}
}
