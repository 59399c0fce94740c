package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// Where Debian's netavark and aardvark-dns packages put their binaries,
// which Podman runs from there.
const (
	netavarkBinary = "/usr/lib/podman/netavark"
	aardvarkBinary = "/usr/lib/podman/aardvark-dns"
	// netavarkTimeout bounds one setup or teardown; publishing a thousand
	// ports runs some thousands of iptables commands.
	netavarkTimeout = 5 * time.Minute
)

// netavarkEngine drives netavark as Podman 4.3 does: Podman keeps the
// networks (JSON definitions of its own) and hands out the containers'
// addresses itself; for each container it runs `netavark setup` on the
// container's namespace and `netavark teardown` when it stops, with the
// container's options and its networks' definitions on standard input.
// netavark makes a network's bridge and firewall chains at the first setup
// on it and removes them at the last teardown, and starts aardvark-dns,
// which serves names on every network with DNS and exits when no such
// network has containers.
//
// netavark 1.4 has no create command: a network exists only as Podman's
// JSON, so the engine has no Creator.
type netavarkEngine struct {
	env *Env
	// configDir is netavark's --config, where it keeps aardvark-dns's
	// configuration and pid file (Podman's is a tmpfs under /run).
	configDir string
	version   string
	// plain is a network without name resolution, like Podman's default
	// network; named is one with DNS, like every network `podman network
	// create` makes.
	plain, named *podmanNetwork
	// running are the containers set up and not torn down: Stop tears
	// them down.
	running map[*netavarkContainer]bool
	// made counts the namespaces made, to name each one anew.
	made int
}

// podmanNetwork is a bridge network as Podman stores it and passes it to
// netavark in network_info (field names as netavark 1.4 reads them), with
// the address pool Podman's IPAM keeps beside it.
type podmanNetwork struct {
	Name             string            `json:"name"`
	ID               string            `json:"id"`
	Driver           string            `json:"driver"`
	NetworkInterface string            `json:"network_interface"`
	Created          time.Time         `json:"created"`
	Subnets          []podmanSubnet    `json:"subnets"`
	IPv6Enabled      bool              `json:"ipv6_enabled"`
	Internal         bool              `json:"internal"`
	DNSEnabled       bool              `json:"dns_enabled"`
	IPAMOptions      map[string]string `json:"ipam_options"`

	pool *addressPool
}

type podmanSubnet struct {
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
}

// newPodmanNetwork defines a network as `podman network create` would,
// with the gateway at the subnet's first address.
func newPodmanNetwork(name, bridge string, subnet netip.Prefix, dnsEnabled bool) *podmanNetwork {
	gw := subnet.Masked().Addr().Next()
	return &podmanNetwork{
		Name:             name,
		ID:               newContainerID(),
		Driver:           "bridge",
		NetworkInterface: bridge,
		Created:          time.Now(),
		Subnets:          []podmanSubnet{{Subnet: subnet, Gateway: gw}},
		DNSEnabled:       dnsEnabled,
		IPAMOptions:      map[string]string{"driver": "host-local"},
		pool:             newAddressPool(subnet, gw),
	}
}

func (n *podmanNetwork) gateway() netip.Addr { return n.Subnets[0].Gateway }

// A netavarkContainer is a container's namespace on one network, with
// what Podman passes netavark about it.
type netavarkContainer struct {
	id, name string
	ns       string
	network  *podmanNetwork
	addr     netip.Addr // from the network's pool while set up
	ports    []netavarkPortMapping
}

// netavarkPortMapping is a published port as netavark reads it; netavark
// wants every field.
type netavarkPortMapping struct {
	HostIP        string `json:"host_ip"`
	ContainerPort uint16 `json:"container_port"`
	HostPort      uint16 `json:"host_port"`
	Range         uint16 `json:"range"`
	Protocol      string `json:"protocol"`
}

// netavarkOptions is what netavark reads on standard input for setup and
// teardown.
type netavarkOptions struct {
	ContainerID   string                        `json:"container_id"`
	ContainerName string                        `json:"container_name"`
	Networks      map[string]netavarkPerNetwork `json:"networks"`
	NetworkInfo   map[string]*podmanNetwork     `json:"network_info"`
	PortMappings  []netavarkPortMapping         `json:"port_mappings,omitempty"`
}

type netavarkPerNetwork struct {
	InterfaceName string       `json:"interface_name"`
	StaticIPs     []netip.Addr `json:"static_ips"`
	Aliases       []string     `json:"aliases,omitempty"`
}

// options are the container's options for netavark. Like Podman 4, it
// gives the container its short ID as an alias, which name resolution
// serves beside its name.
func (c *netavarkContainer) options() netavarkOptions {
	return netavarkOptions{
		ContainerID:   c.id,
		ContainerName: c.name,
		Networks: map[string]netavarkPerNetwork{c.network.Name: {
			InterfaceName: "eth0",
			StaticIPs:     []netip.Addr{c.addr},
			Aliases:       []string{c.id[:12]},
		}},
		NetworkInfo:  map[string]*podmanNetwork{c.network.Name: c.network},
		PortMappings: c.ports,
	}
}

func (e *netavarkEngine) Name() string { return "netavark" }

func (e *netavarkEngine) Version() string { return e.version }

func (e *netavarkEngine) Start(env *Env) error {
	e.env = env
	e.configDir = filepath.Join(env.Dir, "netavark")
	e.running = map[*netavarkContainer]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var versions []string
	for _, p := range []struct{ bin, pkg string }{{netavarkBinary, "netavark"}, {aardvarkBinary, "aardvark-dns"}} {
		if _, err := os.Stat(p.bin); err != nil {
			return fmt.Errorf("%w (install the %s package)", err, p.pkg)
		}
		out, err := Output(ctx, "", p.bin, "--version")
		if err != nil {
			return err
		}
		v, err := programVersion(out, filepath.Base(p.bin))
		if err != nil {
			return err
		}
		versions = append(versions, filepath.Base(p.bin)+" "+v)
	}
	e.version = strings.Join(versions, ", ")
	if err := lookPath("iptables", "iptables-save", "iptables-restore"); err != nil {
		return err
	}
	if err := os.MkdirAll(e.configDir, 0o755); err != nil {
		return err
	}
	// Podman's default network and the first it creates, with /16
	// subnets (Podman would make a /24 for the second) to hold the
	// largest workload.
	e.plain = newPodmanNetwork("podman", "podman0", netip.MustParsePrefix("10.88.0.0/16"), false)
	e.named = newPodmanNetwork("bench", "podman1", netip.MustParsePrefix("10.89.0.0/16"), true)
	return nil
}

// Stop tears down the containers still set up, ends aardvark-dns if it
// still runs (it exits by itself after the last teardown on a network with
// DNS) and removes what netavark leaves behind even after the last
// teardown: its top-level iptables chains.
func (e *netavarkEngine) Stop() error {
	if e.env == nil {
		return nil
	}
	var errs []error
	for c := range e.running {
		errs = append(errs, e.remove(c))
	}
	if pid, ok := e.aardvarkPID(); ok {
		errs = append(errs, stopProcess(pid, 5*time.Second))
	}
	for _, n := range []*podmanNetwork{e.plain, e.named} {
		if n != nil {
			errs = append(errs, deleteLink(n.NetworkInterface))
		}
	}
	errs = append(errs, removeChains("NETAVARK"), os.RemoveAll(e.configDir))
	return errors.Join(errs...)
}

// programVersion reads the version from a program's --version output,
// "<program> <version>".
func programVersion(out, program string) (string, error) {
	f := strings.Fields(out)
	if len(f) < 2 || f[0] != program {
		return "", fmt.Errorf("%s --version said %q", program, strings.TrimSpace(out))
	}
	return f[1], nil
}

// newContainer makes a namespace for a container on a network.
func (e *netavarkEngine) newContainer(name string, network *podmanNetwork, ports []netavarkPortMapping) (*netavarkContainer, error) {
	e.made++
	ns, err := e.env.NewNamespace(fmt.Sprintf("netavark-%d", e.made))
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = fmt.Sprintf("c%d", e.made)
	}
	return &netavarkContainer{name: name, ns: ns, network: network, ports: ports}, nil
}

// setup gives the container a new ID and an address, as Podman does when
// a container starts, and runs netavark setup. A failed setup undoes
// itself in netavark; the address goes back to the pool.
func (e *netavarkEngine) setup(c *netavarkContainer) error {
	c.id = newContainerID()
	addr, err := c.network.pool.allocate()
	if err != nil {
		return fmt.Errorf("address for %s on %s: %w", c.name, c.network.Name, err)
	}
	c.addr = addr
	out, err := e.run("setup", c)
	if err == nil {
		err = checkSetupResult(out, c.network.Name, c.addr)
	}
	if err != nil {
		c.network.pool.release(c.addr)
		return fmt.Errorf("set up %s: %w", c.name, err)
	}
	e.running[c] = true
	return nil
}

// teardown runs netavark teardown and gives the address back.
func (e *netavarkEngine) teardown(c *netavarkContainer) error {
	if _, err := e.run("teardown", c); err != nil {
		return fmt.Errorf("tear down %s: %w", c.name, err)
	}
	c.network.pool.release(c.addr)
	delete(e.running, c)
	return nil
}

// run runs a netavark command for a container as Podman does: options on
// standard input, the result (or an error object) on standard output.
func (e *netavarkEngine) run(command string, c *netavarkContainer) ([]byte, error) {
	opts, err := json.Marshal(c.options())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), netavarkTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, netavarkBinary, "--config", e.configDir, "--rootless=false",
		"--aardvark-binary="+aardvarkBinary, command, c.ns)
	cmd.Stdin = bytes.NewReader(opts)
	// Podman's default log level.
	cmd.Env = append(os.Environ(), "RUST_LOG=netavark=warn")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var failure struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(out, &failure) == nil && failure.Error != "" {
			return nil, fmt.Errorf("netavark %s: %s", command, failure.Error)
		}
		return nil, fmt.Errorf("netavark %s: %w: %s", command, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// checkSetupResult checks netavark's answer to a setup: the status of the
// one network, whose eth0 has the address given.
func checkSetupResult(out []byte, network string, want netip.Addr) error {
	var status map[string]struct {
		Interfaces map[string]struct {
			Subnets []struct {
				IPNet netip.Prefix `json:"ipnet"`
			} `json:"subnets"`
		} `json:"interfaces"`
	}
	if err := json.Unmarshal(out, &status); err != nil {
		return fmt.Errorf("read netavark's result: %w", err)
	}
	if len(status) != 1 {
		return fmt.Errorf("netavark's result has %d networks, want 1: %s", len(status), out)
	}
	for _, s := range status[network].Interfaces["eth0"].Subnets {
		if s.IPNet.Addr() == want {
			return nil
		}
	}
	return fmt.Errorf("netavark's result for %s has no eth0 with %s: %s", network, want, out)
}

// remove tears a container down if it is set up and deletes its
// namespace, going on past errors so that it removes all it can.
func (e *netavarkEngine) remove(containers ...*netavarkContainer) error {
	var errs []error
	for _, c := range containers {
		if e.running[c] {
			errs = append(errs, e.teardown(c))
		}
		errs = append(errs, e.env.DeleteNamespace(c.ns))
	}
	return errors.Join(errs...)
}

// startNew makes a container and sets it up; on failure nothing of it
// stays.
func (e *netavarkEngine) startNew(name string, network *podmanNetwork, ports []netavarkPortMapping) (*netavarkContainer, error) {
	c, err := e.newContainer(name, network, ports)
	if err != nil {
		return nil, err
	}
	if err := e.setup(c); err != nil {
		return nil, errors.Join(err, e.remove(c))
	}
	return c, nil
}

// startMany starts n containers on a network; on failure it removes those
// it started.
func (e *netavarkEngine) startMany(n int, network *podmanNetwork) ([]*netavarkContainer, error) {
	var made []*netavarkContainer
	for range n {
		c, err := e.startNew("", network, nil)
		if err != nil {
			return nil, errors.Join(err, e.remove(made...))
		}
		made = append(made, c)
	}
	return made, nil
}

// PrepareAttach starts existing containers on the network without DNS;
// each round sets up one more and tears it down.
func (e *netavarkEngine) PrepareAttach(existing int) (Round, Cleanup, error) {
	made, err := e.startMany(existing, e.plain)
	if err != nil {
		return nil, nil, err
	}
	fresh, err := e.newContainer("", e.plain, nil)
	if err != nil {
		return nil, nil, errors.Join(err, e.remove(made...))
	}
	made = append(made, fresh)
	round := func() (time.Duration, error) {
		start := time.Now()
		if err := e.setup(fresh); err != nil {
			return 0, err
		}
		if err := e.teardown(fresh); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	return round, func() error { return e.remove(made...) }, nil
}

// PreparePorts starts one container publishing all existing ports (each
// its own mapping: a range would make them one rule, which is not what the
// workload measures; with none it still keeps the bridge up, as a running
// container would); each round sets up a fresh container publishing the
// next port.
func (e *netavarkEngine) PreparePorts(existing int) (PortRound, Cleanup, error) {
	holder, err := e.startNew("", e.plain, netavarkPorts(publishedPortBase, existing))
	if err != nil {
		return nil, nil, err
	}
	fresh, err := e.newContainer("", e.plain, netavarkPorts(publishedPortBase+existing, 1))
	if err != nil {
		return nil, nil, errors.Join(err, e.remove(holder))
	}
	round := func() (time.Duration, func() error, error) {
		start := time.Now()
		if err := e.setup(fresh); err != nil {
			return 0, nil, err
		}
		return time.Since(start), func() error { return e.teardown(fresh) }, nil
	}
	return round, func() error { return e.remove(holder, fresh) }, nil
}

// netavarkPorts maps n host ports from first on, each to the container's
// port 80.
func netavarkPorts(first, n int) []netavarkPortMapping {
	ports := make([]netavarkPortMapping, n)
	for i := range ports {
		ports[i] = netavarkPortMapping{ContainerPort: publishedToPort, HostPort: uint16(first + i), Range: 1, Protocol: "tcp"}
	}
	return ports
}

// RestartRound: netavark runs only while it sets up or tears down; rules
// lost in between stay lost until `podman network reload` runs setup again
// for every container.
func (e *netavarkEngine) RestartRound() (Round, error) {
	return nil, NotApplicable{Why: "netavark has no daemon; nothing rebuilds lost rules"}
}

func (e *netavarkEngine) PrepareThroughput(containerPort uint16) (ThroughputTarget, Cleanup, error) {
	ports := []netavarkPortMapping{{ContainerPort: containerPort, HostPort: throughputHostPort, Range: 1, Protocol: "tcp"}}
	c, err := e.startNew("", e.plain, ports)
	if err != nil {
		return ThroughputTarget{}, nil, err
	}
	target := ThroughputTarget{NS: c.ns, Addr: c.addr, ContainerPort: containerPort, HostPort: throughputHostPort}
	return target, func() error { return e.remove(c) }, nil
}

// PrepareDNS starts two containers on the network with DNS and waits until
// aardvark-dns, listening on the network's gateway, answers for the target
// and for the upstream's name.
func (e *netavarkEngine) PrepareDNS() (DNSTarget, Cleanup, error) {
	target, err := e.startNew("dns-target", e.named, nil)
	if err != nil {
		return DNSTarget{}, nil, err
	}
	client, err := e.startNew("dns-client", e.named, nil)
	if err != nil {
		return DNSTarget{}, nil, errors.Join(err, e.remove(target))
	}
	cleanup := func() error { return e.remove(client, target) }
	t := DNSTarget{
		ClientNS:  client.ns,
		Server:    netip.AddrPortFrom(e.named.gateway(), 53),
		LocalName: target.name,
		LocalAddr: target.addr,
	}
	for _, q := range []struct{ name, want string }{{t.LocalName, t.LocalAddr.String()}, {upstreamName, upstreamA}} {
		if err := waitForAnswer(t.ClientNS, t.Server, q.name, q.want, 10*time.Second); err != nil {
			return DNSTarget{}, nil, errors.Join(err, cleanup())
		}
	}
	pid, ok := e.aardvarkPID()
	if !ok {
		return DNSTarget{}, nil, errors.Join(errors.New("aardvark-dns answers but its pid file names no aardvark-dns process"), cleanup())
	}
	t.Resolver = []int{pid}
	return t, cleanup, nil
}

// waitForAnswer asks server from the namespace ns for name's A record
// until the answer holds want, for at most timeout: aardvark-dns binds its
// sockets only after netavark setup has returned, and binds them anew
// after every setup.
func waitForAnswer(ns string, server netip.AddrPort, name, want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := inNamespace(ns, func() error {
			c := &dns.Client{Timeout: 200 * time.Millisecond}
			m := new(dns.Msg)
			m.SetQuestion(dns.Fqdn(name), dns.TypeA)
			in, _, err := c.Exchange(m, server.String())
			if err != nil {
				return err
			}
			for _, rr := range in.Answer {
				if a, ok := rr.(*dns.A); ok && a.A.String() == want {
					return nil
				}
			}
			return fmt.Errorf("answer %v, want %s", in.Answer, want)
		})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer %s with %s within %s: %w", server, name, want, timeout, err)
		}
		// A closed port answers at once; wait a little before asking again.
		time.Sleep(10 * time.Millisecond)
	}
}

// PIDs is aardvark-dns, when it runs: it does only while a network with
// DNS has containers.
func (e *netavarkEngine) PIDs() ([]int, error) {
	if pid, ok := e.aardvarkPID(); ok {
		return []int{pid}, nil
	}
	return nil, NotApplicable{Why: "nothing runs: aardvark-dns starts with the first container on a network with DNS"}
}

// AddContainers starts n containers on the network with DNS, so that
// aardvark-dns holds n names.
func (e *netavarkEngine) AddContainers(n int) (Cleanup, error) {
	made, err := e.startMany(n, e.named)
	if err != nil {
		return nil, err
	}
	if _, ok := e.aardvarkPID(); n > 0 && !ok {
		return nil, errors.Join(errors.New("aardvark-dns is not running after setup on a network with DNS"), e.remove(made...))
	}
	return func() error { return e.remove(made...) }, nil
}

// aardvarkPID is the process aardvark-dns wrote into its pid file, if it
// still runs as aardvark-dns: the file stays behind when aardvark-dns is
// killed, and its number may by now be another process's.
func (e *netavarkEngine) aardvarkPID() (int, bool) {
	b, err := os.ReadFile(filepath.Join(e.configDir, "aardvark-dns", "aardvark.pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	return pid, processIs(string(stat), "aardvark-dns")
}

// processIs reads /proc/PID/stat: the process is a live (not zombie)
// process whose command is comm.
func processIs(stat, comm string) bool {
	open, end := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
	if open < 0 || end < open || len(stat) < end+3 {
		return false
	}
	return stat[open+1:end] == comm && stat[end+2] != 'Z' && stat[end+2] != 'X'
}

// stopProcess sends a process SIGTERM and waits until it has exited, then
// for at most timeout; one that does not end by then gets SIGKILL. The
// process is held by a pidfd, so no other process that might get its
// number is signalled.
func stopProcess(pid int, timeout time.Duration) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open process %d: %w", pid, err)
	}
	defer unix.Close(fd)
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGKILL} {
		if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
			if errors.Is(err, unix.ESRCH) {
				return nil
			}
			return fmt.Errorf("signal process %d: %w", pid, err)
		}
		if exited, err := waitPidfd(fd, timeout); exited || err != nil {
			return err
		}
	}
	return fmt.Errorf("process %d still runs %s after SIGKILL", pid, timeout)
}

// waitPidfd waits until the process of a pidfd has exited (the pidfd
// becomes readable), for at most timeout.
func waitPidfd(fd int, timeout time.Duration) (bool, error) {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left.Milliseconds())+1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, err
		}
		return n > 0, nil
	}
}

// addressPool hands out a subnet's addresses as Podman's IPAM does: the
// next free one after the last handed out, wrapping around at the end,
// never the subnet's own address, its broadcast address or the gateway.
type addressPool struct {
	subnet  netip.Prefix
	gateway netip.Addr
	last    netip.Addr
	used    map[netip.Addr]bool
}

func newAddressPool(subnet netip.Prefix, gateway netip.Addr) *addressPool {
	subnet = subnet.Masked()
	return &addressPool{subnet: subnet, gateway: gateway, last: subnet.Addr(), used: map[netip.Addr]bool{}}
}

func (p *addressPool) allocate() (netip.Addr, error) {
	first, broadcast := p.subnet.Addr().Next(), lastAddr(p.subnet)
	a := p.last
	for range 1 << (p.subnet.Addr().BitLen() - p.subnet.Bits()) {
		a = a.Next()
		if a == broadcast || !p.subnet.Contains(a) {
			a = first
		}
		if a != p.gateway && a != broadcast && !p.used[a] {
			p.used[a], p.last = true, a
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address in %s", p.subnet)
}

func (p *addressPool) release(a netip.Addr) { delete(p.used, a) }

// lastAddr is a prefix's last address, IPv4's broadcast address.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := range b {
		if bits := p.Bits() - i*8; bits < 8 {
			b[i] |= byte(0xff >> max(bits, 0))
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
