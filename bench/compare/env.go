package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berth-net/berth/netdev"
)

// The test host: the harness runs in a network namespace and a mount
// namespace of its own (see enterTestHost), so engines change nothing of the
// machine's network. Inside it, an "uplink" veth leads to a second
// namespace, the remote, which stands for another machine and serves DNS.
const (
	hostUplinkAddr = "192.0.2.1/24"
	remoteAddr     = "192.0.2.2/24"
	// upstreamName is a name only the remote's DNS server knows: resolving
	// it from a container takes the engine's forwarding path.
	upstreamName = "www.bench.test"
	upstreamA    = "198.51.100.7"
)

// Env is what the harness gives every engine.
type Env struct {
	// Dir is a scratch directory of the engine's, removed after it.
	Dir string
	// Tools holds berth's binaries and the busybox image (berthd,
	// busybox.tar).
	Tools Tools
	// Remote is the path of the remote namespace, HostAddr the host's
	// address on the uplink and RemoteAddr the remote's.
	Remote     string
	HostAddr   netip.Addr
	RemoteAddr netip.Addr
	// Upstream is the DNS server every engine forwards other names to; the
	// test host's /etc/resolv.conf names it too.
	Upstream netip.AddrPort
	Log      *slog.Logger

	mu         sync.Mutex
	namespaces []string
}

// Tools are the files the harness was given.
type Tools struct {
	Berthd  string
	Busybox string // busybox root filesystem tarball
}

// NewNamespace makes a network namespace with its loopback up, bind-mounted
// under Dir; DeleteNamespaces removes it.
func (e *Env) NewNamespace(name string) (string, error) {
	path := filepath.Join(e.Dir, "netns", name)
	ns, err := netdev.CreateNamespace(path)
	if err != nil {
		return "", err
	}
	ns.Close()
	e.mu.Lock()
	e.namespaces = append(e.namespaces, path)
	e.mu.Unlock()
	return path, nil
}

// DeleteNamespace removes a namespace NewNamespace made.
func (e *Env) DeleteNamespace(path string) error {
	e.mu.Lock()
	for i, p := range e.namespaces {
		if p == path {
			e.namespaces = append(e.namespaces[:i], e.namespaces[i+1:]...)
			break
		}
	}
	e.mu.Unlock()
	return netdev.DeleteNamespace(path)
}

// DeleteNamespaces removes every namespace NewNamespace made and is still
// there.
func (e *Env) DeleteNamespaces() error {
	e.mu.Lock()
	paths := e.namespaces
	e.namespaces = nil
	e.mu.Unlock()
	var errs []error
	for _, p := range paths {
		if err := netdev.DeleteNamespace(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Command is a command run in the network namespace at ns (the host's when
// ns is empty), through nsenter.
func Command(ctx context.Context, ns string, name string, args ...string) *exec.Cmd {
	if ns == "" {
		return exec.CommandContext(ctx, name, args...)
	}
	return exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + ns, "--", name}, args...)...)
}

// Output runs a command in a namespace and returns its standard output, or
// an error with its standard error.
func Output(ctx context.Context, ns string, name string, args ...string) (string, error) {
	cmd := Command(ctx, ns, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// inNamespace runs fn on a thread in the namespace at path ("" for the
// host's); sockets fn opens stay there.
func inNamespace(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	ns, err := netdev.OpenNamespace(path)
	if err != nil {
		return err
	}
	defer ns.Close()
	return ns.Do(fn)
}

// Listen opens a TCP listener in a namespace that accepts and closes
// connections, for reachability checks.
func Listen(ns string, addr string) (io.Closer, error) {
	var l net.Listener
	err := inNamespace(ns, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l, nil
}

// WaitReachable waits until a TCP connection from the namespace from ("" for
// the host) to addr succeeds, trying every millisecond for at most timeout.
func WaitReachable(from string, addr netip.AddrPort, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var err error
		derr := inNamespace(from, func() error {
			var c net.Conn
			c, err = net.DialTimeout("tcp", addr.String(), 100*time.Millisecond)
			if err == nil {
				c.Close()
			}
			return nil
		})
		if derr != nil {
			return derr
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not reachable within %s: %w", addr, timeout, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// RSS is a process's resident memory in bytes.
func RSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}

// Ruleset measures the test host's firewall: nftables lines and rules
// (iptables on this system is iptables-nft, so its rules count too).
func Ruleset(ctx context.Context) (RulesetSize, error) {
	out, err := Output(ctx, "", "nft", "list", "ruleset")
	if err != nil {
		return RulesetSize{}, err
	}
	return countRuleset(out), nil
}

// RulesetSize is the size of an nftables ruleset listing.
type RulesetSize struct {
	Lines    int `json:"lines"`
	Rules    int `json:"rules"`
	Elements int `json:"elements"`
}

// countRuleset counts the lines of `nft list ruleset`, the rules (lines in
// a chain other than its type/policy header) and set or map elements.
func countRuleset(out string) RulesetSize {
	var s RulesetSize
	var inChain, inElements bool
	for line := range strings.SplitSeq(out, "\n") {
		t := strings.TrimSpace(line)
		if t == "" {
			continue
		}
		s.Lines++
		switch {
		case inElements:
			s.Elements += countElements(t)
			if strings.HasSuffix(t, "}") {
				inElements = false
			}
		case strings.HasPrefix(t, "chain "):
			inChain = true
		case strings.HasPrefix(t, "set ") || strings.HasPrefix(t, "map ") || strings.HasPrefix(t, "table "):
			inChain = false
		case strings.HasPrefix(t, "elements = {"):
			body := strings.TrimPrefix(t, "elements = {")
			s.Elements += countElements(body)
			inElements = !strings.HasSuffix(t, "}")
		case t == "}":
			inChain = false
		case inChain && !strings.HasPrefix(t, "type ") && !strings.HasPrefix(t, "policy "):
			s.Rules++
		}
	}
	return s
}

// countElements counts the elements on one line of an elements list.
func countElements(t string) int {
	t = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(t), "}"))
	if t == "" {
		return 0
	}
	return strings.Count(t, ",") + 1 - boolInt(strings.HasSuffix(t, ","))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// enterTestHost re-runs the harness in new network and mount namespaces and
// returns its exit code; it reports false when this process already is
// that run.
func enterTestHost() (int, bool) {
	if os.Getenv("BERTH_COMPARE_HOST") == "1" {
		return 0, false
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), "BERTH_COMPARE_HOST=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &unix.SysProcAttr{Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWNS, Pdeathsig: unix.SIGKILL}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), true
		}
		fmt.Fprintln(os.Stderr, "berth-compare: enter the test host:", err)
		return 1, true
	}
	return 0, true
}

// setUpTestHost prepares the namespaces the harness runs in: mounts private
// to it, loopback up, the uplink to the remote, and a resolv.conf naming the
// remote's DNS server. It returns the Env fields they give.
func setUpTestHost(work string) (remote string, stop func(), err error) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return "", nil, fmt.Errorf("make mounts private: %w", err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return "", nil, err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return "", nil, err
	}
	remote = filepath.Join(work, "remote")
	rns, err := netdev.CreateNamespace(remote)
	if err != nil {
		return "", nil, err
	}
	rns.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink"}, PeerName: "eth0"}
	if err := netlink.LinkAdd(veth); err != nil {
		return "", nil, fmt.Errorf("create uplink: %w", err)
	}
	peer, err := netlink.LinkByName("eth0")
	if err != nil {
		return "", nil, err
	}
	rfd, err := unix.Open(remote, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, err
	}
	defer unix.Close(rfd)
	if err := netlink.LinkSetNsFd(peer, rfd); err != nil {
		return "", nil, err
	}
	if err := configureLink(netlink.Handle{}, "uplink", hostUplinkAddr, ""); err != nil {
		return "", nil, err
	}
	rh, err := netlink.NewHandleAt(netns.NsHandle(rfd))
	if err != nil {
		return "", nil, err
	}
	defer rh.Close()
	if err := configureLink(*rh, "eth0", remoteAddr, strings.Split(hostUplinkAddr, "/")[0]); err != nil {
		return "", nil, err
	}
	resolv := filepath.Join(work, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+strings.Split(remoteAddr, "/")[0]+"\n"), 0o644); err != nil {
		return "", nil, err
	}
	if err := unix.Mount(resolv, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		return "", nil, fmt.Errorf("bind-mount resolv.conf: %w", err)
	}
	stopUpstream, err := startUpstream(remote, netip.MustParseAddrPort(strings.Split(remoteAddr, "/")[0]+":53"))
	if err != nil {
		return "", nil, err
	}
	stop = func() {
		stopUpstream()
		// The namespace's mount keeps its file busy: the work directory
		// could not be removed while it stays.
		netdev.DeleteNamespace(remote)
	}
	return remote, stop, nil
}

// configureLink gives a link an address, brings it up and, with a gateway,
// routes everything through it.
func configureLink(h netlink.Handle, name, cidr, gw string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return err
	}
	addr, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if err := h.AddrAdd(l, addr); err != nil {
		return fmt.Errorf("address %s on %s: %w", cidr, name, err)
	}
	if err := h.LinkSetUp(l); err != nil {
		return err
	}
	if gw == "" {
		return nil
	}
	return h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP(gw)})
}
