package firewall

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The encodings below are what nft itself sends for the same elements
// (nft --debug=netlink add element inet t ports4 { udp . 53 : 172.17.0.3 . 53 }).
func TestBindingElementsMatchNftsEncoding(t *testing.T) {
	el, ok := bindingElement(Binding{Proto: "udp", HostPort: 53, IP: netip.MustParseAddr("172.17.0.3"), Port: 53})
	if !ok {
		t.Fatal("udp refused")
	}
	if want := []byte{0x11, 0, 0, 0, 0x00, 0x35, 0, 0}; !bytes.Equal(el.Key, want) {
		t.Errorf("key = % x, want % x", el.Key, want)
	}
	if want := []byte{172, 17, 0, 3, 0x00, 0x35, 0, 0}; !bytes.Equal(el.Val, want) {
		t.Errorf("value = % x, want % x", el.Val, want)
	}
	el, _ = bindingElement(Binding{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, IP: netip.MustParseAddr("172.17.0.2"), Port: 80})
	if want := []byte{127, 0, 0, 1, 6, 0, 0, 0, 0x1f, 0x90, 0, 0}; !bytes.Equal(el.Key, want) {
		t.Errorf("host-address key = % x, want % x", el.Key, want)
	}
	if _, ok := bindingElement(Binding{Proto: "icmp"}); ok {
		t.Error("icmp accepted as a port protocol")
	}
}

func TestElementsOfAState(t *testing.T) {
	e := elements{}
	e.addNetwork(Network{Bridge: "br-a", Masquerade: true})
	e.addNetwork(Network{Bridge: "br-int", Internal: true, Masquerade: true})
	e.addNetwork(Network{Bridge: "br-iso", Isolated: true, Ports: []string{"veth1", "veth2"}})
	if err := e.addBinding(Binding{Proto: "tcp", HostPort: 80, IP: netip.MustParseAddr("fd00::2"), Port: 80}); err != nil {
		t.Fatal(err)
	}
	for set, want := range map[string]int{setBridges: 3, setInternal: 1, setMasquerade4: 1, setMasquerade6: 1, setIsolated: 2, mapPorts6: 1, mapPorts4: 0} {
		if got := len(e[set]); got != want {
			t.Errorf("%s has %d elements, want %d", set, got, want)
		}
	}
	if got := string(bytes.TrimRight(e[setMasquerade4][0].Key, "\x00")); got != "br-a" {
		t.Errorf("masquerade holds %q; internal networks are never masqueraded", got)
	}
}

// types are the nftables message types of a request, batch markers left
// out.
func types(req []netlink.Message) []string {
	var out []string
	for _, m := range req {
		if m.Header.Type == unix.NFNL_MSG_BATCH_BEGIN || m.Header.Type == unix.NFNL_MSG_BATCH_END {
			continue
		}
		out = append(out, msgNames[m.Header.Type&0xff])
	}
	return out
}

func TestEveryChangeIsOneBatchOfAcknowledgedMessages(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(*Firewall) error
	}{
		{"Rebuild", rebuildState},
		{"Apply", func(f *Firewall) error { return f.Apply(arrival) }},
		{"RedirectDNS", func(f *Firewall) error { return f.RedirectDNS(3, 40000, 40001) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel(t)
			if err := tc.run(k.newFirewall()); err != nil {
				t.Fatal(err)
			}
			sent := k.sent()
			if len(sent) != 1 {
				t.Fatalf("%d requests, want one batch", len(sent))
			}
			req := sent[0]
			if req[0].Header.Type != unix.NFNL_MSG_BATCH_BEGIN || req[len(req)-1].Header.Type != unix.NFNL_MSG_BATCH_END {
				t.Fatalf("request is not a batch: %v ... %v", req[0].Header, req[len(req)-1].Header)
			}
			for _, m := range req[1 : len(req)-1] {
				if m.Header.Type>>8 != unix.NFNL_SUBSYS_NFTABLES || m.Header.Flags&netlink.Acknowledge == 0 {
					t.Errorf("message %v in the batch is not an acknowledged nftables message", m.Header)
				}
			}
		})
	}
}

func TestRebuildReplacesBothTablesBeforeDeclaringAnything(t *testing.T) {
	k := newFakeKernel(t)
	if err := rebuildState(k.newFirewall()); err != nil {
		t.Fatal(err)
	}
	got := types(k.sent()[0])
	want := []string{"NEWTABLE", "DELTABLE", "NEWTABLE", "NEWTABLE", "DELTABLE", "NEWTABLE"}
	if !slices.Equal(got[:6], want) {
		t.Errorf("batch starts %v, want %v", got[:6], want)
	}
	if n := strings.Count(strings.Join(got, " "), "TABLE"); n != 6 {
		t.Errorf("%d table messages, want 6", n)
	}
}

func TestApplyOnlyUpdatesElementsDeletionsFirst(t *testing.T) {
	k := newFakeKernel(t)
	f := k.newFirewall()
	if err := rebuildState(f); err != nil {
		t.Fatal(err)
	}
	k.forget()
	if err := f.Apply(Change{AddNetworks: arrival.AddNetworks, Publish: arrival.Publish, Unpublish: stateBindings[:2], Unisolate: []string{"veth1a2b3c"}}); err != nil {
		t.Fatal(err)
	}
	got := types(k.sent()[0])
	last := strings.LastIndex(strings.Join(got, " "), "DELSETELEM")
	first := strings.Index(strings.Join(got, " "), "NEWSETELEM")
	if last < 0 || first < 0 || last > first {
		t.Errorf("messages %v: want element deletions, then additions", got)
	}
	for _, ty := range got {
		if ty != "DELSETELEM" && ty != "NEWSETELEM" {
			t.Errorf("Apply sent %s; a change only updates elements", ty)
		}
	}
}

func TestApplyOfNoChangeSendsNothing(t *testing.T) {
	k := newFakeKernel(t)
	if err := k.newFirewall().Apply(Change{}); err != nil {
		t.Fatal(err)
	}
	if n := len(k.sent()); n != 0 {
		t.Errorf("%d requests for an empty change", n)
	}
}

func TestUnknownProtocolIsRefusedBeforeAnythingIsSent(t *testing.T) {
	icmp := Binding{Proto: "icmp", HostPort: 1, IP: ip("172.18.0.2"), Port: 1}
	for _, tc := range []struct {
		name string
		run  func(*Firewall) error
	}{
		{"Rebuild", func(f *Firewall) error { return f.Rebuild(stateNetworks, append(stateBindings[:1:1], icmp), nil) }},
		{"Apply publishing", func(f *Firewall) error {
			return f.Apply(Change{AddNetworks: arrival.AddNetworks, Publish: []Binding{icmp}})
		}},
		{"Apply unpublishing", func(f *Firewall) error {
			return f.Apply(Change{RemoveNetworks: arrival.AddNetworks, Unpublish: []Binding{icmp}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel(t)
			f := k.newFirewall()
			err := tc.run(f)
			if err == nil || !strings.Contains(err.Error(), `unknown protocol "icmp"`) {
				t.Fatalf("err = %v, want an unknown protocol", err)
			}
			if n := len(k.sent()); n != 0 {
				t.Fatalf("%d requests sent for a refused change", n)
			}
			// Nothing of the refused change is left queued for the next.
			if err := f.Apply(Change{Isolate: []string{"veth7a8b9c"}}); err != nil {
				t.Fatal(err)
			}
			if got := types(k.sent()[0]); !slices.Equal(got, []string{"NEWSETELEM"}) {
				t.Errorf("next change sent %v, want its one NEWSETELEM", got)
			}
		})
	}
}

func TestKernelsRefusalIsReportedAndNothingOfItIsSentAgain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		refuse int // message type refused
		errno  syscall.Errno
		run    func(*Firewall) error
		says   string
	}{
		// A kernel without nat support refuses the nat chains.
		{"Rebuild", unix.NFT_MSG_NEWCHAIN, unix.EOPNOTSUPP, rebuildState, "write the firewall"},
		// Deleting an element that is not there fails the whole change.
		{"Apply", unix.NFT_MSG_DELSETELEM, unix.ENOENT, func(f *Firewall) error { return f.Apply(departure) }, "update the firewall"},
		{"RedirectDNS", unix.NFT_MSG_NEWRULE, unix.ENOENT, func(f *Firewall) error { return f.RedirectDNS(3, 40000, 40001) }, "redirect DNS in the container"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel(t)
			f := k.newFirewall()
			k.refuse = func(m netlink.Message) syscall.Errno {
				if m.Header.Type == nftType(tc.refuse) {
					return tc.errno
				}
				return 0
			}
			err := tc.run(f)
			if !errors.Is(err, tc.errno) || !strings.HasPrefix(err.Error(), tc.says+": ") {
				t.Fatalf("err = %v, want %q and %v", err, tc.says, tc.errno)
			}
			k.refuse = nil
			k.forget()
			if err := f.Apply(Change{Isolate: []string{"veth7a8b9c"}}); err != nil {
				t.Fatal(err)
			}
			if got := types(k.sent()[0]); !slices.Equal(got, []string{"NEWSETELEM"}) {
				t.Errorf("next change sent %v, want its one NEWSETELEM", got)
			}
		})
	}
}

func TestWithoutCapNetAdminEveryOperationSaysPermissionDenied(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(*Firewall) error
	}{
		{"Rebuild", rebuildState},
		{"Apply", func(f *Firewall) error { return f.Apply(arrival) }},
		{"RedirectDNS", func(f *Firewall) error { return f.RedirectDNS(3, 40000, 40001) }},
		{"ForwardDrops", func(f *Firewall) error { _, err := f.ForwardDrops(); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel(t)
			k.refuseAll = unix.EPERM
			if err := tc.run(k.newFirewall()); !errors.Is(err, os.ErrPermission) {
				t.Errorf("err = %v, want permission denied", err)
			}
		})
	}
}

func TestForwardDropsNamesOtherTablesForwardChainsThatDropByPolicy(t *testing.T) {
	fwd, in := nftables.ChainHookForward, nftables.ChainHookInput
	drop, accept := nftables.ChainPolicyDrop, nftables.ChainPolicyAccept
	for _, tc := range []struct {
		name  string
		chain netlink.Message
		want  []string
	}{
		{"iptables' FORWARD with policy DROP", chainMsg(nftables.TableFamilyIPv4, "filter", "FORWARD", fwd, drop), []string{"ip filter FORWARD"}},
		{"ip6tables' FORWARD with policy DROP", chainMsg(nftables.TableFamilyIPv6, "filter", "FORWARD", fwd, drop), []string{"ip6 filter FORWARD"}},
		{"an inet forward chain dropping", chainMsg(nftables.TableFamilyINet, "firewalld", "filter_FORWARD", fwd, drop), []string{"inet firewalld filter_FORWARD"}},
		{"a forward chain accepting", chainMsg(nftables.TableFamilyIPv4, "filter", "FORWARD", fwd, accept), nil},
		{"an input chain dropping", chainMsg(nftables.TableFamilyIPv4, "filter", "INPUT", in, drop), nil},
		{"a regular chain", chainMsg(nftables.TableFamilyIPv4, "filter", "DOCKER-USER", nil, 0), nil},
		// Frames within a bridge are not routed packets.
		{"a bridge forward chain dropping", chainMsg(nftables.TableFamilyBridge, "filter", "forward", fwd, drop), nil},
		{"berth's own inet forward chain", chainMsg(nftables.TableFamilyINet, "berth", "forward", fwd, drop), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel(t)
			f := k.newFirewall()
			k.chains = []netlink.Message{tc.chain}
			got, err := f.ForwardDrops()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ForwardDrops() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestForwardDropsOfAWholeRuleset(t *testing.T) {
	fwd, drop, accept := nftables.ChainHookForward, nftables.ChainPolicyDrop, nftables.ChainPolicyAccept
	k := newFakeKernel(t)
	f := k.newFirewall()
	k.chains = []netlink.Message{
		chainMsg(nftables.TableFamilyINet, "berth", "forward", fwd, accept),
		chainMsg(nftables.TableFamilyIPv4, "filter", "FORWARD", fwd, drop),
		chainMsg(nftables.TableFamilyIPv4, "filter", "DOCKER-USER", nil, 0),
		chainMsg(nftables.TableFamilyBridge, "berth", "forward", fwd, accept),
		chainMsg(nftables.TableFamilyIPv6, "filter", "FORWARD", fwd, drop),
	}
	got, err := f.ForwardDrops()
	if want := []string{"ip filter FORWARD", "ip6 filter FORWARD"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("ForwardDrops() = %q, %v; want %q", got, err, want)
	}
	k.chains = nil
	if got, err := f.ForwardDrops(); err != nil || len(got) != 0 {
		t.Errorf("ForwardDrops() of no chains = %q, %v", got, err)
	}
}

func TestOneLastingConnectionAndAFreshOneForEachDNSRedirect(t *testing.T) {
	k := newFakeKernel(t)
	f := k.newFirewall()
	steps := []struct {
		name  string
		run   func() error
		dials int
	}{
		{"Rebuild", func() error { return rebuildState(f) }, 1},
		{"Apply", func() error { return f.Apply(arrival) }, 1},
		{"ForwardDrops", func() error { _, err := f.ForwardDrops(); return err }, 1},
		{"RedirectDNS", func() error { return f.RedirectDNS(3, 40000, 40001) }, 2},
		{"RedirectDNS again", func() error { return f.RedirectDNS(4, 40000, 40001) }, 3},
		{"Apply after", func() error { return f.Apply(departure) }, 3},
	}
	if n := k.dialCount(); n != 1 {
		t.Fatalf("New dialed %d times, want once", n)
	}
	for _, s := range steps {
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if n := k.dialCount(); n != s.dials {
			t.Errorf("after %s: %d dials, want %d", s.name, n, s.dials)
		}
	}
}

// A Rebuild's rules are echoed in more than one datagram before the acks
// come: the lasting connection must read them all, or the next request
// on it reads a stale reply (the fake kernel fails the test then).
func TestLastingConnectionReadsEveryReplyOfARebuild(t *testing.T) {
	k := newFakeKernel(t)
	f := k.newFirewall()
	for range 3 {
		if err := rebuildState(f); err != nil {
			t.Fatal(err)
		}
		if _, err := f.ForwardDrops(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNewReportsAConnectionThatCannotBeOpened(t *testing.T) {
	k := newFakeKernel(t)
	refused := errors.New("no netlink here")
	_, err := New("berth", append(k.options(), nftables.WithSockOptions(func(*netlink.Conn) error { return refused }))...)
	if !errors.Is(err, refused) || !strings.HasPrefix(err.Error(), "open nftables: ") {
		t.Errorf("err = %v, want it to say the connection could not be opened", err)
	}
}

func TestRedirectDNSReportsAConnectionThatCannotBeOpened(t *testing.T) {
	k := newFakeKernel(t)
	failing := false
	refused := errors.New("no such namespace")
	f, err := New("berth", append(k.options(), nftables.WithSockOptions(func(*netlink.Conn) error {
		if failing {
			return refused
		}
		return nil
	}))...)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	failing = true
	if err := f.RedirectDNS(3, 40000, 40001); !errors.Is(err, refused) || !strings.HasPrefix(err.Error(), "redirect DNS in the container: ") {
		t.Errorf("err = %v", err)
	}
}

func TestCloseTwiceIsFine(t *testing.T) {
	k := newFakeKernel(t)
	f, err := New("berth", k.options()...)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRoutedFamiliesAreNeitherMasqueradedNorTranslated(t *testing.T) {
	e := elements{}
	e.addNetwork(Network{Bridge: "br-r6", Masquerade: true, Routed6: true})
	e.addNetwork(Network{Bridge: "br-r46", Masquerade: true, Routed4: true, Routed6: true})
	e.addNetwork(Network{Bridge: "br-u4", Masquerade: true, Unprotected4: true})
	// Internal networks stay sealed whatever their gateway modes.
	e.addNetwork(Network{Bridge: "br-int", Internal: true, Routed4: true, Unprotected6: true})
	for _, b := range []Binding{
		{Proto: "tcp", IP: netip.MustParseAddr("2001:db8::2"), Port: 80, Routed: true},
		{Proto: "udp", IP: netip.MustParseAddr("10.1.0.2"), Port: 53, Routed: true},
	} {
		if err := e.addBinding(b); err != nil {
			t.Fatal(err)
		}
	}
	names := func(set string) []string {
		var out []string
		for _, el := range e[set] {
			out = append(out, string(bytes.TrimRight(el.Key, "\x00")))
		}
		return out
	}
	for set, want := range map[string][]string{
		setMasquerade4:  {"br-r6", "br-u4"},
		setMasquerade6:  {"br-u4"},
		setRouted4:      {"br-r46"},
		setRouted6:      {"br-r6", "br-r46"},
		setUnprotected4: {"br-u4"},
		setUnprotected6: nil,
	} {
		if got := names(set); !slices.Equal(got, want) {
			t.Errorf("%s holds %q, want %q", set, got, want)
		}
	}
	if len(e[setOpen6]) != 1 || len(e[setOpen4]) != 1 || len(e[mapPorts6])+len(e[mapPorts4])+len(e[mapHostPorts6])+len(e[mapHostPorts4]) != 0 {
		t.Errorf("routed bindings went to %d and %d open ports and %d translations", len(e[setOpen4]), len(e[setOpen6]),
			len(e[mapPorts6])+len(e[mapPorts4])+len(e[mapHostPorts6])+len(e[mapHostPorts4]))
	}
	if want := []byte{10, 1, 0, 2, 17, 0, 0, 0, 0, 53, 0, 0}; !bytes.Equal(e[setOpen4][0].Key, want) {
		t.Errorf("open4 key % x, want % x (address . proto . port, as nft encodes it)", e[setOpen4][0].Key, want)
	}
}
