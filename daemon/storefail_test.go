package daemon

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/berth-net/berth/internal/nettest"
)

// A store that cannot write — a full disk, a failing one — fails the
// request with a 500 that says why, and leaves the store, memory and
// the kernel as they were: no half-made network, endpoint, sandbox,
// container or image, and no device without its record.

func TestFailingStoreWriteIsA500AndChangesNothing(t *testing.T) {
	fd := newFakeDaemon(t)
	fd.mustDo(t, "POST", "/networks/create", `{"Name":"spare"}`, http.StatusCreated)
	fd.baseline, fd.snapshot = fd.objects(), fd.show()
	rootfs, err := tinyRootFS()
	if err != nil {
		t.Fatal(err)
	}
	failure := &os.PathError{Op: "write", Path: "/var/lib/berth/berth.db", Err: syscall.EIO}
	fd.writes.failWith(failure)
	for _, r := range []struct{ method, target, body string }{
		{"POST", "/networks/create", `{"Name":"n2"}`},
		{"DELETE", "/networks/spare", ``},
		{"POST", "/networks/prune", ``},
		{"POST", "/sandboxes/create", `{"Name":"s2"}`},
		{"POST", "/sandboxes/" + fakeSandbox + "/connect", `{"Network":"spare","EndpointConfig":{"Aliases":["a"]}}`},
		{"POST", "/sandboxes/" + fakeSandbox + "/disconnect", `{"Network":"` + fakeNetwork + `"}`},
		{"DELETE", "/sandboxes/" + fakeSandbox, ``},
		{"POST", "/containers/create?name=c2", `{"Image":"` + fakeImage + `"}`},
		{"POST", "/networks/spare/connect", `{"Container":"` + fakeContainer + `"}`},
		{"POST", "/networks/" + fakeNetwork + "/disconnect", `{"Container":"` + fakeContainer + `"}`},
		{"DELETE", "/containers/" + fakeContainer, ``},
		{"POST", "/images/create?fromSrc=-&repo=img2", string(rootfs)},
		{"DELETE", "/images/" + fakeImage + "?force=1", ``},
	} {
		code, body := fd.do(r.method, r.target, r.body)
		what := r.method + " " + r.target
		if msg := errorMessage(t, body); code != http.StatusInternalServerError || !strings.HasSuffix(msg, failure.Error()) {
			t.Errorf("%s with the store failing: %d %q, want 500 ending %q", what, code, msg, failure.Error())
		}
		fd.checkStore(t)
		if got := fd.objects(); !equalSets(got, fd.baseline) {
			t.Errorf("%s changed what exists: %v, was %v", what, got, fd.baseline)
		}
		if got := fd.show(); got != fd.snapshot {
			i := 0
			for i < min(len(got), len(fd.snapshot)) && got[i] == fd.snapshot[i] {
				i++
			}
			t.Errorf("%s changed how things look: now …%.80s…, was …%.80s…", what, got[max(0, i-40):], fd.snapshot[max(0, i-40):])
			fd.snapshot = got
		}
	}
	fd.writes.failWith(nil)
	fd.mustDo(t, "POST", "/networks/create", `{"Name":"n2"}`, http.StatusCreated)
	fd.mustDo(t, "POST", "/containers/create?name=c2", `{"Image":"`+fakeImage+`"}`, http.StatusCreated)
	fd.mustDo(t, "DELETE", "/containers/"+fakeContainer, ``, http.StatusNoContent)
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// onSocket sends one request to a daemon's socket and returns the status
// and the error message, or the body of a success.
func onSocket(t *testing.T, d *nettest.Daemon, method, path, contentType string, body []byte) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{Dial: func(_, _ string) (net.Conn, error) { return net.Dial("unix", d.Socket) }}}
	defer c.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://berthd"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var e struct{ Message string }
	if resp.StatusCode >= 400 && json.Unmarshal(out, &e) == nil {
		return resp.StatusCode, e.Message
	}
	return resp.StatusCode, string(out)
}

// state is what the daemon shows and what the kernel holds, to compare
// before and after.
type state struct {
	networks, sandboxes, containers, images []string
	// bridges are the host's br- devices; links, per sandbox, its
	// interfaces in service other than lo, with their addresses.
	bridges []string
	links   map[string][]string
}

func stateOf(t *testing.T, d *nettest.Daemon, namespaces map[string]*nettest.Namespace) state {
	t.Helper()
	var st state
	list := func(path, field string) []string {
		code, body := onSocket(t, d, "GET", path, "", nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, code, body)
		}
		var items []map[string]any
		if err := json.Unmarshal([]byte(body), &items); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, it := range items {
			out = append(out, fmt.Sprint(it[field]))
		}
		slices.Sort(out)
		return out
	}
	st.networks = list("/networks", "Name")
	st.sandboxes = list("/sandboxes", "Name")
	st.containers = list("/containers/json?all=1", "Names")
	st.images = list("/images/json", "RepoTags")
	links, err := d.Host.Netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, "br-") {
			st.bridges = append(st.bridges, l.Attrs().Name)
		}
	}
	slices.Sort(st.bridges)
	st.links = map[string][]string{}
	for name, ns := range namespaces {
		links, err := ns.Netlink.LinkList()
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range links {
			// A device taken out of service on disconnect (down) waits
			// there to be reaped.
			if l.Attrs().Name == "lo" || l.Attrs().Flags&net.FlagUp == 0 {
				continue
			}
			addrs, _ := ns.Netlink.AddrList(l, netlink.FAMILY_V4)
			var as []string
			for _, a := range addrs {
				as = append(as, a.IPNet.String())
			}
			st.links[name] = append(st.links[name], l.Attrs().Name+"="+strings.Join(as, ","))
		}
	}
	return st
}

func TestFullDiskRefusesWritesClearlyAndLeavesStoreAndKernelAlike(t *testing.T) {
	t.Parallel()
	h := nettest.NewHost(t)
	root := h.Tmpfs("root", 4<<20)
	d := h.StartDaemonOn(root)
	rootfs, err := tinyRootFS()
	if err != nil {
		t.Fatal(err)
	}
	must := func(method, path, body string, want int) string {
		t.Helper()
		code, msg := onSocket(t, d, method, path, "application/json", []byte(body))
		if code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, code, msg, want)
		}
		return msg
	}
	if code, msg := onSocket(t, d, "POST", "/images/create?fromSrc=-&repo=tiny", "application/x-tar", rootfs); code != http.StatusOK {
		t.Fatalf("import: %d %s", code, msg)
	}
	must("POST", "/networks/create", `{"Name":"kept","IPAM":{"Config":[{"Subnet":"10.60.0.0/16"}]}}`, http.StatusCreated)
	namespaces := map[string]*nettest.Namespace{}
	sandbox := func(name string) (int, string) {
		namespaces[name] = h.NewNamespace(name)
		code, msg := onSocket(t, d, "POST", "/sandboxes/create", "application/json", []byte(`{"Name":"`+name+`","Key":"`+namespaces[name].Path+`"}`))
		if code != http.StatusCreated {
			return code, msg
		}
		return onSocket(t, d, "POST", "/sandboxes/"+name+"/connect", "application/json", []byte(`{"Network":"kept"}`))
	}
	if code, msg := sandbox("first"); code != http.StatusOK {
		t.Fatalf("sandbox first: %d %s", code, msg)
	}
	// To be connected, and removed, once the disk is full.
	for i := range 10 {
		name := fmt.Sprintf("idle%d", i)
		namespaces[name] = h.NewNamespace(name)
		must("POST", "/sandboxes/create", `{"Name":"`+name+`","Key":"`+namespaces[name].Path+`"}`, http.StatusCreated)
		must("POST", "/networks/create", fmt.Sprintf(`{"Name":"rm%d"}`, i), http.StatusCreated)
	}

	filled := nettest.Fill(t, filepath.Join(root, "filler"))
	t.Logf("filled the root with %d bytes", filled)
	label := strings.Repeat("x", 4096)
	connected := []string{"first"}
	// Each kind of write is repeated until the store runs out of pages it
	// can reuse; every failure must say why. Removals may go on reusing
	// the pages they free. Sandboxes and their endpoints are recorded in
	// the exec-root, not on the full disk: connecting them must go on.
	for _, w := range []struct {
		what     string
		try      func(i int) (int, string)
		ok       int
		mayAllGo bool
		mustGo   bool
	}{
		{"sandbox connect", func(i int) (int, string) {
			code, msg := onSocket(t, d, "POST", fmt.Sprintf("/sandboxes/idle%d/connect", i), "application/json",
				[]byte(`{"Network":"kept","EndpointConfig":{"Aliases":["`+strings.Repeat("a", 200)+`"]}}`))
			if code == http.StatusOK {
				connected = append(connected, fmt.Sprintf("idle%d", i))
			}
			return code, msg
		}, http.StatusOK, true, true},
		{"sandbox disconnect", func(i int) (int, string) {
			if i >= len(connected) {
				return http.StatusOK, ""
			}
			return onSocket(t, d, "POST", "/sandboxes/"+connected[i]+"/disconnect", "application/json", []byte(`{"Network":"kept"}`))
		}, http.StatusOK, true, true},
		{"network remove", func(i int) (int, string) {
			return onSocket(t, d, "DELETE", fmt.Sprintf("/networks/rm%d", i%10), "", nil)
		}, http.StatusNoContent, true, false},
		{"network create", func(i int) (int, string) {
			return onSocket(t, d, "POST", "/networks/create", "application/json",
				[]byte(fmt.Sprintf(`{"Name":"full%d","Labels":{"l":"%s"}}`, i, label)))
		}, http.StatusCreated, false, false},
		{"sandbox create and connect", func(i int) (int, string) { return sandbox(fmt.Sprintf("sb%d", i)) }, http.StatusOK, true, true},
		{"container create", func(i int) (int, string) {
			return onSocket(t, d, "POST", fmt.Sprintf("/containers/create?name=ct%d", i), "application/json",
				[]byte(`{"Image":"tiny","Cmd":["/bin/sh"],"Labels":{"l":"`+label+`"},"HostConfig":{"NetworkMode":"kept"}}`))
		}, http.StatusCreated, false, false},
		{"image import", func(i int) (int, string) {
			return onSocket(t, d, "POST", fmt.Sprintf("/images/create?fromSrc=-&repo=img%d", i), "application/x-tar", rootfs)
		}, http.StatusOK, false, false},
	} {
		failed := false
		for i := range 10 {
			code, msg := w.try(i)
			if code == w.ok {
				continue
			}
			if w.mustGo {
				t.Errorf("%s on a full root disk: %d %q; its records are in the exec-root", w.what, code, msg)
				break
			}
			if code != http.StatusInternalServerError || !strings.Contains(msg, "no space left on device") {
				t.Fatalf("%s on a full disk: %d %q, want 500 saying no space left on device", w.what, code, msg)
			}
			t.Logf("%s on a full disk: %d %q", w.what, code, msg)
			failed = true
			break
		}
		if !failed && !w.mayAllGo {
			t.Errorf("%s went on succeeding on a full disk", w.what)
		}
	}

	full := stateOf(t, d, namespaces)
	checkAlike(t, d, full)
	// With room again, berthd goes on without a restart.
	if err := os.Remove(filepath.Join(root, "filler")); err != nil {
		t.Fatal(err)
	}
	must("POST", "/networks/create", `{"Name":"after"}`, http.StatusCreated)
	if code, msg := sandbox("after"); code != http.StatusOK {
		t.Fatalf("sandbox after: %d %s", code, msg)
	}
	before := stateOf(t, d, namespaces)
	checkAlike(t, d, before)
	// And a restart finds store and kernel alike: it changes nothing.
	d.Stop()
	d.Start()
	if after := stateOf(t, d, namespaces); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the restart changed things:\nbefore %v\nafter  %v", before, after)
	}
}

// checkAlike checks store and kernel tell the same story: a bridge for
// every bridge network and none without one, and in every sandbox's
// namespace as many interfaces as it has endpoints.
func checkAlike(t *testing.T, d *nettest.Daemon, st state) {
	t.Helper()
	code, body := onSocket(t, d, "GET", "/networks", "", nil)
	if code != http.StatusOK {
		t.Fatal(body)
	}
	var nets []struct{ ID, Name, Driver string }
	json.Unmarshal([]byte(body), &nets)
	var want []string
	for _, n := range nets {
		if n.Driver == "bridge" && n.Name != "bridge" {
			want = append(want, "br-"+n.ID[:12])
		}
	}
	slices.Sort(want)
	if !slices.Equal(st.bridges, want) {
		t.Errorf("bridges %v, networks want %v", st.bridges, want)
	}
	code, body = onSocket(t, d, "GET", "/sandboxes", "", nil)
	if code != http.StatusOK {
		t.Fatal(body)
	}
	var sbs []struct {
		Name     string
		Networks map[string]any
	}
	json.Unmarshal([]byte(body), &sbs)
	endpoints := map[string]int{}
	for _, sb := range sbs {
		endpoints[sb.Name] = len(sb.Networks)
	}
	for name, links := range st.links {
		if len(links) != endpoints[name] {
			t.Errorf("sandbox %s: interfaces %v, %d endpoints", name, links, endpoints[name])
		}
	}
	for name, n := range endpoints {
		if len(st.links[name]) != n {
			t.Errorf("sandbox %s: %d endpoints, interfaces %v", name, n, st.links[name])
		}
	}
}
