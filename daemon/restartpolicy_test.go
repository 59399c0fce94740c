package daemon_test

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/internal/nettest"
)

// restartPolicy is a host configuration with a restart policy.
func restartPolicy(name string, max int) *ctypes.HostConfig {
	return &ctypes.HostConfig{RestartPolicy: ctypes.RestartPolicy{Name: ctypes.RestartPolicyMode(name), MaximumRetryCount: max}}
}

// lifecycle lists a container's start, die (with its exit code), kill,
// stop and destroy events between since and until, in order. With until
// ahead, it returns then: a bounded wait for what must not happen.
func lifecycle(t *testing.T, d *nettest.Daemon, name string, since, until time.Time) []string {
	t.Helper()
	res := d.Client.Events(ctxT(t), client.EventsListOptions{
		Since: since.Format(time.RFC3339Nano), Until: until.Format(time.RFC3339Nano),
		Filters: client.Filters{}.Add("container", name).Add("event", "start", "die", "kill", "stop", "destroy"),
	})
	limit := time.After(time.Until(until) + 10*time.Second)
	var out []string
	for {
		select {
		case m := <-res.Messages:
			s := string(m.Action)
			if s == "die" {
				s += " " + m.Actor.Attributes["exitCode"]
			}
			out = append(out, s)
		case err := <-res.Err:
			if err.Error() != "EOF" {
				t.Fatalf("events of %s: %v", name, err)
			}
			return out
		case <-limit:
			t.Fatalf("the events of %s up to %v did not end; so far %q", name, until, out)
		}
	}
}

// startedAt is when the container's process last started.
func startedAt(t *testing.T, in ctypes.InspectResponse) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, in.State.StartedAt)
	if err != nil {
		t.Fatalf("StartedAt %q: %v", in.State.StartedAt, err)
	}
	return at
}

func TestRestartPolicyOnFailureRetriesAtMostItsMaximum(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	start := time.Now()
	ok := runContainer(t, d, spec{name: "succeeds", cmd: []string{"true"}, hostConfig: restartPolicy("on-failure", 0)})
	waitFor(t, 10*time.Second, func() error {
		if st := inspectContainer(t, d, ok).State; st.Status != ctypes.StateExited {
			return fmt.Errorf("succeeds is %s", st.Status)
		}
		return nil
	})
	fails := runContainer(t, d, spec{name: "fails", cmd: []string{"sh", "-c", "exit 3"}, hostConfig: restartPolicy("on-failure", 2)})
	var in ctypes.InspectResponse
	waitFor(t, 30*time.Second, func() error {
		in = inspectContainer(t, d, fails)
		if in.State.Status != ctypes.StateExited || in.RestartCount != 2 {
			return fmt.Errorf("fails is %s after %d restarts", in.State.Status, in.RestartCount)
		}
		return nil
	})
	if st := in.State; st.ExitCode != 3 || st.Running || st.Restarting || st.Pid != 0 {
		t.Errorf("fails after its retries: %+v, want exited (3)", st)
	}
	if p := in.HostConfig.RestartPolicy; p.Name != "on-failure" || p.MaximumRetryCount != 2 {
		t.Errorf("fails has the policy %+v", p)
	}
	// Each end is a die, each restart a start: two restarts, not three.
	want := []string{"start", "die 3", "start", "die 3", "start", "die 3"}
	if got := lifecycle(t, d, "fails", start, time.Now()); !slices.Equal(got, want) {
		t.Errorf("events of fails: %q, want %q", got, want)
	}
	// Success is no failure: succeeds ended before fails began and was
	// never started again while fails went through two backoffs.
	if in := inspectContainer(t, d, ok); in.RestartCount != 0 || in.State.ExitCode != 0 {
		t.Errorf("succeeds: %d restarts, exit code %d", in.RestartCount, in.State.ExitCode)
	}
	if got := lifecycle(t, d, "succeeds", start, time.Now()); !slices.Equal(got, []string{"start", "die 0"}) {
		t.Errorf("events of succeeds: %q, want one start and one die", got)
	}
}

func TestRestartPolicyAlwaysBringsAContainerBackOnItsNetworkUnderItsName(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	cli := runContainer(t, d, spec{name: "cli", network: "app", cmd: []string{"sleep", "1000"}})
	web := runContainer(t, d, spec{name: "web", network: "app", hostConfig: restartPolicy("always", 0),
		cmd: []string{"sh", "-c", `trap "exit 5" TERM; sleep 1000 & wait`}})
	before := inspectContainer(t, d, web)
	oldIP := before.NetworkSettings.Networks["app"].IPAddress
	start := time.Now()

	// The shell is PID 1 with a handler, so a signal from inside ends it:
	// an end no client asked for.
	execIn(t, d, web, "kill", "-TERM", "1")
	var after ctypes.InspectResponse
	waitFor(t, 20*time.Second, func() error {
		after = inspectContainer(t, d, web)
		if st := after.State; !st.Running || st.Restarting || st.Pid == 0 || st.Pid == before.State.Pid || after.RestartCount != 1 {
			return fmt.Errorf("web: %+v after %d restarts, want running again with a new pid", st, after.RestartCount)
		}
		return nil
	})
	if !startedAt(t, after).After(startedAt(t, before)) {
		t.Errorf("web started at %s, before its restart at %s", after.State.StartedAt, before.State.StartedAt)
	}
	ep := after.NetworkSettings.Networks["app"]
	if ep == nil || !ep.IPAddress.IsValid() {
		t.Fatalf("web has no address on app after its restart: %+v", after.NetworkSettings.Networks)
	}
	if n := inspect(t, d, "app"); len(n.Containers) != 2 {
		t.Errorf("app has %d endpoints after the restart, want cli's and web's", len(n.Containers))
	}
	// The peer finds it by name at its address of now.
	waitFor(t, 10*time.Second, func() error {
		out, _, code := execIn(t, d, cli, "nslookup", "web")
		if code != 0 || !strings.Contains(out, ep.IPAddress.String()) {
			return fmt.Errorf("nslookup web from cli (%d), want %s:\n%s", code, ep.IPAddress, out)
		}
		if oldIP != ep.IPAddress && strings.Contains(out, oldIP.String()) {
			return fmt.Errorf("web still resolves to its old address %s:\n%s", oldIP, out)
		}
		return nil
	})
	// As dockerd: the end is a die, the restart a start; no stop, no kill.
	if got, want := lifecycle(t, d, "web", start, time.Now()), []string{"die 5", "start"}; !slices.Equal(got, want) {
		t.Errorf("events of web: %q, want %q", got, want)
	}
}

func TestRestartPoliciesAcrossADaemonRestartFollowStopsByHand(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	sleep := []string{"sleep", "1000"}
	// PID 1 with a handler, to be ended from inside later.
	trapped := []string{"sh", "-c", `trap "exit 5" TERM; sleep 1000 & wait`}
	unlessStopped := runContainer(t, d, spec{name: "unless-stopped", network: "app", cmd: trapped, hostConfig: restartPolicy("unless-stopped", 0)})
	alwaysStopped := runContainer(t, d, spec{name: "always-stopped", network: "app", cmd: sleep, hostConfig: restartPolicy("always", 0)})
	alwaysKilled := runContainer(t, d, spec{name: "always-killed", network: "app", cmd: sleep, hostConfig: restartPolicy("always", 0)})
	unlessRunning := runContainer(t, d, spec{name: "unless-running", network: "app", cmd: sleep, hostConfig: restartPolicy("unless-stopped", 0)})
	crashing := runContainer(t, d, spec{name: "crashing", network: "app", cmd: []string{"sh", "-c", "exit 1"}, hostConfig: restartPolicy("always", 0)})
	running := inspectContainer(t, d, unlessRunning).State.Pid

	// A stop or a kill by hand is not followed by a restart.
	zero := 0
	for _, id := range []string{unlessStopped, alwaysStopped} {
		if _, err := d.Client.ContainerStop(ctxT(t), id, client.ContainerStopOptions{Timeout: &zero}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Client.ContainerKill(ctxT(t), alwaysKilled, client.ContainerKillOptions{}); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	for _, name := range []string{"unless-stopped", "always-stopped", "always-killed"} {
		waitFor(t, 10*time.Second, func() error {
			if st := inspectContainer(t, d, name).State; st.Status != ctypes.StateExited || st.ExitCode != 137 {
				return fmt.Errorf("%s: %+v, want exited (137)", name, st)
			}
			return nil
		})
	}
	// The first restarts would have come within 100 ms.
	until := time.Now().Add(time.Second)
	for _, name := range []string{"unless-stopped", "always-stopped", "always-killed"} {
		for _, ev := range lifecycle(t, d, name, stopped, until) {
			if ev == "start" {
				t.Errorf("%s was started again after it was stopped by hand", name)
			}
		}
		if n := inspectContainer(t, d, name).RestartCount; n != 0 {
			t.Errorf("%s counts %d restarts", name, n)
		}
	}
	// crashing is waiting for a restart when berthd stops.
	waitFor(t, 20*time.Second, func() error {
		if in := inspectContainer(t, d, crashing); !in.State.Restarting || in.RestartCount < 3 {
			return fmt.Errorf("crashing is %s after %d restarts", in.State.Status, in.RestartCount)
		}
		return nil
	})

	d.Stop()
	boot := time.Now()
	d.Start()

	// As dockerd at its start: always comes back even after a stop or a
	// kill by hand, unless-stopped does not, and what waited for its
	// restart is started. These are starts afresh: no restarts counted.
	for _, name := range []string{"always-stopped", "always-killed"} {
		waitFor(t, 20*time.Second, func() error {
			in := inspectContainer(t, d, name)
			if !in.State.Running || in.State.Restarting || in.RestartCount != 0 {
				return fmt.Errorf("%s: %+v after %d restarts, want running afresh", name, in.State, in.RestartCount)
			}
			if ep := in.NetworkSettings.Networks["app"]; ep == nil || !ep.IPAddress.IsValid() {
				return fmt.Errorf("%s has no address on app", name)
			}
			return nil
		})
	}
	waitFor(t, 20*time.Second, func() error {
		if in := inspectContainer(t, d, crashing); !startedAt(t, in).After(boot) {
			return fmt.Errorf("crashing last started at %s, before berthd's start at %s", in.State.StartedAt, boot.UTC().Format(time.RFC3339Nano))
		}
		return nil
	})
	if st := inspectContainer(t, d, unlessStopped).State; st.Status != ctypes.StateExited {
		t.Errorf("unless-stopped, stopped by hand, is %s after berthd's restart", st.Status)
	}
	if st := inspectContainer(t, d, unlessRunning).State; !st.Running || st.Pid != running {
		t.Errorf("unless-running: %+v, want still running as pid %d", st, running)
	}

	// The stop by hand is in the record: a crash of berthd keeps it too.
	d.Kill()
	d.Start()
	if st := inspectContainer(t, d, unlessStopped).State; st.Status != ctypes.StateExited {
		t.Errorf("unless-stopped is %s after berthd's crash", st.Status)
	}
	// A start by hand clears it: the next end of the process is restarted.
	if _, err := d.Client.ContainerStart(ctxT(t), unlessStopped, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	pid := inspectContainer(t, d, unlessStopped).State.Pid
	execIn(t, d, unlessStopped, "kill", "-TERM", "1")
	waitFor(t, 20*time.Second, func() error {
		in := inspectContainer(t, d, unlessStopped)
		if !in.State.Running || in.State.Pid == pid || in.RestartCount != 1 {
			return fmt.Errorf("unless-stopped: %+v after %d restarts, want restarted once", in.State, in.RestartCount)
		}
		return nil
	})
}

func TestRestartPolicyCalledOffByRemoveOrStopDuringTheBackoff(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	removed := runContainer(t, d, spec{name: "flaky", network: "app", cmd: []string{"sh", "-c", "exit 1"}, hostConfig: restartPolicy("always", 0)})
	stopped := runContainer(t, d, spec{name: "flaky-stopped", network: "app", cmd: []string{"sh", "-c", "exit 2"}, hostConfig: restartPolicy("on-failure", 0)})

	// After five quick ends the next restart waits 1.6 s or more: caught
	// just after its end, the container is restarting while we look.
	waiting := func(id string) ctypes.InspectResponse {
		var in ctypes.InspectResponse
		waitFor(t, 30*time.Second, func() error {
			in = inspectContainer(t, d, id)
			if in.State.Status != ctypes.StateRestarting || in.RestartCount < 5 {
				return fmt.Errorf("%s is %s after %d restarts", in.Name, in.State.Status, in.RestartCount)
			}
			ended, err := time.Parse(time.RFC3339Nano, in.State.FinishedAt)
			if err != nil {
				t.Fatal(err)
			}
			if time.Since(ended) > 200*time.Millisecond {
				return fmt.Errorf("%s ended at %s, too long ago", in.Name, in.State.FinishedAt)
			}
			return nil
		})
		return in
	}
	in := waiting(removed)
	if st := in.State; !st.Running || !st.Restarting || st.Pid != 0 || st.ExitCode != 1 {
		t.Errorf("a container waiting for its restart: %+v, want running and restarting, no pid, exit code 1", st)
	}
	if _, err := d.Client.ExecCreate(ctxT(t), removed, client.ExecCreateOptions{Cmd: []string{"true"}}); !errdefs.IsConflict(err) ||
		!strings.Contains(err.Error(), "Container "+removed+" is restarting, wait until the container is running") {
		t.Errorf("exec in a restarting container: %v", err)
	}
	list, err := d.Client.ContainerList(ctxT(t), client.ContainerListOptions{Filters: client.Filters{}.Add("name", "^flaky$")})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].State != ctypes.StateRestarting || !strings.HasPrefix(list.Items[0].Status, "Restarting (1) ") {
		t.Errorf("docker ps lists %+v, want flaky restarting", list.Items)
	}
	if _, err := d.Client.ContainerRemove(ctxT(t), removed, client.ContainerRemoveOptions{}); !errdefs.IsConflict(err) ||
		!strings.Contains(err.Error(), "You cannot remove a restarting container "+removed+". Stop the container before attempting removal or force remove") {
		t.Errorf("remove of a restarting container without force: %v", err)
	}
	if _, err := d.Client.ContainerRemove(ctxT(t), removed, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	gone := time.Now()
	// At most one more restart could have come before the removal.
	longest := 100 * time.Millisecond << in.RestartCount
	if _, err := d.Client.ContainerInspect(ctxT(t), removed, client.ContainerInspectOptions{}); !errdefs.IsNotFound(err) {
		t.Errorf("inspect of the removed container: %v", err)
	}

	waiting(stopped)
	halt := time.Now()
	if _, err := d.Client.ContainerStop(ctxT(t), stopped, client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	if st := inspectContainer(t, d, stopped).State; st.Status != ctypes.StateExited || st.Running || st.Restarting || st.ExitCode != 2 {
		t.Errorf("stopped while waiting for its restart: %+v, want exited with the status of its last run (2)", st)
	}
	// Nothing ran to be signalled: a stop, and no start after it.
	if got := lifecycle(t, d, "flaky-stopped", halt, time.Now().Add(time.Second)); !slices.Equal(got, []string{"stop"}) {
		t.Errorf("events of flaky-stopped since its stop: %q, want the stop alone", got)
	}
	// Past the longest delay the removed one could have had: no start came.
	if got := lifecycle(t, d, removed, gone, gone.Add(longest+time.Second)); len(got) != 0 {
		t.Errorf("events of flaky after its removal: %q, want none", got)
	}
	if n := inspect(t, d, "app"); len(n.Containers) != 0 {
		t.Errorf("app has endpoints left: %v", n.Containers)
	}
	out, err := exec.Command("runc", "--root", filepath.Join(d.ExecRoot, "runc"), "list", "-q").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), removed) {
		t.Errorf("runc still knows the removed container:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(d.ExecRoot, "containers", removed)); !os.IsNotExist(err) {
		t.Errorf("the removed container's run-time directory: %v", err)
	}
	if log := d.Log(); strings.Contains(log, "the restart policy could not start the container") {
		t.Errorf("berthd tried a restart that was called off:\n%s", log)
	}

	// The name is free and a new container under it works.
	again := runContainer(t, d, spec{name: "flaky", network: "app", cmd: []string{"sleep", "1000"}})
	in = inspectContainer(t, d, again)
	if !in.State.Running || in.Name != "/flaky" || in.RestartCount != 0 || !in.NetworkSettings.Networks["app"].IPAddress.IsValid() {
		t.Errorf("the new flaky: %+v on %+v", in.State, in.NetworkSettings.Networks)
	}
}

func TestRestartPoliciesDockerRefusesAreRefused(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	for _, c := range []struct {
		name  string
		image string
		host  *ctypes.HostConfig
		want  string
	}{
		{"unknown", "busybox", restartPolicy("sometimes", 0),
			"invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"},
		{"count-with-always", "busybox", restartPolicy("always", 3),
			"invalid restart policy: maximum retry count can only be used with 'on-failure'"},
		{"negative-count-with-unless-stopped", "busybox", restartPolicy("unless-stopped", -2),
			"invalid restart policy: maximum retry count can only be used with 'on-failure' and cannot be negative"},
		{"negative-count", "busybox", restartPolicy("on-failure", -1),
			"invalid restart policy: maximum retry count cannot be negative"},
		{"count-without-name", "busybox", restartPolicy("", 3),
			"invalid restart policy: maximum retry count can only be used with 'on-failure'"},
		{"auto-remove", "busybox", &ctypes.HostConfig{AutoRemove: true, RestartPolicy: ctypes.RestartPolicy{Name: "always"}},
			"can't create 'AutoRemove' container with restart policy"},
		// As dockerd, the settings are checked before the image is looked up.
		{"missing-image", "nosuchimage", restartPolicy("sometimes", 0), "invalid restart policy: unknown policy 'sometimes'"},
	} {
		_, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: c.name, Config: &ctypes.Config{Image: c.image, Cmd: []string{"true"}}, HostConfig: c.host})
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("create %s: %v, want 400 %q", c.name, err, c.want)
		}
	}
	list, err := d.Client.ContainerList(ctxT(t), client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("refused creates left containers: %v", list.Items)
	}
	// No policy is the policy "no"; --rm goes with it.
	res, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Config: &ctypes.Config{Image: "busybox", Cmd: []string{"true"}}, HostConfig: &ctypes.HostConfig{AutoRemove: true}})
	if err != nil {
		t.Fatal(err)
	}
	if p := inspectContainer(t, d, res.ID).HostConfig.RestartPolicy; p.Name != "no" || p.MaximumRetryCount != 0 {
		t.Errorf("the policy of a container created without one: %+v, want no", p)
	}
}

// TestStockDockerCLIRunsWithRestartPolicies: docker run --restart as users
// type it, and the restart count docker inspect shows.
func TestStockDockerCLIRunsWithRestartPolicies(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skipf("the stock Docker CLI is not at %s: %v", dockerCLI, err)
	}
	_, d := containerHost(t)
	dockerOK(t, d, "run", "-d", "--name", "retried", "--restart", "on-failure:1", "busybox", "sh", "-c", "exit 2")
	waitFor(t, 20*time.Second, func() error {
		if out := dockerOK(t, d, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}} {{.HostConfig.RestartPolicy.Name}}", "retried"); out != "exited 2 1 on-failure\n" {
			return fmt.Errorf("docker inspect retried: %q", out)
		}
		return nil
	})
	if _, stderr, code := docker(t, d, "create", "--restart", "sometimes", "busybox", "true"); code == 0 || !strings.Contains(stderr, "unknown policy 'sometimes'") {
		t.Errorf("docker create --restart sometimes: exit %d: %s", code, stderr)
	}
}

// After a reboot the networks, and the addresses kept for stopped
// containers, are still there; nothing of the sandboxes and endpoints of
// the boot before is (their records lived in the exec-root); containers
// with a restart policy come back on their networks with their addresses.
func TestAfterARebootNetworksStayAndContainersComeBack(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("172.29.30.0/24")}}}})
	web := runContainer(t, d, spec{name: "web", network: "app", ip: "172.29.30.10", cmd: []string{"sleep", "100000"}, hostConfig: restartPolicy("always", 0)})
	kept := runContainer(t, d, spec{name: "kept", network: "app", ip: "172.29.30.20", cmd: []string{"sleep", "100000"}})
	zero := 0
	if _, err := d.Client.ContainerStop(ctxT(t), kept, client.ContainerStopOptions{Timeout: &zero}); err != nil {
		t.Fatal(err)
	}
	attach(t, d, "ext", "app")

	d.Reboot()
	if _, err := os.Stat(filepath.Join(d.ExecRoot, "runtime.db")); !os.IsNotExist(err) {
		t.Fatalf("the exec-root survived the reboot: %v", err)
	}
	d.Start()
	waitFor(t, 20*time.Second, func() error {
		c := inspectContainer(t, d, web)
		if !c.State.Running || c.NetworkSettings.Networks["app"] == nil || c.NetworkSettings.Networks["app"].IPAddress.String() != "172.29.30.10" {
			return fmt.Errorf("web after the reboot: running %v, networks %v", c.State.Running, c.NetworkSettings.Networks)
		}
		return nil
	})
	var on []string
	for _, c := range inspect(t, d, "app").Containers {
		on = append(on, c.Name)
	}
	if !slices.Equal(on, []string{"web"}) {
		t.Errorf("on app after the reboot: %v, want web alone", on)
	}
	sbs, err := d.API.Sandboxes(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range sbs {
		if sb.Name == "ext" {
			t.Errorf("a sandbox of the boot before is still known: %+v", sb)
		}
	}
	// kept's address is still kept for it, and it gets it back.
	peer := runContainer(t, d, spec{name: "peer", network: "app", cmd: []string{"sleep", "100000"}})
	if ip := inspectContainer(t, d, peer).NetworkSettings.Networks["app"].IPAddress.String(); ip != "172.29.30.2" {
		t.Errorf("a new container got %s, want 172.29.30.2", ip)
	}
	if _, err := d.Client.ContainerStart(ctxT(t), kept, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	if ip := inspectContainer(t, d, kept).NetworkSettings.Networks["app"].IPAddress.String(); ip != "172.29.30.20" {
		t.Errorf("kept restarted with %s, want its 172.29.30.20", ip)
	}
	echoServer(t, netnsOf(t, d, web), ":7000")
	if err := roundTrip(netnsOf(t, d, peer), "172.29.30.10:7000"); err != nil {
		t.Errorf("peer → web after the reboot: %v", err)
	}
}
