package daemon_test

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/miekg/dns"
	"github.com/moby/moby/api/pkg/stdcopy"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/internal/nettest"
)

// containerHost is a test host with berthd and the busybox image.
func containerHost(t *testing.T, args ...string) (*nettest.Host, *nettest.Daemon) {
	t.Helper()
	tar := nettest.BusyboxImage(t)
	if _, err := os.Stat("/usr/sbin/runc"); err != nil {
		t.Skip("needs runc (Debian package runc)")
	}
	h := nettest.NewHost(t)
	d := h.StartDaemon(args...)
	f, err := os.Open(tar)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := d.Client.ImageImport(ctxT(t), client.ImageImportSource{Source: f, SourceName: "-"}, "busybox", client.ImageImportOptions{})
	if err != nil {
		t.Fatalf("import busybox: %v", err)
	}
	defer res.Close()
	var sink bytes.Buffer
	sink.ReadFrom(res)
	return h, d
}

// spec describes a container for runContainer.
type spec struct {
	name, network string
	hostname      string
	ip            string
	aliases       []string
	cmd           []string
	hostConfig    *ctypes.HostConfig
}

// runContainer creates and starts a container and returns its ID.
func runContainer(t *testing.T, d *nettest.Daemon, s spec) string {
	t.Helper()
	hc := s.hostConfig
	if hc == nil {
		hc = &ctypes.HostConfig{}
	}
	if s.network != "" {
		hc.NetworkMode = ctypes.NetworkMode(s.network)
	}
	var nc *network.NetworkingConfig
	if s.ip != "" || len(s.aliases) > 0 {
		ep := &network.EndpointSettings{Aliases: s.aliases}
		if s.ip != "" {
			ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr(s.ip)}
		}
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{s.network: ep}}
	}
	res, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{
		Name: s.name, Config: &ctypes.Config{Image: "busybox", Cmd: s.cmd, Hostname: s.hostname}, HostConfig: hc, NetworkingConfig: nc,
	})
	if err != nil {
		t.Fatalf("create %s: %v", s.name, err)
	}
	if _, err := d.Client.ContainerStart(ctxT(t), res.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start %s: %v", s.name, err)
	}
	return res.ID
}

// execIn runs a command in a running container and returns its output and
// exit code.
func execIn(t *testing.T, d *nettest.Daemon, id string, cmd ...string) (string, string, int) {
	t.Helper()
	ctx := ctxT(t)
	x, err := d.Client.ExecCreate(ctx, id, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec create %v: %v", cmd, err)
	}
	att, err := d.Client.ExecAttach(ctx, x.ID, client.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec attach %v: %v", cmd, err)
	}
	var stdout, stderr bytes.Buffer
	stdcopy.StdCopy(&stdout, &stderr, att.Reader)
	att.Close()
	var code int
	waitFor(t, 10*time.Second, func() error {
		in, err := d.Client.ExecInspect(ctx, x.ID, client.ExecInspectOptions{})
		if err != nil {
			return err
		}
		if in.Running {
			return fmt.Errorf("exec %v still running", cmd)
		}
		code = in.ExitCode
		return nil
	})
	return stdout.String(), stderr.String(), code
}

func inspectContainer(t *testing.T, d *nettest.Daemon, id string) ctypes.InspectResponse {
	t.Helper()
	res, err := d.Client.ContainerInspect(ctxT(t), id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Container
}

func TestContainersOnOneNetworkTalkTCP(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	web := runContainer(t, d, spec{name: "web", network: "app", cmd: []string{"sh", "-c", "echo hello from web > /tmp/index.html; exec httpd -f -p 80 -h /tmp"}})
	ip := inspectContainer(t, d, web).NetworkSettings.Networks["app"].IPAddress.String()
	if ip != "172.18.0.2" {
		t.Fatalf("web's address = %s, want 172.18.0.2", ip)
	}
	client := runContainer(t, d, spec{name: "client", network: "app", cmd: []string{"sleep", "1000"}})
	var out string
	waitFor(t, 10*time.Second, func() error {
		var code int
		out, _, code = execIn(t, d, client, "wget", "-qO-", "http://"+ip+"/index.html")
		if code != 0 {
			return fmt.Errorf("wget exit %d", code)
		}
		return nil
	})
	if out != "hello from web\n" {
		t.Fatalf("client fetched %q", out)
	}
	stdout, _, _ := execIn(t, d, web, "ip", "-4", "-o", "addr", "show", "eth0")
	if !strings.Contains(stdout, "inet 172.18.0.2/16") {
		t.Errorf("web's eth0: %s", stdout)
	}
	stdout, _, _ = execIn(t, d, web, "cat", "/etc/hostname", "/etc/hosts")
	if !strings.HasPrefix(stdout, web[:12]+"\n127.0.0.1\tlocalhost\n") || !strings.Contains(stdout, "172.18.0.2\t"+web[:12]+"\n") {
		t.Errorf("web's hostname and hosts:\n%s", stdout)
	}
}

func TestContainerOnTwoNetworksReachesBothAndConnectDisconnectWhileRunning(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "one", client.NetworkCreateOptions{})
	create(t, d, "two", client.NetworkCreateOptions{})
	a := runContainer(t, d, spec{name: "ca", network: "one", cmd: []string{"httpd", "-f", "-p", "80", "-h", "/etc"}})
	b := runContainer(t, d, spec{name: "cb", network: "two", cmd: []string{"httpd", "-f", "-p", "80", "-h", "/etc"}})
	m := runContainer(t, d, spec{name: "cm", network: "one", cmd: []string{"sleep", "1000"}})

	if _, err := d.Client.NetworkConnect(ctxT(t), "two", client.NetworkConnectOptions{Container: "cm"}); err != nil {
		t.Fatalf("connect m to two: %v", err)
	}
	out, _, _ := execIn(t, d, m, "ip", "-4", "-o", "addr")
	if !strings.Contains(out, "eth1    inet 172.19.0.3/16") {
		t.Fatalf("after connect, m has:\n%s", out)
	}
	for _, target := range []string{inspectContainer(t, d, a).NetworkSettings.Networks["one"].IPAddress.String(), inspectContainer(t, d, b).NetworkSettings.Networks["two"].IPAddress.String()} {
		waitFor(t, 10*time.Second, func() error {
			if _, _, code := execIn(t, d, m, "wget", "-qO-", "http://"+target+"/hostname"); code != 0 {
				return fmt.Errorf("m cannot fetch from %s", target)
			}
			return nil
		})
	}
	if nets := inspectContainer(t, d, m).NetworkSettings.Networks; len(nets) != 2 || nets["two"].IPAddress.String() != "172.19.0.3" {
		t.Errorf("m's networks after connect: %v", nets)
	}
	hosts, _, _ := execIn(t, d, m, "cat", "/etc/hosts")
	if !strings.Contains(hosts, "172.19.0.3\t"+m[:12]) {
		t.Errorf("/etc/hosts lacks the new address:\n%s", hosts)
	}

	if _, err := d.Client.NetworkDisconnect(ctxT(t), "one", client.NetworkDisconnectOptions{Container: "cm"}); err != nil {
		t.Fatalf("disconnect m from one: %v", err)
	}
	out, _, _ = execIn(t, d, m, "ip", "-4", "-o", "addr")
	if strings.Contains(out, "172.18.") || !strings.Contains(out, "172.19.0.3") {
		t.Errorf("after disconnect, m has:\n%s", out)
	}
	// The interface itself goes when the daemon reaps it, off the request.
	waitFor(t, 10*time.Second, func() error {
		if out, _, _ := execIn(t, d, m, "ip", "-o", "link"); strings.Contains(out, "eth0") {
			return fmt.Errorf("eth0 is still there:\n%s", out)
		}
		return nil
	})
	if st := inspectContainer(t, d, m).State; !st.Running {
		t.Errorf("m stopped running when disconnected: %+v", st)
	}
	if _, err := d.Client.NetworkConnect(ctxT(t), "two", client.NetworkConnectOptions{Container: "cm"}); err == nil || !strings.Contains(err.Error(), "endpoint with name cm already exists in network two") {
		t.Errorf("second connect to two: %v", err)
	}
}

func TestNetworkModes(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	web := runContainer(t, d, spec{name: "web", network: "app", cmd: []string{"sleep", "1000"}})

	side := runContainer(t, d, spec{name: "side", network: "container:web", cmd: []string{"sleep", "1000"}})
	webAddrs, _, _ := execIn(t, d, web, "ip", "-o", "addr")
	sideAddrs, _, _ := execIn(t, d, side, "ip", "-o", "addr")
	if webAddrs != sideAddrs || !strings.Contains(sideAddrs, "172.18.0.2/16") {
		t.Errorf("container: mode does not share web's namespace:\nweb:  %s\nside: %s", webAddrs, sideAddrs)
	}
	if hn, _, _ := execIn(t, d, side, "sh", "-c", "cat /etc/hostname; hostname"); hn != web[:12]+"\n"+web[:12]+"\n" {
		t.Errorf("side's /etc/hostname and hostname = %q, want web's", hn)
	}
	if _, err := d.Client.NetworkConnect(ctxT(t), "app", client.NetworkConnectOptions{Container: "side"}); err == nil ||
		!strings.Contains(err.Error(), "container sharing network namespace with another container or host cannot be connected to any other network") {
		t.Errorf("connect of a container: mode container: %v", err)
	}

	none := runContainer(t, d, spec{name: "none", network: "none", cmd: []string{"sleep", "1000"}})
	if out, _, _ := execIn(t, d, none, "ip", "-o", "link"); strings.Count(out, "\n") != 1 || !strings.Contains(out, "1: lo:") {
		t.Errorf("none has links:\n%s", out)
	}
	if nets := inspectContainer(t, d, none).NetworkSettings.Networks; len(nets) != 1 || nets["none"] == nil || nets["none"].EndpointID == "" {
		t.Errorf("none's networks: %v", nets)
	}

	// The host's own interfaces: lo and the bridges berth made in the test host.
	host := runContainer(t, d, spec{name: "hostnet", network: "host", cmd: []string{"sleep", "1000"}})
	out, _, _ := execIn(t, d, host, "ip", "-o", "link")
	hostLinks, _ := h.LinkNames()
	for _, l := range hostLinks {
		if !strings.Contains(out, ": "+l) && !strings.Contains(out, ": "+l+"@") {
			t.Errorf("host mode container does not see %s:\n%s", l, out)
		}
	}
}

func TestStoppedContainerReleasesItsAddressAndGetsOneBackOnStart(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "exp", client.NetworkCreateOptions{IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("172.29.10.0/24")}}}})
	a := runContainer(t, d, spec{name: "ca", network: "exp", cmd: []string{"sleep", "1000"}})
	s := runContainer(t, d, spec{name: "cs", network: "exp", ip: "172.29.10.77", cmd: []string{"sleep", "1000"}})
	zero := 0
	for _, id := range []string{a, s} {
		if _, err := d.Client.ContainerStop(ctxT(t), id, client.ContainerStopOptions{Timeout: &zero}); err != nil {
			t.Fatal(err)
		}
	}
	if st := inspectContainer(t, d, a).State; st.Running || st.Status != "exited" || st.ExitCode != 137 {
		t.Errorf("stopped a: %+v", st)
	}
	if n := inspect(t, d, "exp"); len(n.Containers) != 0 {
		t.Errorf("stopped containers still hold endpoints on exp: %v", n.Containers)
	}
	b := runContainer(t, d, spec{name: "cb", network: "exp", cmd: []string{"sleep", "1000"}})
	if ip := inspectContainer(t, d, b).NetworkSettings.Networks["exp"].IPAddress.String(); ip != "172.29.10.2" {
		t.Errorf("b got %s, want a's released 172.29.10.2", ip)
	}
	for _, id := range []string{a, s} {
		if _, err := d.Client.ContainerStart(ctxT(t), id, client.ContainerStartOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if ip := inspectContainer(t, d, a).NetworkSettings.Networks["exp"].IPAddress.String(); ip != "172.29.10.3" {
		t.Errorf("a restarted with %s, want 172.29.10.3", ip)
	}
	if ip := inspectContainer(t, d, s).NetworkSettings.Networks["exp"].IPAddress.String(); ip != "172.29.10.77" {
		t.Errorf("s restarted with %s, want its static 172.29.10.77", ip)
	}
}

func TestStaticAddressIsKeptForAStoppedContainer(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "exp", client.NetworkCreateOptions{IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("172.29.20.0/29")}}}})
	s := runContainer(t, d, spec{name: "cs", network: "exp", ip: "172.29.20.2", cmd: []string{"sleep", "1000"}})
	zero := 0
	if _, err := d.Client.ContainerStop(ctxT(t), s, client.ContainerStopOptions{Timeout: &zero}); err != nil {
		t.Fatal(err)
	}
	// While cs is stopped, .2 is neither handed out nor given to someone
	// who asks for it.
	other := runContainer(t, d, spec{name: "other", network: "exp", cmd: []string{"sleep", "1000"}})
	if ip := inspectContainer(t, d, other).NetworkSettings.Networks["exp"].IPAddress.String(); ip != "172.29.20.3" {
		t.Errorf("other got %s, want .3 (.2 is kept for cs)", ip)
	}
	_, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: "thief", Config: &ctypes.Config{Image: "busybox", Cmd: []string{"true"}},
		HostConfig: &ctypes.HostConfig{NetworkMode: "exp"}, NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			"exp": {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr("172.29.20.2")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.ContainerStart(ctxT(t), "thief", client.ContainerStartOptions{}); err == nil || !strings.Contains(err.Error(), "Address already in use") {
		t.Errorf("start of another container asking for cs's address: %v", err)
	}
	// With --rm, a container that cannot start is removed, as dockerd
	// does: docker run --rm leaves nothing behind.
	res, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: "gone", Config: &ctypes.Config{Image: "busybox", Cmd: []string{"true"}},
		HostConfig: &ctypes.HostConfig{NetworkMode: "exp", AutoRemove: true}, NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			"exp": {IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr("172.29.20.2")}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.ContainerStart(ctxT(t), res.ID, client.ContainerStartOptions{}); err == nil {
		t.Errorf("start of an --rm container asking for cs's address succeeded")
	}
	if _, err := d.Client.ContainerInspect(ctxT(t), res.ID, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("an --rm container that could not start is still there: %v", err)
	}
	// It survives a daemon restart, and cs gets it back.
	d.Kill()
	d.Start()
	if _, err := d.Client.ContainerStart(ctxT(t), s, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	if ip := inspectContainer(t, d, s).NetworkSettings.Networks["exp"].IPAddress.String(); ip != "172.29.20.2" {
		t.Errorf("cs restarted with %s, want 172.29.20.2", ip)
	}
	// Removing the container gives the address back.
	if _, err := d.Client.ContainerRemove(ctxT(t), s, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.ContainerStart(ctxT(t), "thief", client.ContainerStartOptions{}); err != nil {
		t.Errorf("start of thief after cs is gone: %v", err)
	}
}

func TestRunningContainersSurviveADaemonCrashAndAreAdopted(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	web := runContainer(t, d, spec{name: "web", network: "app", cmd: []string{"httpd", "-f", "-p", "80", "-h", "/etc"}})
	cli := runContainer(t, d, spec{name: "cli", network: "app", cmd: []string{"sleep", "1000"}})
	short := runContainer(t, d, spec{name: "short", network: "app", cmd: []string{"sh", "-c", "sleep 1; exit 3"}})
	pid := inspectContainer(t, d, web).State.Pid

	d.Kill()
	time.Sleep(1500 * time.Millisecond) // short ends while berthd is down
	d.Start()

	st := inspectContainer(t, d, web).State
	if !st.Running || st.Pid != pid {
		t.Fatalf("web after restart: %+v, want running with pid %d", st, pid)
	}
	waitFor(t, 10*time.Second, func() error {
		if _, _, code := execIn(t, d, cli, "wget", "-qO-", "http://172.18.0.2/hostname"); code != 0 {
			return fmt.Errorf("cli cannot reach web after the restart")
		}
		return nil
	})
	waitFor(t, 10*time.Second, func() error {
		st := inspectContainer(t, d, short).State
		if st.Running || st.ExitCode != 3 {
			return fmt.Errorf("short: %+v, want exited with 3", st)
		}
		return nil
	})
	if n := inspect(t, d, "app"); len(n.Containers) != 2 {
		t.Errorf("app has %d endpoints, want web's and cli's", len(n.Containers))
	}
	// The adopted container is still under control.
	if _, err := d.Client.ContainerStop(ctxT(t), web, client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := inspectContainer(t, d, web).State; st.Running {
		t.Errorf("web still running after stop: %+v", st)
	}
}

func TestContainerBadInput(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	runContainer(t, d, spec{name: "web", network: "app", cmd: []string{"sleep", "1000"}})
	stopped, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: "stopped", Config: &ctypes.Config{Image: "busybox", Cmd: []string{"true"}}})
	if err != nil {
		t.Fatal(err)
	}
	beforeKernel := kernelView(t, h)

	for _, c := range []struct {
		name string
		cfg  *ctypes.Config
		host *ctypes.HostConfig
		want string
	}{
		{"web", &ctypes.Config{Image: "busybox", Cmd: []string{"true"}}, nil,
			`Conflict. The container name "/web" is already in use by container "`},
		{"x1", &ctypes.Config{Image: "nosuchimage", Cmd: []string{"true"}}, nil, "No such image: nosuchimage"},
		{"x3", &ctypes.Config{Image: "busybox", Cmd: []string{"true"}}, &ctypes.HostConfig{NetworkMode: "container:nosuch"}, "No such container: nosuch"},
		{"x4", &ctypes.Config{Image: "busybox", Cmd: []string{"true"}, Hostname: "h"}, &ctypes.HostConfig{NetworkMode: "container:web"}, "conflicting options: hostname and the network mode"},
		{"bad name!", &ctypes.Config{Image: "busybox", Cmd: []string{"true"}}, nil, "Invalid container name (bad name!), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"},
		{"x5", &ctypes.Config{Image: "busybox", Cmd: []string{"true"}}, &ctypes.HostConfig{NetworkMode: "container:"}, "invalid network mode: container: needs a container name or ID"},
	} {
		_, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: c.name, Config: c.cfg, HostConfig: c.host})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("create %s: %v, want %q", c.name, err, c.want)
		}
	}

	// Starts that fail leave nothing behind. A missing network is found
	// at the start, as by dockerd: docker run shows Docker's error, not a
	// missing image.
	for _, mode := range []string{"nosuchnet", "bogus:mode"} {
		res, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Config: &ctypes.Config{Image: "busybox", Cmd: []string{"true"}}, HostConfig: &ctypes.HostConfig{NetworkMode: ctypes.NetworkMode(mode)}})
		if err != nil {
			t.Fatalf("create on the missing network %s: %v", mode, err)
		}
		_, err = d.Client.ContainerStart(ctxT(t), res.ID, client.ContainerStartOptions{})
		if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "network "+mode+" not found") {
			t.Errorf("start on the missing network %s: %v, want 404 network %s not found", mode, err, mode)
		}
		if st := inspectContainer(t, d, res.ID).State.Status; st != ctypes.StateCreated {
			t.Errorf("after its failed start the container is %s, want created", st)
		}
		if _, err := d.Client.ContainerRemove(ctxT(t), res.ID, client.ContainerRemoveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	joiner, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: "joiner", Config: &ctypes.Config{Image: "busybox", Cmd: []string{"true"}},
		HostConfig: &ctypes.HostConfig{NetworkMode: ctypes.NetworkMode("container:" + stopped.ID)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.ContainerStart(ctxT(t), joiner.ID, client.ContainerStartOptions{}); err == nil || !strings.Contains(err.Error(), "cannot join network of a non running container") {
		t.Errorf("start joining a stopped container: %v", err)
	}
	broken, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: "broken", Config: &ctypes.Config{Image: "busybox", Cmd: []string{"/no/such/binary"}},
		HostConfig: &ctypes.HostConfig{NetworkMode: "app"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.ContainerStart(ctxT(t), broken.ID, client.ContainerStartOptions{}); err == nil || !strings.Contains(err.Error(), "/no/such/binary") {
		t.Errorf("start of a container whose binary is missing: %v", err)
	}
	if n := inspect(t, d, "app"); len(n.Containers) != 1 {
		t.Errorf("a failed start left endpoints on app: %v", n.Containers)
	}
	waitFor(t, 10*time.Second, func() error {
		if got := kernelView(t, h); got != beforeKernel {
			return fmt.Errorf("kernel changed by failed starts:\nbefore %s\nafter  %s", beforeKernel, got)
		}
		return nil
	})
	if _, err := os.Stat(d.ExecRoot + "/netns/" + broken.ID); !os.IsNotExist(err) {
		t.Errorf("namespace of the failed container is still there: %v", err)
	}

	if _, err := d.Client.ContainerRemove(ctxT(t), "web", client.ContainerRemoveOptions{}); err == nil || !strings.Contains(err.Error(), "You cannot remove a running container") {
		t.Errorf("remove running without force: %v", err)
	}
	if _, err := d.Client.ContainerRemove(ctxT(t), "web", client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Errorf("remove -f: %v", err)
	}
	if n := inspect(t, d, "app"); len(n.Containers) != 0 {
		t.Errorf("removed container still on app: %v", n.Containers)
	}
	names := []string{}
	list, _ := d.Client.ContainerList(ctxT(t), client.ContainerListOptions{All: true})
	for _, c := range list.Items {
		names = append(names, c.Names[0])
	}
	slices.Sort(names)
	if strings.Join(names, ",") != "/broken,/joiner,/stopped" {
		t.Errorf("containers left: %v", names)
	}
}

// TestStockDockerCLIRunsContainers drives containers with the stock docker
// CLI: run attached and detached, exec, ps, inspect, logs, network
// connect/disconnect, rm.
func TestStockDockerCLIRunsContainers(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skipf("the stock Docker CLI is not at %s: %v", dockerCLI, err)
	}
	_, d := containerHost(t)
	dockerOK(t, d, "network", "create", "app")
	id := strings.TrimSpace(dockerOK(t, d, "run", "-d", "--name", "web", "--network", "app", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"))
	if len(id) != 64 {
		t.Fatalf("docker run -d printed %q", id)
	}
	ip := strings.TrimSpace(dockerOK(t, d, "inspect", "-f", "{{.NetworkSettings.Networks.app.IPAddress}}", "web"))
	if ip != "172.18.0.2" {
		t.Fatalf("web's address per docker inspect: %q", ip)
	}
	// Attached, output streamed, removed after.
	if got := dockerOK(t, d, "run", "--rm", "--network", "app", "busybox", "wget", "-qO-", "http://"+ip+"/hostname"); got != id[:12]+"\n" {
		t.Errorf("docker run --rm wget printed %q, want web's hostname", got)
	}
	stdout, stderr, code := docker(t, d, "run", "--name", "echo", "busybox", "sh", "-c", "echo out; echo err >&2; exit 4")
	if stdout != "out\n" || stderr != "err\n" || code != 4 {
		t.Errorf("docker run of a failing command: stdout %q stderr %q exit %d", stdout, stderr, code)
	}
	stdout, stderr, _ = docker(t, d, "logs", "echo")
	if stdout != "out\n" || stderr != "err\n" {
		t.Errorf("docker logs: stdout %q stderr %q", stdout, stderr)
	}
	if got := dockerOK(t, d, "exec", "web", "ip", "-4", "-o", "addr", "show", "eth0"); !strings.Contains(got, "inet 172.18.0.2/16") {
		t.Errorf("docker exec ip addr: %s", got)
	}
	if got := dockerOK(t, d, "ps", "--format", "{{.Names}} {{.Image}} {{.Status}}"); !strings.HasPrefix(got, "web busybox Up ") || strings.Contains(got, "echo") {
		t.Errorf("docker ps: %q", got)
	}
	if got := dockerOK(t, d, "ps", "-a", "--filter", "status=exited", "--format", "{{.Names}} {{.Status}}"); !strings.HasPrefix(got, "echo Exited (4) ") {
		t.Errorf("docker ps -a --filter status=exited: %q", got)
	}
	dockerOK(t, d, "network", "connect", "bridge", "web")
	dockerOK(t, d, "network", "disconnect", "app", "web")
	got := dockerOK(t, d, "exec", "web", "ip", "-4", "-o", "addr")
	if !strings.Contains(got, "172.17.0.2/16") || strings.Contains(got, "172.18.0.2") {
		t.Errorf("after connect bridge and disconnect app: %s", got)
	}
	if got := dockerOK(t, d, "inspect", "-f", "{{.State.Running}}", "web"); got != "true\n" {
		t.Errorf("web not running after disconnect: %q", got)
	}
	if got := dockerOK(t, d, "run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"); strings.Count(got, "\n") != 1 || !strings.Contains(got, "lo:") {
		t.Errorf("--network none has links: %q", got)
	}
	if got := dockerOK(t, d, "rm", "-f", "web", "echo"); got != "web\necho\n" {
		t.Errorf("docker rm -f printed %q", got)
	}
	if got := dockerOK(t, d, "ps", "-aq"); got != "" {
		t.Errorf("containers left: %q", got)
	}
}

// As dockerd: a container started on the default bridge gets the resolver
// when it joins a user-defined network, keeps it across a restart of berthd,
// and its resolv.conf points at it.
func TestConnectToAUserNetworkBringsTheResolver(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	runContainer(t, d, spec{name: "peer", network: "app", cmd: []string{"sleep", "1000"}})
	m := runContainer(t, d, spec{name: "late", cmd: []string{"sleep", "1000"}})
	if out, _, _ := execIn(t, d, m, "cat", "/etc/resolv.conf"); strings.Contains(out, "127.0.0.11") {
		t.Fatalf("a container on the default bridge alone uses the resolver:\n%s", out)
	}
	if _, err := d.Client.NetworkConnect(ctxT(t), "app", client.NetworkConnectOptions{Container: "late"}); err != nil {
		t.Fatal(err)
	}
	peerIP := inspectContainer(t, d, "peer").NetworkSettings.Networks["app"].IPAddress.String()
	resolves := func() error {
		out, _, code := execIn(t, d, m, "nslookup", "peer")
		if code != 0 || !strings.Contains(out, "Address: "+peerIP) {
			return fmt.Errorf("nslookup peer (%d):\n%s", code, out)
		}
		return nil
	}
	if err := resolves(); err != nil {
		t.Error(err)
	}
	if out, _, _ := execIn(t, d, m, "cat", "/etc/resolv.conf"); !strings.Contains(out, "nameserver 127.0.0.11\n") {
		t.Errorf("resolv.conf after the connect:\n%s", out)
	}
	// A query from one source port before and after a restart of berthd:
	// the second must reach the new resolver, not the translation to the
	// old one's closed port that connection tracking remembers.
	ns := netnsOf(t, d, m)
	ask := func() error {
		return ns.Do(func() error {
			c := &dns.Client{Timeout: 2 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40053}}}
			q := new(dns.Msg)
			q.SetQuestion("peer.", dns.TypeA)
			resp, _, err := c.Exchange(q, "127.0.0.11:53")
			if err == nil && (len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != peerIP) {
				err = fmt.Errorf("answer %v", resp.Answer)
			}
			return err
		})
	}
	if err := ask(); err != nil {
		t.Fatalf("before the restart: %v", err)
	}
	d.Stop()
	d.Start()
	if err := ask(); err != nil {
		t.Errorf("after the restart, from the same port: %v", err)
	}
	if err := resolves(); err != nil {
		t.Error(err)
	}
}

// A container that ended while berthd was away is shown exited from the
// first answer of the next berthd, never running without a process.
func TestAContainerThatEndedWhileBerthdWasAwayIsNeverShownRunning(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	gone := runContainer(t, d, spec{name: "gone", network: "app", cmd: []string{"sleep", "1000"}})
	stays := runContainer(t, d, spec{name: "stays", network: "app", cmd: []string{"sleep", "1000"}})
	pid := inspectContainer(t, d, gone).State.Pid
	d.Kill()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Gone from /proc once its shim has reaped it and kept its status.
	waitFor(t, 10*time.Second, func() error {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			return fmt.Errorf("process %d still there", pid)
		}
		return nil
	})
	d.Start()
	st := inspectContainer(t, d, gone).State
	if st.Running || st.Status != "exited" || st.ExitCode != 137 || st.Pid != 0 {
		t.Errorf("gone after the restart: %+v", st)
	}
	if n := inspect(t, d, "app").Containers; len(n) != 1 {
		t.Errorf("app's endpoints after the restart: %v", n)
	}
	if st := inspectContainer(t, d, stays).State; !st.Running || st.Pid == 0 {
		t.Errorf("stays after the restart: %+v", st)
	}
}
