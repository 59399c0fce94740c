package daemon_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/internal/nettest"
)

// raw sends a request straight to the daemon's socket.
func raw(t *testing.T, d *nettest.Daemon, method, path, contentType, body string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{Dial: func(_, _ string) (net.Conn, error) { return net.Dial("unix", d.Socket) }}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://berthd"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct{ Message string }
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		return resp.StatusCode, e.Message
	}
	return resp.StatusCode, string(b)
}

// kernelView lists the host's links with their addresses, to prove a failed
// request changed nothing.
func kernelView(t *testing.T, h *nettest.Host) string {
	t.Helper()
	links, err := h.Netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		// A retired device may be reaped meanwhile: it is then left out.
		addrs, err := h.Netlink.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			continue
		}
		var as []string
		for _, a := range addrs {
			as = append(as, a.IPNet.String())
		}
		out = append(out, l.Attrs().Name+"="+strings.Join(as, ","))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func TestBadInputGetsDockersMessageAndChangesNothing(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon("--default-address-pool", "base=10.99.0.0/23,size=24")
	json := func(v string) string { return v }
	if code, msg := raw(t, d, "POST", "/networks/create", "application/json", `{"Name":"exp","IPAM":{"Config":[{"Subnet":"172.29.10.0/24"}]}}`); code != 201 {
		t.Fatalf("create exp: %d %s", code, msg)
	}
	// The default bridge took 10.99.0.0/24; one /24 of the pool is left.
	if code, msg := raw(t, d, "POST", "/networks/create", "application/json", `{"Name":"last"}`); code != 201 {
		t.Fatalf("create last: %d %s", code, msg)
	}
	ns := h.NewNamespace("c")
	if code, msg := raw(t, d, "POST", "/sandboxes/create", "", `{"Name":"c","Key":"`+ns.Path+`"}`); code != 201 {
		t.Fatalf("create sandbox: %d %s", code, msg)
	}
	if code, msg := raw(t, d, "POST", "/sandboxes/c/connect", "", `{"Network":"exp"}`); code != 200 {
		t.Fatalf("connect: %d %s", code, msg)
	}
	long := strings.Repeat("n", 300)
	beforeNets := strings.Join(names(t, d, nil), ",")
	beforeKernel := kernelView(t, h)

	for _, c := range []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"duplicate name", "POST", "/networks/create", `{"Name":"exp"}`, 409, "network with name exp already exists"},
		{"overlapping subnet", "POST", "/networks/create", `{"Name":"x","IPAM":{"Config":[{"Subnet":"172.29.10.128/25"}]}}`, 403, "Pool overlaps with other one on this address space"},
		{"wider overlapping subnet", "POST", "/networks/create", `{"Name":"x","IPAM":{"Config":[{"Subnet":"172.29.0.0/16"}]}}`, 403, "Pool overlaps with other one on this address space"},
		{"invalid CIDR", "POST", "/networks/create", `{"Name":"x","IPAM":{"Config":[{"Subnet":"10.0.0.0/33"}]}}`, 400, "Invalid subnet 10.0.0.0/33 : invalid CIDR address: 10.0.0.0/33"},
		{"gateway outside", "POST", "/networks/create", `{"Name":"x","IPAM":{"Config":[{"Subnet":"172.29.20.0/24","Gateway":"172.29.21.1"}]}}`, 400, "no matching subnet for gateway 172.29.21.1"},
		{"ip-range outside", "POST", "/networks/create", `{"Name":"x","IPAM":{"Config":[{"Subnet":"172.29.20.0/24","IPRange":"172.29.21.0/25"}]}}`, 400, "no matching subnet for range 172.29.21.0/25"},
		{"pools exhausted", "POST", "/networks/create", `{"Name":"x"}`, 404, "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"},
		{"active endpoints", "DELETE", "/networks/exp", ``, 403, "error while removing network: network exp id " + inspect(t, d, "exp").ID + " has active endpoints"},
		{"unknown driver", "POST", "/networks/create", `{"Name":"x","Driver":"nosuchdriver"}`, 404, `plugin "nosuchdriver" not found`},
		{"malformed JSON", "POST", "/networks/create", `{"Name":`, 400, "unexpected EOF"},
		{"empty body", "POST", "/networks/create", ``, 400, "got EOF while reading request body"},
		{"unknown network id", "GET", "/networks/0123456789ab", ``, 404, "network 0123456789ab not found"},
		{"unknown network rm", "DELETE", "/networks/nosuchnet", ``, 404, "network nosuchnet not found"},
		{"empty name", "POST", "/networks/create", `{"Name":""}`, 400, "network name cannot be empty"},
		{"long name", "POST", "/networks/create", json(`{"Name":"` + long + `"}`), 400, `invalid network name "` + long[:40] + `…": longer than 128 characters, berth's limit`},
		{"control characters", "POST", "/networks/create", `{"Name":"a\u0007b"}`, 400, `invalid network name "a\ab": control characters are not allowed, berth's limit`},
		{"predefined name", "POST", "/networks/create", `{"Name":"host"}`, 403, "operation is not permitted on predefined host network "},
		{"second host network", "POST", "/networks/create", `{"Name":"h2","Driver":"host"}`, 403, `only one instance of "host" network is allowed`},
		{"remove predefined", "DELETE", "/networks/bridge", ``, 403, "bridge is a pre-defined network and cannot be removed"},
		{"bad bridge option", "POST", "/networks/create", `{"Name":"x","Options":{"com.docker.network.bridge.enable_icc":"maybe"}}`, 400, `invalid value "maybe" for com.docker.network.bridge.enable_icc: must be true or false`},
		{"bad mtu", "POST", "/networks/create", `{"Name":"x","Options":{"com.docker.network.driver.mtu":"9"}}`, 400, `invalid value "9" for com.docker.network.driver.mtu: must be a number from 68 to 65535`},
		{"wrong content type", "POST", "/networks/create", `{"Name":"x"}`, 400, "unsupported Content-Type header (text/plain): must be 'application/json'"},
		{"unknown route", "GET", "/nothing/here", ``, 404, "page not found"},
		{"API version too new", "GET", "/v9.99/networks", ``, 400, "client version 9.99 is too new. Maximum supported API version is 1.56"},
		{"API version too old", "GET", "/v1.12/networks", ``, 400, "client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"},
	} {
		ct := "application/json"
		if c.name == "wrong content type" {
			ct = "text/plain"
		}
		code, msg := raw(t, d, c.method, c.path, ct, c.body)
		if code != c.status || msg != c.msg {
			t.Errorf("%s: got %d %q, want %d %q", c.name, code, msg, c.status, c.msg)
		}
	}
	if got := strings.Join(names(t, d, nil), ","); got != beforeNets {
		t.Errorf("networks changed by refused requests: %s → %s", beforeNets, got)
	}
	if got := kernelView(t, h); got != beforeKernel {
		t.Errorf("kernel changed by refused requests:\nbefore %s\nafter  %s", beforeKernel, got)
	}
	// A non-canonical subnet is accepted and shown as given, as Docker does.
	if code, msg := raw(t, d, "POST", "/v1.41/networks/create", "application/json", `{"Name":"odd","IPAM":{"Config":[{"Subnet":"172.29.30.1/24"}]}}`); code != 201 {
		t.Fatalf("non-canonical subnet: %d %s", code, msg)
	}
	if c := inspect(t, d, "odd").IPAM.Config[0]; c.Subnet.String() != "172.29.30.1/24" || c.Gateway.IsValid() {
		t.Errorf("non-canonical subnet shown as %s gateway %s, want 172.29.30.1/24 and no gateway", c.Subnet, c.Gateway)
	}
	if got := hostAddrs(t, h, "br-"+inspect(t, d, "odd").ID[:12]); !slices.Equal(got, []string{"172.29.30.1/24"}) {
		t.Errorf("bridge of the non-canonical subnet has %v", got)
	}
}

func TestConcurrentCreatesOfOneNameLeaveOneNetwork(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	var ok, conflicts int
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, msg := raw(t, d, "POST", "/networks/create", "application/json", `{"Name":"same"}`)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case code == 201:
				ok++
			case code == 409 && msg == "network with name same already exists":
				conflicts++
			default:
				t.Errorf("create: %d %s", code, msg)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || conflicts != n-1 {
		t.Fatalf("%d creates succeeded and %d conflicted, want 1 and %d", ok, conflicts, n-1)
	}
	res, err := d.Client.NetworkList(ctxT(t), client.NetworkListOptions{Filters: client.Filters{}.Add("name", "^same$")})
	if err != nil || len(res.Items) != 1 {
		t.Fatalf("networks named same: %d (%v)", len(res.Items), err)
	}
	// Only one bridge was made for it.
	links, _ := h.Netlink.LinkList()
	bridges := 0
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "br-") {
			bridges++
		}
	}
	if bridges != 1 {
		t.Errorf("%d br- bridges in the host, want 1", bridges)
	}
}

func TestRemoveAndPrune(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	lab := create(t, d, "lab", client.NetworkCreateOptions{})
	create(t, d, "keep", client.NetworkCreateOptions{Labels: map[string]string{"keep": "yes"}})
	create(t, d, "used", client.NetworkCreateOptions{})
	create(t, d, "idle", client.NetworkCreateOptions{})
	attach(t, d, "c", "used")

	if _, err := d.Client.NetworkRemove(ctxT(t), lab[:6], client.NetworkRemoveOptions{}); err != nil {
		t.Fatalf("remove by ID prefix: %v", err)
	}
	if _, err := h.Netlink.LinkByName("br-" + lab[:12]); err == nil {
		t.Errorf("bridge of the removed network is still there")
	}
	res, err := d.Client.NetworkPrune(ctxT(t), client.NetworkPruneOptions{Filters: client.Filters{}.Add("label!", "keep")})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Report.NetworksDeleted; !slices.Equal(got, []string{"idle"}) {
		t.Errorf("prune deleted %v, want [idle]", got)
	}
	if got := strings.Join(names(t, d, nil), ","); got != "bridge,host,keep,none,used" {
		t.Errorf("after prune: %s", got)
	}
	// A network of the same name and subnet can be made again at once.
	create(t, d, "lab", client.NetworkCreateOptions{})
}

func TestSecondDaemonOnTheSameRootFailsFast(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	var out bytes.Buffer
	stdout, stderr, code, err := d.Run(ctxT(t), "", nettest.Berthd(), "--root", d.Root, "--exec-root", h.Dir+"/second", "--host", "unix://"+h.Dir+"/second.sock")
	out.WriteString(stdout + stderr)
	if err != nil {
		t.Fatal(err)
	}
	if code == 0 || !strings.Contains(out.String(), "another berthd is using the root "+d.Root) {
		t.Fatalf("second daemon: exit %d, output %q", code, out.String())
	}
}

func TestSocketIsPrivateAndGoesAwayOnSIGTERM(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	for path, want := range map[string]os.FileMode{d.Socket: 0o660, d.ExecRoot: 0o710} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s has mode %o, want %o", path, got, want)
		}
	}
	d.Stop()
	if code := d.ExitCode(); code != 0 {
		t.Errorf("berthd exited with %d on SIGTERM, want 0", code)
	}
	if _, err := os.Stat(d.Socket); !os.IsNotExist(err) {
		t.Errorf("socket still there after SIGTERM: %v", err)
	}
	if !strings.Contains(d.Log(), "berthd stopped") {
		t.Errorf("no clean-stop line in the log")
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func mustMAC(s string) network.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return network.HardwareAddr(m)
}

func TestDaemonServesGoProfiles(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	d := h.StartDaemon()
	code, body := raw(t, d, "GET", "/debug/pprof/goroutine?debug=1", "", "")
	if code != http.StatusOK || !strings.Contains(body, "goroutine profile: total") {
		t.Fatalf("goroutine profile: %d %.200q", code, body)
	}
	// A CPU profile is a gzipped protobuf.
	code, body = raw(t, d, "GET", "/debug/pprof/profile?seconds=1", "", "")
	if code != http.StatusOK || !strings.HasPrefix(body, "\x1f\x8b") {
		t.Fatalf("CPU profile: %d, %d bytes starting %.8q", code, len(body), body)
	}
	if code, msg := raw(t, d, "POST", "/debug/pprof/profile", "", ""); code != http.StatusNotFound || msg != "page not found" {
		t.Errorf("POST to a profile: %d %q, want 404 page not found", code, msg)
	}
}
