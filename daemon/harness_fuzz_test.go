package daemon

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-net/berth/container"
	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/driver/bridge"
	"github.com/berth-net/berth/driver/host"
	"github.com/berth-net/berth/driver/macvlan"
	"github.com/berth-net/berth/driver/null"
	"github.com/berth-net/berth/events"
	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/image"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/metrics"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/network"
	"github.com/berth-net/berth/store"
	"github.com/berth-net/berth/volume"
)

// A berthd over fakes, for the fuzz targets and the bounds tests: the real
// router, handlers, network controller, container manager and image
// store, with the store in memory and the kernel, the firewall and the
// drivers' kernel work faked. It needs no root and serves a request in
// microseconds, so every handler is driven through it in-process.

// fakeDaemon is a Daemon over fakes with what its tests look at.
type fakeDaemon struct {
	*Daemon
	handler http.Handler
	logs    *panicLog
	close   func()
	// gate holds network creates inside the driver when armed.
	gate *gate
	// writes fails the store's writes when told to.
	writes *failingStore
	// baseline are the objects the harness made, which reset keeps, and
	// snapshot how the API showed them.
	baseline map[string]bool
	snapshot string
}

// Names of the objects every fake daemon starts with: an image, a
// network, a container made on it and a sandbox connected to it.
const (
	fakeImage     = "fuzzbase"
	fakeNetwork   = "net1"
	fakeContainer = "c1"
	fakeSandbox   = "sb1"
)

// newFakeDaemon starts a fake daemon, removed when the test ends.
func newFakeDaemon(t testing.TB) *fakeDaemon {
	t.Helper()
	fd := &fakeDaemon{gate: &gate{}}
	if err := fd.build(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fd.close() })
	return fd
}

// build (re)makes the daemon from nothing.
func (fd *fakeDaemon) build() (err error) {
	if fd.close != nil {
		fd.close()
	}
	// On a tmpfs where there is one: an import syncs the file system it
	// writes to, which costs nothing there.
	parent := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		parent = "/dev/shm"
	}
	dir, err := os.MkdirTemp(parent, "berth-fake-")
	if err != nil {
		return err
	}
	fd.close = func() { os.RemoveAll(dir) }
	fd.logs = &panicLog{}
	log := slog.New(fd.logs)
	fd.writes = &failingStore{Store: store.NewMemory()}
	st := fd.writes
	evs := events.New()
	ctrl, err := network.New(network.Config{
		Store: st, Kernel: fakeKernel{}, Firewall: fakeFirewall{},
		Drivers: []driver.Driver{
			kernelFree{bridge.New(nil, nil, "berth0"), fd.gate}, host.New(), null.New(),
			kernelFree{macvlan.New(nil, nil), fd.gate}, kernelFree{macvlan.NewIPVlan(nil, nil), fd.gate},
		},
		DefaultDriver: "bridge",
		Pools:         ipam.DefaultLocalPools(),
		Events:        evs,
		NamespaceDir:  filepath.Join(dir, "run", "netns"),
		Log:           log,
	})
	if err != nil {
		return err
	}
	fd.close = func() { ctrl.Close(); os.RemoveAll(dir) }
	images, err := image.NewStore(filepath.Join(dir, "root", "images"), st)
	if err != nil {
		return err
	}
	rootfs, err := tinyRootFS()
	if err != nil {
		return err
	}
	if _, err := images.Import(context.Background(), bytes.NewReader(rootfs), fakeImage, "", []string{`CMD ["/bin/sh"]`}); err != nil {
		return err
	}
	// runc is never run on containers that never start; true stands in
	// for the deletions of a removal.
	truePath, err := exec.LookPath("true")
	if err != nil {
		return err
	}
	volumes, err := volume.New(filepath.Join(dir, "root"), st)
	if err != nil {
		return err
	}
	containers, err := container.New(container.Config{
		Store: st, Networks: ctrl, Images: images, Root: filepath.Join(dir, "root"), ExecRoot: filepath.Join(dir, "run"),
		Self: truePath, Runc: truePath, Log: log, Volumes: volumes, Events: evs,
	})
	if err != nil {
		return err
	}
	d := &Daemon{cfg: Config{Root: filepath.Join(dir, "root"), ExecRoot: filepath.Join(dir, "run"), Log: log},
		store: st, ctrl: ctrl, images: images, containers: containers, volumes: volumes, events: evs,
		done: make(chan struct{}), started: time.Now(), id: "FAKE", metrics: metrics.New()}
	fd.Daemon, fd.handler = d, d.routes()
	for _, r := range []struct{ method, target, body string }{
		{"POST", "/networks/create", `{"Name":"` + fakeNetwork + `","IPAM":{"Config":[{"Subnet":"10.77.0.0/24"}]}}`},
		{"POST", "/containers/create?name=" + fakeContainer, `{"Image":"` + fakeImage + `","HostConfig":{"NetworkMode":"` + fakeNetwork + `"}}`},
		{"POST", "/sandboxes/create", `{"Name":"` + fakeSandbox + `"}`},
		{"POST", "/sandboxes/" + fakeSandbox + "/connect", `{"Network":"` + fakeNetwork + `"}`},
	} {
		if code, body := fd.do(r.method, r.target, r.body); code >= 300 {
			return fmt.Errorf("%s %s: %d %s", r.method, r.target, code, body)
		}
	}
	fd.baseline, fd.snapshot = fd.objects(), fd.show()
	return nil
}

// show is how the API shows the baseline's objects.
func (fd *fakeDaemon) show() string {
	var b strings.Builder
	for _, target := range []string{"/networks/" + fakeNetwork, "/containers/" + fakeContainer + "/json", "/sandboxes/" + fakeSandbox, "/images/" + fakeImage + "/json"} {
		_, body := fd.do("GET", target, "")
		b.Write(body)
	}
	return b.String()
}

// do serves one request and returns the status and body.
func (fd *fakeDaemon) do(method, target, body string) (int, []byte) {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	return fd.serve(req)
}

func (fd *fakeDaemon) serve(req *http.Request) (int, []byte) {
	rec := httptest.NewRecorder()
	fd.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func (fd *fakeDaemon) mustDo(t testing.TB, method, target, body string, want int) []byte {
	t.Helper()
	code, out := fd.do(method, target, body)
	if code != want {
		t.Fatalf("%s %s: %d %s, want %d", method, target, code, out, want)
	}
	return out
}

// check holds the API's promises for one answer: no panic reached the
// recovery, an error is {"message": …} with something in it, and the
// status is one berthd gives. With FUZZ_STRICT=1 a 500 fails too: fakes
// make no failures of their own, so one is an error left without a class.
func (fd *fakeDaemon) check(t testing.TB, what string, code int, body []byte) {
	t.Helper()
	if p := fd.logs.take(); p != "" {
		t.Fatalf("%s: handler panicked: %s", what, p)
	}
	switch {
	case code < 200 || code > 599:
		t.Fatalf("%s: status %d", what, code)
	case code >= 400:
		var e struct{ Message string }
		if err := json.Unmarshal(body, &e); err != nil || e.Message == "" {
			t.Fatalf("%s: error %d without a message: %q", what, code, body)
		}
		if code == http.StatusInternalServerError && os.Getenv("FUZZ_STRICT") != "" {
			t.Fatalf("%s: 500 %s", what, e.Message)
		}
	}
}

// objects names what exists: networks, containers, sandboxes, images.
func (fd *fakeDaemon) objects() map[string]bool {
	out := map[string]bool{}
	for _, n := range fd.ctrl.Networks() {
		out["network "+n.ID] = true
	}
	for _, c := range fd.containers.List() {
		out["container "+c.ID] = true
	}
	for _, sb := range fd.ctrl.Sandboxes() {
		out["sandbox "+sb.ID] = true
		for _, ep := range sb.Endpoints {
			out["endpoint "+sb.ID+" "+ep.NetworkID] = true
		}
	}
	for _, img := range fd.images.List() {
		out["image "+img.ID] = true
	}
	return out
}

// reset removes, through the API, everything a request made, so that the
// next input starts where the last one did; whatever was made must be
// removable. The store must hold what memory does. When the request
// changed the baseline's objects, the daemon is made anew.
func (fd *fakeDaemon) reset(t testing.TB) {
	t.Helper()
	now := fd.objects()
	// Endpoints first, then what holds them.
	for _, kind := range []string{"endpoint", "container", "sandbox", "network", "image"} {
		for o := range now {
			if fd.baseline[o] || !strings.HasPrefix(o, kind+" ") {
				continue
			}
			f := strings.Fields(o)
			var code int
			var body []byte
			switch kind {
			case "endpoint":
				code, body = fd.do("POST", "/sandboxes/"+f[1]+"/disconnect", `{"Network":"`+f[2]+`"}`)
			case "container":
				code, body = fd.do("DELETE", "/containers/"+f[1]+"?force=1", "")
			case "sandbox":
				code, body = fd.do("DELETE", "/sandboxes/"+f[1], "")
			case "network":
				code, body = fd.do("DELETE", "/networks/"+f[1], "")
			case "image":
				code, body = fd.do("DELETE", "/images/"+f[1]+"?force=1", "")
			}
			if code >= 300 {
				t.Fatalf("remove %s made by the request: %d %s", o, code, body)
			}
		}
	}
	fd.checkStore(t)
	if got := fd.objects(); len(got) != len(fd.baseline) || fd.show() != fd.snapshot {
		if err := fd.build(); err != nil {
			t.Fatal(err)
		}
	}
}

// checkStore compares the store's records with the objects in memory: a
// refused or failed request leaves no record behind, and no object
// without one.
func (fd *fakeDaemon) checkStore(t testing.TB) {
	t.Helper()
	count := func(bucket string) int {
		n := 0
		fd.store.View(func(tx store.Tx) error {
			return tx.ForEach(bucket, func(string, []byte) error { n++; return nil })
		})
		return n
	}
	endpoints := 0
	for _, sb := range fd.ctrl.Sandboxes() {
		endpoints += len(sb.Endpoints)
	}
	for bucket, want := range map[string]int{
		"networks": len(fd.ctrl.Networks()), "sandboxes": len(fd.ctrl.Sandboxes()),
		"endpoints": endpoints, "containers": len(fd.containers.List()),
	} {
		if got := count(bucket); got != want {
			t.Fatalf("store has %d %s, memory %d", got, bucket, want)
		}
	}
}

// failingStore is a store whose commits fail when told to, as bbolt's do
// on a full or failing disk: the transaction runs and nothing of it stays.
type failingStore struct {
	store.Store
	mu   sync.Mutex
	fail error
}

func (s *failingStore) failWith(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *failingStore) Update(fn func(store.Tx) error) error {
	s.mu.Lock()
	fail := s.fail
	s.mu.Unlock()
	return s.Store.Update(func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return fail
	})
}

// panicLog is the fake daemon's log: it keeps what the panic recovery
// logs, stack included, and drops the rest.
type panicLog struct {
	mu     sync.Mutex
	panics []string
}

func (l *panicLog) Enabled(_ context.Context, level slog.Level) bool { return level >= slog.LevelError }
func (l *panicLog) WithAttrs([]slog.Attr) slog.Handler               { return l }
func (l *panicLog) WithGroup(string) slog.Handler                    { return l }

func (l *panicLog) Handle(_ context.Context, r slog.Record) error {
	if !strings.HasPrefix(r.Message, "panic") {
		return nil
	}
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString("\n" + a.Key + ": " + a.Value.String())
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.panics = append(l.panics, b.String())
	return nil
}

// take returns and forgets what was logged.
func (l *panicLog) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := strings.Join(l.panics, "\n\n")
	l.panics = nil
	return out
}

// tinyRootFS is an image's root: a directory and a shell that is not one.
func tinyRootFS() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mod := time.Unix(1700000000, 0)
	for _, h := range []*tar.Header{
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mod},
		{Name: "./bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mod},
		{Name: "./bin/sh", Typeflag: tar.TypeReg, Mode: 0o755, Size: 3, ModTime: mod},
	} {
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Size > 0 {
			tw.Write([]byte("sh\n"))
		}
	}
	err := tw.Close()
	return buf.Bytes(), err
}

// fakeKernel is a host where everything works and nothing happens.
type fakeKernel struct{}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

func (fakeKernel) Prefixes() ([]netip.Prefix, error)                       { return nil, nil }
func (fakeKernel) ForgetConnections(netip.Addr) error                      { return nil }
func (fakeKernel) ForgetConnectionsIn(*netdev.Namespace, netip.Addr) error { return nil }
func (fakeKernel) AllowLocalnet(string) error                              { return nil }
func (fakeKernel) EnableForwarding(bool) error                             { return nil }
func (fakeKernel) RetireUnwanted(map[string]bool) (int, error)             { return 0, nil }
func (fakeKernel) Reap() error                                             { return nil }
func (fakeKernel) DeleteNamespace(string) error                            { return nil }
func (fakeKernel) CloseNamespace(*netdev.Namespace)                        {}
func (fakeKernel) SameNamespace(a, b *netdev.Namespace) bool               { return a == b }
func (fakeKernel) LoopbackUp(*netdev.Namespace) error                      { return nil }

func (fakeKernel) ReservePort(netdev.Reservation) (io.Closer, error) {
	return nopCloser{}, nil
}

func (fakeKernel) CreateNamespace(string) (*netdev.Namespace, error) {
	return new(netdev.Namespace), nil
}

func (fakeKernel) OpenNamespace(string) (*netdev.Namespace, error) {
	return new(netdev.Namespace), nil
}

func (fakeKernel) SetDefaultRoute(*netdev.Namespace, string, int, netip.Addr, bool) error {
	return nil
}

func (fakeKernel) AddRoute(*netdev.Namespace, string, int, driver.Route) error { return nil }

func (fakeKernel) Listen(*netdev.Namespace, netip.Addr) (*net.UDPConn, net.Listener, error) {
	return nil, nil, errors.New("the fake kernel opens no sockets")
}

// fakeFirewall takes every change.
type fakeFirewall struct{}

func (fakeFirewall) Rebuild([]firewall.Network, []firewall.Binding, []firewall.Guard) error {
	return nil
}
func (fakeFirewall) Apply(firewall.Change) error           { return nil }
func (fakeFirewall) RedirectDNS(int, uint16, uint16) error { return nil }

// kernelFree is a real driver without its kernel work: its name,
// capabilities, option checks and description are the driver's own.
type kernelFree struct {
	driver.Driver
	gate *gate
}

func (kernelFree) Prepare(*driver.Network, []*driver.Network) (json.RawMessage, error) {
	return json.RawMessage(`{}`), nil
}

func (k kernelFree) CreateNetwork(*driver.Network) error {
	k.gate.pass()
	return nil
}

// gate, when armed, holds every caller until opened, counting how many
// are inside at once.
type gate struct {
	mu           sync.Mutex
	open         chan struct{}
	inside, most int
}

func (g *gate) arm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = make(chan struct{})
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.open)
	g.open = nil
}

func (g *gate) pass() {
	g.mu.Lock()
	open := g.open
	g.inside++
	g.most = max(g.most, g.inside)
	g.mu.Unlock()
	if open != nil {
		<-open
	}
	g.mu.Lock()
	g.inside--
	g.mu.Unlock()
}

// count returns how many are inside, and the most that were at once.
func (g *gate) count() (inside, most int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inside, g.most
}
func (kernelFree) DeleteNetwork(*driver.Network) error { return nil }

func (kernelFree) Join(nw *driver.Network, ep *driver.Endpoint, _ *netdev.Namespace) (driver.JoinInfo, error) {
	return driver.Gateways(nw, ep), nil
}

func (kernelFree) Leave(*driver.Network, *driver.Endpoint, *netdev.Namespace) error { return nil }

func (kernelFree) Restore(nw *driver.Network, ep *driver.Endpoint, _ *netdev.Namespace) (driver.JoinInfo, bool, error) {
	return driver.Gateways(nw, ep), true, nil
}

// rawRequest reads one HTTP request as the server would, or nil.
func rawRequest(raw []byte) *http.Request {
	req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return nil
	}
	return req
}
