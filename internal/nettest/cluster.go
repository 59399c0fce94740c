package nettest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/cluster"
)

// The underlay's addresses: the hosts are 192.168.100.10 and up.
var (
	underlayNet = netip.MustParsePrefix("192.168.100.0/24")
	// gatewayAddr is the underlay bridge's own address: the hosts' router.
	gatewayAddr = netip.MustParseAddr("192.168.100.1")
	etcdAddr    = netip.MustParseAddr("192.168.100.2")
	// outsideAddr (TEST-NET-3) sits behind the router: a machine beyond
	// the underlay, reached through a host's default route.
	outsideAddr = netip.MustParseAddr("203.0.113.1")
)

// Cluster is several hosts plugged into one underlay, a berthd each, all
// in one cluster store: the first host's embedded etcd member, or an
// external etcd on the underlay.
type Cluster struct {
	Hosts []*ClusterHost
	// Underlay is the switch between the hosts: a bridge "underlay" in a
	// namespace of its own, whose address Gateway is the hosts' default
	// router. Outside is an address behind it, standing for the world.
	Underlay         *Host
	Gateway, Outside netip.Addr
	// Store is the --cluster-store of the hosts that join (all but the
	// first with the embedded member): etcd://IP:2379.
	Store string
	// Etcd is the external etcd (its first member); nil when the first
	// host runs the member. EtcdMembers are all the external members.
	Etcd        *Etcd
	EtcdMembers []*Etcd
	// MTU is the underlay's: the bridge's and every host's uplink.
	MTU int
}

// ClusterHost is one host of a Cluster. Its berthd is Daemon: Stop, Kill
// and Start it to restart it with the same state and flags.
type ClusterHost struct {
	*Host
	Daemon *Daemon
	// Addr is the host's address on the underlay, its --cluster-advertise,
	// on its device "uplink".
	Addr netip.Addr
	// port is the uplink's other end, on the underlay's bridge.
	port     string
	underlay *Host
}

// ClusterOption changes how NewCluster builds a cluster.
type ClusterOption func(*clusterConfig)

type clusterConfig struct {
	externalEtcd bool
	etcdMembers  int
	mtu          int
	args         []string
}

// ExternalEtcd runs an etcd server (Debian's etcd 3.4: $BERTH_TEST_ETCD,
// else /usr/local/bin/etcd or /usr/bin/etcd) at 192.168.100.2 on the
// underlay, and every host joins it; without it the first host runs the
// embedded member and the others join that. The test skips when there is
// no etcd binary.
func ExternalEtcd() ClusterOption { return ExternalEtcdMembers(1) }

// ExternalEtcdMembers is ExternalEtcd with an etcd cluster of n members,
// at 192.168.100.2 and up, each in a namespace of its own; the hosts are
// given every member's address. Cluster.Etcd is the first member and
// Cluster.EtcdMembers all of them.
func ExternalEtcdMembers(n int) ClusterOption {
	return func(c *clusterConfig) { c.externalEtcd, c.etcdMembers = true, n }
}

// UnderlayMTU sets the MTU of the underlay (1500 by default).
func UnderlayMTU(mtu int) ClusterOption { return func(c *clusterConfig) { c.mtu = mtu } }

// DaemonArgs adds berthd flags for every host. Without a --dns among
// them, the hosts' berthd get --dns Gateway, where nothing answers.
func DaemonArgs(args ...string) ClusterOption {
	return func(c *clusterConfig) { c.args = append(c.args, args...) }
}

// NewCluster makes n hosts, 192.168.100.10 and up on the underlay, and
// starts their berthd one after another, each once the store it joins
// serves. Nothing touches the machine's own interfaces; everything goes
// when the test ends, however it ends.
func NewCluster(t testing.TB, n int, opts ...ClusterOption) *Cluster {
	t.Helper()
	RequireRoot(t)
	cfg := clusterConfig{mtu: 1500}
	for _, o := range opts {
		o(&cfg)
	}
	if n < 1 || n > 200 {
		t.Fatalf("a cluster of %d hosts: 1 to 200 fit the underlay", n)
	}
	var etcdBin string
	if cfg.externalEtcd {
		etcdBin = etcdBinary(t)
	}
	// The underlay first: its cleanup runs last, so daemons that stop
	// still reach the store.
	c := &Cluster{Underlay: NewHost(t), Gateway: gatewayAddr, Outside: outsideAddr, MTU: cfg.mtu}
	u := c.Underlay.Netlink
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "underlay", MTU: cfg.mtu}}
	if err := u.LinkAdd(br); err != nil {
		t.Fatalf("underlay bridge: %v", err)
	}
	addAddr(t, u, "underlay", netip.PrefixFrom(gatewayAddr, underlayNet.Bits()))
	addAddr(t, u, "lo", netip.PrefixFrom(outsideAddr, 32))
	if err := u.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}

	if cfg.externalEtcd {
		var initial, endpoints []string
		for i := range cfg.etcdMembers {
			name := fmt.Sprintf("etcd%d", i)
			if cfg.etcdMembers == 1 {
				name = "etcd"
			}
			addr := netip.AddrFrom4([4]byte{192, 168, 100, byte(2 + i)})
			ns := c.Underlay.NewNamespace(name)
			c.plug(ns, "eth0", "port-"+name, addr)
			e := &Etcd{Namespace: ns, Addr: addr, bin: etcdBin, t: t, name: name,
				dir: filepath.Join(c.Underlay.Dir, name), logPath: filepath.Join(c.Underlay.Dir, name+".log")}
			t.Cleanup(func() {
				e.Kill()
				if t.Failed() {
					e.dumpLog()
				}
			})
			c.EtcdMembers = append(c.EtcdMembers, e)
			initial = append(initial, name+"=http://"+netip.AddrPortFrom(addr, cluster.DefaultPeerPort).String())
			endpoints = append(endpoints, e.Endpoint())
		}
		for _, e := range c.EtcdMembers {
			e.initial = strings.Join(initial, ",")
			e.launch()
		}
		for _, e := range c.EtcdMembers {
			e.waitHealthy()
		}
		c.Etcd = c.EtcdMembers[0]
		c.Store = "etcd://" + strings.Join(endpoints, ",")
	} else {
		c.Store = "etcd://" + netip.AddrPortFrom(hostAddr(0), cluster.DefaultClientPort).String()
	}

	for i := range n {
		h := &ClusterHost{Host: NewHost(t), Addr: hostAddr(i), port: fmt.Sprintf("port%d", i), underlay: c.Underlay}
		c.plug(h.Namespace, "uplink", h.port, h.Addr)
		if err := h.Netlink.RouteAdd(&netlink.Route{Gw: gatewayAddr.AsSlice()}); err != nil {
			t.Fatalf("default route of host %d: %v", i, err)
		}
		store := c.Store
		if i == 0 && c.Etcd == nil {
			store = "embedded"
		}
		args := []string{"--cluster-store", store, "--cluster-advertise", h.Addr.String()}
		if !slices.Contains(cfg.args, "--dns") {
			// Nothing answers DNS at the router: names that are not
			// containers' fail at once, and no query leaves the test's
			// namespaces for the machine's own servers.
			args = append(args, "--dns", gatewayAddr.String())
		}
		h.Daemon = h.StartDaemon(append(args, cfg.args...)...)
		c.Hosts = append(c.Hosts, h)
	}
	return c
}

func hostAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 168, 100, byte(10 + i)}) }

// plug joins ns to the underlay's bridge by a veth pair, dev in ns with
// addr, port on the bridge, both at the underlay's MTU.
func (c *Cluster) plug(ns *Namespace, dev, port string, addr netip.Addr) {
	t := c.Underlay.t
	t.Helper()
	u := c.Underlay.Netlink
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: port, MTU: c.MTU}, PeerName: dev, PeerNamespace: netlink.NsFd(int(ns.ns))}
	if err := u.LinkAdd(veth); err != nil {
		t.Fatalf("veth %s to the underlay: %v", dev, err)
	}
	br, err := u.LinkByName("underlay")
	var p netlink.Link
	if err == nil {
		p, err = u.LinkByName(port)
	}
	if err == nil {
		err = u.LinkSetMaster(p, br)
	}
	if err == nil {
		err = u.LinkSetUp(p)
	}
	if err != nil {
		t.Fatalf("plug %s into the underlay: %v", port, err)
	}
	// A veth's peer takes the MTU given at creation only on newer
	// kernels; set it on both ends.
	l, err := ns.Netlink.LinkByName(dev)
	if err == nil {
		err = ns.Netlink.LinkSetMTU(l, c.MTU)
	}
	if err == nil {
		err = ns.Netlink.LinkSetUp(l)
	}
	if err != nil {
		t.Fatalf("%s up: %v", dev, err)
	}
	addAddr(t, ns.Netlink, dev, netip.PrefixFrom(addr, underlayNet.Bits()))
}

func addAddr(t testing.TB, h *netlink.Handle, dev string, p netip.Prefix) {
	t.Helper()
	l, err := h.LinkByName(dev)
	if err == nil {
		err = h.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}})
	}
	if err != nil {
		t.Fatalf("address %s on %s: %v", p, dev, err)
	}
}

// Unplug cuts the host off the underlay, as a pulled cable: its port on
// the bridge goes down, the host's uplink loses its carrier. The host is
// plugged in again before the daemons stop at the test's end.
func (h *ClusterHost) Unplug() {
	h.setPort(false)
	h.t.Cleanup(func() {
		if p, err := h.underlay.Netlink.LinkByName(h.port); err == nil {
			h.underlay.Netlink.LinkSetUp(p)
		}
	})
}

// Plug puts the host back on the underlay.
func (h *ClusterHost) Plug() { h.setPort(true) }

func (h *ClusterHost) setPort(up bool) {
	h.t.Helper()
	u := h.underlay.Netlink
	p, err := u.LinkByName(h.port)
	if err == nil {
		if up {
			err = u.LinkSetUp(p)
		} else {
			err = u.LinkSetDown(p)
		}
	}
	if err != nil {
		h.t.Fatalf("set %s's port on the underlay up=%v: %v", h.Addr, up, err)
	}
}

// ImportBusybox imports the busybox image (BusyboxImage) as "busybox" on
// every host. The test skips without busybox-static or runc.
func (c *Cluster) ImportBusybox() {
	t := c.Underlay.t
	t.Helper()
	tar := BusyboxImage(t)
	if _, err := os.Stat("/usr/sbin/runc"); err != nil {
		t.Skip("needs runc (Debian package runc)")
	}
	for _, h := range c.Hosts {
		if err := importImage(h.Daemon, tar, "busybox"); err != nil {
			t.Fatalf("import busybox on %s: %v", h.Addr, err)
		}
	}
}

func importImage(d *Daemon, tar, ref string) error {
	f, err := os.Open(tar)
	if err != nil {
		return err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := d.Client.ImageImport(ctx, client.ImageImportSource{Source: f, SourceName: "-"}, ref, client.ImageImportOptions{})
	if err != nil {
		return err
	}
	defer res.Close()
	_, err = io.Copy(io.Discard, res)
	return err
}

// Members lists the hosts registered in the cluster store now, read
// through etcd's JSON gateway from the underlay.
func (c *Cluster) Members() ([]cluster.Host, error) {
	ep, _ := strings.CutPrefix(c.Store, "etcd://")
	prefix := cluster.Prefix + cluster.HostsPrefix
	// The range [prefix, prefix with its last byte incremented).
	end := []byte(prefix)
	end[len(end)-1]++
	body, _ := json.Marshal(map[string]string{
		"key":       base64.StdEncoding.EncodeToString([]byte(prefix)),
		"range_end": base64.StdEncoding.EncodeToString(end),
	})
	var res struct {
		Kvs []struct{ Value []byte }
	}
	if err := c.Underlay.postJSON("http://"+ep+"/v3/kv/range", body, &res); err != nil {
		return nil, fmt.Errorf("list the cluster's hosts: %w", err)
	}
	var out []cluster.Host
	for _, kv := range res.Kvs {
		var h cluster.Host
		if err := json.Unmarshal(kv.Value, &h); err != nil {
			return nil, fmt.Errorf("a host record %q: %w", kv.Value, err)
		}
		out = append(out, h)
	}
	return out, nil
}

// postJSON posts body to url from inside the namespace and decodes the
// answer into out.
func (n *Namespace) postJSON(url string, body []byte, out any) error {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return n.Dial(ctx, network, addr) }}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 3 * time.Second}
	var resp *http.Response
	var err error
	if body == nil {
		resp, err = hc.Get(url)
	} else {
		resp, err = hc.Post(url, "application/json", bytes.NewReader(body))
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	return json.Unmarshal(b, out)
}

// Etcd is an etcd server a Cluster runs on its underlay, in a namespace of
// its own.
type Etcd struct {
	*Namespace
	Addr         netip.Addr
	bin          string
	name         string
	initial      string // --initial-cluster
	dir, logPath string
	t            testing.TB
	cmd          *exec.Cmd
	exited       chan struct{}
}

// Endpoint is the server's client address, IP:2379.
func (e *Etcd) Endpoint() string {
	return netip.AddrPortFrom(e.Addr, cluster.DefaultClientPort).String()
}

// Start (re)starts the server on its data directory and waits until it
// reports itself healthy (which, for a member of several, needs a quorum).
func (e *Etcd) Start() {
	e.t.Helper()
	e.launch()
	e.waitHealthy()
}

// launch starts the server process.
func (e *Etcd) launch() {
	e.t.Helper()
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		e.t.Fatal(err)
	}
	defer logf.Close()
	clientURL := "http://" + e.Endpoint()
	peerURL := "http://" + netip.AddrPortFrom(e.Addr, cluster.DefaultPeerPort).String()
	cmd := exec.Command(e.bin, "--name", e.name, "--data-dir", e.dir,
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", e.initial, "--initial-cluster-state", "new",
		"--initial-cluster-token", "berth-test", "--logger", "zap")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := startIn(e.Namespace, cmd); err != nil {
		e.t.Fatalf("start etcd: %v", err)
	}
	e.cmd, e.exited = cmd, make(chan struct{})
	exited := e.exited
	go func() { cmd.Wait(); close(exited) }()
}

// waitHealthy waits at most 20 s for the server to call itself healthy.
func (e *Etcd) waitHealthy() {
	e.t.Helper()
	clientURL := "http://" + e.Endpoint()
	var health struct{ Health string }
	var lastErr error
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-e.exited:
			e.dumpLog()
			e.t.Fatalf("etcd exited while starting: %v", e.cmd.ProcessState)
		default:
		}
		health.Health = ""
		if lastErr = e.postJSON(clientURL+"/health", nil, &health); lastErr == nil && health.Health == "true" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.dumpLog()
	e.t.Fatalf("etcd at %s not healthy within 20s: %v (health %q)", e.Endpoint(), lastErr, health.Health)
}

// Kill ends the server with SIGKILL, as a crash would.
func (e *Etcd) Kill() {
	if e.cmd == nil {
		return
	}
	e.cmd.Process.Kill()
	<-e.exited
	e.cmd = nil
}

func (e *Etcd) dumpLog() {
	b, _ := os.ReadFile(e.logPath)
	e.t.Logf("etcd's log (%s, last 4 KiB):\n%s", e.logPath, b[max(0, len(b)-4096):])
}

// etcdBinary is the etcd server to run: $BERTH_TEST_ETCD, else Debian's
// etcd-server where .ci/run puts it. The test skips without one.
func etcdBinary(t testing.TB) string {
	t.Helper()
	for _, c := range []string{os.Getenv("BERTH_TEST_ETCD"), "/usr/local/bin/etcd", "/usr/bin/etcd"} {
		if c == "" {
			continue
		}
		if _, err := os.Stat(c); err == nil {
			return c
		}
	}
	t.Skip("no etcd binary: set BERTH_TEST_ETCD or install Debian's etcd-server as .ci/run does")
	return ""
}
