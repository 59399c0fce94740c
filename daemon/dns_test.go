package daemon_test

import (
	"slices"
	"strings"
	"testing"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

func TestLegacyLinksOnTheDefaultBridge(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	src, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: "lsrc",
		Config: &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "100000"}, Env: []string{"FOO=bar", "SECRET_X=1"},
			ExposedPorts: network.PortSet{network.MustParsePort("5201/tcp"): {}, network.MustParsePort("53/udp"): {}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.ContainerStart(ctxT(t), src.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	cli := runContainer(t, d, spec{name: "lcli", cmd: []string{"sleep", "100000"}, hostConfig: &ctypes.HostConfig{Links: []string{"lsrc:db"}}})

	env, _, _ := execIn(t, d, cli, "env")
	lines := strings.Split(strings.TrimSpace(env), "\n")
	for _, want := range []string{
		"DB_NAME=/lcli/db", "DB_PORT=udp://172.17.0.2:53",
		"DB_PORT_5201_TCP=tcp://172.17.0.2:5201", "DB_PORT_5201_TCP_ADDR=172.17.0.2", "DB_PORT_5201_TCP_PORT=5201", "DB_PORT_5201_TCP_PROTO=tcp",
		"DB_PORT_53_UDP=udp://172.17.0.2:53", "DB_ENV_FOO=bar", "DB_ENV_SECRET_X=1",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("linking container's environment lacks %s:\n%s", want, env)
		}
	}
	if strings.Contains(env, "DB_ENV_PATH") {
		t.Errorf("the linked container's PATH leaked into the environment")
	}
	hosts, _, _ := execIn(t, d, cli, "cat", "/etc/hosts")
	if !strings.Contains(hosts, "172.17.0.2\tdb "+src.ID[:12]+" lsrc\n") {
		t.Errorf("/etc/hosts lacks the link:\n%s", hosts)
	}
	if _, _, code := execIn(t, d, cli, "ping", "-c1", "-W1", "db"); code != 0 {
		t.Errorf("ping db through the link failed")
	}

	// A link to a stopped container is refused at start, as Docker does.
	if _, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: "off", Config: &ctypes.Config{Image: "busybox", Cmd: []string{"true"}}}); err != nil {
		t.Fatal(err)
	}
	bad, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: "bad",
		Config: &ctypes.Config{Image: "busybox", Cmd: []string{"true"}}, HostConfig: &ctypes.HostConfig{Links: []string{"off:x"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.ContainerStart(ctxT(t), bad.ID, client.ContainerStartOptions{}); err == nil || !strings.Contains(err.Error(), "Cannot link to a non running container: /off AS /bad/x") {
		t.Errorf("link to a stopped container: %v", err)
	}
}

func TestResolvConfAndHostsFollowDocker(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	def := runContainer(t, d, spec{name: "rdef", cmd: []string{"sleep", "100000"}})
	usr := runContainer(t, d, spec{name: "rusr", network: "app", cmd: []string{"sleep", "100000"},
		hostConfig: &ctypes.HostConfig{DNSSearch: []string{"example.test"}, DNSOptions: []string{"ndots:2"}, ExtraHosts: []string{"extra.test:172.29.10.200"}}})
	if got, _, _ := execIn(t, d, usr, "cat", "/etc/resolv.conf"); got != "search example.test\nnameserver 127.0.0.11\noptions ndots:2\n" {
		t.Errorf("resolv.conf on a user-defined network:\n%s", got)
	}
	if got, _, _ := execIn(t, d, def, "cat", "/etc/resolv.conf"); strings.Contains(got, "127.0.0.11") || strings.Contains(got, "nameserver 127.") {
		t.Errorf("resolv.conf on the default bridge has a loopback nameserver:\n%s", got)
	}
	hosts, _, _ := execIn(t, d, usr, "cat", "/etc/hosts")
	if !strings.HasSuffix(hosts, "ff02::2\tip6-allrouters\n172.29.10.200\textra.test\n172.18.0.2\t"+usr[:12]+"\n") {
		t.Errorf("/etc/hosts with --add-host:\n%s", hosts)
	}
	// Aliases are for user-defined networks only.
	_, err := d.Client.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: "al",
		Config: &ctypes.Config{Image: "busybox", Cmd: []string{"true"}},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"bridge": {Aliases: []string{"x"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.ContainerStart(ctxT(t), "al", client.ContainerStartOptions{}); err == nil || !strings.Contains(err.Error(), "network-scoped aliases are only supported for user-defined networks") {
		t.Errorf("alias on the default bridge: %v", err)
	}
}
