package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/berth-net/berth/api"
	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/network"
)

// berth doctor: the host checked against what berth needs of it and
// against berth's own state. The checks run here, where the state and the
// privileges are; each reports at least one finding, ok when nothing is
// wrong, so a report shows what was checked.

func (d *Daemon) doctor(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, api.DoctorReport{Findings: d.diagnose()})
}

func (d *Daemon) diagnose() []api.Finding {
	nets := d.ctrl.Networks()
	devices := d.firewallDevices(nets)
	brNetfilter := bridgeNetfilter()
	var out []api.Finding
	out = append(out, d.checkKernel(nets)...)
	out = append(out, checkForwarding(nets, devices)...)
	out = append(out, brNetfilter.finding())
	out = append(out, d.checkForeignFirewalls(devices, brNetfilter)...)
	out = append(out, d.checkRoutes(nets, devices)...)
	return append(out, settle(d.checkState)...)
}

func ok(check, format string, args ...any) api.Finding {
	return api.Finding{Check: check, Status: api.StatusOK, Message: fmt.Sprintf(format, args...)}
}

func warn(check, fix, format string, args ...any) api.Finding {
	return api.Finding{Check: check, Status: api.StatusWarn, Message: fmt.Sprintf(format, args...), Fix: fix}
}

func fail(check, fix, format string, args ...any) api.Finding {
	return api.Finding{Check: check, Status: api.StatusFail, Message: fmt.Sprintf(format, args...), Fix: fix}
}

// ---- kernel features, per driver

// kernelModules are the modules and kernel options of the link kinds.
var kernelModules = map[string][2]string{
	netdev.KindBridge:  {"bridge", "CONFIG_BRIDGE"},
	netdev.KindVeth:    {"veth", "CONFIG_VETH"},
	netdev.KindMacvlan: {"macvlan", "CONFIG_MACVLAN"},
	netdev.KindIPVlan:  {"ipvlan", "CONFIG_IPVLAN"},
	netdev.KindVLAN:    {"8021q", "CONFIG_VLAN_8021Q"},
	netdev.KindDummy:   {"dummy", "CONFIG_DUMMY"},
	netdev.KindVxlan:   {"vxlan", "CONFIG_VXLAN"},
}

// checkKernel asks each driver that makes links which kinds it makes,
// probes the kernel for them, and names the networks a missing kind
// leaves without their devices.
func (d *Daemon) checkKernel(nets []network.Network) []api.Finding {
	type needs struct {
		drv      driver.Driver
		features []driver.KernelFeature
	}
	var drivers []needs
	var kinds []string
	for _, drv := range d.ctrl.Drivers() {
		kn, ok := drv.(driver.KernelNeeds)
		if !ok {
			continue
		}
		fs := kn.KernelFeatures()
		drivers = append(drivers, needs{drv, fs})
		for _, f := range fs {
			if !slices.Contains(kinds, f.Kind) {
				kinds = append(kinds, f.Kind)
			}
		}
	}
	probed, err := netdev.ProbeLinkKinds(kinds)
	if err != nil {
		return []api.Finding{warn("kernel", "", "cannot probe the kernel's link kinds: %v", err)}
	}
	var out []api.Finding
	for _, n := range drivers {
		name := n.drv.Name()
		var have, lack, modules, options []string
		every := false
		for _, f := range n.features {
			perr := probed[f.Kind]
			if perr == nil {
				have = append(have, f.Kind)
				continue
			}
			what := f.Kind
			if f.For != "" {
				what += " (for " + f.For + ")"
			}
			if !errors.Is(perr, netdev.ErrUnsupported) {
				what += fmt.Sprintf(" (the probe: %v)", perr)
			}
			lack = append(lack, what)
			every = every || f.For == ""
			m := kernelModules[f.Kind]
			modules, options = append(modules, m[0]), append(options, m[1])
		}
		if len(lack) == 0 {
			out = append(out, ok("kernel", "%s: the kernel has %s", name, strings.Join(have, ", ")))
			continue
		}
		// The networks of the driver that need a kind the kernel lacks.
		var broken []string
		kn := n.drv.(driver.KernelNeeds)
		for i := range nets {
			if nets[i].Driver != name {
				continue
			}
			for _, k := range kn.NetworkKernelFeatures(network.DriverNetwork(&nets[i])) {
				if probed[k] != nil {
					broken = append(broken, fmt.Sprintf("%s (needs %s)", nets[i].Name, k))
					break
				}
			}
		}
		fix := fmt.Sprintf("modprobe -a %s, or boot a kernel with %s", strings.Join(modules, " "), strings.Join(options, ", "))
		msg := fmt.Sprintf("%s: the kernel lacks %s", name, strings.Join(lack, ", "))
		if len(have) > 0 {
			msg += fmt.Sprintf("; it has %s", strings.Join(have, ", "))
		}
		switch {
		case len(broken) > 0:
			out = append(out, fail("kernel", fix, "%s; networks without their devices: %s", msg, strings.Join(broken, ", ")))
		case every:
			out = append(out, warn("kernel", fix, "%s; no %s network can be made", msg, name))
		default:
			out = append(out, warn("kernel", fix, "%s; %s networks that need what it lacks cannot be made", msg, name))
		}
	}
	return out
}

// ---- forwarding

// firewallDevice is a network's device under berth's firewall, with the
// address families it carries.
type firewallDevice struct {
	network, device string
	internal        bool
	v4, v6          bool
}

func (d *Daemon) firewallDevices(nets []network.Network) []firewallDevice {
	byID := d.ctrl.FirewallDevices()
	var out []firewallDevice
	for _, n := range nets {
		dev, ok := byID[n.ID]
		if !ok {
			continue
		}
		dn := network.DriverNetwork(&n)
		out = append(out, firewallDevice{network: n.Name, device: dev, internal: n.Internal, v4: len(dn.IPv4) > 0, v6: n.EnableIPv6 && len(dn.IPv6) > 0})
	}
	return out
}

func sysctl(path string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", path))
	return strings.TrimSpace(string(b)), err
}

func checkForwarding(nets []network.Network, devices []firewallDevice) []api.Finding {
	var out []api.Finding
	if v, err := sysctl("net/ipv4/ip_forward"); v != "1" {
		out = append(out, fail("forwarding", "sysctl -w net.ipv4.ip_forward=1 (berthd turns it on at start: something turned it off since)",
			"IPv4 forwarding is off (net.ipv4.ip_forward=%s%s): containers reach nothing beyond their own network, and published ports nothing from other machines", v, errText(err)))
	}
	if slices.ContainsFunc(nets, func(n network.Network) bool { return n.EnableIPv6 }) {
		if v, err := sysctl("net/ipv6/conf/all/forwarding"); v != "1" {
			out = append(out, fail("forwarding", "sysctl -w net.ipv6.conf.all.forwarding=1 (berthd turns it on at start when a network has IPv6)",
				"IPv6 forwarding is off (net.ipv6.conf.all.forwarding=%s%s) while networks have IPv6: their containers' IPv6 traffic goes nowhere beyond them", v, errText(err)))
		}
	}
	for _, dev := range devices {
		if !dev.v4 {
			continue
		}
		if v, err := sysctl("net/ipv4/conf/" + dev.device + "/route_localnet"); v != "1" && !errors.Is(err, os.ErrNotExist) {
			out = append(out, warn("forwarding", fmt.Sprintf("sysctl -w net.ipv4.conf.%s.route_localnet=1 (berthd sets it at start)", dev.device),
				"%s (network %s) has route_localnet=%s%s: the host cannot reach the network's published ports through 127.0.0.1", dev.device, dev.network, v, errText(err)))
		}
	}
	if len(out) == 0 {
		msg := "IPv4 forwarding is on"
		if slices.ContainsFunc(nets, func(n network.Network) bool { return n.EnableIPv6 }) {
			msg += ", IPv6 forwarding too"
		}
		out = append(out, ok("forwarding", "%s; the host reaches published ports through 127.0.0.1 on every bridge", msg))
	}
	return out
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

// ---- br_netfilter

// brNetfilter is what br_netfilter does in the host's namespace.
type brNetfilter struct {
	loaded     bool
	iptables   bool // bridge-nf-call-iptables
	ip6tables  bool // bridge-nf-call-ip6tables
	readFailed error
}

func bridgeNetfilter() brNetfilter {
	v4, err := sysctl("net/bridge/bridge-nf-call-iptables")
	if errors.Is(err, os.ErrNotExist) {
		return brNetfilter{}
	}
	v6, _ := sysctl("net/bridge/bridge-nf-call-ip6tables")
	return brNetfilter{loaded: true, iptables: v4 == "1", ip6tables: v6 == "1", readFailed: err}
}

// on tells whether frames bridged between two containers pass the
// forward chains of a family's tables.
func (b brNetfilter) on(family string) bool {
	switch family {
	case "ip":
		return b.iptables
	case "ip6":
		return b.ip6tables
	case "inet":
		return b.iptables || b.ip6tables
	}
	return false
}

func (b brNetfilter) finding() api.Finding {
	switch {
	case b.readFailed != nil:
		return warn("br_netfilter", "", "cannot read bridge-nf-call-iptables: %v", b.readFailed)
	case !b.loaded:
		return ok("br_netfilter", "br_netfilter is not loaded: frames between containers of one bridge pass only bridge tables; berth needs nothing of it (its enable_icc=false isolation is in its bridge table)")
	case b.iptables || b.ip6tables:
		return ok("br_netfilter", "br_netfilter is loaded (bridge-nf-call-iptables=%s, bridge-nf-call-ip6tables=%s): frames between containers of one bridge also pass every ip, ip6 and inet table's forward chains, where berth's accepts them and another table's drop would stop them",
			onOff(b.iptables), onOff(b.ip6tables))
	}
	return ok("br_netfilter", "br_netfilter is loaded, with bridge-nf-call-iptables and -ip6tables off: frames between containers of one bridge pass only bridge tables; berth needs nothing of it")
}

func onOff(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// ---- other tables' forward chains

// checkForeignFirewalls finds other tables whose forward chains drop by
// policy what berth's bridges need through, and gives the rules that let
// it through. berth never edits another table: the host's administrator
// decides.
func (d *Daemon) checkForeignFirewalls(devices []firewallDevice, br brNetfilter) []api.Finding {
	chains, err := d.fw.ForeignForwardDrops()
	if err != nil {
		return []api.Finding{warn("firewall", "", "cannot read the host's other nftables tables: %v", err)}
	}
	var out []api.Finding
	for _, c := range chains {
		var missing []string
		var rules []string
		for _, dev := range devices {
			switch {
			case c.Family == "ip" && !dev.v4, c.Family == "ip6" && !dev.v6:
				continue
			case dev.internal && (c.Family == "bridge" || br.on(c.Family)):
				// Internal networks route nothing, but their frames
				// between containers pass here.
			case dev.internal:
				continue
			}
			in, outOK := c.Accepts(dev.device, false), c.Accepts(dev.device, true)
			if in && outOK {
				continue
			}
			missing = append(missing, dev.device)
			rules = append(rules, acceptRules(c, dev.device, !in, !outOK)...)
		}
		where := fmt.Sprintf("%s %s %s", c.Family, c.Table, c.Chain)
		if len(missing) == 0 {
			out = append(out, ok("firewall", "%s drops forwarded packets by policy, and accepts those of berth's bridges", where))
			continue
		}
		what := "containers' connections out of the host and published ports from other machines"
		if c.Family == "bridge" || br.on(c.Family) {
			what = "traffic between containers of one network, " + what
		}
		out = append(out, fail("firewall", strings.Join(rules, "; "),
			"%s drops forwarded packets by policy and does not accept those of %s: %s are dropped there whatever berth's table accepts (a drop in any table is final); the fix accepts them in that chain, and berth's own table still decides what reaches its bridges",
			where, strings.Join(missing, ", "), what))
	}
	if names, err := os.ReadFile("/proc/net/ip_tables_names"); err == nil && len(strings.TrimSpace(string(names))) > 0 {
		out = append(out, warn("firewall", "iptables-legacy -S FORWARD shows its policy; iptables-legacy -I FORWARD -i BRIDGE -j ACCEPT and -o BRIDGE -j ACCEPT let a bridge through",
			"legacy iptables tables are loaded (%s), which berth cannot read: if their FORWARD policy is DROP, containers' traffic through the host is dropped there",
			strings.Join(strings.Fields(string(names)), ", ")))
	}
	if len(out) == 0 {
		out = append(out, ok("firewall", "no other table drops forwarded packets by policy"))
	}
	return out
}

// acceptRules are the commands that make a foreign chain accept traffic
// in on and out on a bridge of berth's: iptables' into DOCKER-USER where
// the chain jumps to it, as Docker's FORWARD does (Docker leaves that
// chain to the administrator), nft rules at the head of the chain
// otherwise.
func acceptRules(c firewall.ForeignChain, device string, in, out bool) []string {
	var rules []string
	dirs := []struct {
		want         bool
		nft, iptable string
	}{
		{in, "iifname", "-i"},
		{out, "oifname", "-o"},
	}
	if c.Family == "bridge" {
		dirs[0].nft, dirs[1].nft = "meta ibrname", "meta obrname"
	}
	iptables := ""
	if c.Table == "filter" && slices.Contains(c.Jumps, "DOCKER-USER") {
		switch c.Family {
		case "ip":
			iptables = "iptables"
		case "ip6":
			iptables = "ip6tables"
		}
	}
	for _, dir := range dirs {
		if !dir.want {
			continue
		}
		if iptables != "" {
			rules = append(rules, fmt.Sprintf("%s -I DOCKER-USER %s %s -j ACCEPT", iptables, dir.iptable, device))
			continue
		}
		rules = append(rules, fmt.Sprintf("nft insert rule %s %s %s %s %q accept", c.Family, c.Table, c.Chain, dir.nft, device))
	}
	return rules
}

// ---- routes

// checkRoutes compares the subnets of berth's networks and the default
// address pools with the host's routes out of devices not berth's.
func (d *Daemon) checkRoutes(nets []network.Network, devices []firewallDevice) []api.Finding {
	routes, err := d.host.Routes()
	if err != nil {
		return []api.Finding{warn("routes", "", "cannot read the host's routes: %v", err)}
	}
	var foreign []netdev.Route
	for _, r := range routes {
		a := r.Dst.Addr()
		if r.Owned || a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsLoopback() ||
			slices.ContainsFunc(devices, func(dev firewallDevice) bool { return dev.device == r.Device }) {
			continue
		}
		foreign = append(foreign, r)
	}
	via := func(r netdev.Route) string {
		if r.Device == "" {
			return fmt.Sprintf("the host's route to %s", r.Dst)
		}
		return fmt.Sprintf("the host's route to %s via %s", r.Dst, r.Device)
	}
	var out []api.Finding
	for _, dev := range devices {
		i := slices.IndexFunc(nets, func(n network.Network) bool { return n.Name == dev.network })
		for _, p := range nets[i].IPAM.Pools {
			for _, r := range foreign {
				if p.Subnet.Masked().Overlaps(r.Dst) {
					fix := fmt.Sprintf("move the host's route (ip route del %s", r.Dst)
					if r.Device != "" {
						fix += " dev " + r.Device
					}
					fix += fmt.Sprintf(") or the network: berth network rm %s, then create it again on a free subnet", dev.network)
					out = append(out, fail("routes", fix, "network %s's subnet %s overlaps %s: the host sends some of the network's traffic the other way, and its containers cannot reach what lies behind that route",
						dev.network, p.Subnet.Masked(), via(r)))
				}
			}
		}
	}
	pools := d.cfg.Pools
	if len(pools) == 0 {
		pools = ipam.DefaultLocalPools()
	}
	for _, p := range pools {
		for _, r := range foreign {
			if !p.Base.Overlaps(r.Dst) {
				continue
			}
			effect := "new networks skip the subnets it covers"
			if r.Dst.Bits() <= p.Base.Bits() {
				effect = "the pool is of no use: every subnet of it overlaps"
			}
			out = append(out, warn("routes", "none needed; --default-address-pool gives berthd pools clear of the host's routes",
				"default address pool %s overlaps %s: %s", p, via(r), effect))
		}
	}
	if len(out) == 0 {
		out = append(out, ok("routes", "no subnet of berth's networks and no default address pool overlaps any of the host's other routes (%d)", len(foreign)))
	}
	return out
}

// ---- berth's own state against the kernel

// settle runs a check of berth's state against the kernel up to three
// times, settleGap apart, and keeps the problems every run found: an
// operation under way during one run (a network's device made before the
// network is recorded) is over by the next, and one that follows it is
// about another object.
func settle(check func() []api.Finding) []api.Finding {
	first := check()
	for range 2 {
		if !slices.ContainsFunc(first, func(f api.Finding) bool { return f.Status != api.StatusOK }) {
			break
		}
		time.Sleep(settleGap)
		again := check()
		var kept []api.Finding
		for _, f := range first {
			if f.Status == api.StatusOK || slices.Contains(again, f) {
				kept = append(kept, f)
			}
		}
		first = kept
	}
	return first
}

// settleGap is far longer than an operation takes (a network's create, a
// join: milliseconds), and short enough for a report to wait for twice.
const settleGap = 100 * time.Millisecond

const restartFix = "restart berthd: its start makes the kernel match its store again"

func (d *Daemon) checkState() []api.Finding {
	var out []api.Finding
	out = append(out, d.checkDevices()...)
	out = append(out, d.checkNamespaces()...)
	out = append(out, d.checkSandboxes()...)
	return append(out, d.checkTables()...)
}

func (d *Daemon) checkDevices() []api.Finding {
	owned := d.ctrl.Owned()
	links, err := d.host.Links.Links(func(uint32) bool { return true })
	if err != nil {
		return []api.Finding{warn("devices", "", "cannot list the host's devices: %v", err)}
	}
	var out []api.Finding
	byName := map[string]netdev.Link{}
	for _, l := range links {
		byName[l.Name] = l
		if _, wanted := owned.Devices[l.Name]; l.Group == d.host.Owned && !wanted {
			out = append(out, warn("devices", fmt.Sprintf("berthd removes it at its next start, or: ip link delete %s", l.Name),
				"%s (%s) is berth's (link group %#x) but no network or endpoint of its state wants it: left from a crash or removed from the store", l.Name, l.Kind, l.Group))
		}
	}
	names := make([]string, 0, len(owned.Devices))
	for name := range owned.Devices {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		want := owned.Devices[name]
		l, ok := byName[name]
		switch {
		case !ok:
			out = append(out, fail("devices", restartFix, "%s, %s's device, is missing", name, want.Who))
		case want.Master != "" && l.Group != d.host.Owned:
			out = append(out, fail("devices", restartFix, "%s, %s's device, is not berth's (link group %#x)", name, want.Who, l.Group))
		case want.Master != "" && l.Master != byName[want.Master].Index:
			out = append(out, fail("devices", restartFix, "%s, %s's device, is not a port of %s", name, want.Who, want.Master))
		case !l.Up:
			out = append(out, fail("devices", restartFix, "%s, %s's device, is down", name, want.Who))
		}
	}
	if len(out) == 0 {
		out = append(out, ok("devices", "the %d devices berth's networks and endpoints want are there and up, and berth has no others", len(owned.Devices)))
	}
	return out
}

func (d *Daemon) checkNamespaces() []api.Finding {
	owned := d.ctrl.Owned()
	entries, err := os.ReadDir(owned.NamespaceDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return []api.Finding{warn("namespaces", "", "cannot list %s: %v", owned.NamespaceDir, err)}
	}
	var out []api.Finding
	for _, e := range entries {
		if owned.Namespaces[e.Name()] {
			continue
		}
		path := filepath.Join(owned.NamespaceDir, e.Name())
		out = append(out, warn("namespaces", fmt.Sprintf("berthd removes it at its next start, or: umount %s && rm %s", path, path),
			"%s is a namespace mount of berth's that belongs to no sandbox: left from a crash", path))
	}
	if len(out) == 0 {
		out = append(out, ok("namespaces", "every namespace berth mounted in %s belongs to a sandbox (%d)", owned.NamespaceDir, len(owned.Namespaces)))
	}
	return out
}

func (d *Daemon) checkSandboxes() []api.Finding {
	var out []api.Finding
	for _, p := range d.ctrl.CheckSandboxes() {
		out = append(out, fail("sandboxes", restartFix+" (it wires again endpoints whose interface is gone)", "%s: %s", p.Sandbox, p.Problem))
	}
	if len(out) == 0 {
		out = append(out, ok("sandboxes", "every sandbox's namespace has its interfaces, up, with their addresses"))
	}
	return out
}

func (d *Daemon) checkTables() []api.Finding {
	model := d.ctrl.FirewallModel(d.fw.Table())
	drift, err := d.fw.Compare(model)
	if err != nil {
		return []api.Finding{warn("tables", "", "cannot read berth's tables: %v", err)}
	}
	fix := "restart berthd: its start writes its tables afresh from its store, in one transaction"
	var out []api.Finding
	for _, t := range drift.Gone {
		out = append(out, fail("tables", fix, "table %s is gone, and with it what berth's rules there do", t))
	}
	for _, e := range drift.Missing {
		out = append(out, fail("tables", fix, "%s is missing: berth's state has it", e))
	}
	for _, e := range drift.Extra {
		out = append(out, fail("tables", fix, "%s is stale: nothing of berth's state has it", e))
	}
	if len(out) == 0 {
		t := d.fw.Table()
		out = append(out, ok("tables", "inet %s and bridge %s hold what berth's state asks for: %d networks, %d published ports, %d guarded ports",
			t, t, len(model.Networks), len(model.Bindings), len(model.Guards)))
	}
	return out
}
