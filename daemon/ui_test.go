package daemon_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/internal/nettest"
	"github.com/berth-net/berth/topology"
)

// socketClient speaks HTTP to a daemon's unix socket.
func socketClient(d *nettest.Daemon) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dialer net.Dialer
			return dialer.DialContext(ctx, "unix", d.Socket)
		},
	}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func getBody(t *testing.T, c *http.Client, path string) (*http.Response, []byte) {
	t.Helper()
	res, err := c.Get("http://berthd" + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return res, body
}

func getTopology(t *testing.T, c *http.Client, query string) topology.Model {
	t.Helper()
	res, body := getBody(t, c, "/topology?"+query)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /topology?%s: %s: %s", query, res.Status, body)
	}
	var m topology.Model
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET /topology?%s: %v: %s", query, err, body)
	}
	return m
}

func findContainer(m topology.Model, name string) (topology.Container, bool) {
	i := slices.IndexFunc(m.Containers, func(c topology.Container) bool { return c.Name == name })
	if i < 0 {
		return topology.Container{}, false
	}
	return m.Containers[i], true
}

func TestTopologyDescribesTheDaemonsNetworks(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	subnet := func(s string) *network.IPAM {
		return &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix(s)}}}
	}
	app := create(t, d, "app", client.NetworkCreateOptions{IPAM: subnet("10.61.0.0/24")})
	secret := create(t, d, "secret", client.NetworkCreateOptions{Internal: true, IPAM: subnet("10.62.0.0/24")})
	quiet := create(t, d, "quiet", client.NetworkCreateOptions{IPAM: subnet("10.63.0.0/24"),
		Options: map[string]string{"com.docker.network.bridge.enable_icc": "false"}})
	web := runContainer(t, d, spec{name: "web", network: "app", aliases: []string{"www"}, cmd: []string{"sleep", "100000"},
		hostConfig: &ctypes.HostConfig{PortBindings: publish("80/tcp=:8080")}})
	if _, err := d.Client.NetworkConnect(ctxT(t), "secret", client.NetworkConnectOptions{Container: "web"}); err != nil {
		t.Fatal(err)
	}
	c := socketClient(d)

	m := getTopology(t, c, "format=json")
	var names []string
	for _, n := range m.Networks {
		names = append(names, n.Name)
	}
	if want := []string{"app", "bridge", "host", "none", "quiet", "secret"}; !slices.Equal(names, want) {
		t.Errorf("networks %v, want %v", names, want)
	}
	// The gateway, which inspect does not show, from web's endpoint.
	if n, _ := m.Network(app); len(n.Subnets) != 1 || n.Subnets[0] != (topology.Subnet{Subnet: "10.61.0.0/24", Gateway: "10.61.0.1"}) || n.Internal || !n.ICC {
		t.Errorf("app: %+v", n)
	}
	if n, _ := m.Network(secret); !n.Internal {
		t.Errorf("secret is internal, the model says %+v", n)
	}
	if n, _ := m.Network(quiet); n.ICC {
		t.Errorf("quiet has enable_icc=false, the model says %+v", n)
	}
	w, ok := findContainer(m, "web")
	if !ok || w.ID != web || w.Kind != topology.KindContainer || w.State != "running" {
		t.Fatalf("web: %+v (found %v)", w, ok)
	}
	if len(w.Endpoints) != 2 {
		t.Fatalf("web's endpoints: %+v, want app and secret", w.Endpoints)
	}
	if e := w.Endpoints[0]; e.Network != app || e.IPv4 != "10.61.0.2/24" || !slices.Contains(e.Aliases, "www") || !e.Live || e.MAC == "" {
		t.Errorf("web on app: %+v", e)
	}
	if e := w.Endpoints[1]; e.Network != secret || e.IPv4 != "10.62.0.2/24" || !e.Live {
		t.Errorf("web on secret: %+v", e)
	}
	if want := []topology.Port{{HostIP: "0.0.0.0", HostPort: 8080, Port: 80, Proto: "tcp"}}; !slices.Equal(w.Ports, want) {
		t.Errorf("web's ports %+v, want %+v", w.Ports, want)
	}
	hostname, _ := os.Hostname()
	if len(m.Hosts) != 1 || !m.Hosts[0].Local || m.Hosts[0].Name != hostname {
		t.Errorf("hosts %+v, want this one, %s", m.Hosts, hostname)
	}

	only := getTopology(t, c, "format=json&network=secret")
	if len(only.Networks) != 1 || only.Networks[0].ID != secret || len(only.Containers) != 1 || len(only.Containers[0].Endpoints) != 1 {
		t.Errorf("only secret: %+v", only)
	}

	res, body := getBody(t, c, "/topology?format=svg")
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusOK || ct != "image/svg+xml" {
		t.Fatalf("SVG: %s, %s", res.Status, ct)
	}
	decoder := xml.NewDecoder(bytes.NewReader(body))
	for {
		_, err := decoder.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed: %v", err)
		}
	}
	for _, want := range []string{`data-name="web" data-network="app"`, `data-name="web" data-network="secret"`, `data-kind="network" data-id="` + quiet + `"`, "0.0.0.0:8080→80/tcp web"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("the SVG has no %s", want)
		}
	}
	if _, body := getBody(t, c, "/topology?format=dot"); !bytes.HasPrefix(body, []byte(`graph "berth" {`)) || !bytes.Contains(body, []byte("10.61.0.2/24")) {
		t.Errorf("DOT: %s", body)
	}
	// The CLI builds the picture from the Engine API; it is berthd's.
	for _, q := range [][2]string{{"format=svg", "svg"}, {"format=dot&network=secret&network=quiet", "dot secret quiet"}} {
		_, want := getBody(t, c, "/topology?"+q[0])
		args := append([]string{"network", "graph", "--format"}, strings.Fields(q[1])...)
		stdout, stderr, code := berth(t, d, args...)
		if code != 0 || stdout != string(want) {
			t.Errorf("berth %s: exit %d: %s\n%s\nwant GET /topology?%s:\n%s", strings.Join(args, " "), code, stderr, stdout, q[0], want)
		}
	}

	for _, bad := range []struct {
		query  string
		status int
		text   string
	}{
		{"format=png", http.StatusBadRequest, "svg, dot or json"},
		{"network=nope", http.StatusNotFound, "network nope not found"},
	} {
		res, body := getBody(t, c, "/topology?"+bad.query)
		if res.StatusCode != bad.status || !strings.Contains(string(body), bad.text) {
			t.Errorf("GET /topology?%s: %s %s, want %d and %q", bad.query, res.Status, body, bad.status, bad.text)
		}
	}

	res, _ = getBody(t, c, "/ui")
	if res.StatusCode != http.StatusMovedPermanently || res.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %s to %q, want a redirect to /ui/", res.Status, res.Header.Get("Location"))
	}
	for path, kind := range map[string]string{"/ui/": "text/html", "/ui/ui.js": "javascript", "/ui/ui.css": "text/css"} {
		res, body := getBody(t, c, path)
		if res.StatusCode != http.StatusOK || !strings.Contains(res.Header.Get("Content-Type"), kind) || len(body) == 0 {
			t.Errorf("GET %s: %s, %s", path, res.Status, res.Header.Get("Content-Type"))
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
}

func TestTopologyShowsTheOtherHostsOfAnOverlay(t *testing.T) {
	t.Parallel()
	c := overlayCluster(t, 2)
	h1, h2 := c.Hosts[0], c.Hosts[1]
	ov := create(t, h1.Daemon, "ov", client.NetworkCreateOptions{Driver: "overlay",
		IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: netip.MustParsePrefix("10.70.0.0/24")}}}})
	onEveryHost(t, c, 5*time.Second, func(_ int, d *nettest.Daemon) error { return listedAs(d, "ov", ov) })
	runContainer(t, h1.Daemon, spec{name: "left", network: "ov", cmd: []string{"sleep", "100000"}})
	runContainer(t, h2.Daemon, spec{name: "right", network: "ov", cmd: []string{"sleep", "100000"}})
	sc := socketClient(h1.Daemon)
	waitFor(t, 10*time.Second, func() error {
		m := getTopology(t, sc, "format=json")
		var local, other []topology.Host
		for _, h := range m.Hosts {
			if h.Local {
				local = append(local, h)
			} else {
				other = append(other, h)
			}
		}
		if len(local) != 1 || local[0].IP != h1.Addr.String() {
			return fmt.Errorf("this host: %+v, want one at %s", local, h1.Addr)
		}
		if len(other) != 1 || other[0].IP != h2.Addr.String() || !slices.Equal(other[0].Networks, []string{ov}) {
			return fmt.Errorf("other hosts: %+v, want host 2 at %s, sharing ov", other, h2.Addr)
		}
		return nil
	})
	_, body := getBody(t, sc, "/topology?format=svg")
	if !bytes.Contains(body, []byte(`class="peer-link"`)) || !bytes.Contains(body, []byte(h2.Addr.String())) {
		t.Errorf("the SVG does not draw host 2 joined to ov:\n%s", body)
	}
}

// TestTopologyPageNamesNothingOutsideBerthd: the page must work where
// berthd's host reaches no other machine, so it loads nothing from
// elsewhere.
func TestTopologyPageNamesNothingOutsideBerthd(t *testing.T) {
	entries, err := os.ReadDir("ui")
	if err != nil {
		t.Fatal(err)
	}
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("ui", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		// SVG's namespace is a name, not an address anything is loaded from.
		text := strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", "")
		for _, m := range external.FindAllString(text, -1) {
			t.Errorf("ui/%s names %s", e.Name(), m)
		}
	}
	if len(entries) < 3 {
		t.Errorf("ui/ has %d files, want the page, its script and its style", len(entries))
	}
}

// browser starts Debian's chromium, headless, inside the test host's
// network namespace (through nsenter), where only loopback and what the
// test made exist; chromedp talks to it over a pipe, not a port.
func browser(t *testing.T, h *nettest.Host) context.Context {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("needs chromium (Debian package chromium) to test the page in a browser")
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Skip("needs nsenter (Debian package util-linux) to run chromium in the test host")
	}
	logf, err := os.Create(filepath.Join(h.Dir, "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("chromium's output:\n%s", b)
		}
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // as root, chromium refuses its sandbox
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 900),
		chromedp.UserDataDir(filepath.Join(h.Dir, "chromium")),
		chromedp.CombinedOutput(logf),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.Args = append([]string{"nsenter", "--net=" + h.Path, "--", cmd.Path}, cmd.Args[1:]...)
			cmd.Path = nsenter
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		}),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	return ctx
}

// pageState is what the page shows, read from its DOM.
type pageState struct {
	Status   string
	Networks []string
	Cards    []string // container@network
	Detail   string   // the detail panel's title, "" when hidden
	Body     string   // the detail panel's text
}

const readPage = `(() => {
  const svg = document.querySelector('#picture svg');
  const detail = document.getElementById('detail');
  return {
    Status: document.getElementById('status').dataset.state,
    Networks: svg ? [...svg.querySelectorAll('g[data-kind=network]')].map((g) => g.dataset.name) : [],
    Cards: svg ? [...svg.querySelectorAll('g.card')].map((g) => g.dataset.name + '@' + g.dataset.network) : [],
    Detail: detail.hidden ? '' : document.getElementById('detail-title').textContent,
    Body: detail.hidden ? '' : document.getElementById('detail-body').textContent,
  };
})()`

// waitPage reads the page until it shows what ok wants, for up to limit.
func waitPage(t *testing.T, ctx context.Context, limit time.Duration, what string, ok func(pageState) bool) pageState {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := chromedp.Run(callCtx, chromedp.Evaluate[pageState](readPage))
		cancel()
		if err == nil && ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the page does not show %s: %+v (%v)", limit, what, s, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTopologyPageInABrowser(t *testing.T) {
	t.Parallel()
	// The page is served on loopback TCP, inside the test host only.
	const base = "http://127.0.0.1:2375"
	h, d := containerHost(t, "-H", "tcp://127.0.0.1:2375")
	create(t, d, "front", client.NetworkCreateOptions{})
	create(t, d, "back", client.NetworkCreateOptions{Internal: true})
	runContainer(t, d, spec{name: "web", network: "front", cmd: []string{"sleep", "100000"}})
	runContainer(t, d, spec{name: "db", network: "back", aliases: []string{"database"}, cmd: []string{"sleep", "100000"}})
	ctx := browser(t, h)

	var mu sync.Mutex
	var problems []string
	console := chromedp.Console(ctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s %s:%d: %s", m.Type, m.URL, m.Line, m.Text))
				mu.Unlock()
			}
		}
	}()

	navCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err := chromedp.Do(navCtx, chromedp.Navigate(base+"/ui/"))
	cancel()
	if err != nil {
		t.Fatalf("open the page: %v", err)
	}
	has := func(list []string, want ...string) bool {
		for _, w := range want {
			if !slices.Contains(list, w) {
				return false
			}
		}
		return true
	}
	s := waitPage(t, ctx, 30*time.Second, "the networks and containers, live", func(s pageState) bool {
		return s.Status == "live" && has(s.Networks, "back", "bridge", "front", "host", "none") && has(s.Cards, "web@front", "db@back")
	})
	if len(s.Networks) != 5 || len(s.Cards) != 2 {
		t.Errorf("the page shows more than exists: %+v", s)
	}

	// The page learns of the connect from /events: it does not poll.
	if _, err := d.Client.NetworkConnect(ctxT(t), "back", client.NetworkConnectOptions{Container: "web"}); err != nil {
		t.Fatal(err)
	}
	waitPage(t, ctx, 10*time.Second, "web on back after the connect", func(s pageState) bool { return has(s.Cards, "web@back") })

	clickCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(clickCtx, chromedp.Click(chromedp.CSS(`g.card[data-name="db"]`))); err != nil {
		t.Fatalf("click db: %v", err)
	}
	s = waitPage(t, ctx, 5*time.Second, "db's details", func(s pageState) bool { return s.Detail == "container db" })
	for _, want := range []string{"back", "alias database", "running"} {
		if !strings.Contains(s.Body, want) {
			t.Errorf("db's details have no %q: %s", want, s.Body)
		}
	}
	if err := chromedp.Do(clickCtx, chromedp.Click(chromedp.CSS(`g.network[data-name="back"] text`))); err != nil {
		t.Fatalf("click back: %v", err)
	}
	s = waitPage(t, ctx, 5*time.Second, "back's details", func(s pageState) bool { return s.Detail == "network back" })
	for _, want := range []string{"yes: nothing in or out", "web", "db"} {
		if !strings.Contains(s.Body, want) {
			t.Errorf("back's details have no %q: %s", want, s.Body)
		}
	}

	// Everything the page loaded came from berthd.
	urls, err := chromedp.Run(clickCtx, chromedp.Evaluate[[]string](`performance.getEntriesByType('resource').map((e) => e.name)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(urls) == 0 {
		t.Error("the page loaded nothing, not even its script")
	}
	for _, u := range urls {
		if !strings.HasPrefix(u, base+"/") {
			t.Errorf("the page loaded %s, not from berthd", u)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("the browser reported %s", p)
	}
}
