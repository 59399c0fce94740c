package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/vishvananda/netlink"
)

// Docker as Debian's docker.io package runs it: dockerd with a containerd
// of its own process (docker.service passes --containerd, so a restart of
// dockerd leaves containerd and the containers' shims running), the
// userland proxy on, iptables rules for published ports. Everything it
// keeps lives under Env.Dir, and it runs in the test host's namespaces like
// every engine, so its bridges, veths and rules never touch the machine.
const (
	// dockerStartTimeout bounds the wait for a starting containerd or
	// dockerd to answer; dockerd restoring a thousand published ports is
	// the slowest case.
	dockerStartTimeout = 2 * time.Minute
	// dockerStopTimeout is how long a daemon gets after SIGTERM before
	// SIGKILL.
	dockerStopTimeout = 30 * time.Second
	// dockerAPITimeout bounds one call to dockerd; starting a container with a
	// thousand published ports (a docker-proxy and iptables rules each) is
	// the slowest.
	dockerAPITimeout = 10 * time.Minute

	// dockerFirstPort is the host port of PreparePorts' first port;
	// the others follow it.
	dockerFirstPort = 20000
	// dockerThroughputPort is the host port PrepareThroughput publishes.
	dockerThroughputPort = 18080
)

// dockerEngine measures Docker through its Engine API, as a user's tool
// would.
type dockerEngine struct {
	env        *Env
	containerd *dockerDaemon
	dockerd    *dockerDaemon
	cli        *client.Client
	version    string
	names      int // sequence for unique network and container names

	// What Start found, so that Stop removes only what Docker added: the
	// nftables tables of the test host, and whether docker0 existed.
	tablesBefore  []string
	docker0Before bool

	// ports is what PreparePorts published, for RestartRound.
	ports *dockerPorts
}

// dockerPorts is a container holding PreparePorts' existing ports, all to
// its port 80, and the listener there that RestartRound checks them with.
type dockerPorts struct {
	holder   running
	last     uint16 // the highest host port published
	listener io.Closer
}

func (e *dockerEngine) Name() string { return "docker" }

// Note: Docker publishes a port only when a container starts, so its port
// rounds include starting one (runc's share is some 100 ms here).
func (e *dockerEngine) Note(workload string) string {
	if strings.HasPrefix(workload, "publish port") {
		return "a container start with the port: Docker publishes ports only then"
	}
	return ""
}
func (e *dockerEngine) Version() string { return e.version }

// dockerdPaths are where dockerd and containerd keep their state, sockets
// and logs.
type dockerdPaths struct {
	dir string
}

func (p dockerdPaths) socket() string { return filepath.Join(p.dir, "docker.sock") }
func (p dockerdPaths) containerdSocket() string {
	return filepath.Join(p.dir, "containerd", "containerd.sock")
}
func (p dockerdPaths) containerdConfig() string { return filepath.Join(p.dir, "containerd.toml") }

// dockerdArgs are dockerd's flags. --live-restore keeps containers (and so
// their published ports) running while dockerd restarts; without it a
// restarted dockerd stops every container it finds, and their ports never
// come back, so the restart workload needs it. It is a documented
// production setting, not a benchmark trick.
func (p dockerdPaths) dockerdArgs() []string {
	return []string{
		"--data-root", filepath.Join(p.dir, "data"),
		"--exec-root", filepath.Join(p.dir, "exec"),
		"--pidfile", filepath.Join(p.dir, "dockerd.pid"),
		"-H", "unix://" + p.socket(),
		"--containerd", p.containerdSocket(),
		"--live-restore",
	}
}

// containerdConfigText is containerd's configuration: every path under the
// engine's directory (the defaults are the machine's /var/lib/containerd
// and /run/containerd), and no CRI plugin, which dockerd does not use and
// which would otherwise serve Kubernetes on a TCP port.
func (p dockerdPaths) containerdConfigText() string {
	d := filepath.Join(p.dir, "containerd")
	return fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, filepath.Join(d, "root"), filepath.Join(d, "state"), p.containerdSocket(), filepath.Join(d, "opt"))
}

func (e *dockerEngine) Start(env *Env) error {
	e.env = env
	for _, n := range []string{"dockerd", "containerd", "docker-proxy", "runc"} {
		if _, err := exec.LookPath(n); err != nil {
			return fmt.Errorf("%s is not installed: Docker comes from Debian's docker.io package (BENCH_DOCKER=1 make bench-compare installs it)", n)
		}
	}
	p := dockerdPaths{env.Dir}
	if out, err := Output(context.Background(), "", "nft", "list", "tables"); err == nil {
		e.tablesBefore = nftTableNames(out)
	}
	_, err := netlink.LinkByName("docker0")
	e.docker0Before = err == nil

	if err := os.WriteFile(p.containerdConfig(), []byte(p.containerdConfigText()), 0o644); err != nil {
		return err
	}
	e.containerd, err = startDockerDaemon(filepath.Join(env.Dir, "containerd.log"), "containerd", "--config", p.containerdConfig())
	if err != nil {
		return err
	}
	if err := waitForUnixSocket(e.containerd, p.containerdSocket(), dockerStartTimeout); err != nil {
		return err
	}
	e.cli, err = client.New(client.WithHost("unix://" + p.socket()))
	if err != nil {
		return err
	}
	if err := e.startDockerd(); err != nil {
		return err
	}
	ctx, cancel := dockerAPIContext()
	defer cancel()
	v, err := e.cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return fmt.Errorf("docker version: %w", err)
	}
	e.version = dockerVersion(v)
	return importImage(ctx, e.cli, env.Tools.Busybox)
}

// startDockerd starts dockerd and waits until it answers /_ping.
func (e *dockerEngine) startDockerd() error {
	var err error
	e.dockerd, err = startDockerDaemon(filepath.Join(e.env.Dir, "dockerd.log"), "dockerd", dockerdPaths{e.env.Dir}.dockerdArgs()...)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(dockerStartTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := e.cli.Ping(ctx, client.PingOptions{})
		cancel()
		if err == nil {
			return nil
		}
		if e.dockerd.exited() {
			return fmt.Errorf("dockerd exited: %v%s", e.dockerd.err, e.dockerd.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dockerd did not answer within %s: %w%s", dockerStartTimeout, err, e.dockerd.logTail())
		}
		time.Sleep(time.Millisecond)
	}
}

// dockerVersion names the release measured and the parts under it.
func dockerVersion(v client.ServerVersionResult) string {
	s := v.Version + " (API " + v.APIVersion
	for _, c := range v.Components {
		if c.Name == "containerd" || c.Name == "runc" {
			s += ", " + c.Name + " " + c.Version
		}
	}
	return s + ")"
}

func (e *dockerEngine) Stop() error {
	if e.env == nil {
		return nil
	}
	var errs []error
	if e.ports != nil && e.ports.listener != nil {
		e.ports.listener.Close()
	}
	e.ports = nil
	if e.dockerd != nil && !e.dockerd.exited() {
		// With --live-restore, containers outlive dockerd: remove them
		// while it still answers.
		if err := e.removeEverything(); err != nil {
			errs = append(errs, err)
		}
	}
	if e.dockerd != nil {
		errs = append(errs, e.dockerd.stop(dockerStopTimeout))
		e.dockerd = nil
	}
	if e.containerd != nil {
		errs = append(errs, e.containerd.stop(dockerStopTimeout))
		e.containerd = nil
	}
	if e.cli != nil {
		e.cli.Close()
		e.cli = nil
	}
	// Shims (and their containers) left by a failed removal are the
	// engine's processes by their command lines naming its directory.
	errs = append(errs, killProcsUnder(e.env.Dir))
	// dockerd leaves docker0 and its firewall chains behind on exit, so
	// that live-restored containers keep working; remove exactly those.
	if l, err := netlink.LinkByName("docker0"); err == nil && !e.docker0Before {
		if err := netlink.LinkDel(l); err != nil {
			errs = append(errs, fmt.Errorf("delete docker0: %w", err))
		}
	}
	if out, err := Output(context.Background(), "", "nft", "list", "tables"); err == nil {
		for _, t := range tablesAdded(e.tablesBefore, nftTableNames(out)) {
			if _, err := Output(context.Background(), "", "nft", "delete", "table", t); err != nil {
				errs = append(errs, err)
			}
		}
	}
	errs = append(errs, UnmountUnder(e.env.Dir))
	return errors.Join(errs...)
}

// removeEverything removes every container and every network but Docker's
// predefined ones.
func (e *dockerEngine) removeEverything() error {
	ctx, cancel := dockerAPIContext()
	defer cancel()
	err := removeAllContainers(ctx, e.cli)
	nets, lerr := e.cli.NetworkList(ctx, client.NetworkListOptions{})
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	errs := []error{err}
	for _, n := range nets.Items {
		if n.Name == "bridge" || n.Name == "host" || n.Name == "none" {
			continue
		}
		if _, err := e.cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

func dockerAPIContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), dockerAPITimeout)
}

// name returns a name not used before in this run: a failed cleanup then
// does not make the next workload fail on a conflict.
func (e *dockerEngine) name(prefix string) string {
	e.names++
	return prefix + "-" + strconv.Itoa(e.names)
}

// createNetwork creates a bridge network from Docker's default pools and
// returns its name.
func (e *dockerEngine) createNetwork(prefix string) (string, error) {
	ctx, cancel := dockerAPIContext()
	defer cancel()
	name := e.name(prefix)
	if _, err := e.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge"}); err != nil {
		return "", fmt.Errorf("create network %s: %w", name, err)
	}
	return name, nil
}

// dockerContainer is what `docker create --network nw -p …` sends for a
// sleeping busybox container. The published ports are exposed too, as the
// docker CLI does: Docker publishes only bindings of exposed ports.
func dockerContainer(name, nw string, ports network.PortMap) client.ContainerCreateOptions {
	cfg := &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "1000000"}}
	if len(ports) > 0 {
		cfg.ExposedPorts = network.PortSet{}
		for p := range ports {
			cfg.ExposedPorts[p] = struct{}{}
		}
	}
	return client.ContainerCreateOptions{
		Name:       name,
		Config:     cfg,
		HostConfig: &ctypes.HostConfig{NetworkMode: ctypes.NetworkMode(nw), PortBindings: ports},
	}
}

// run creates and starts a container on network nw, publishing ports.
func (e *dockerEngine) run(name, nw string, ports network.PortMap) (running, error) {
	ctx, cancel := dockerAPIContext()
	defer cancel()
	c, err := e.cli.ContainerCreate(ctx, dockerContainer(name, nw, ports))
	if err != nil {
		return running{}, fmt.Errorf("create container %s on %s: %w", name, nw, err)
	}
	if _, err := e.cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		return running{}, errors.Join(fmt.Errorf("start container %s on %s: %w", name, nw, err), e.remove("", running{ID: c.ID}))
	}
	return inspectRunning(ctx, e.cli, c.ID, nw)
}

// runMany starts n containers on network nw one after another, saying how
// far it got now and then when n is large. On an error it returns the
// containers it started, for the caller's cleanup.
func (e *dockerEngine) runMany(what, nw string, n int) ([]running, error) {
	var started []running
	for i := range n {
		r, err := e.run(e.name(what), nw, nil)
		if err != nil {
			return started, err
		}
		started = append(started, r)
		if n >= 100 && (i+1)%100 == 0 && i+1 < n {
			progress("%-10s   %d of %d containers running", e.Name(), i+1, n)
		}
	}
	return started, nil
}

// remove force-removes containers, then network nw (when not "").
func (e *dockerEngine) remove(nw string, containers ...running) error {
	ctx, cancel := dockerAPIContext()
	defer cancel()
	var errs []error
	for _, c := range containers {
		if _, err := e.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove container %.12s: %w", c.ID, err))
		}
	}
	if nw != "" {
		if _, err := e.cli.NetworkRemove(ctx, nw, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", nw, err))
		}
	}
	return errors.Join(errs...)
}

// PrepareAttach runs existing containers on a network and one more on the
// default bridge, which each Round connects to that network and
// disconnects again (`docker network connect` and `disconnect`). A
// container on no network at all (`--network none`) cannot be connected
// to one in Docker.
func (e *dockerEngine) PrepareAttach(existing int) (Round, Cleanup, error) {
	nw, err := e.createNetwork("attach")
	if err != nil {
		return nil, nil, err
	}
	others, err := e.runMany("attached", nw, existing)
	if err != nil {
		return nil, nil, errors.Join(err, e.remove(nw, others...))
	}
	measured, err := e.run(e.name("measured"), "bridge", nil)
	if err != nil {
		return nil, nil, errors.Join(err, e.remove(nw, others...))
	}
	round := func() (time.Duration, error) {
		ctx, cancel := dockerAPIContext()
		defer cancel()
		start := time.Now()
		if _, err := e.cli.NetworkConnect(ctx, nw, client.NetworkConnectOptions{Container: measured.ID}); err != nil {
			return 0, fmt.Errorf("connect to %s: %w", nw, err)
		}
		if _, err := e.cli.NetworkDisconnect(ctx, nw, client.NetworkDisconnectOptions{Container: measured.ID}); err != nil {
			return 0, fmt.Errorf("disconnect from %s: %w", nw, err)
		}
		return time.Since(start), nil
	}
	cleanup := func() error { return e.remove(nw, append(others, measured)...) }
	return round, cleanup, nil
}

// PrepareContainerConnect runs a container on a user-defined network; each
// Round connects it to a second one and disconnects it again (`docker
// network connect` and `disconnect`), as berth's rounds do.
func (e *dockerEngine) PrepareContainerConnect() (Round, Cleanup, error) {
	home, err := e.createNetwork("home")
	if err != nil {
		return nil, nil, err
	}
	other, err := e.createNetwork("other")
	if err != nil {
		return nil, nil, errors.Join(err, e.remove(home))
	}
	c, err := e.run(e.name("connected"), home, nil)
	if err != nil {
		return nil, nil, errors.Join(err, e.remove(other), e.remove(home))
	}
	ctx, cancel := dockerAPIContext()
	defer cancel()
	if err := checkConnect(ctx, e.cli, c, other); err != nil {
		return nil, nil, errors.Join(err, e.remove(other, c), e.remove(home))
	}
	round := func() (time.Duration, error) {
		ctx, cancel := dockerAPIContext()
		defer cancel()
		start := time.Now()
		if _, err := e.cli.NetworkConnect(ctx, other, client.NetworkConnectOptions{Container: c.ID}); err != nil {
			return 0, fmt.Errorf("connect to %s: %w", other, err)
		}
		if _, err := e.cli.NetworkDisconnect(ctx, other, client.NetworkDisconnectOptions{Container: c.ID}); err != nil {
			return 0, fmt.Errorf("disconnect from %s: %w", other, err)
		}
		return time.Since(start), nil
	}
	cleanup := func() error { return errors.Join(e.remove(other, c), e.remove(home)) }
	return round, cleanup, nil
}

// PrepareCreate: each Round is `docker network create` from the default
// pools and `docker network rm`.
func (e *dockerEngine) PrepareCreate() (Round, Cleanup, error) {
	round := func() (time.Duration, error) {
		ctx, cancel := dockerAPIContext()
		defer cancel()
		name := e.name("create")
		start := time.Now()
		res, err := e.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge"})
		if err != nil {
			return 0, fmt.Errorf("create network %s: %w", name, err)
		}
		if _, err := e.cli.NetworkRemove(ctx, res.ID, client.NetworkRemoveOptions{}); err != nil {
			return 0, fmt.Errorf("remove network %s: %w", name, err)
		}
		return time.Since(start), nil
	}
	return round, func() error { return nil }, nil
}

// dockerPortBindings publishes n host ports from first on, all on the host's
// IPv4 addresses, to containerPort/tcp. Docker runs a docker-proxy per
// binding; with no host address it would add an IPv6 one (::) for each,
// which nothing here measures.
func dockerPortBindings(first uint16, n int, containerPort uint16) network.PortMap {
	p, _ := network.PortFrom(containerPort, network.TCP)
	bindings := make([]network.PortBinding, n)
	for i := range bindings {
		bindings[i] = network.PortBinding{HostIP: netip.IPv4Unspecified(), HostPort: strconv.Itoa(int(first) + i)}
	}
	return network.PortMap{p: bindings}
}

// PreparePorts runs one container with existing ports published to its
// port 80 on a network of its own. Docker publishes a container's ports
// only when it starts it, so each PortRound creates a container with one
// published port (not timed) and times `docker start`: Docker's figure
// includes runc starting the container, which publishing does not need in
// the other engines.
func (e *dockerEngine) PreparePorts(existing int) (PortRound, Cleanup, error) {
	nw, err := e.createNetwork("ports")
	if err != nil {
		return nil, nil, err
	}
	var holders []running
	if existing > 0 {
		if existing >= 100 {
			progress("%-10s   starting a container with %d published ports", e.Name(), existing)
		}
		h, err := e.run(e.name("published"), nw, dockerPortBindings(dockerFirstPort, existing, 80))
		if err != nil {
			return nil, nil, errors.Join(err, e.remove(nw))
		}
		holders = append(holders, h)
		e.ports = &dockerPorts{holder: h, last: uint16(dockerFirstPort + existing - 1)}
	}
	next := uint16(dockerFirstPort + existing)
	round := func() (time.Duration, func() error, error) {
		ctx, cancel := dockerAPIContext()
		defer cancel()
		name := e.name("publish")
		c, err := e.cli.ContainerCreate(ctx, dockerContainer(name, nw, dockerPortBindings(next, 1, 80)))
		if err != nil {
			return 0, nil, fmt.Errorf("create container %s: %w", name, err)
		}
		undo := func() error { return e.remove("", running{ID: c.ID}) }
		start := time.Now()
		if _, err := e.cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
			return 0, nil, errors.Join(fmt.Errorf("start %s publishing port %d: %w", name, next, err), undo())
		}
		return time.Since(start), undo, nil
	}
	cleanup := func() error {
		if e.ports != nil && e.ports.listener != nil {
			e.ports.listener.Close()
		}
		e.ports = nil
		return e.remove(nw, holders...)
	}
	return round, cleanup, nil
}

// RestartRound kills dockerd (SIGKILL, as a crash or an OOM kill would) and
// times from starting it again until it answers /_ping and the last
// published port works from the remote. The containers live on through
// --live-restore. The firewall is flushed before the start, as for
// berth, so the port works again only once dockerd has made its rules anew.
func (e *dockerEngine) RestartRound() (Round, error) {
	p := e.ports
	if p == nil {
		return nil, errors.New("no published ports to restart with")
	}
	if p.listener == nil {
		l, err := Listen(p.holder.NS, ":80")
		if err != nil {
			return nil, fmt.Errorf("listen in the container: %w", err)
		}
		p.listener = l
	}
	addr := netip.AddrPortFrom(e.env.HostAddr, p.last)
	if err := WaitReachable(e.env.Remote, addr, 10*time.Second); err != nil {
		return nil, fmt.Errorf("published port before the restart: %w", err)
	}
	return func() (time.Duration, error) {
		if err := e.dockerd.kill(); err != nil {
			return 0, err
		}
		// As for berth: the rules are gone, the daemon must make them.
		if err := FlushFirewall(); err != nil {
			return 0, err
		}
		start := time.Now()
		if err := e.startDockerd(); err != nil {
			return 0, err
		}
		if err := WaitReachable(e.env.Remote, addr, dockerStartTimeout); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}, nil
}

// PrepareThroughput runs a container on the default bridge with
// dockerThroughputPort published to containerPort, as `docker run -p` does.
func (e *dockerEngine) PrepareThroughput(containerPort uint16) (ThroughputTarget, Cleanup, error) {
	r, err := e.run(e.name("iperf"), "bridge", dockerPortBindings(dockerThroughputPort, 1, containerPort))
	if err != nil {
		return ThroughputTarget{}, nil, err
	}
	t := ThroughputTarget{NS: r.NS, Addr: r.IP, ContainerPort: containerPort, HostPort: dockerThroughputPort}
	return t, func() error { return e.remove("", r) }, nil
}

// PrepareDNS runs two containers on a user-defined network, where Docker's
// embedded resolver (127.0.0.11, served by dockerd through a socket in
// each container's namespace) answers their names and forwards the rest
// to the host's resolv.conf servers.
func (e *dockerEngine) PrepareDNS() (DNSTarget, Cleanup, error) {
	nw, err := e.createNetwork("dns")
	if err != nil {
		return DNSTarget{}, nil, err
	}
	target, err := e.run("dns-target", nw, nil)
	if err != nil {
		return DNSTarget{}, nil, errors.Join(err, e.remove(nw))
	}
	cl, err := e.run("dns-client", nw, nil)
	if err != nil {
		return DNSTarget{}, nil, errors.Join(err, e.remove(nw, target))
	}
	t := DNSTarget{
		ClientNS:  cl.NS,
		Server:    netip.MustParseAddrPort("127.0.0.11:53"),
		LocalName: "dns-target",
		LocalAddr: target.IP,
		// The embedded resolver is dockerd's: neither containerd nor the
		// shims answer.
		Resolver: []int{e.dockerd.cmd.Process.Pid},
	}
	return t, func() error { return e.remove(nw, target, cl) }, nil
}

// PIDs is dockerd only, the figure the issue asks for. containerd and a
// shim per container hold memory too, but containerd is a service of its
// own on Debian, often shared with other tools.
func (e *dockerEngine) PIDs() ([]int, error) {
	if e.dockerd == nil || e.dockerd.exited() {
		return nil, errors.New("dockerd is not running")
	}
	return []int{e.dockerd.cmd.Process.Pid}, nil
}

// AddContainers runs n containers on one user-defined network (which
// gives them name resolution).
func (e *dockerEngine) AddContainers(n int) (Cleanup, error) {
	nw, err := e.createNetwork("memory")
	if err != nil {
		return nil, err
	}
	cs, err := e.runMany("memory", nw, n)
	if err != nil {
		return nil, errors.Join(err, e.remove(nw, cs...))
	}
	return func() error { return e.remove(nw, cs...) }, nil
}

// A dockerDaemon is a long-running process of the engine's, with its output in a
// log file. Pdeathsig ends it with the harness; the kernel sends it when
// the thread that forked the process exits, and Go retires threads, so
// the daemon is started and waited for from one goroutine locked to its
// thread for the daemon's life.
type dockerDaemon struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited
	err  error         // how it exited, once done is closed
}

func startDockerDaemon(log, name string, args ...string) (*dockerDaemon, error) {
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	d := &dockerDaemon{name: name, log: log, done: make(chan struct{})}
	d.cmd = exec.Command(name, args...)
	d.cmd.Stdout, d.cmd.Stderr = f, f
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer f.Close()
		if err := d.cmd.Start(); err != nil {
			started <- fmt.Errorf("start %s: %w", name, err)
			return
		}
		started <- nil
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	return d, <-started
}

func (d *dockerDaemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, and SIGKILL if the daemon has not exited after
// grace.
func (d *dockerDaemon) stop(grace time.Duration) error {
	if d.exited() {
		return nil
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
		return nil
	case <-time.After(grace):
	}
	if err := d.kill(); err != nil {
		return err
	}
	return fmt.Errorf("%s did not stop within %s of SIGTERM; killed it", d.name, grace)
}

// kill sends SIGKILL and waits until the process is gone.
func (d *dockerDaemon) kill() error {
	if d.exited() {
		return nil
	}
	d.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-d.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) still there 10s after SIGKILL", d.name, d.cmd.Process.Pid)
	}
}

// logTail is the end of the daemon's log, for an error message.
func (d *dockerDaemon) logTail() string {
	b, err := os.ReadFile(d.log)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return "\n" + d.log + ":\n" + strings.Join(lines, "\n")
}

// waitForUnixSocket waits until a daemon accepts connections on a unix socket.
func waitForUnixSocket(d *dockerDaemon, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if d.exited() {
			return fmt.Errorf("%s exited: %v%s", d.name, d.err, d.logTail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not listen on %s within %s: %w%s", d.name, path, timeout, err, d.logTail())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// nftTableNames lists the tables in `nft list tables` output as "family name".
func nftTableNames(out string) []string {
	var tables []string
	for line := range strings.SplitSeq(out, "\n") {
		if t, ok := strings.CutPrefix(strings.TrimSpace(line), "table "); ok {
			tables = append(tables, t)
		}
	}
	return tables
}

// tablesAdded are the tables in after that were not in before.
func tablesAdded(before, after []string) []string {
	var added []string
	for _, t := range after {
		if !slices.Contains(before, t) {
			added = append(added, t)
		}
	}
	return added
}

// A procEntry is a process as /proc shows it.
type procEntry struct {
	pid, ppid int
	state     byte
	cmdline   string
}

// parseProcStat reads the parent and state from /proc/<pid>/stat. The command
// name in parentheses may hold spaces and parentheses itself, so the
// fields are counted from the last ')'.
func parseProcStat(stat string) (ppid int, state byte, err error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("malformed stat %q", stat)
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err
}

// listProcs reads every process of the machine's /proc.
func listProcs() ([]procEntry, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var ps []procEntry
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue // gone meanwhile
		}
		ppid, state, err := parseProcStat(string(stat))
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		ps = append(ps, procEntry{pid: pid, ppid: ppid, state: state, cmdline: strings.ReplaceAll(string(cmdline), "\x00", " ")})
	}
	return ps, nil
}

// procsUnderDir picks the live processes whose command line names dir (the
// engine's daemons and shims) and all their descendants (containers).
// self is never picked.
func procsUnderDir(ps []procEntry, dir string, self int) []int {
	picked := map[int]bool{}
	for _, p := range ps {
		if p.pid != self && p.state != 'Z' && strings.Contains(p.cmdline, dir+"/") {
			picked[p.pid] = true
		}
	}
	// Descendants: repeat until no process joins, as a child may be
	// listed before its parent.
	for grew := true; grew; {
		grew = false
		for _, p := range ps {
			if !picked[p.pid] && picked[p.ppid] && p.pid != self && p.state != 'Z' {
				picked[p.pid] = true
				grew = true
			}
		}
	}
	var pids []int
	for pid := range picked {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}

// killProcsUnder kills what procsUnderDir picks and waits until each is gone
// or a zombie for its parent to reap.
func killProcsUnder(dir string) error {
	ps, err := listProcs()
	if err != nil {
		return err
	}
	pids := procsUnderDir(ps, dir, os.Getpid())
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for {
			stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if err != nil {
				break
			}
			if _, state, err := parseProcStat(string(stat)); err != nil || state == 'Z' {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d under %s survives SIGKILL", pid, dir)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if len(pids) > 0 {
		return fmt.Errorf("killed %d processes left under %s: %v", len(pids), dir, pids)
	}
	return nil
}
