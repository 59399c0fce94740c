package daemon_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-net/berth/internal/nettest"
)

// dockerCLI is the stock Docker CLI the tests drive berthd with:
// BERTH_TEST_DOCKER, else /usr/local/bin/docker, where .ci/run puts the
// one of Debian's docker.io package when the machine has none.
var dockerCLI = cmp.Or(os.Getenv("BERTH_TEST_DOCKER"), "/usr/local/bin/docker")

// docker runs the stock Docker CLI against d.
func docker(t *testing.T, d *nettest.Daemon, args ...string) (string, string, int) {
	t.Helper()
	stdout, stderr, code, err := d.Run(ctxT(t), "", dockerCLI, args...)
	if err != nil {
		t.Fatalf("docker %s: %v", strings.Join(args, " "), err)
	}
	return stdout, stderr, code
}

// dockerOK runs the CLI and fails the test unless it succeeds.
func dockerOK(t *testing.T, d *nettest.Daemon, args ...string) string {
	t.Helper()
	stdout, stderr, code := docker(t, d, args...)
	if code != 0 {
		t.Fatalf("docker %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	return stdout
}

func TestStockDockerCLIManagesNetworksAsAgainstDocker(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skipf("the stock Docker CLI is not at %s: %v", dockerCLI, err)
	}
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	id := func(name string) string { return inspect(t, d, name).ID }

	// F1: the table of a fresh daemon, aligned as Docker aligns it.
	want := "NETWORK ID     NAME      DRIVER    SCOPE\n" +
		id("bridge")[:12] + "   bridge    bridge    local\n" +
		id("host")[:12] + "   host      host      local\n" +
		id("none")[:12] + "   none      null      local\n"
	if got := dockerOK(t, d, "network", "ls"); got != want {
		t.Errorf("docker network ls:\n%s\nwant:\n%s", got, want)
	}
	want = ""
	for _, n := range []string{"bridge", "host", "none"} {
		drv := map[string]string{"none": "null"}[n]
		if drv == "" {
			drv = n
		}
		want += fmt.Sprintf("%s %s %s local ipv6=false internal=false\n", id(n), n, drv)
	}
	if got := dockerOK(t, d, "network", "ls", "--no-trunc", "--format", "{{.ID}} {{.Name}} {{.Driver}} {{.Scope}} ipv6={{.IPv6}} internal={{.Internal}}"); got != want {
		t.Errorf("docker network ls --no-trunc --format:\n%s\nwant:\n%s", got, want)
	}

	out := dockerOK(t, d, "network", "create", "app")
	if !regexp.MustCompile(`^[0-9a-f]{64}\n$`).MatchString(out) || strings.TrimSpace(out) != id("app") {
		t.Errorf("docker network create printed %q, want the new ID", out)
	}
	dockerOK(t, d, "network", "create", "--subnet", "10.20.0.0/24", "--ip-range", "10.20.0.128/25", "--gateway", "10.20.0.1",
		"--aux-address", "r=10.20.0.2", "-o", "com.docker.network.bridge.name=br-app", "--label", "team=x", "lab")

	// F2's inspect template.
	got := dockerOK(t, d, "network", "inspect", "-f", "{{.Name}} {{range .IPAM.Config}}subnet={{.Subnet}} gw={{.Gateway}}{{end}} driver={{.Driver}}", "app", "lab")
	if got != "app subnet=172.18.0.0/16 gw=172.18.0.1 driver=bridge\nlab subnet=10.20.0.0/24 gw=10.20.0.1 driver=bridge\n" {
		t.Errorf("docker network inspect -f: %q", got)
	}
	// Docker 20.10's JSON: every key it shows is there, with its type.
	var inspected []map[string]any
	if err := json.Unmarshal([]byte(dockerOK(t, d, "network", "inspect", "lab")), &inspected); err != nil || len(inspected) != 1 {
		t.Fatalf("docker network inspect lab is not a JSON array of one: %v", err)
	}
	n := inspected[0]
	for _, key := range []string{"Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM", "Internal", "Attachable", "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels"} {
		if _, ok := n[key]; !ok {
			t.Errorf("inspect lacks %s", key)
		}
	}
	ipamJSON, _ := json.Marshal(n["IPAM"])
	if string(ipamJSON) != `{"Config":[{"AuxiliaryAddresses":{"r":"10.20.0.2"},"Gateway":"10.20.0.1","IPRange":"10.20.0.128/25","Subnet":"10.20.0.0/24"}],"Driver":"default","Options":{}}` {
		t.Errorf("inspect IPAM = %s", ipamJSON)
	}
	if got := fmt.Sprint(n["Labels"], n["Options"], n["ConfigFrom"]); got != "map[team:x] map[com.docker.network.bridge.name:br-app] map[Network:]" {
		t.Errorf("labels, options, config-from = %s", got)
	}

	if got := dockerOK(t, d, "network", "ls", "--filter", "driver=bridge", "--filter", "label=team=x", "--format", "{{.Name}}"); got != "lab\n" {
		t.Errorf("filtered ls = %q, want lab", got)
	}
	if got := dockerOK(t, d, "network", "ls", "-q", "--filter", "name=app"); got != id("app")[:12]+"\n" {
		t.Errorf("ls -q = %q", got)
	}

	// F4's errors, as this CLI prints them against Docker.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"network", "create", "app"}, "Error response from daemon: network with name app already exists\n"},
		{[]string{"network", "create", "--subnet", "10.20.0.128/25", "x"}, "Error response from daemon: Pool overlaps with other one on this address space\n"},
		{[]string{"network", "create", "--subnet", "10.0.0.0/33", "x"}, "Error response from daemon: Invalid subnet 10.0.0.0/33 : invalid CIDR address: 10.0.0.0/33\n"},
		{[]string{"network", "create", "--driver", "nosuchdriver", "x"}, "Error response from daemon: plugin \"nosuchdriver\" not found\n"},
		{[]string{"network", "rm", "bridge"}, "Error response from daemon: bridge is a pre-defined network and cannot be removed\n"},
	} {
		_, stderr, code := docker(t, d, c.args...)
		// The CLI of Docker 28 adds a line of its own to a failed rm.
		if code != 1 || strings.TrimSuffix(stderr, "exit status 1\n") != c.want {
			t.Errorf("docker %s: exit %d, stderr %q; want exit 1, %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
	}

	if got := dockerOK(t, d, "network", "rm", "lab"); got != "lab\n" {
		t.Errorf("docker network rm printed %q", got)
	}
	if got := dockerOK(t, d, "network", "prune", "-f"); got != "Deleted Networks:\napp\n\n" && got != "Deleted Networks:\napp\n" {
		t.Errorf("docker network prune -f printed %q", got)
	}
	if got := names(t, d, nil); !slices.Equal(got, []string{"bridge", "host", "none"}) {
		t.Errorf("after rm and prune: %v", got)
	}
	if got := dockerOK(t, d, "version", "--format", "{{.Server.APIVersion}}"); got != "1.56\n" {
		t.Errorf("server API version = %q", got)
	}
}

func TestStockDockerCLIVolumesAndEvents(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skipf("the stock Docker CLI is not at %s: %v", dockerCLI, err)
	}
	_, d := containerHost(t)
	start := fmt.Sprint(time.Now().Add(-time.Second).Unix())
	if got := dockerOK(t, d, "volume", "create", "--label", "k=v", "cli-vol"); got != "cli-vol\n" {
		t.Errorf("volume create printed %q", got)
	}
	dockerOK(t, d, "run", "--name", "writer", "-v", "cli-vol:/d", "busybox", "sh", "-c", "echo x > /d/f")
	if got := dockerOK(t, d, "volume", "ls", "-q", "--filter", "label=k=v"); got != "cli-vol\n" {
		t.Errorf("volume ls printed %q", got)
	}
	if got := dockerOK(t, d, "volume", "inspect", "-f", "{{.Driver}} {{.Scope}} {{.Labels}}", "cli-vol"); got != "local local map[k:v]\n" {
		t.Errorf("volume inspect printed %q", got)
	}
	if _, errOut, code := docker(t, d, "volume", "rm", "cli-vol"); code == 0 || !strings.Contains(errOut, "volume is in use") {
		t.Errorf("volume rm of a volume in use: exit %d, %s", code, errOut)
	}
	dockerOK(t, d, "rm", "writer")
	if got := dockerOK(t, d, "volume", "rm", "cli-vol"); got != "cli-vol\n" {
		t.Errorf("volume rm printed %q", got)
	}
	until := fmt.Sprint(time.Now().Add(time.Second).Unix())
	got := dockerOK(t, d, "events", "--since", start, "--until", until, "--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}}")
	if want := "create cli-vol\nmount cli-vol\nunmount cli-vol\ndestroy cli-vol\n"; got != want {
		t.Errorf("docker events printed:\n%s\nwant:\n%s", got, want)
	}
	if got := dockerOK(t, d, "events", "--since", start, "--until", until, "--filter", "container=writer", "--filter", "event=die", "--format", "{{.Action}} {{.Actor.Attributes.exitCode}}"); got != "die 0\n" {
		t.Errorf("docker events for the writer's die printed %q", got)
	}
}
