package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/api"
)

// berthEngine runs the berthd under test in the test host and drives it
// through its API, as berth's CLI or the docker CLI would: sandboxes for
// the namespaces the harness makes, containers where a resolver is needed.
type berthEngine struct {
	env     *Env
	cmd     *exec.Cmd
	exited  chan struct{}
	sock    string
	api     *api.Client
	moby    *client.Client
	version string
	// portsNS is the namespace that holds the ports of PreparePorts, for
	// RestartRound; lastPort the highest of them.
	portsNS  string
	lastPort uint16
	seq      int
}

func (e *berthEngine) Name() string { return "berth" }

// CPUProfile fetches a CPU profile of berthd from its socket.
func (e *berthEngine) CPUProfile(seconds int, w io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+30)*time.Second)
	defer cancel()
	b, err := e.api.Call(ctx, "GET", "/debug/pprof/profile", url.Values{"seconds": {strconv.Itoa(seconds)}}, nil, nil)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
func (e *berthEngine) Version() string { return e.version }

func (e *berthEngine) Start(env *Env) error {
	e.env = env
	e.sock = filepath.Join(env.Dir, "run", "berth.sock")
	if err := e.startDaemon(); err != nil {
		return err
	}
	var err error
	if e.api, err = api.NewClient("unix://" + e.sock); err != nil {
		return err
	}
	if e.moby, err = client.New(client.WithHost("unix://"+e.sock), client.WithAPIVersionNegotiation()); err != nil {
		return err
	}
	ctx := context.Background()
	v, err := e.moby.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return err
	}
	e.version = "berthd " + v.Version
	return importImage(ctx, e.moby, env.Tools.Busybox)
}

// startDaemon starts berthd and waits until it answers.
func (e *berthEngine) startDaemon() error {
	logf, err := os.OpenFile(filepath.Join(e.env.Dir, "berthd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	e.cmd = exec.Command(e.env.Tools.Berthd, "--root", filepath.Join(e.env.Dir, "root"), "--exec-root", filepath.Join(e.env.Dir, "run"),
		"--host", "unix://"+e.sock, "--log-level", "warn")
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	if err := e.cmd.Start(); err != nil {
		return fmt.Errorf("start berthd: %w", err)
	}
	e.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		cmd.Wait()
		close(exited)
	}(e.cmd, e.exited)
	return e.waitReady(10 * time.Second)
}

// waitReady waits for berthd's socket to answer /_ping.
func (e *berthEngine) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c, err := api.NewClient("unix://" + e.sock)
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		select {
		case <-e.exited:
			return fmt.Errorf("berthd exited; see %s", filepath.Join(e.env.Dir, "berthd.log"))
		default:
		}
		if _, err := c.Call(context.Background(), "GET", "/_ping", nil, nil, nil); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("berthd did not answer within %s", timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

func (e *berthEngine) Stop() error {
	var errs []error
	if e.moby != nil {
		errs = append(errs, removeAllContainers(context.Background(), e.moby))
	}
	if e.cmd != nil && e.cmd.Process != nil {
		e.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-e.exited:
		case <-time.After(10 * time.Second):
			e.cmd.Process.Kill()
			<-e.exited
			errs = append(errs, errors.New("berthd did not stop within 10 s"))
		}
	}
	errs = append(errs, UnmountUnder(e.env.Dir), e.deleteTables())
	return errors.Join(errs...)
}

// deleteTables removes berth's firewall tables, which outlive berthd on
// purpose (published ports keep working while it restarts).
func (e *berthEngine) deleteTables() error {
	out, err := Output(context.Background(), "", "nft", "list", "tables")
	if err != nil {
		return err
	}
	var errs []error
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "table" && (f[2] == "berth" || strings.HasPrefix(f[2], "berth_")) {
			_, err := Output(context.Background(), "", "nft", "delete", "table", f[1], f[2])
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *berthEngine) name(prefix string) string {
	e.seq++
	return fmt.Sprintf("%s%d", prefix, e.seq)
}

// network creates a bridge network on subnet, removed by the returned
// cleanup.
func (e *berthEngine) network(subnet string) (string, Cleanup, error) {
	name := e.name("net")
	opts := client.NetworkCreateOptions{}
	if subnet != "" {
		opts.IPAM = &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix(subnet)}}}
	}
	if _, err := e.moby.NetworkCreate(context.Background(), name, opts); err != nil {
		return "", nil, err
	}
	return name, func() error {
		_, err := e.moby.NetworkRemove(context.Background(), name, client.NetworkRemoveOptions{})
		return err
	}, nil
}

// sandbox registers a namespace of the harness's with berthd.
func (e *berthEngine) sandbox(ctx context.Context) (name, ns string, err error) {
	name = e.name("sb")
	if ns, err = e.env.NewNamespace(name); err != nil {
		return "", "", err
	}
	if _, err := e.api.CreateSandbox(ctx, api.SandboxCreateRequest{Name: name, Key: ns}); err != nil {
		return "", "", err
	}
	return name, ns, nil
}

// cleanups runs cleanups in reverse order.
type cleanups []Cleanup

func (c cleanups) run() error {
	var errs []error
	for i := len(c) - 1; i >= 0; i-- {
		errs = append(errs, c[i]())
	}
	return errors.Join(errs...)
}

func (e *berthEngine) PrepareAttach(existing int) (Round, Cleanup, error) {
	ctx := context.Background()
	var undo cleanups
	nw, rm, err := e.network("10.100.0.0/16")
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, rm)
	// The sandboxes already on the network get namespaces of berthd's own.
	var fillers []string
	undo = append(undo, func() error {
		var errs []error
		for _, f := range fillers {
			errs = append(errs, e.api.RemoveSandbox(ctx, f))
		}
		return errors.Join(errs...)
	})
	for range existing {
		name := e.name("filler")
		if _, err := e.api.CreateSandbox(ctx, api.SandboxCreateRequest{Name: name}); err != nil {
			return nil, nil, errors.Join(err, undo.run())
		}
		fillers = append(fillers, name)
		if _, err := e.api.ConnectSandbox(ctx, name, api.SandboxConnectRequest{Network: nw}); err != nil {
			return nil, nil, errors.Join(err, undo.run())
		}
	}
	sb, _, err := e.sandbox(ctx)
	if err != nil {
		return nil, nil, errors.Join(err, undo.run())
	}
	fillers = append(fillers, sb)
	round := func() (time.Duration, error) {
		start := time.Now()
		if _, err := e.api.ConnectSandbox(ctx, sb, api.SandboxConnectRequest{Network: nw}); err != nil {
			return 0, err
		}
		if err := e.api.DisconnectSandbox(ctx, sb, api.SandboxDisconnectRequest{Network: nw}); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	return round, undo.run, nil
}

// PrepareContainerConnect runs a busybox container (runc, from the
// imported image) on one network; each Round connects it to a second
// network and disconnects it again through the Docker API, the requests
// `docker network connect` and `disconnect` send.
func (e *berthEngine) PrepareContainerConnect() (Round, Cleanup, error) {
	ctx := context.Background()
	var undo cleanups
	home, rm, err := e.network("")
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, rm)
	other, rm, err := e.network("")
	if err != nil {
		return nil, nil, errors.Join(err, undo.run())
	}
	undo = append(undo, rm)
	name := e.name("connected")
	// By name: a container created but not started goes too.
	undo = append(undo, func() error {
		if _, err := e.moby.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return err
		}
		return nil
	})
	c, err := runContainer(ctx, e.moby, name, home, nil)
	if err == nil {
		err = checkConnect(ctx, e.moby, c, other)
	}
	if err != nil {
		return nil, nil, errors.Join(err, undo.run())
	}
	round := func() (time.Duration, error) {
		start := time.Now()
		if _, err := e.moby.NetworkConnect(ctx, other, client.NetworkConnectOptions{Container: c.ID}); err != nil {
			return 0, fmt.Errorf("connect to %s: %w", other, err)
		}
		if _, err := e.moby.NetworkDisconnect(ctx, other, client.NetworkDisconnectOptions{Container: c.ID}); err != nil {
			return 0, fmt.Errorf("disconnect from %s: %w", other, err)
		}
		return time.Since(start), nil
	}
	return round, undo.run, nil
}

func (e *berthEngine) PrepareCreate() (Round, Cleanup, error) {
	ctx := context.Background()
	round := func() (time.Duration, error) {
		name := e.name("create")
		start := time.Now()
		res, err := e.moby.NetworkCreate(ctx, name, client.NetworkCreateOptions{})
		if err != nil {
			return 0, err
		}
		if _, err := e.moby.NetworkRemove(ctx, res.ID, client.NetworkRemoveOptions{}); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	return round, func() error { return nil }, nil
}

// portMap publishes count host ports from first on, each to port 80/tcp.
func portMap(first, count int) network.PortMap {
	p := network.MustParsePort("80/tcp")
	m := network.PortMap{p: nil}
	for i := range count {
		m[p] = append(m[p], network.PortBinding{HostPort: strconv.Itoa(first + i)})
	}
	return m
}

// First host ports of the port workloads.
const (
	firstHostPort = 20000
	roundHostPort = 19000
)

func (e *berthEngine) PreparePorts(existing int) (PortRound, Cleanup, error) {
	ctx := context.Background()
	var undo cleanups
	nw, rm, err := e.network("10.101.0.0/16")
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, rm)
	holder, ns, err := e.sandbox(ctx)
	if err != nil {
		return nil, nil, errors.Join(err, undo.run())
	}
	undo = append(undo, func() error { return e.api.RemoveSandbox(ctx, holder) })
	if existing > 0 {
		if _, err := e.api.ConnectSandbox(ctx, holder, api.SandboxConnectRequest{Network: nw, PortBindings: portMap(firstHostPort, existing)}); err != nil {
			return nil, nil, errors.Join(err, undo.run())
		}
	}
	e.portsNS, e.lastPort = ns, uint16(firstHostPort+existing-1)
	sb, _, err := e.sandbox(ctx)
	if err != nil {
		return nil, nil, errors.Join(err, undo.run())
	}
	undo = append(undo, func() error { return e.api.RemoveSandbox(ctx, sb) })
	round := func() (time.Duration, func() error, error) {
		start := time.Now()
		if _, err := e.api.ConnectSandbox(ctx, sb, api.SandboxConnectRequest{Network: nw, PortBindings: portMap(roundHostPort, 1)}); err != nil {
			return 0, nil, err
		}
		d := time.Since(start)
		return d, func() error { return e.api.DisconnectSandbox(ctx, sb, api.SandboxDisconnectRequest{Network: nw}) }, nil
	}
	return round, undo.run, nil
}

// RestartRound: berthd killed with SIGKILL, the firewall flushed (as a
// reboot or a firewall reload would), berthd started again; the round ends
// when the last published port works from the remote machine.
func (e *berthEngine) RestartRound() (Round, error) {
	l, err := Listen(e.portsNS, ":80")
	if err != nil {
		return nil, err
	}
	target := netip.AddrPortFrom(e.env.HostAddr, e.lastPort)
	if err := WaitReachable(e.env.Remote, target, 5*time.Second); err != nil {
		l.Close()
		return nil, err
	}
	return func() (time.Duration, error) {
		e.cmd.Process.Kill()
		<-e.exited
		if err := FlushFirewall(); err != nil {
			return 0, err
		}
		start := time.Now()
		if err := e.startDaemon(); err != nil {
			return 0, err
		}
		if err := WaitReachable(e.env.Remote, target, 10*time.Second); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}, nil
}

func (e *berthEngine) PrepareThroughput(containerPort uint16) (ThroughputTarget, Cleanup, error) {
	ctx := context.Background()
	var undo cleanups
	nw, rm, err := e.network("")
	if err != nil {
		return ThroughputTarget{}, nil, err
	}
	undo = append(undo, rm)
	sb, ns, err := e.sandbox(ctx)
	if err != nil {
		return ThroughputTarget{}, nil, errors.Join(err, undo.run())
	}
	undo = append(undo, func() error { return e.api.RemoveSandbox(ctx, sb) })
	const hostPort = 18080
	p := network.MustParsePort(strconv.Itoa(int(containerPort)) + "/tcp")
	ep, err := e.api.ConnectSandbox(ctx, sb, api.SandboxConnectRequest{Network: nw,
		PortBindings: network.PortMap{p: {{HostPort: strconv.Itoa(hostPort)}}}})
	if err != nil {
		return ThroughputTarget{}, nil, errors.Join(err, undo.run())
	}
	return ThroughputTarget{NS: ns, Addr: ep.IPAddress, ContainerPort: containerPort, HostPort: hostPort}, undo.run, nil
}

func (e *berthEngine) PrepareDNS() (DNSTarget, Cleanup, error) {
	ctx := context.Background()
	nw, rm, err := e.network("")
	if err != nil {
		return DNSTarget{}, nil, err
	}
	undo := cleanups{rm, func() error { return removeAllContainers(ctx, e.moby) }}
	target, err := runContainer(ctx, e.moby, "dns-target", nw, nil)
	if err != nil {
		return DNSTarget{}, nil, errors.Join(err, undo.run())
	}
	cl, err := runContainer(ctx, e.moby, "dns-client", nw, nil)
	if err != nil {
		return DNSTarget{}, nil, errors.Join(err, undo.run())
	}
	// berthd answers itself, on sockets it holds in the client's namespace;
	// the containers' shims have no part in it.
	return DNSTarget{ClientNS: cl.NS, Server: netip.MustParseAddrPort("127.0.0.11:53"), LocalName: "dns-target", LocalAddr: target.IP,
		Resolver: []int{e.cmd.Process.Pid}}, undo.run, nil
}

func (e *berthEngine) PIDs() ([]int, error) {
	if e.cmd == nil || e.cmd.Process == nil {
		return nil, nil
	}
	return []int{e.cmd.Process.Pid}, nil
}

func (e *berthEngine) AddContainers(n int) (Cleanup, error) {
	ctx := context.Background()
	nw, rm, err := e.network("10.102.0.0/16")
	if err != nil {
		return nil, err
	}
	undo := cleanups{rm, func() error { return removeAllContainers(ctx, e.moby) }}
	for i := range n {
		if _, err := runContainer(ctx, e.moby, fmt.Sprintf("mem%d", i), nw, nil); err != nil {
			return nil, errors.Join(err, undo.run())
		}
	}
	return undo.run, nil
}
