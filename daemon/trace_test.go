package daemon_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/api"
	"github.com/berth-net/berth/internal/nettest"
)

// TestTraceAgreesWithTheTraffic traces, between containers of a bridge
// network of each kind, what berth's model of its firewall decides, and
// sends the traffic too: the answer must be what the kernel does.
func TestTraceAgreesWithTheTraffic(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	create(t, d, "data", client.NetworkCreateOptions{})
	create(t, d, "quiet", client.NetworkCreateOptions{Options: map[string]string{"com.docker.network.bridge.enable_icc": "false"}})
	create(t, d, "vault", client.NetworkCreateOptions{Internal: true})
	containers := map[string]string{"web": "app", "api": "app", "db": "data", "q1": "quiet", "q2": "quiet", "v1": "vault", "v2": "vault"}
	ns := map[string]*nettest.Namespace{}
	addr := map[string]string{}
	for name, net := range containers {
		s := sleeper(name, net, nil)
		if name == "db" {
			s = sleeper(name, net, publish("80/tcp=:8080"))
		}
		id := runContainer(t, d, s)
		ns[name] = netnsOf(t, d, id)
		addr[name] = inspectContainer(t, d, id).NetworkSettings.Networks[net].IPAddress.String()
		echoServer(t, ns[name], ":80")
	}
	gateway := func(net string) string { return inspect(t, d, net).IPAM.Config[0].Gateway.String() }

	for _, c := range []struct {
		from, to string
		dial     string // where the traffic goes
		verdict  string
		rule     string // the end of the deciding rule
	}{
		{"web", "api:80", addr["api"] + ":80", "allowed", "forward: iifname . oifname @intra accept"},
		{"web", "db:80", addr["db"] + ":80", "denied", "forward: iifname @bridges oifname @bridges drop"},
		{"api", addr["db"] + ":80", addr["db"] + ":80", "denied", "forward: iifname @bridges oifname @bridges drop"},
		{"web", "host:8080", gateway("app") + ":8080", "allowed", "forward: ct status dnat accept"},
		{"web", gateway("app") + ":8080", gateway("app") + ":8080", "allowed", "forward: ct status dnat accept"},
		{"q1", "q2:80", addr["q2"] + ":80", "denied", "forward: iifname @isolated oifname @isolated drop"},
		{"q1", "host:8080", gateway("quiet") + ":8080", "allowed", "forward: ct status dnat accept"},
		{"v1", "v2:80", addr["v2"] + ":80", "allowed", "forward: iifname . oifname @intra accept"},
		{"v1", "web:80", addr["web"] + ":80", "denied", "forward: iifname @internal drop"},
		{"web", "v1:80", addr["v1"] + ":80", "denied", "forward: oifname @internal drop"},
		{"v1", "host:8080", gateway("vault") + ":8080", "denied", "forward: iifname @internal drop"},
	} {
		rep, err := d.API.Trace(ctxT(t), c.from, c.to)
		if err != nil {
			t.Errorf("trace %s → %s: %v", c.from, c.to, err)
			continue
		}
		if rep.Verdict != c.verdict || !strings.HasSuffix(rep.Rule, c.rule) || rep.Reachable != (c.verdict == "allowed") {
			t.Errorf("trace %s → %s: %s by %q, want %s by …%s\n%+v", c.from, c.to, rep.Verdict, rep.Rule, c.verdict, c.rule, rep)
		}
		if len(rep.Path) == 0 || rep.Reason == "" {
			t.Errorf("trace %s → %s: no path or reason: %+v", c.from, c.to, rep)
		}
	}

	// The traffic, all at once: the refused dials take their timeouts.
	var wg sync.WaitGroup
	for _, c := range []struct {
		from, dial string
		reach      bool
	}{
		{"web", addr["api"] + ":80", true}, {"web", addr["db"] + ":80", false}, {"api", addr["db"] + ":80", false},
		{"web", gateway("app") + ":8080", true}, {"q1", addr["q2"] + ":80", false}, {"q1", gateway("quiet") + ":8080", true},
		{"v1", addr["v2"] + ":80", true}, {"v1", addr["web"] + ":80", false}, {"web", addr["v1"] + ":80", false},
		{"v1", gateway("vault") + ":8080", false},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := roundTrip(ns[c.from], c.dial)
			switch {
			case c.reach && err != nil:
				t.Errorf("%s → %s: traced as allowed, but: %v", c.from, c.dial, err)
			case !c.reach && err == nil:
				t.Errorf("%s → %s: traced as denied, but it gets through", c.from, c.dial)
			}
		}()
	}
	wg.Wait()

	// The CLI: the way, the rule, and the exit code.
	stdout, _, code := berth(t, d, "network", "trace", "web", "api:80")
	if code != 0 || !strings.HasPrefix(stdout, "web -> api ("+addr["api"]+"), port 80/tcp: allowed\n") ||
		!strings.Contains(stdout, "  bridged on br-") || !strings.Contains(stdout, "forward: iifname . oifname @intra accept\n") {
		t.Errorf("berth network trace web api:80: exit %d\n%s", code, stdout)
	}
	stdout, _, code = berth(t, d, "network", "trace", "web", "db:80")
	if code != 1 || !strings.Contains(stdout, "why:  berth's networks are isolated from each other") ||
		!strings.Contains(stdout, "note: db publishes 80/tcp on port 8080 of the host's addresses") {
		t.Errorf("berth network trace web db:80: exit %d\n%s", code, stdout)
	}

	// What cannot be traced.
	if _, err := d.Client.ContainerStop(ctxT(t), "api", client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		src, dst string
		is       func(error) bool
		says     string
	}{
		{"api", "web", errdefs.IsConflict, "container api is not running"},
		{"ghost", "web", errdefs.IsNotFound, "no such container or sandbox: ghost"},
		{"web", "ghost:80", errdefs.IsNotFound, "no such container or sandbox: ghost"},
		{"web", "host", errdefs.IsInvalidArgument, "a trace to the host needs the port published there"},
		{"web", "203.0.113.9:80", errdefs.IsNotFound, "203.0.113.9 is neither the address of a container of berth's nor one of the host's"},
		{"web", "db:80/icmp", errdefs.IsInvalidArgument, "the protocol is tcp, udp or sctp"},
	} {
		_, err := d.API.Trace(ctxT(t), c.src, c.dst)
		var apiErr *api.Error
		if !c.is(err) || !errors.As(err, &apiErr) || !strings.Contains(apiErr.Message, c.says) {
			t.Errorf("trace %s → %s: %v, want %q", c.src, c.dst, err, c.says)
		}
	}
}
