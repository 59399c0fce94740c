package daemon_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/api"
	"github.com/berth-net/berth/internal/nettest"
)

// publish is a port binding for runContainer's host config.
func publish(bindings ...string) network.PortMap {
	m := network.PortMap{}
	for _, b := range bindings {
		// container/proto=hostip:hostport, an IPv6 hostip in brackets
		cport, host, _ := strings.Cut(b, "=")
		ip, port := "", host
		if i := strings.LastIndex(host, ":"); i >= 0 {
			ip, port = strings.Trim(host[:i], "[]"), host[i+1:]
		}
		var hostIP netip.Addr
		if ip != "" {
			hostIP = netip.MustParseAddr(ip)
		}
		p := network.MustParsePort(cport)
		m[p] = append(m[p], network.PortBinding{HostIP: hostIP, HostPort: port})
	}
	return m
}

// netnsOf opens a running container's network namespace.
func netnsOf(t *testing.T, d *nettest.Daemon, id string) *nettest.Namespace {
	t.Helper()
	key := inspectContainer(t, d, id).NetworkSettings.SandboxKey
	if key == "" {
		t.Fatalf("container %s has no namespace of its own", id)
	}
	return nettest.OpenNamespace(t, key)
}

// udpEcho answers every datagram with tag and the datagram, inside ns.
func udpEcho(t *testing.T, ns *nettest.Namespace, addr, tag string) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(tag), buf[:n]...), from)
		}
	}()
}

// udpAsk sends a datagram from conn and returns the answer.
func udpAsk(conn net.PacketConn, to string, msg string) (string, error) {
	addr, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		return "", err
	}
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.WriteTo([]byte(msg), addr); err != nil {
		return "", err
	}
	buf := make([]byte, 1500)
	n, _, err := conn.ReadFrom(buf)
	return string(buf[:n]), err
}

// unreachable checks that a TCP dial from ns to addr does not get through.
func unreachable(t *testing.T, ns *nettest.Namespace, addr, why string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	if c, err := ns.Dial(ctx, "tcp", addr); err == nil {
		c.Close()
		t.Errorf("%s: %s is reachable", why, addr)
	}
}

func sleeper(name, net string, ports network.PortMap) spec {
	return spec{name: name, network: net, cmd: []string{"sleep", "100000"}, hostConfig: &ctypes.HostConfig{PortBindings: ports}}
}

func TestPublishedPortsAreReachableWhereTheyShouldBeAndNowhereElse(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	remote := h.AddRemote()
	create(t, d, "app", client.NetworkCreateOptions{})
	create(t, d, "other", client.NetworkCreateOptions{})
	web := runContainer(t, d, sleeper("web", "app", publish("80/tcp=:8080", "53/udp=:5353", "81/tcp=127.0.0.1:8081")))
	webNS := netnsOf(t, d, web)
	for _, port := range []string{":80", ":81", ":82"} {
		echoServer(t, webNS, port)
	}
	udpEcho(t, webNS, ":53", "web:")

	for _, c := range []struct {
		from *nettest.Namespace
		addr string
		who  string
	}{
		{remote.Namespace, "192.0.2.1:8080", "another machine, via the host's address"},
		{h.Namespace, "127.0.0.1:8080", "the host, via 127.0.0.1"},
		{h.Namespace, "192.0.2.1:8080", "the host, via its own address"},
		{h.Namespace, "127.0.0.1:8081", "the host, via 127.0.0.1, to a port published on 127.0.0.1"},
		{netnsOf(t, d, runContainer(t, d, sleeper("peer", "app", nil))), "192.0.2.1:8080", "a container on the same network (hairpin)"},
		{netnsOf(t, d, runContainer(t, d, sleeper("far", "other", nil))), "192.0.2.1:8080", "a container on another network"},
	} {
		if err := roundTrip(c.from, c.addr); err != nil {
			t.Errorf("from %s to %s: %v", c.who, c.addr, err)
		}
	}
	var udp net.PacketConn
	if err := remote.Do(func() (err error) { udp, err = net.ListenPacket("udp", ":0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	if got, err := udpAsk(udp, "192.0.2.1:5353", "ping"); err != nil || got != "web:ping" {
		t.Errorf("UDP from another machine: %q, %v", got, err)
	}

	unreachable(t, remote.Namespace, "192.0.2.1:8081", "a port published on 127.0.0.1, from another machine")
	if err := remote.RouteVia(netip.MustParsePrefix("172.18.0.0/16")); err != nil {
		t.Fatal(err)
	}
	unreachable(t, remote.Namespace, "172.18.0.2:80", "a container's address, from another machine")
	unreachable(t, remote.Namespace, "172.18.0.2:82", "an unpublished port, from another machine")

	ports := inspectContainer(t, d, web).NetworkSettings.Ports
	if got := fmt.Sprint(ports[network.MustParsePort("80/tcp")]); got != "[{0.0.0.0 8080}]" {
		t.Errorf("inspect shows 80/tcp as %s", got)
	}
	if got := fmt.Sprint(ports[network.MustParsePort("81/tcp")]); got != "[{127.0.0.1 8081}]" {
		t.Errorf("inspect shows 81/tcp as %s", got)
	}
}

func TestRandomHostPortsComeFromTheEphemeralRangeInOrder(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	a := runContainer(t, d, sleeper("ca", "bridge", publish("80/tcp=")))
	b := runContainer(t, d, sleeper("cb", "bridge", publish("80/tcp=", "90/udp=")))
	if got := inspectContainer(t, d, a).NetworkSettings.Ports[network.MustParsePort("80/tcp")]; len(got) != 1 || got[0].HostPort != "32768" {
		t.Errorf("first random port: %v, want 32768", got)
	}
	ports := inspectContainer(t, d, b).NetworkSettings.Ports
	if got := ports[network.MustParsePort("80/tcp")]; len(got) != 1 || got[0].HostPort != "32769" {
		t.Errorf("second random tcp port: %v, want 32769", got)
	}
	if got := ports[network.MustParsePort("90/udp")]; len(got) != 1 || got[0].HostPort != "32768" {
		t.Errorf("first random udp port: %v, want 32768", got)
	}
}

func TestPortConflictsAreRefusedAndLeaveNothing(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	runContainer(t, d, sleeper("web", "bridge", publish("80/tcp=:8080")))
	l, err := h.Listen("tcp", "0.0.0.0:9090")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	for _, c := range []struct {
		name  string
		ports network.PortMap
		want  string
	}{
		{"dup", publish("80/tcp=:8080"), "Bind for 0.0.0.0:8080 failed: port is already allocated"},
		{"dup-local", publish("80/tcp=127.0.0.1:8080"), "Bind for 127.0.0.1:8080 failed: port is already allocated"},
		{"held", publish("80/tcp=:9090"), "bind: address already in use"},
		{"elsewhere", publish("80/tcp=203.0.113.9:8090"), "bind: cannot assign requested address"},
		{"badport", publish("80/tcp=:80x"), "invalid hostPort: 80x"},
		{"zero", publish("0/tcp=:8095"), "invalid containerPort: 0"},
		{"icmp", publish("80/icmp=:8096"), "invalid proto: icmp"},
	} {
		res, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: c.name,
			Config: &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "1000"}}, HostConfig: &ctypes.HostConfig{PortBindings: c.ports}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Client.ContainerStart(ctxT(t), res.ID, client.ContainerStartOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("start %s: %v, want %q", c.name, err, c.want)
		}
		if st := inspectContainer(t, d, res.ID).State; st.Running {
			t.Errorf("%s runs after a refused start", c.name)
		}
	}
	if n := inspect(t, d, "bridge"); len(n.Containers) != 1 {
		t.Errorf("refused starts left endpoints: %v", n.Containers)
	}
	// The good binding still holds its port.
	if _, err := h.Listen("tcp", "0.0.0.0:8080"); err == nil {
		t.Errorf("a host process could take port 8080 while web publishes it")
	}
}

func TestUDPFlowDoesNotStickToARemovedContainer(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	remote := h.AddRemote()
	a := runContainer(t, d, sleeper("ua", "bridge", publish("53/udp=:5353")))
	udpEcho(t, netnsOf(t, d, a), ":53", "A:")
	var udp net.PacketConn
	if err := remote.Do(func() (err error) { udp, err = net.ListenPacket("udp", "192.0.2.2:40000"); return err }); err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	if got, err := udpAsk(udp, "192.0.2.1:5353", "1"); err != nil || got != "A:1" {
		t.Fatalf("first datagram: %q, %v", got, err)
	}
	if _, err := d.Client.ContainerRemove(ctxT(t), a, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	// b takes the address a had, so a stale flow would even land on it
	// through the old translation; give it another address to be sure
	// the flow is re-translated.
	runContainer(t, d, sleeper("filler", "bridge", nil))
	b := runContainer(t, d, sleeper("ub", "bridge", publish("53/udp=:5353")))
	udpEcho(t, netnsOf(t, d, b), ":53", "B:")
	if got, err := udpAsk(udp, "192.0.2.1:5353", "2"); err != nil || got != "B:2" {
		t.Fatalf("same flow after the container was replaced: %q, %v", got, err)
	}
}

// peerServer answers every connection, inside ns, with the address the
// connection came from.
func peerServer(t *testing.T, ns *nettest.Namespace, addr string) {
	t.Helper()
	l, err := ns.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			c.Write([]byte(host))
			c.Close()
		}
	}()
}

// askPeer connects from ns to addr and returns what the server said.
func askPeer(ns *nettest.Namespace, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := ns.Dial(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	return string(buf[:n]), nil
}

func TestMasqueradeIsolationICCAndInternalNetworks(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	remote := h.AddRemote()
	peerServer(t, remote.Namespace, "192.0.2.2:7000")
	create(t, d, "one", client.NetworkCreateOptions{})
	create(t, d, "two", client.NetworkCreateOptions{})
	create(t, d, "quiet", client.NetworkCreateOptions{Options: map[string]string{"com.docker.network.bridge.enable_icc": "false"}})
	create(t, d, "plain", client.NetworkCreateOptions{Options: map[string]string{"com.docker.network.bridge.enable_ip_masquerade": "false"}})
	create(t, d, "int", client.NetworkCreateOptions{Internal: true})

	a := netnsOf(t, d, runContainer(t, d, sleeper("ca", "one", nil)))
	b := netnsOf(t, d, runContainer(t, d, sleeper("cb", "two", nil)))
	echoServer(t, a, ":80")
	echoServer(t, b, ":80")
	// Out of the host, masqueraded as the host's address.
	if got, err := askPeer(a, "192.0.2.2:7000"); err != nil || got != "192.0.2.1" {
		t.Errorf("a container's connection to another machine arrives from %q (%v), want the host's 192.0.2.1", got, err)
	}
	// Isolation between networks, both ways.
	unreachable(t, a, "172.19.0.2:80", "a container on another network (one → two)")
	unreachable(t, b, "172.18.0.2:80", "a container on another network (two → one)")

	// enable_icc=false: no traffic between the network's containers, but
	// a published port still works through the host.
	x := netnsOf(t, d, runContainer(t, d, sleeper("qx", "quiet", nil)))
	yID := runContainer(t, d, sleeper("qy", "quiet", publish("80/tcp=:8088")))
	y := netnsOf(t, d, yID)
	echoServer(t, y, ":80")
	yIP := inspectContainer(t, d, yID).NetworkSettings.Networks["quiet"].IPAddress.String()
	unreachable(t, x, yIP+":80", "another container of an enable_icc=false network")
	if err := roundTrip(x, "192.0.2.1:8088"); err != nil {
		t.Errorf("published port of an enable_icc=false network through the host: %v", err)
	}

	// enable_ip_masquerade=false: the container's own address goes out.
	p := netnsOf(t, d, runContainer(t, d, sleeper("cp", "plain", nil)))
	pIP := inspectContainer(t, d, "cp").NetworkSettings.Networks["plain"].IPAddress
	if err := remote.RouteVia(netip.PrefixFrom(pIP, 16).Masked()); err != nil {
		t.Fatal(err)
	}
	if got, err := askPeer(p, "192.0.2.2:7000"); err != nil || got != pIP.String() {
		t.Errorf("without masquerade the connection arrives from %q (%v), want %s", got, err, pIP)
	}

	// Internal: its containers talk to each other, nothing leaves.
	i1 := netnsOf(t, d, runContainer(t, d, sleeper("i1", "int", nil)))
	i2ID := runContainer(t, d, sleeper("i2", "int", nil))
	echoServer(t, netnsOf(t, d, i2ID), ":80")
	if err := roundTrip(i1, inspectContainer(t, d, i2ID).NetworkSettings.Networks["int"].IPAddress.String()+":80"); err != nil {
		t.Errorf("containers of an internal network: %v", err)
	}
	unreachable(t, i1, "192.0.2.2:7000", "another machine, from an internal network")
}

func TestInternalNetworksAreSealed(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	remote := h.AddRemote()
	peerServer(t, remote.Namespace, "192.0.2.2:7000")
	create(t, d, "open", client.NetworkCreateOptions{})
	create(t, d, "int", client.NetworkCreateOptions{Internal: true})
	webID := runContainer(t, d, sleeper("web", "open", publish("80/tcp=:8080")))
	web := netnsOf(t, d, webID)
	echoServer(t, web, ":80")
	webIP := inspectContainer(t, d, webID).NetworkSettings.Networks["open"].IPAddress.String()
	inID := runContainer(t, d, sleeper("in", "int", nil))
	in := netnsOf(t, d, inID)
	echoServer(t, in, ":80")
	inIP := inspectContainer(t, d, inID).NetworkSettings.Networks["int"].IPAddress.String()
	gw := inspect(t, d, "int").IPAM.Config[0].Gateway.String()

	// The published port works from another machine, so what fails below
	// fails for the internal network alone.
	if err := roundTrip(remote.Namespace, "192.0.2.1:8080"); err != nil {
		t.Fatalf("the published port from another machine: %v", err)
	}
	for _, c := range []struct{ addr, why string }{
		{"192.0.2.1:8080", "a published port through the host's address"},
		{gw + ":8080", "a published port through the internal network's gateway address"},
		{webIP + ":80", "a container of another network"},
		{"192.0.2.2:7000", "another machine"},
	} {
		unreachable(t, in, c.addr, "from an internal network, "+c.why)
	}
	unreachable(t, web, inIP+":80", "a container of an internal network, from another network")
}

func TestStockDockerRunPublishes(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skipf("the stock Docker CLI is not at %s: %v", dockerCLI, err)
	}
	h, d := containerHost(t)
	remote := h.AddRemote()
	id := strings.TrimSpace(dockerOK(t, d, "run", "-d", "--name", "web", "-p", "8080:80", "-p", "127.0.0.1:5353:53/udp", "-p", "90", "busybox", "sleep", "100000"))
	echoServer(t, netnsOf(t, d, id), ":80")
	if err := roundTrip(remote.Namespace, "192.0.2.1:8080"); err != nil {
		t.Errorf("docker run -p 8080:80 from another machine: %v", err)
	}
	if got := dockerOK(t, d, "port", "web"); got != "53/udp -> 127.0.0.1:5353\n80/tcp -> 0.0.0.0:8080\n90/tcp -> 0.0.0.0:32768\n" {
		t.Errorf("docker port web:\n%s", got)
	}
	if got := dockerOK(t, d, "ps", "--format", "{{.Ports}}"); !strings.Contains(got, "0.0.0.0:8080->80/tcp") {
		t.Errorf("docker ps ports: %q", got)
	}
	_, stderr, code := docker(t, d, "run", "-d", "--name", "web2", "-p", "8080:80", "busybox", "sleep", "1")
	if code != 125 || !strings.Contains(stderr, "Bind for 0.0.0.0:8080 failed: port is already allocated") {
		t.Errorf("second -p 8080: exit %d, %q", code, stderr)
	}
}

// TestCrashWhilePublishingLeavesExactlyTheRunningContainersPorts kills
// berthd while containers with published ports start and stop, and checks
// that after the restart the kernel translates exactly the ports of the
// containers that run.
func TestCrashWhilePublishingLeavesExactlyTheRunningContainersPorts(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for i := 0; i < 30; i++ {
			name := fmt.Sprintf("p%d", i)
			res, err := d.Client.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name,
				Config:     &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "100000"}},
				HostConfig: &ctypes.HostConfig{PortBindings: publish(fmt.Sprintf("80/tcp=:%d", 9000+i))}})
			if err != nil {
				return
			}
			if _, err := d.Client.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
				return
			}
			if i%3 == 0 {
				zero := 0
				if _, err := d.Client.ContainerStop(ctx, res.ID, client.ContainerStopOptions{Timeout: &zero}); err != nil {
					return
				}
			}
		}
	}()
	// The crash comes while containers are being started, once some run:
	// a fixed delay would find none on a loaded machine.
	waitFor(t, 20*time.Second, func() error {
		list, err := d.Client.ContainerList(ctxT(t), client.ContainerListOptions{})
		if err != nil {
			return err
		}
		if len(list.Items) < 2 {
			return fmt.Errorf("%d containers run", len(list.Items))
		}
		return nil
	})
	d.Kill()
	<-done
	d.Start()

	want := map[string]bool{}
	list, err := d.Client.ContainerList(ctxT(t), client.ContainerListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Items {
		for _, p := range c.Ports {
			want[fmt.Sprintf("%d", p.PublicPort)] = true
		}
	}
	got := map[string]bool{}
	for _, port := range publishedInKernel(t, h) {
		got[port] = true
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("kernel translates host ports %v; the running containers publish %v", got, want)
	}
	t.Logf("%d containers running with %d published ports after the crash", len(list.Items), len(want))
	if len(want) == 0 {
		t.Errorf("nothing ran before the crash; the test proves nothing")
	}
}

// publishedInKernel lists the host ports in berth's IPv4 port map of the
// host's namespace.
func publishedInKernel(t *testing.T, h *nettest.Host) []string {
	t.Helper()
	conn, err := nftables.New(nftables.WithNetNSFd(h.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tb := range tables {
		if !strings.HasPrefix(tb.Name, "berth") {
			continue
		}
		set, err := conn.GetSetByName(tb, "ports4")
		if err != nil {
			t.Fatal(err)
		}
		els, err := conn.GetSetElements(set)
		if err != nil {
			t.Fatal(err)
		}
		for _, el := range els {
			out = append(out, fmt.Sprint(binary.BigEndian.Uint16(el.Key[4:6])))
		}
	}
	return out
}

// TestForwardDropPolicyOfAnotherTableIsReported: a table that drops
// forwarded packets by policy (iptables' FORWARD set to DROP by Docker)
// overrules any accept in berth's own table — nftables runs every base
// chain of the hook and a drop is final — so berth, which never edits
// another table, reports it with what to do.
func TestForwardDropPolicyOfAnotherTableIsReported(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	conn, err := nftables.New(nftables.WithNetNSFd(h.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	drop := nftables.ChainPolicyDrop
	tb := conn.AddTable(&nftables.Table{Name: "filter", Family: nftables.TableFamilyIPv4})
	conn.AddChain(&nftables.Chain{Name: "FORWARD", Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop})
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	d := h.StartDaemon()
	info, err := d.Client.Info(ctxT(t), client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, w := range info.Info.Warnings {
		found = found || strings.Contains(w, "ip filter FORWARD drops forwarded packets by policy")
	}
	if !found {
		t.Errorf("/info warnings %q do not name ip filter FORWARD", info.Info.Warnings)
	}
	if !strings.Contains(d.Log(), "ip filter FORWARD drops forwarded packets by policy") {
		t.Errorf("berthd did not log the dropping chain")
	}
	// The other table is left as it was.
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chains {
		if c.Name == "FORWARD" && (c.Policy == nil || *c.Policy != nftables.ChainPolicyDrop) {
			t.Errorf("berth changed the other table's policy")
		}
	}
}

func TestSandboxesPublishPortsThroughTheirEndpoint(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	remote := h.AddRemote()
	create(t, d, "app", client.NetworkCreateOptions{})
	ns := h.NewNamespace("sb")
	if _, err := d.API.CreateSandbox(ctxT(t), api.SandboxCreateRequest{Name: "sb", Key: ns.Path}); err != nil {
		t.Fatal(err)
	}
	echoServer(t, ns, ":80")
	bad := api.SandboxConnectRequest{Network: "app", PortBindings: publish("80/tcp=:99999")}
	if _, err := d.API.ConnectSandbox(ctxT(t), "sb", bad); err == nil || !strings.Contains(err.Error(), "invalid hostPort: 99999") {
		t.Errorf("connect with host port 99999: %v", err)
	}
	if _, err := d.API.ConnectSandbox(ctxT(t), "sb", api.SandboxConnectRequest{Network: "app", PortBindings: publish("80/tcp=:8080", "80/tcp=:")}); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(remote.Namespace, "192.0.2.1:8080"); err != nil {
		t.Errorf("the sandbox's published port from another machine: %v", err)
	}
	sb, err := d.API.InspectSandbox(ctxT(t), "sb")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(sb.Ports[network.MustParsePort("80/tcp")]); got != "[{0.0.0.0 8080} {0.0.0.0 32768}]" && got != "[{0.0.0.0 32768} {0.0.0.0 8080}]" {
		t.Errorf("inspect shows the sandbox's 80/tcp as %s", got)
	}
	if err := d.API.DisconnectSandbox(ctxT(t), "sb", api.SandboxDisconnectRequest{Network: "app"}); err != nil {
		t.Fatal(err)
	}
	unreachable(t, remote.Namespace, "192.0.2.1:8080", "a port of a disconnected sandbox")
}
