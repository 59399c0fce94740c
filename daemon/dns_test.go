package daemon_test

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/internal/nettest"
)

func TestLegacyLinksOnTheDefaultBridge(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	src, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: "lsrc",
		Config: &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "100000"}, Env: []string{"FOO=bar", "SECRET_X=1"},
			ExposedPorts: network.PortSet{network.MustParsePort("5201/tcp"): {}, network.MustParsePort("53/udp"): {}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.ContainerStart(ctxT(t), src.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	cli := runContainer(t, d, spec{name: "lcli", cmd: []string{"sleep", "100000"}, hostConfig: &ctypes.HostConfig{Links: []string{"lsrc:db"}}})

	env, _, _ := execIn(t, d, cli, "env")
	lines := strings.Split(strings.TrimSpace(env), "\n")
	for _, want := range []string{
		"DB_NAME=/lcli/db", "DB_PORT=udp://172.17.0.2:53",
		"DB_PORT_5201_TCP=tcp://172.17.0.2:5201", "DB_PORT_5201_TCP_ADDR=172.17.0.2", "DB_PORT_5201_TCP_PORT=5201", "DB_PORT_5201_TCP_PROTO=tcp",
		"DB_PORT_53_UDP=udp://172.17.0.2:53", "DB_ENV_FOO=bar", "DB_ENV_SECRET_X=1",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("linking container's environment lacks %s:\n%s", want, env)
		}
	}
	if strings.Contains(env, "DB_ENV_PATH") {
		t.Errorf("the linked container's PATH leaked into the environment")
	}
	hosts, _, _ := execIn(t, d, cli, "cat", "/etc/hosts")
	if !strings.Contains(hosts, "172.17.0.2\tdb "+src.ID[:12]+" lsrc\n") {
		t.Errorf("/etc/hosts lacks the link:\n%s", hosts)
	}
	if _, _, code := execIn(t, d, cli, "ping", "-c1", "-W1", "db"); code != 0 {
		t.Errorf("ping db through the link failed")
	}

	// A link to a stopped container is refused at start, as Docker does.
	if _, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: "off", Config: &ctypes.Config{Image: "busybox", Cmd: []string{"true"}}}); err != nil {
		t.Fatal(err)
	}
	bad, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: "bad",
		Config: &ctypes.Config{Image: "busybox", Cmd: []string{"true"}}, HostConfig: &ctypes.HostConfig{Links: []string{"off:x"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.ContainerStart(ctxT(t), bad.ID, client.ContainerStartOptions{}); err == nil || !strings.Contains(err.Error(), "Cannot link to a non running container: /off AS /bad/x") {
		t.Errorf("link to a stopped container: %v", err)
	}
}

func TestAContainersHostnameResolvesOnItsNetworks(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	runContainer(t, d, spec{name: "named", network: "app", hostname: "db-primary", cmd: []string{"sleep", "100000"}})
	cli := runContainer(t, d, spec{name: "asker", network: "app", cmd: []string{"sleep", "100000"}})
	ns := netnsOf(t, d, cli)
	for _, name := range []string{"db-primary", "named"} {
		if got := strings.Join(answers(dnsAsk(t, ns, name, dns.TypeA)), ","); got != "172.18.0.2" {
			t.Errorf("%s resolves to %q, want 172.18.0.2", name, got)
		}
	}
	if out, _, code := execIn(t, d, cli, "ping", "-c1", "-W1", "db-primary"); code != 0 || !strings.Contains(out, "172.18.0.2") {
		t.Errorf("ping by hostname: exit %d\n%s", code, out)
	}
}

func TestResolvConfAndHostsFollowDocker(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	def := runContainer(t, d, spec{name: "rdef", cmd: []string{"sleep", "100000"}})
	usr := runContainer(t, d, spec{name: "rusr", network: "app", cmd: []string{"sleep", "100000"},
		hostConfig: &ctypes.HostConfig{DNSSearch: []string{"example.test"}, DNSOptions: []string{"ndots:2"}, ExtraHosts: []string{"extra.test:172.29.10.200"}}})
	if got, _, _ := execIn(t, d, usr, "cat", "/etc/resolv.conf"); got != "search example.test\nnameserver 127.0.0.11\noptions ndots:2\n" {
		t.Errorf("resolv.conf on a user-defined network:\n%s", got)
	}
	if got, _, _ := execIn(t, d, def, "cat", "/etc/resolv.conf"); strings.Contains(got, "127.0.0.11") || strings.Contains(got, "nameserver 127.") {
		t.Errorf("resolv.conf on the default bridge has a loopback nameserver:\n%s", got)
	}
	hosts, _, _ := execIn(t, d, usr, "cat", "/etc/hosts")
	if !strings.HasSuffix(hosts, "ff02::2\tip6-allrouters\n172.29.10.200\textra.test\n172.18.0.2\t"+usr[:12]+"\n") {
		t.Errorf("/etc/hosts with --add-host:\n%s", hosts)
	}
	// Aliases are for user-defined networks only.
	_, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: "al",
		Config:           &ctypes.Config{Image: "busybox", Cmd: []string{"true"}},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"bridge": {Aliases: []string{"x"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.ContainerStart(ctxT(t), "al", client.ContainerStartOptions{}); err == nil || !strings.Contains(err.Error(), "network-scoped aliases are only supported for user-defined networks") {
		t.Errorf("alias on the default bridge: %v", err)
	}
}

// dnsAsk queries 127.0.0.11 from inside a container's namespace.
func dnsAsk(t *testing.T, ns *nettest.Namespace, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	var resp *dns.Msg
	err := ns.Do(func() (err error) {
		c := &dns.Client{Timeout: 2 * time.Second}
		resp, _, err = c.Exchange(m, "127.0.0.11:53")
		return err
	})
	if err != nil {
		t.Fatalf("query %s from the container: %v", name, err)
	}
	return resp
}

// answers lists the addresses (or PTR targets) of an answer, sorted.
func answers(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		case *dns.PTR:
			out = append(out, v.Ptr)
		}
	}
	slices.Sort(out)
	return out
}

func withAliases(name, net string, aliases ...string) spec {
	return spec{name: name, network: net, cmd: []string{"sleep", "100000"}, aliases: aliases}
}

func TestContainersFindEachOtherByNameOnUserDefinedNetworks(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	create(t, d, "other", client.NetworkCreateOptions{})
	web := runContainer(t, d, withAliases("web", "app", "svc"))
	runContainer(t, d, withAliases("web2", "app", "svc"))
	runContainer(t, d, withAliases("hidden", "other"))
	cli := runContainer(t, d, withAliases("cli", "app"))
	ns := netnsOf(t, d, cli)

	for _, c := range []struct {
		name string
		want string
	}{
		{"web", "172.18.0.2"}, {"WEB", "172.18.0.2"}, {"web.app", "172.18.0.2"}, {web[:12], "172.18.0.2"},
		{"svc", "172.18.0.2,172.18.0.3"}, {"web2", "172.18.0.3"},
	} {
		if got := strings.Join(answers(dnsAsk(t, ns, c.name, dns.TypeA)), ","); got != c.want {
			t.Errorf("%s resolves to %q, want %q", c.name, got, c.want)
		}
	}
	if m := dnsAsk(t, ns, "hidden", dns.TypeA); len(m.Answer) != 0 {
		t.Errorf("a container on another network resolves: %v", m.Answer)
	}
	if m := dnsAsk(t, ns, "web", dns.TypeAAAA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 {
		t.Errorf("AAAA of an IPv4-only container: rcode %d, %v; want NOERROR and no answer", m.Rcode, m.Answer)
	}
	if got := answers(dnsAsk(t, ns, "2.0.18.172.in-addr.arpa", dns.TypePTR)); !slices.Equal(got, []string{"web.app."}) {
		t.Errorf("PTR of web's address: %v", got)
	}
	// Through the container's own resolver library, via /etc/resolv.conf.
	if out, _, code := execIn(t, d, cli, "ping", "-c1", "-W1", "web"); code != 0 || !strings.Contains(out, "172.18.0.2") {
		t.Errorf("ping web by name: exit %d\n%s", code, out)
	}

	// Network-scoped aliases follow connect and disconnect.
	if _, err := d.Client.NetworkConnect(ctxT(t), "other", client.NetworkConnectOptions{Container: "web", EndpointConfig: &network.EndpointSettings{Aliases: []string{"api"}}}); err != nil {
		t.Fatal(err)
	}
	hiddenNS := netnsOf(t, d, "hidden")
	if got := answers(dnsAsk(t, hiddenNS, "api", dns.TypeA)); !slices.Equal(got, []string{"172.19.0.3"}) {
		t.Errorf("the alias on other, from other: %v", got)
	}
	if got := answers(dnsAsk(t, hiddenNS, "web", dns.TypeA)); !slices.Equal(got, []string{"172.19.0.3"}) {
		t.Errorf("web from other answers %v, want its address on other", got)
	}
	if m := dnsAsk(t, ns, "api", dns.TypeA); len(m.Answer) != 0 {
		t.Errorf("the alias on other resolves on app: %v", m.Answer)
	}
	if _, err := d.Client.NetworkDisconnect(ctxT(t), "other", client.NetworkDisconnectOptions{Container: "web"}); err != nil {
		t.Fatal(err)
	}
	if m := dnsAsk(t, hiddenNS, "api", dns.TypeA); len(m.Answer) != 0 {
		t.Errorf("the alias still resolves after disconnect: %v", m.Answer)
	}
	if got := answers(dnsAsk(t, ns, "web", dns.TypeA)); !slices.Equal(got, []string{"172.18.0.2"}) {
		t.Errorf("web on app after its disconnect from other: %v", got)
	}

	// Gone the moment stop returns.
	zero := 0
	if _, err := d.Client.ContainerStop(ctxT(t), "web2", client.ContainerStopOptions{Timeout: &zero}); err != nil {
		t.Fatal(err)
	}
	if got := answers(dnsAsk(t, ns, "svc", dns.TypeA)); !slices.Equal(got, []string{"172.18.0.2"}) {
		t.Errorf("svc after web2 stopped: %v", got)
	}
	if m := dnsAsk(t, ns, "web2", dns.TypeA); len(m.Answer) != 0 {
		t.Errorf("a stopped container still resolves: %v", m.Answer)
	}
}

func TestNamesResolveTheMomentStartReturns(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	ns := netnsOf(t, d, runContainer(t, d, withAliases("asker", "app")))
	for i := range 100 {
		name := fmt.Sprintf("c%d", i)
		runContainer(t, d, withAliases(name, "app"))
		if m := dnsAsk(t, ns, name, dns.TypeA); len(m.Answer) != 1 {
			t.Fatalf("%s does not resolve right after its start returned: %v", name, m)
		}
	}
}

// dnsServer answers every A query for name with addr, inside ns.
func dnsServer(t *testing.T, ns *nettest.Namespace, listen, name, addr string) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp", listen); return err }); err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if q := r.Question[0]; q.Name == dns.Fqdn(name) && q.Qtype == dns.TypeA {
			rr, _ := dns.NewRR(fmt.Sprintf("%s 300 IN A %s", dns.Fqdn(name), addr))
			m.Answer = append(m.Answer, rr)
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
}

func TestOtherNamesAreForwardedPastADeadUpstreamQuickly(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	remote := h.AddRemote()
	dnsServer(t, remote.Namespace, "192.0.2.2:53", "example.test", "203.0.113.7")
	create(t, d, "app", client.NetworkCreateOptions{})
	cli := runContainer(t, d, spec{name: "cli", network: "app", cmd: []string{"sleep", "100000"},
		// 192.0.2.3 is on the link but nobody answers there.
		hostConfig: &ctypes.HostConfig{DNS: []netip.Addr{netip.MustParseAddr("192.0.2.3"), netip.MustParseAddr("192.0.2.2")}}})
	ns := netnsOf(t, d, cli)
	start := time.Now()
	got := answers(dnsAsk(t, ns, "example.test", dns.TypeA))
	if took := time.Since(start); took > 300*time.Millisecond {
		t.Errorf("first answer with a dead first upstream took %v, want under 300 ms", took)
	}
	if !slices.Equal(got, []string{"203.0.113.7"}) {
		t.Fatalf("forwarded answer: %v", got)
	}
	if m := dnsAsk(t, ns, "nothing.test", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Errorf("a name the upstream does not know: rcode %d, want NXDOMAIN", m.Rcode)
	}
	// The container may run a DNS server of its own on port 53.
	if err := ns.Do(func() error {
		pc, err := net.ListenPacket("udp", "0.0.0.0:53")
		if err == nil {
			pc.Close()
		}
		return err
	}); err != nil {
		t.Errorf("a container cannot bind its own port 53: %v", err)
	}

	// Internal networks: nothing is forwarded.
	create(t, d, "int", client.NetworkCreateOptions{Internal: true})
	in := netnsOf(t, d, runContainer(t, d, spec{name: "in", network: "int", cmd: []string{"sleep", "100000"},
		hostConfig: &ctypes.HostConfig{DNS: []netip.Addr{netip.MustParseAddr("192.0.2.2")}}}))
	if m := dnsAsk(t, in, "example.test", dns.TypeA); len(m.Answer) != 0 || m.Rcode == dns.RcodeSuccess {
		t.Errorf("a container on an internal network got an outside answer: %v", m)
	}
}

func TestResolverSurvivesADaemonCrashAndLinksOnUserNetworksAreAliases(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	runContainer(t, d, withAliases("db", "app"))
	cli := runContainer(t, d, spec{name: "cli", network: "app", cmd: []string{"sleep", "100000"}, hostConfig: &ctypes.HostConfig{Links: []string{"db:database"}}})
	other := runContainer(t, d, withAliases("other", "app"))
	if got := answers(dnsAsk(t, netnsOf(t, d, cli), "database", dns.TypeA)); !slices.Equal(got, []string{"172.18.0.2"}) {
		t.Errorf("a link on a user-defined network resolves to %v, want db's address", got)
	}
	if m := dnsAsk(t, netnsOf(t, d, other), "database", dns.TypeA); len(m.Answer) != 0 {
		t.Errorf("another container resolves cli's link alias: %v", m.Answer)
	}
	if env, _, _ := execIn(t, d, cli, "env"); strings.Contains(env, "DATABASE_") {
		t.Errorf("a link on a user-defined network set environment variables:\n%s", env)
	}
	d.Kill()
	d.Start()
	if got := answers(dnsAsk(t, netnsOf(t, d, cli), "db", dns.TypeA)); !slices.Equal(got, []string{"172.18.0.2"}) {
		t.Errorf("after a daemon crash and restart db resolves to %v", got)
	}
}

func TestDNSBadInput(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	code, msg := raw(t, d, "POST", "/containers/create?name=baddns", "application/json", `{"Image":"busybox","Cmd":["true"],"HostConfig":{"Dns":["not-an-ip"]}}`)
	if code != 400 || !strings.Contains(msg, "not-an-ip") {
		t.Errorf("invalid --dns: %d %q", code, msg)
	}
	for _, c := range []struct {
		name  string
		host  *ctypes.HostConfig
		alias string
		want  string
	}{
		{"badalias", &ctypes.HostConfig{NetworkMode: "app"}, "no spaces", `invalid alias "no spaces"`},
		{"badlink", &ctypes.HostConfig{Links: []string{"nosuch:x"}}, "", "could not get container for nosuch"},
	} {
		var nc *network.NetworkingConfig
		if c.alias != "" {
			nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"app": {Aliases: []string{c.alias}}}}
		}
		res, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: c.name,
			Config: &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "1000"}}, HostConfig: c.host, NetworkingConfig: nc})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Client.ContainerStart(ctxT(t), res.ID, client.ContainerStartOptions{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("start %s: %v, want %q", c.name, err, c.want)
		}
	}
}
