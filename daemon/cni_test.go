package daemon_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-net/berth/internal/cnitest"
)

// pods is a CNI network as flannel's or Podman's: the reference bridge
// plugin with host-local addresses and portmap.
const pods = `{"cniVersion":"1.0.0","name":"pods","plugins":[
	{"type":"bridge","bridge":"cni-pods0","isGateway":true,"ipMasq":true,
	 "ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":"10.88.0.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}]}},
	{"type":"portmap","capabilities":{"portMappings":true}}]}`

// A CNI configuration is a network: containers on it get the chain's
// addresses, find each other through berth's resolver, publish ports
// through portmap, and keep all of it across a restart of berthd.
func TestCNIConfigurationIsANetworkForTheDockerCLI(t *testing.T) {
	t.Parallel()
	bin := cnitest.Plugins(t)
	conf, data := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(conf, "10-pods.conflist"), fmt.Appendf(nil, pods, data), 0o644); err != nil {
		t.Fatal(err)
	}
	h, d := containerHost(t, "--cni-conf-dir", conf, "--cni-bin-dir", bin)
	if out := dockerOK(t, d, "network", "ls", "--filter", "driver=cni", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"); strings.TrimSpace(out) != "pods cni local" {
		t.Fatalf("network ls: %q, want the configuration's network", out)
	}
	if _, stderr, code := docker(t, d, "network", "create", "-d", "cni", "more"); code == 0 || !strings.Contains(stderr, "CNI configuration file in "+conf) {
		t.Errorf("network create -d cni: exit %d, %s", code, stderr)
	}
	if _, stderr, code := docker(t, d, "network", "rm", "pods"); code == 0 || !strings.Contains(stderr, "pre-defined") {
		t.Errorf("network rm pods: exit %d, %s", code, stderr)
	}
	dockerOK(t, d, "run", "-d", "--name", "web", "--network", "pods", "-p", "18080:80", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc")
	dockerOK(t, d, "run", "-d", "--name", "cli", "--network", "pods", "--network-alias", "client", "busybox", "sleep", "100000")
	webIP := strings.TrimSpace(dockerOK(t, d, "inspect", "-f", "{{.NetworkSettings.Networks.pods.IPAddress}}", "web"))
	if !strings.HasPrefix(webIP, "10.88.0.") {
		t.Fatalf("web's address on pods: %q, want host-local's", webIP)
	}
	check := func(when string) {
		t.Helper()
		if out := dockerOK(t, d, "exec", "cli", "wget", "-qO-", "http://web/hostname"); strings.TrimSpace(out) == "" {
			t.Errorf("%s: cli → web by name: empty answer", when)
		}
		conn, err := h.Namespace.Dial(ctxT(t), "tcp", "10.88.0.1:18080")
		if err != nil {
			t.Errorf("%s: the published port through portmap: %v", when, err)
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(conn, "GET /hostname HTTP/1.0\r\n\r\n")
		answer, _ := io.ReadAll(conn)
		if !strings.HasPrefix(string(answer), "HTTP/1.") || !strings.Contains(string(answer), " 200 ") {
			t.Errorf("%s: GET through the published port: %q", when, answer)
		}
	}
	check("after run")
	d.Stop()
	d.Start()
	check("after a restart of berthd")
	if ip := strings.TrimSpace(dockerOK(t, d, "inspect", "-f", "{{.NetworkSettings.Networks.pods.IPAddress}}", "web")); ip != webIP {
		t.Errorf("web's address after a restart: %s, want %s", ip, webIP)
	}
	dockerOK(t, d, "rm", "-f", "web")
	if _, err := os.Stat(filepath.Join(data, "pods", webIP)); !os.IsNotExist(err) {
		t.Errorf("host-local still holds %s after rm: %v", webIP, err)
	}
}
