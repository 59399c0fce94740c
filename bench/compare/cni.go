package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/vishvananda/netlink"
)

// The ports both plugin-driven engines (cni, netavark) publish: the ports
// workload's mappings count up from publishedPortBase, each to the
// container's port 80; the throughput workload's mapping uses
// throughputHostPort.
const (
	publishedPortBase  = 20000
	publishedToPort    = 80
	throughputHostPort = 18080
)

// What a runtime gives the CNI plugins and where it keeps their state. The
// plugins are Debian's containernetworking-plugins; the chain is the one
// containerd and nerdctl configure for a bridge network.
const (
	cniPluginDir   = "/usr/lib/cni"
	cniPackage     = "containernetworking-plugins"
	cniSpecVersion = "1.0.0" // the newest the 1.1.1 plugins accept
	cniNetworkName = "bench"
	cniBridge      = "cni-bench0"
	cniIfName      = "eth0"
	// cniTimeout bounds one ADD or DEL; publishing a thousand ports in one
	// ADD runs some thousands of iptables commands.
	cniTimeout = 5 * time.Minute
)

// cniSubnet holds every endpoint of the largest workload, like the /16
// containerd's example configuration uses.
var cniSubnet = netip.MustParsePrefix("10.88.0.0/16")

// cniEngine drives the CNI reference plugins as a container runtime does:
// libcni runs the plugin chain of one network configuration list (bridge
// with host-local IPAM, portmap, firewall) for ADD and DEL of each sandbox
// namespace. CNI has no daemon, no network object and no resolver: a
// network is a configuration, whose bridge appears at the first ADD and
// stays.
type cniEngine struct {
	env     *Env
	cni     *libcni.CNIConfig
	network *libcni.NetworkConfigList
	version string
	// attached are the sandboxes whose ADD has run and DEL not yet: Stop
	// deletes them.
	attached map[*cniSandbox]bool
	// made counts the namespaces made, to name each one anew.
	made int
}

// A cniSandbox is a network namespace as a runtime hands it to the
// plugins, with the port mappings it asks for.
type cniSandbox struct {
	ns    string
	ports []cniPortMapping
	// id is the container ID of the last ADD: a runtime makes one per
	// container, so every ADD gets a new one.
	id   string
	addr netip.Addr // eth0's address from the last ADD
}

// cniPortMapping is one entry of the portMappings capability, as
// runtimes pass it to the portmap plugin.
type cniPortMapping struct {
	HostPort      uint16 `json:"hostPort"`
	ContainerPort uint16 `json:"containerPort"`
	Protocol      string `json:"protocol"`
}

func (e *cniEngine) Name() string { return "cni" }

func (e *cniEngine) Version() string { return e.version }

func (e *cniEngine) Start(env *Env) error {
	e.env = env
	e.attached = map[*cniSandbox]bool{}
	if err := lookPath("iptables", "iptables-save", "iptables-restore"); err != nil {
		return err
	}
	conf, err := cniConfList(cniNetworkName, cniBridge, cniSubnet, filepath.Join(env.Dir, "cni-ipam"))
	if err != nil {
		return err
	}
	if e.network, err = libcni.ConfListFromBytes(conf); err != nil {
		return fmt.Errorf("parse the CNI configuration: %w", err)
	}
	// The cache (the results DEL needs) stays under Dir rather than in
	// the machine's /var/lib/cni.
	e.cni = libcni.NewCNIConfigWithCacheDir([]string{cniPluginDir}, filepath.Join(env.Dir, "cni-cache"), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Validation runs every plugin of the chain with VERSION: it fails
	// when one is missing or does not speak cniSpecVersion.
	if _, err := e.cni.ValidateNetworkList(ctx, e.network); err != nil {
		return fmt.Errorf("CNI plugins in %s (package %s): %w", cniPluginDir, cniPackage, err)
	}
	e.version = fmt.Sprintf("plugins %s (libcni %s, spec %s)", packageVersion(cniPackage),
		moduleVersion("github.com/containernetworking/cni"), cniSpecVersion)
	return nil
}

// Stop deletes the sandboxes still attached, then what the plugins leave
// behind even after the last DEL: the bridge and the iptables chains.
func (e *cniEngine) Stop() error {
	if e.env == nil {
		return nil
	}
	var errs []error
	for s := range e.attached {
		errs = append(errs, e.remove(s))
	}
	errs = append(errs, deleteLink(cniBridge), removeChains("CNI-"))
	for _, dir := range []string{"cni-ipam", "cni-cache"} {
		errs = append(errs, os.RemoveAll(filepath.Join(e.env.Dir, dir)))
	}
	return errors.Join(errs...)
}

// cniConfList is the network configuration list a runtime would read from
// /etc/cni/net.d: a bridge acting as the containers' gateway, masquerading
// their traffic out and sending it back to its sender (hairpin), with
// addresses from host-local keeping its leases in dataDir; then portmap
// for published ports (with SNAT, so that connections to 127.0.0.1 reach
// the container) and firewall with its iptables backend, which needs no
// firewalld.
func cniConfList(name, bridge string, subnet netip.Prefix, dataDir string) ([]byte, error) {
	type obj = map[string]any
	return json.Marshal(obj{
		"cniVersion": cniSpecVersion,
		"name":       name,
		"plugins": []obj{
			{
				"type":        "bridge",
				"bridge":      bridge,
				"isGateway":   true,
				"ipMasq":      true,
				"hairpinMode": true,
				"ipam": obj{
					"type":    "host-local",
					"ranges":  [][]obj{{{"subnet": subnet.String()}}},
					"routes":  []obj{{"dst": "0.0.0.0/0"}},
					"dataDir": dataDir,
				},
			},
			{"type": "portmap", "capabilities": obj{"portMappings": true}, "snat": true},
			{"type": "firewall", "backend": "iptables"},
		},
	})
}

// newSandbox makes a namespace for a sandbox with these port mappings.
func (e *cniEngine) newSandbox(ports []cniPortMapping) (*cniSandbox, error) {
	e.made++
	ns, err := e.env.NewNamespace(fmt.Sprintf("cni-%d", e.made))
	if err != nil {
		return nil, err
	}
	return &cniSandbox{ns: ns, ports: ports}, nil
}

func (e *cniEngine) runtimeConf(s *cniSandbox) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: s.id, NetNS: s.ns, IfName: cniIfName}
	if len(s.ports) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": s.ports}
	}
	return rt
}

// add runs ADD for the sandbox under a new container ID. A failed ADD is
// followed by a DEL, as the CNI specification asks of runtimes, so that
// nothing of it stays.
func (e *cniEngine) add(s *cniSandbox) error {
	s.id = newContainerID()
	ctx, cancel := context.WithTimeout(context.Background(), cniTimeout)
	defer cancel()
	e.attached[s] = true
	res, err := e.cni.AddNetworkList(ctx, e.network, e.runtimeConf(s))
	if err == nil {
		s.addr, err = cniAddress(res)
	}
	if err != nil {
		return errors.Join(fmt.Errorf("CNI ADD %s: %w", s.ns, err), e.del(s))
	}
	return nil
}

func (e *cniEngine) del(s *cniSandbox) error {
	ctx, cancel := context.WithTimeout(context.Background(), cniTimeout)
	defer cancel()
	if err := e.cni.DelNetworkList(ctx, e.network, e.runtimeConf(s)); err != nil {
		return fmt.Errorf("CNI DEL %s: %w", s.ns, err)
	}
	delete(e.attached, s)
	return nil
}

// remove deletes sandboxes: DEL for those attached, then their
// namespaces. It goes on past errors so that it removes all it can.
func (e *cniEngine) remove(sandboxes ...*cniSandbox) error {
	var errs []error
	for _, s := range sandboxes {
		if e.attached[s] {
			errs = append(errs, e.del(s))
		}
		errs = append(errs, e.env.DeleteNamespace(s.ns))
	}
	return errors.Join(errs...)
}

// attachNew makes a sandbox and adds it; on failure nothing of it stays.
func (e *cniEngine) attachNew(ports []cniPortMapping) (*cniSandbox, error) {
	s, err := e.newSandbox(ports)
	if err != nil {
		return nil, err
	}
	if err := e.add(s); err != nil {
		return nil, errors.Join(err, e.remove(s))
	}
	return s, nil
}

// cniAddress is the IPv4 address an ADD gave the sandbox.
func cniAddress(res cnitypes.Result) (netip.Addr, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("read the CNI result: %w", err)
	}
	for _, ip := range r.IPs {
		if a, ok := netip.AddrFromSlice(ip.Address.IP.To4()); ok {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("CNI result without an IPv4 address: %v", r.IPs)
}

// PrepareAttach adds existing sandboxes; each round adds one more and
// deletes it again.
func (e *cniEngine) PrepareAttach(existing int) (Round, Cleanup, error) {
	var made []*cniSandbox
	cleanup := func() error { return e.remove(made...) }
	for range existing {
		s, err := e.attachNew(nil)
		if err != nil {
			return nil, nil, errors.Join(err, cleanup())
		}
		made = append(made, s)
	}
	fresh, err := e.newSandbox(nil)
	if err != nil {
		return nil, nil, errors.Join(err, cleanup())
	}
	made = append(made, fresh)
	round := func() (time.Duration, error) {
		start := time.Now()
		if err := e.add(fresh); err != nil {
			return 0, err
		}
		if err := e.del(fresh); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	return round, cleanup, nil
}

// PreparePorts adds one sandbox holding all existing mappings (one ADD, as
// a runtime does for a container publishing that many ports; with none it
// still keeps the bridge busy, as a running container would); each round
// adds a fresh sandbox publishing the next port.
func (e *cniEngine) PreparePorts(existing int) (PortRound, Cleanup, error) {
	var made []*cniSandbox
	cleanup := func() error { return e.remove(made...) }
	holder, err := e.attachNew(cniPorts(publishedPortBase, existing))
	if err != nil {
		return nil, nil, err
	}
	made = append(made, holder)
	fresh, err := e.newSandbox(cniPorts(publishedPortBase+existing, 1))
	if err != nil {
		return nil, nil, errors.Join(err, cleanup())
	}
	made = append(made, fresh)
	round := func() (time.Duration, func() error, error) {
		start := time.Now()
		if err := e.add(fresh); err != nil {
			return 0, nil, err
		}
		return time.Since(start), func() error { return e.del(fresh) }, nil
	}
	return round, cleanup, nil
}

// cniPorts maps n host ports from first on, each to the container's port
// 80.
func cniPorts(first, n int) []cniPortMapping {
	ports := make([]cniPortMapping, n)
	for i := range ports {
		ports[i] = cniPortMapping{HostPort: uint16(first + i), ContainerPort: publishedToPort, Protocol: "tcp"}
	}
	return ports
}

// RestartRound: nothing of CNI runs between ADDs, so nothing rebuilds
// rules that are lost.
func (e *cniEngine) RestartRound() (Round, error) {
	return nil, NotApplicable{Why: "cni has no daemon; nothing rebuilds lost rules"}
}

func (e *cniEngine) PrepareThroughput(containerPort uint16) (ThroughputTarget, Cleanup, error) {
	s, err := e.attachNew([]cniPortMapping{{HostPort: throughputHostPort, ContainerPort: containerPort, Protocol: "tcp"}})
	if err != nil {
		return ThroughputTarget{}, nil, err
	}
	target := ThroughputTarget{NS: s.ns, Addr: s.addr, ContainerPort: containerPort, HostPort: throughputHostPort}
	return target, func() error { return e.remove(s) }, nil
}

// newContainerID is a container ID as runtimes make them: 64 random hex
// digits.
func newContainerID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// packageVersion is the version of an installed Debian package, or
// "unknown".
func packageVersion(pkg string) string {
	out, err := Output(context.Background(), "", "dpkg-query", "-W", "-f", "${Version}", pkg)
	if err != nil || strings.TrimSpace(out) == "" {
		return "unknown"
	}
	return strings.TrimSpace(out)
}

// moduleVersion is the version of a Go module built into this binary.
func moduleVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == path {
				return m.Version
			}
		}
	}
	return "unknown"
}

// deleteLink deletes a link of the test host's; one already gone is fine.
func deleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return err
	}
	return netlink.LinkDel(l)
}

// removeChains deletes the test host's iptables chains whose names start
// with one of the prefixes, and the rules that jump to them: what plugins
// leave behind when their last container is gone. Each table is written
// back whole by iptables-restore, so other rules stay as they were.
func removeChains(prefixes ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, table := range []string{"nat", "filter"} {
		save, err := Output(ctx, "", "iptables-save", "-t", table)
		if err != nil {
			return err
		}
		kept, changed := withoutChains(save, prefixes)
		if !changed {
			continue
		}
		restore := exec.CommandContext(ctx, "iptables-restore", "-w")
		restore.Stdin = strings.NewReader(kept)
		var stderr bytes.Buffer
		restore.Stderr = &stderr
		if err := restore.Run(); err != nil {
			return fmt.Errorf("iptables-restore of the %s table: %w: %s", table, err, strings.TrimSpace(stderr.String()))
		}
	}
	return nil
}

// withoutChains drops from an iptables-save listing the chains whose names
// start with one of the prefixes, their rules and the rules jumping to
// them, and says whether it dropped anything.
func withoutChains(save string, prefixes []string) (string, bool) {
	ours := func(chain string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(chain, p) {
				return true
			}
		}
		return false
	}
	var kept strings.Builder
	changed := false
	for line := range strings.SplitAfterSeq(save, "\n") {
		f := strings.Fields(line)
		drop := false
		switch {
		case len(f) > 0 && strings.HasPrefix(f[0], ":"):
			drop = ours(f[0][1:])
		case len(f) > 1 && f[0] == "-A":
			drop = ours(f[1])
			for i := 2; i+1 < len(f) && !drop; i++ {
				drop = (f[i] == "-j" || f[i] == "-g") && ours(f[i+1])
			}
		}
		if drop {
			changed = true
			continue
		}
		kept.WriteString(line)
	}
	return kept.String(), changed
}
