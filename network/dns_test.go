package network

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/ipam"
)

// ask queries a sandbox's resolver socket for name's A records.
func ask(t *testing.T, tb *testbed, sandbox, name string) []string {
	t.Helper()
	sb := tb.c.sandboxes[tb.c.sbNames[sandbox]]
	sb.mu.Lock()
	att := sb.resolver
	sb.mu.Unlock()
	if att == nil {
		t.Fatalf("%s has no resolver", sandbox)
	}
	tb.kernel.mu.Lock()
	server := tb.kernel.resolvers[sb.ns]
	tb.kernel.mu.Unlock()
	if server.Addr() != firewall.ResolverAddr || !slices.Contains(tb.fw.redirects, server.Port()) {
		t.Fatalf("%s's resolver listens on %s, redirects go to %v", sandbox, server, tb.fw.redirects)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	cl := &dns.Client{Timeout: 2 * time.Second}
	in, _, err := cl.Exchange(m, server.String())
	if err != nil {
		t.Fatalf("ask %s for %s: %v", sandbox, name, err)
	}
	var out []string
	for _, rr := range in.Answer {
		if a, ok := rr.(*dns.A); ok {
			out = append(out, a.A.String())
		}
	}
	return out
}

func container(name string, nets ...string) SandboxOptions {
	opts := SandboxOptions{Name: name, DNS: &DNSConfig{Hostname: name, Resolver: true}}
	for _, n := range nets {
		opts.Networks = append(opts.Networks, Attachment{Network: n})
	}
	return opts
}

func TestSandboxesFindEachOtherByNameOnTheirNetworks(t *testing.T) {
	tb := newTestbed(t)
	tb.network("front", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.1.0.0/24")}}})
	tb.network("back", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.2.0.0/24")}}})
	web := container("web", "front")
	web.Networks[0].Endpoint.Aliases = []string{"www"}
	web.DNS.Hostname = "webhost"
	for _, opts := range []SandboxOptions{web, container("db", "back"), container("client", "front")} {
		if _, err := tb.c.CreateSandbox(opts); err != nil {
			t.Fatal(err)
		}
	}
	if got := ask(t, tb, "client", "web"); strings.Join(got, ",") != "10.1.0.2" {
		t.Errorf("web from client: %v", got)
	}
	if got := ask(t, tb, "client", "www"); strings.Join(got, ",") != "10.1.0.2" {
		t.Errorf("web's alias from client: %v", got)
	}
	if got := ask(t, tb, "client", "webhost"); strings.Join(got, ",") != "10.1.0.2" {
		t.Errorf("web's hostname from client: %v", got)
	}
	if got := ask(t, tb, "client", "db"); len(got) != 0 {
		t.Errorf("client resolved db, which is on another network: %v", got)
	}
	// Connecting brings the other network's names; disconnecting takes
	// them, and the sandbox's own, away.
	tb.connect("client", "back", EndpointOptions{})
	if got := ask(t, tb, "client", "db"); strings.Join(got, ",") != "10.2.0.2" {
		t.Errorf("db after client joined back: %v", got)
	}
	if got := ask(t, tb, "db", "client"); strings.Join(got, ",") != "10.2.0.3" {
		t.Errorf("client from db after the join: %v", got)
	}
	if _, err := tb.c.Disconnect("client", "back", nil); err != nil {
		t.Fatal(err)
	}
	if got := ask(t, tb, "client", "db"); len(got) != 0 {
		t.Errorf("db after client left back: %v", got)
	}
	if got := ask(t, tb, "db", "client"); len(got) != 0 {
		t.Errorf("client from db after it left: %v", got)
	}
	// A restart serves again, from the store.
	tb.restart()
	if got := ask(t, tb, "client", "web"); strings.Join(got, ",") != "10.1.0.2" {
		t.Errorf("web from client after a restart: %v", got)
	}
	// Removing the sandbox withdraws its names.
	if err := tb.c.DeleteSandbox("web", false); err != nil {
		t.Fatal(err)
	}
	if got := ask(t, tb, "client", "web"); len(got) != 0 {
		t.Errorf("web after it was removed: %v", got)
	}
}

func TestScopeOfASandbox(t *testing.T) {
	tb := newTestbed(t)
	tb.network("inner", CreateOptions{Internal: true})
	tb.network("outer", CreateOptions{})
	opts := container("c", "inner")
	opts.DNS.Links = map[string]string{"db": "database"}
	opts.DNS.Servers = []netip.Addr{netip.MustParseAddr("192.0.2.99")}
	if _, err := tb.c.CreateSandbox(opts); err != nil {
		t.Fatal(err)
	}
	sb := tb.c.sandboxes[tb.c.sbNames["c"]]
	s := tb.c.scope(sb)
	if !s.NoForward || len(s.Networks) != 1 || s.Links["db"] != "database" || s.Upstreams[0] != netip.MustParseAddrPort("192.0.2.99:53") {
		t.Errorf("scope on an internal network %+v", s)
	}
	tb.connect("c", "outer", EndpointOptions{})
	tb.connect("c", NameBridge, EndpointOptions{})
	s = tb.c.scope(sb)
	if s.NoForward || len(s.Networks) != 2 {
		t.Errorf("scope with a way out %+v: forwards, and sees its two user-defined networks", s)
	}
	plain := container("p", "outer")
	if _, err := tb.c.CreateSandbox(plain); err != nil {
		t.Fatal(err)
	}
	if s := tb.c.scope(tb.c.sandboxes[tb.c.sbNames["p"]]); s.Upstreams[0] != tb.upstream {
		t.Errorf("without --dns the daemon's upstreams: %+v", s.Upstreams)
	}
}

func TestHostsAndResolvConf(t *testing.T) {
	tb := newTestbed(t)
	tb.network("app", CreateOptions{IPAM: []ipam.Config{{Subnet: netip.MustParsePrefix("10.1.0.0/24")}}})
	opts := container("web", "app")
	opts.DNS.Domainname = "example.test"
	opts.DNS.ExtraHosts = []string{"gw:10.0.0.1", "broken"}
	opts.DNS.LinkHosts = []string{"10.1.0.9\tdb dbhost db"}
	opts.DNS.Search = []string{"inner.test"}
	sb, err := tb.c.CreateSandbox(opts)
	if err != nil {
		t.Fatal(err)
	}
	wantHosts := hostsHeader + "10.0.0.1\tgw\n10.1.0.9\tdb dbhost db\n10.1.0.2\tweb.example.test web\n"
	if sb.Files == nil || sb.Files.Hosts != wantHosts {
		t.Fatalf("hosts:\n%s\nwant:\n%s", sb.Files.Hosts, wantHosts)
	}
	if want := "search inner.test\nnameserver 127.0.0.11\noptions ndots:0\n"; sb.Files.ResolvConf != want {
		t.Errorf("resolv.conf with the resolver:\n%s\nwant:\n%s", sb.Files.ResolvConf, want)
	}
	_, files, err := tb.c.Connect("web", NameBridge, EndpointOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(files.Hosts, "10.1.0.2\tweb.example.test web\n172.17.0.2\tweb.example.test web\n") {
		t.Errorf("hosts after a connect:\n%s", files.Hosts)
	}
	files, err = tb.c.Disconnect("web", "app", nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(files.Hosts, "10.1.0.2") {
		t.Errorf("hosts after a disconnect still has the address:\n%s", files.Hosts)
	}

	cases := []struct {
		name string
		cfg  DNSConfig
		want string
	}{
		{"host's servers without loopback ones", DNSConfig{}, "search example.test\nnameserver 192.0.2.1\noptions edns0 trust-ad\n"},
		{"--dns, --dns-search, --dns-option", DNSConfig{Servers: []netip.Addr{netip.MustParseAddr("9.9.9.9")}, Search: []string{"a.test"}, Options: []string{"ndots:2"}},
			"search a.test\nnameserver 9.9.9.9\noptions ndots:2\n"},
		{"resolver keeps ndots the user set", DNSConfig{Resolver: true, Options: []string{"ndots:3"}}, "search example.test\nnameserver 127.0.0.11\noptions ndots:3\n"},
	}
	for _, tc := range cases {
		if got := tb.c.ResolvConf(&tc.cfg); got != tc.want {
			t.Errorf("%s:\n%s\nwant:\n%s", tc.name, got, tc.want)
		}
	}
	if got := NewHostResolvConf("testdata/resolv.conf").Upstreams(); len(got) != 2 || got[0] != netip.MustParseAddrPort("127.0.0.53:53") {
		t.Errorf("host upstreams %v: loopback ones included", got)
	}
	if got := NewHostResolvConf("testdata/missing").Upstreams(); len(got) != 0 {
		t.Errorf("upstreams of a missing file: %v", got)
	}
}

func TestTheHostsResolvConfIsReadAgainWhenItChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	h := NewHostResolvConf(path)
	if got := h.Upstreams(); len(got) != 0 {
		t.Fatalf("upstreams of a missing file: %v", got)
	}
	for _, server := range []string{"192.0.2.1", "192.0.2.22"} {
		if err := os.WriteFile(path+".new", []byte("nameserver "+server+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// Replaced as resolvconf and NetworkManager do: a new inode.
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
		if got := h.Upstreams(); len(got) != 1 || got[0].Addr().String() != server {
			t.Errorf("after writing %s: %v", server, got)
		}
	}
}

func TestBareSandboxesHaveNoNamesOrFiles(t *testing.T) {
	tb := newTestbed(t)
	tb.network("app", CreateOptions{})
	tb.sandbox("bare")
	ep := tb.connect("bare", "app", EndpointOptions{})
	if _, files, _ := tb.c.Connect("bare", NameBridge, EndpointOptions{}); files != nil {
		t.Error("a bare sandbox got files")
	}
	if sb, _ := tb.c.InspectSandbox("bare"); sb.Files != nil || tb.c.sandboxes[sb.ID].resolver != nil {
		t.Error("a bare sandbox has files or a resolver")
	}
	opts := container("client", "app")
	if _, err := tb.c.CreateSandbox(opts); err != nil {
		t.Fatal(err)
	}
	if got := ask(t, tb, "client", "bare"); len(got) != 0 {
		t.Errorf("a bare sandbox's name resolves: %v (at %s)", got, ep.IPv4)
	}
}

func TestAFailedRedirectLeavesNoSockets(t *testing.T) {
	tb := newTestbed(t)
	tb.network("app", CreateOptions{})
	tb.fw.fail = errInjected
	if _, err := tb.c.CreateSandbox(container("c", "app")); err == nil {
		t.Fatal("a sandbox whose DNS redirect failed was made")
	}
	tb.fw.fail = nil
	if tb.records(bucketSandboxes) != 0 {
		t.Error("the sandbox stays")
	}
}
