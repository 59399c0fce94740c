package daemon_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/moby/moby/client"
	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/api"
	"github.com/berth-net/berth/internal/nettest"
	"github.com/berth-net/berth/netdev"
)

// doctorLines runs berth doctor against d and returns its lines, split in
// status, check and the rest, and its exit code.
func doctorLines(t *testing.T, d *nettest.Daemon) ([][3]string, int, string) {
	t.Helper()
	stdout, stderr, code := berth(t, d, "doctor")
	if stderr != "" {
		t.Errorf("berth doctor wrote to stderr: %s", stderr)
	}
	var out [][3]string
	for _, line := range strings.Split(strings.TrimRight(stdout, "\n"), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Fatalf("berth doctor printed %q", line)
		}
		out = append(out, [3]string{f[0], f[1], strings.Join(f[2:], " ")})
	}
	return out, code, stdout
}

// finding is the first line of a status and check that has every part.
func finding(lines [][3]string, status, check string, parts ...string) (string, bool) {
	for _, l := range lines {
		if l[0] != status || l[1] != check {
			continue
		}
		all := true
		for _, p := range parts {
			all = all && strings.Contains(l[2], p)
		}
		if all {
			return l[2], true
		}
	}
	return "", false
}

// berthTable is the name of the daemon's nftables table in its host.
func berthTable(t *testing.T, conn *nftables.Conn) *nftables.Table {
	t.Helper()
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		if strings.HasPrefix(tb.Name, "berth") {
			return tb
		}
	}
	t.Fatal("no table of berth's")
	return nil
}

func TestDoctorOfAHealthyHostFindsNothingFailing(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	create(t, d, "app", client.NetworkCreateOptions{})
	create(t, d, "quiet", client.NetworkCreateOptions{Options: map[string]string{"com.docker.network.bridge.enable_icc": "false"}})
	create(t, d, "vault", client.NetworkCreateOptions{Internal: true})
	attach(t, d, "a", "app")
	attach(t, d, "q", "quiet")
	attach(t, d, "v", "vault")
	if _, err := d.API.CreateSandbox(ctxT(t), api.SandboxCreateRequest{Name: "own"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.API.ConnectSandbox(ctxT(t), "own", api.SandboxConnectRequest{Network: "app", PortBindings: publish("80/tcp=:8080")}); err != nil {
		t.Fatal(err)
	}

	lines, code, stdout := doctorLines(t, d)
	t.Logf("berth doctor:\n%s", stdout)
	if code != 0 {
		t.Errorf("exit %d on a healthy host", code)
	}
	for _, l := range lines {
		if l[0] == "fail" {
			t.Errorf("a failure on a healthy host: %s", l)
		}
	}
	for _, check := range []string{"kernel", "forwarding", "br_netfilter", "firewall", "routes", "devices", "namespaces", "sandboxes", "tables"} {
		if !strings.Contains(stdout, " "+check+" ") {
			t.Errorf("nothing of the %s check", check)
		}
	}
	// One network's worth of each thing more than the default bridge.
	for _, want := range [][]string{
		{"ok", "kernel", "bridge: the kernel has bridge, veth"},
		{"ok", "tables", "hold what berth's state asks for: 4 networks, 1 published ports, 4 guarded ports"},
		{"ok", "devices", "the 8 devices berth's networks and endpoints want are there and up"},
		{"ok", "namespaces", "belongs to a sandbox (1)"},
		{"ok", "forwarding", "IPv4 forwarding is on"},
	} {
		if _, ok := finding(lines, want[0], want[1], want[2]); !ok {
			t.Errorf("no %s %s finding with %q", want[0], want[1], want[2])
		}
	}
}

// TestDoctorFindsWhatWasMadeWrongInTheHost breaks a host in every way
// doctor checks, each behind berth's back, and wants each reported with
// its fix; then it applies the fixes and wants a clean report.
func TestDoctorFindsWhatWasMadeWrongInTheHost(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	create(t, d, "app", client.NetworkCreateOptions{})
	subnet := inspect(t, d, "app").IPAM.Config[0].Subnet
	if subnet.String() != "172.18.0.0/16" {
		t.Fatalf("app has %s; the routes below assume 172.18.0.0/16", subnet)
	}
	aNS, ep := attach(t, d, "a", "app")
	bNS, epB := attach(t, d, "b", "app")
	cNS, _ := attach(t, d, "c", "app")
	echoServer(t, bNS, ":7000")
	toB := epB.IPAddress.String() + ":7000"
	bridge := "br-" + ep.NetworkID[:12]

	// Forwarding off.
	if err := h.Do(func() error { return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0"), 0o644) }); err != nil {
		t.Fatal(err)
	}
	// Docker's FORWARD DROP.
	conn, err := nftables.New(nftables.WithNetNSFd(h.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	drop := nftables.ChainPolicyDrop
	filter := conn.AddTable(&nftables.Table{Name: "filter", Family: nftables.TableFamilyIPv4})
	conn.AddChain(&nftables.Chain{Name: "FORWARD", Table: filter, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop})
	// A stale element, and a missing one, in berth's table.
	table := berthTable(t, conn)
	bridges, err := conn.GetSetByName(table, "bridges")
	if err != nil {
		t.Fatal(err)
	}
	masq, err := conn.GetSetByName(table, "masq4")
	if err != nil {
		t.Fatal(err)
	}
	ifname := func(s string) []byte { b := make([]byte, 16); copy(b, s); return b }
	if err := conn.SetAddElements(bridges, []nftables.SetElement{{Key: ifname("br-ghost")}}); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetDeleteElements(masq, []nftables.SetElement{{Key: ifname(bridge)}}); err != nil {
		t.Fatal(err)
	}
	conn.DelTable(&nftables.Table{Name: table.Name, Family: nftables.TableFamilyBridge})
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	// With br_netfilter passing bridged frames to ip tables, the foreign
	// chain drops even traffic between containers of one network.
	var brnf []byte
	if err := h.Do(func() (err error) {
		brnf, err = os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables")
		return err
	}); err == nil && strings.TrimSpace(string(brnf)) == "1" {
		if err := roundTrip(cNS, toB); err == nil {
			t.Errorf("c reaches b through a FORWARD chain that drops by policy, with br_netfilter on")
		}
	}
	// Routes over app's subnet and over a default pool, out of a device
	// that is not berth's.
	ext := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "ext0"}, PeerName: "ext1"}
	if err := h.Netlink.LinkAdd(ext); err != nil {
		t.Fatal(err)
	}
	if err := h.Netlink.LinkSetUp(ext); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"172.18.5.0/24", "172.25.0.0/16"} {
		_, n, _ := net.ParseCIDR(dst)
		if err := h.Netlink.RouteAdd(&netlink.Route{LinkIndex: ext.Attrs().Index, Dst: n}); err != nil {
			t.Fatal(err)
		}
	}
	// A veth of berth's link group that nothing wants.
	owned, _, _ := netdev.Groups(d.Root)
	stale := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethdead01", Group: owned}, PeerName: "vethdead02"}
	if err := h.Netlink.LinkAdd(stale); err != nil {
		t.Fatal(err)
	}
	// A namespace mount of berth's with no sandbox.
	nsDir := filepath.Join(d.ExecRoot, "netns")
	if err := os.MkdirAll(nsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	nettest.NewNamespace(t, nsDir, "0123456789abcdef")
	// a's endpoint, gone from the kernel: both ends of its pair.
	eth0, err := aNS.Netlink.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Netlink.LinkDel(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: eth0.Attrs().ParentIndex}}); err != nil {
		t.Fatal(err)
	}

	lines, code, stdout := doctorLines(t, d)
	t.Logf("berth doctor:\n%s", stdout)
	if code != 1 {
		t.Errorf("exit %d with failures", code)
	}
	var fix string
	for _, want := range []struct {
		status, check string
		parts         []string
	}{
		{"fail", "forwarding", []string{"IPv4 forwarding is off", "fix: sysctl -w net.ipv4.ip_forward=1"}},
		{"fail", "firewall", []string{"ip filter FORWARD drops forwarded packets by policy and does not accept those of " + bridge + ", berth0",
			`fix: nft insert rule ip filter FORWARD iifname "` + bridge + `" accept; nft insert rule ip filter FORWARD oifname "` + bridge +
				`" accept; nft insert rule ip filter FORWARD iifname "berth0" accept; nft insert rule ip filter FORWARD oifname "berth0" accept`}},
		{"fail", "routes", []string{"network app's subnet 172.18.0.0/16 overlaps the host's route to 172.18.5.0/24 via ext0", "ip route del 172.18.5.0/24 dev ext0"}},
		{"warn", "routes", []string{"default address pool base=172.25.0.0/16,size=16 overlaps the host's route to 172.25.0.0/16 via ext0: the pool is of no use"}},
		{"warn", "devices", []string{"vethdead01 (veth) is berth's", "ip link delete vethdead01"}},
		{"fail", "devices", []string{"a's endpoint on app's device, is missing"}},
		{"fail", "sandboxes", []string{"a: its interface eth0 on app is missing, down or without its addresses [" + ep.IPAddress.String() + "/16]"}},
		{"warn", "namespaces", []string{filepath.Join(nsDir, "0123456789abcdef") + " is a namespace mount of berth's that belongs to no sandbox"}},
		{"fail", "tables", []string{`inet ` + table.Name + ` bridges { "br-ghost" } is stale`}},
		{"fail", "tables", []string{`inet ` + table.Name + ` masq4 { "` + bridge + `" } is missing`}},
		{"fail", "tables", []string{"table bridge " + table.Name + " is gone"}},
	} {
		line, ok := finding(lines, want.status, want.check, want.parts...)
		if !ok {
			t.Errorf("no %s %s finding with %q", want.status, want.check, want.parts)
		}
		if want.check == "firewall" {
			_, fix, _ = strings.Cut(line, "| fix: ")
		}
	}
	for _, l := range lines {
		if l[1] == "devices" && strings.Contains(l[2], "b's endpoint") {
			t.Errorf("b, untouched, is reported: %s", l)
		}
	}

	// The fixes. The firewall's, as printed.
	if fix == "" {
		t.Fatal("no fix for the forward chain to run")
	}
	if out, stderr, code, err := d.Run(ctxT(t), "", "sh", "-c", fix); err != nil || code != 0 {
		t.Fatalf("the fix %q: exit %d, %v: %s%s", fix, code, err, out, stderr)
	}
	if err := roundTrip(cNS, toB); err != nil {
		t.Errorf("c → b after the fix: %v", err)
	}
	for _, dst := range []string{"172.18.5.0/24", "172.25.0.0/16"} {
		_, n, _ := net.ParseCIDR(dst)
		if err := h.Netlink.RouteDel(&netlink.Route{LinkIndex: ext.Attrs().Index, Dst: n}); err != nil {
			t.Fatal(err)
		}
	}
	// berthd's start does the rest.
	d.Stop()
	d.Start()
	lines, code, stdout = doctorLines(t, d)
	t.Logf("berth doctor after the fixes:\n%s", stdout)
	if code != 0 {
		t.Errorf("exit %d after the fixes", code)
	}
	for _, l := range lines {
		// What the kernel lacks is the machine's, not the test's.
		if l[0] != "ok" && l[1] != "kernel" {
			t.Errorf("left after the fixes: %s", l)
		}
	}
	if _, ok := finding(lines, "ok", "firewall", "ip filter FORWARD drops forwarded packets by policy, and accepts those of berth's bridges"); !ok {
		t.Errorf("the fixed forward chain is not reported as fixed")
	}
}

// TestDoctorDoesNotTakeOperationsUnderWayForProblems runs berth doctor
// while sandboxes join and leave networks and networks come and go: what
// an operation has made in the kernel and not yet recorded, or recorded
// and not yet made, must not be reported.
func TestDoctorDoesNotTakeOperationsUnderWayForProblems(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	create(t, d, "app", client.NetworkCreateOptions{})
	for _, name := range []string{"a", "b"} {
		ns := h.NewNamespace(name)
		if _, err := d.API.CreateSandbox(ctxT(t), api.SandboxCreateRequest{Name: name, Key: ns.Path}); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	churned := make(chan int)
	go func() {
		n := 0
		defer func() { churned <- n }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			sb := []string{"a", "b"}[i%2]
			if _, err := d.API.ConnectSandbox(ctxT(t), sb, api.SandboxConnectRequest{Network: "app"}); err != nil {
				t.Errorf("connect %s: %v", sb, err)
				return
			}
			if err := d.API.DisconnectSandbox(ctxT(t), sb, api.SandboxDisconnectRequest{Network: "app"}); err != nil {
				t.Errorf("disconnect %s: %v", sb, err)
				return
			}
			net := fmt.Sprintf("churn%d", i)
			if _, err := d.Client.NetworkCreate(ctxT(t), net, client.NetworkCreateOptions{}); err != nil {
				t.Errorf("create %s: %v", net, err)
				return
			}
			if _, err := d.Client.NetworkRemove(ctxT(t), net, client.NetworkRemoveOptions{}); err != nil {
				t.Errorf("remove %s: %v", net, err)
				return
			}
			n++
		}
	}()
	for range 15 {
		rep, err := d.API.Doctor(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range rep.Findings {
			if f.Status != api.StatusOK && f.Check != "kernel" {
				t.Errorf("during operations: %s %s %s", f.Status, f.Check, f.Message)
			}
		}
	}
	close(stop)
	if n := <-churned; n == 0 {
		t.Error("no operation ran during the reports; the test proves nothing")
	} else {
		t.Logf("%d rounds of connect, disconnect, create and remove during 15 reports", n)
	}
}
