package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-net/berth/internal/nettest"
)

// A project as compose users write them: a web service published on the
// host, on a front network and an internal back network with a static
// address, a named volume and a bind mount; a terminal; a service to scale.
const composeProject = `name: shop
services:
  web:
    image: busybox
    command: ["sh", "-c", "cp /conf/index.html /www/ && exec httpd -f -p 80 -h /www"]
    ports: ["8080:80"]
    networks:
      front:
        aliases: [shopfront]
      back:
        ipv4_address: 10.123.0.10
    volumes:
      - data:/www
      - ./conf:/conf:ro
    restart: unless-stopped
  db:
    image: busybox
    command: ["sh"]
    tty: true
    stdin_open: true
    networks: [back]
  worker:
    image: busybox
    command: ["sleep", "100000"]
    networks: [back]
networks:
  front: {}
  back:
    internal: true
    ipam:
      config:
        - subnet: 10.123.0.0/24
volumes:
  data: {}
`

// httpGet fetches a URL from inside ns.
func httpGet(ns *nettest.Namespace, url string) (string, error) {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) { return ns.Dial(ctx, network, addr) }}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestDockerComposeProjectUpScaleRestartDown(t *testing.T) {
	t.Parallel()
	h, d := containerHost(t)
	compose := nettest.Compose(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "conf", "index.html"), []byte("welcome to the shop\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(composeProject), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, string, int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, errOut, code, err := d.Run(ctx, "", compose, append([]string{"-f", file, "--project-directory", dir}, args...)...)
		if err != nil {
			t.Fatalf("docker compose %s: %v", strings.Join(args, " "), err)
		}
		return out, errOut, code
	}
	ok := func(args ...string) string {
		t.Helper()
		out, errOut, code := run(args...)
		if code != 0 {
			t.Fatalf("docker compose %s: exit %d:\n%s\n%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	ok("up", "-d")

	// The published port serves the bind-mounted page from the volume.
	waitFor(t, 10*time.Second, func() error {
		body, err := httpGet(h.Namespace, "http://127.0.0.1:8080/index.html")
		if err != nil {
			return err
		}
		if body != "welcome to the shop\n" {
			return fmt.Errorf("the published port serves %q", body)
		}
		return nil
	})
	// Services find each other by name and alias; the static address holds.
	if out := ok("exec", "-T", "worker", "wget", "-q", "-O", "-", "http://web/index.html"); out != "welcome to the shop\n" {
		t.Errorf("worker fetched %q from web", out)
	}
	if out := ok("exec", "-T", "worker", "nslookup", "web"); !strings.Contains(out, "10.123.0.10") {
		t.Errorf("web does not resolve to its static address on back:\n%s", out)
	}
	if out, _, _ := run("exec", "-T", "worker", "nslookup", "shopfront"); strings.Contains(out, "Name:") {
		t.Errorf("the alias on front resolves from back, where worker is not:\n%s", out)
	}
	// back is internal: nothing leaves it, not even to the host's port.
	if out, _, code := run("exec", "-T", "worker", "wget", "-q", "-T", "2", "-O", "-", "http://10.123.0.1:8080/index.html"); code == 0 {
		t.Errorf("a container on the internal network fetched the host's published port: %q", out)
	}
	// tty: the process has a terminal.
	if out := ok("exec", "-T", "db", "readlink", "/proc/1/fd/0"); !strings.HasPrefix(out, "/dev/pts/") {
		t.Errorf("db's process reads from %q, want a terminal", out)
	}

	// Scale.
	ok("up", "-d", "--scale", "worker=3")
	names := func() []string {
		res, err := d.Client.ContainerList(ctxT(t), client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", "com.docker.compose.project=shop")})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range res.Items {
			out = append(out, strings.TrimPrefix(c.Names[0], "/")+" "+string(c.State))
		}
		slices.Sort(out)
		return out
	}
	want := []string{"shop-db-1 running", "shop-web-1 running", "shop-worker-1 running", "shop-worker-2 running", "shop-worker-3 running"}
	if got := names(); !slices.Equal(got, want) {
		t.Errorf("after scale: %q, want %q", got, want)
	}

	// Events through compose, while a restart happens.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	events := exec.CommandContext(ctx, compose, "-f", file, "--project-directory", dir, "events", "--json")
	events.Env = append(os.Environ(), "DOCKER_HOST="+d.URL(), "DOCKER_CONFIG="+h.Dir)
	pipe, err := events.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Do(func() error { return events.Start() }); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); events.Wait() }()
	seen := make(chan string, 64)
	go func() {
		defer close(seen)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			var ev struct{ Action, Service string }
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				seen <- ev.Service + " " + ev.Action
			}
		}
	}()
	// compose events has subscribed once the daemon saw its request:
	// restart until its events arrive, three times at most.
	got := map[string]bool{}
	for attempt := 0; attempt < 3 && (!got["web start"] || !got["web stop"]); attempt++ {
		ok("restart", "web")
		wait := time.After(10 * time.Second)
	collect:
		for !got["web start"] || !got["web stop"] {
			select {
			case s, more := <-seen:
				if !more {
					t.Fatalf("compose events ended; saw %v", got)
				}
				got[s] = true
			case <-wait:
				break collect
			}
		}
	}
	if !got["web start"] || !got["web stop"] {
		t.Errorf("compose events showed %v, want web's stop and start", got)
	}
	waitFor(t, 10*time.Second, func() error {
		_, err := httpGet(h.Namespace, "http://127.0.0.1:8080/index.html")
		return err
	})

	// Down with volumes leaves nothing of the project.
	ok("down", "-v")
	if got := names(); len(got) != 0 {
		t.Errorf("after down: containers %q", got)
	}
	nets, err := d.Client.NetworkList(ctxT(t), client.NetworkListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nets.Items {
		if strings.HasPrefix(n.Name, "shop_") {
			t.Errorf("after down: network %s", n.Name)
		}
	}
	if vols := volumeNames(t, d, nil); len(vols) != 0 {
		t.Errorf("after down -v: volumes %q", vols)
	}
}
