package plugins_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/go-plugins-helpers/sdk"

	"github.com/berth-net/berth/plugins"
	"github.com/berth-net/berth/plugins/plugintest"
)

// handler is a plugin implementing kinds whose methods answer with the
// given JSON (and status 200), or with an error answer for "!"-prefixed
// texts, as go-plugins-helpers' handlers answer errors.
func handler(kinds []string, answers map[string]string) func(net.Listener) error {
	m, _ := json.Marshal(map[string][]string{"Implements": kinds})
	h := sdk.NewHandler(string(m))
	for method, answer := range answers {
		h.HandleFunc("/"+method, func(w http.ResponseWriter, r *http.Request) {
			if msg, ok := strings.CutPrefix(answer, "!"); ok {
				sdk.EncodeResponse(w, map[string]string{"Err": msg}, true)
				return
			}
			w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
			fmt.Fprint(w, answer)
		})
	}
	return h.Serve
}

var network = []string{plugins.NetworkDriverKind}

func newRegistry(t *testing.T, dirs ...string) *plugins.Registry {
	r := plugins.New(dirs, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	r.Retry = 2 * time.Second
	return r
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func TestAPluginIsFoundByItsSocketInTheDirectoryOrInADirectoryOfItsName(t *testing.T) {
	dir := plugintest.Dir(t)
	flat := plugintest.Serve(t, filepath.Join(dir, "flat.sock"), handler(network, nil))
	if err := os.Mkdir(filepath.Join(dir, "nested"), 0o755); err != nil {
		t.Fatal(err)
	}
	nested := plugintest.Serve(t, filepath.Join(dir, "nested", "nested.sock"), handler([]string{plugins.IPAMDriverKind}, nil))
	r := newRegistry(t, dir)

	for _, c := range []struct {
		name   string
		plugin *plugintest.Plugin
		kind   string
	}{{"flat", flat, plugins.NetworkDriverKind}, {"nested", nested, plugins.IPAMDriverKind}} {
		p, err := r.Get(c.name)
		if err != nil {
			t.Fatalf("get %s: %v", c.name, err)
		}
		if want := "unix://" + c.plugin.Path; p.Addr() != want {
			t.Errorf("%s: addr %s, want %s", c.name, p.Addr(), want)
		}
		if !p.Implements(c.kind) {
			t.Errorf("%s does not implement %s", c.name, c.kind)
		}
		act := c.plugin.Last(t, "Plugin.Activate")
		if act.Accept != "application/vnd.docker.plugins.v1.2+json" {
			t.Errorf("Plugin.Activate sent Accept %q", act.Accept)
		}
		if len(act.Body) != 0 {
			t.Errorf("Plugin.Activate sent a payload: %q", act.Body)
		}
	}
	// Activated once, kept.
	if _, err := r.Get("flat"); err != nil {
		t.Fatal(err)
	}
	if n := len(flat.Calls("Plugin.Activate")); n != 1 {
		t.Errorf("flat activated %d times, want once", n)
	}
}

func TestASpecFileNamesTheAddressOfAPlugin(t *testing.T) {
	dir, elsewhere := plugintest.Dir(t), plugintest.Dir(t)
	unixPlugin := plugintest.Serve(t, filepath.Join(elsewhere, "p.sock"), handler(network, nil))
	writeFile(t, filepath.Join(dir, "viaunix.spec"), "unix://"+unixPlugin.Path+"\n")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go handler(network, map[string]string{"NetworkDriver.GetCapabilities": `{"Scope":"local"}`})(l)
	t.Cleanup(func() { l.Close() })
	writeFile(t, filepath.Join(dir, "viatcp.spec"), "tcp://"+l.Addr().String())

	r := newRegistry(t, dir)
	p, err := r.Get("viaunix")
	if err != nil {
		t.Fatal(err)
	}
	if p.Addr() != "unix://"+unixPlugin.Path {
		t.Errorf("addr %s", p.Addr())
	}
	p, err = r.Get("viatcp")
	if err != nil {
		t.Fatal(err)
	}
	var caps struct{ Scope string }
	if err := p.Call("NetworkDriver.GetCapabilities", nil, &caps); err != nil || caps.Scope != "local" {
		t.Fatalf("call over tcp: %+v, %v", caps, err)
	}
}

func TestAJSONSpecReachesAPluginOverTLSVerifiedByItsCA(t *testing.T) {
	dir := plugintest.Dir(t)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/Plugin.Activate":
			fmt.Fprint(w, `{"Implements":["NetworkDriver"]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(dir, "ca.pem")
	writeFile(t, ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})))
	spec := func(name string, tls any) {
		b, _ := json.Marshal(map[string]any{"Name": name, "Addr": srv.URL, "TLSConfig": tls})
		writeFile(t, filepath.Join(dir, name+".json"), string(b))
	}
	spec("verified", map[string]any{"CAFile": ca})
	// Another CA: the plugin's certificate does not verify.
	otherCA := filepath.Join(dir, "other.pem")
	writeFile(t, otherCA, selfSignedPEM(t))
	spec("unverified", map[string]any{"CAFile": otherCA})

	r := newRegistry(t, dir)
	p, err := r.Get("verified")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Implements(plugins.NetworkDriverKind) {
		t.Errorf("implements nothing")
	}
	if err := p.Call("NetworkDriver.Missing", nil, nil); !errdefs.IsNotImplemented(err) {
		t.Errorf("a method the plugin lacks: %v, want NotImplemented", err)
	}
	if _, err := r.Get("unverified"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a plugin whose certificate does not verify: %v", err)
	}
	// As Docker: without a CA file, https is not verified.
	spec("noca", nil)
	writeFile(t, filepath.Join(dir, "plain.spec"), srv.URL)
	for _, name := range []string{"noca", "plain"} {
		if _, err := r.Get(name); err != nil {
			t.Errorf("https without a CA file (%s): %v", name, err)
		}
	}
}

func TestCallsCarryDockersMediaTypesAndErrorAnswersBecomeErrors(t *testing.T) {
	dir := plugintest.Dir(t)
	plugin := plugintest.Serve(t, filepath.Join(dir, "p.sock"), handler(network, map[string]string{
		"NetworkDriver.CreateNetwork":    `{}`,
		"NetworkDriver.DeleteNetwork":    "!network 1234 is busy",
		"NetworkDriver.EndpointOperInfo": `{"Err":"no such endpoint"}`,
	}))
	r := newRegistry(t, dir)
	p, err := r.Get("p")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Call("NetworkDriver.CreateNetwork", map[string]string{"NetworkID": "1234"}, nil); err != nil {
		t.Fatal(err)
	}
	c := plugin.Last(t, "NetworkDriver.CreateNetwork")
	if c.ContentType != "application/vnd.docker.plugins.v1+json" || c.Accept != "application/vnd.docker.plugins.v1.2+json" {
		t.Errorf("content type %q, accept %q", c.ContentType, c.Accept)
	}
	if got := c.Fields(t)["NetworkID"]; got != "1234" {
		t.Errorf("body %s", c.Body)
	}
	err = p.Call("NetworkDriver.DeleteNetwork", map[string]string{"NetworkID": "1234"}, nil)
	if err == nil || err.Error() != "NetworkDriver.DeleteNetwork: network 1234 is busy" {
		t.Errorf("error answer: %v", err)
	}
	err = p.Call("NetworkDriver.EndpointOperInfo", nil, &struct{}{})
	if err == nil || err.Error() != "NetworkDriver.EndpointOperInfo: no such endpoint" {
		t.Errorf("error in a 200 answer: %v", err)
	}
	if err := p.Call("NetworkDriver.ProgramExternalConnectivity", nil, nil); !errdefs.IsNotImplemented(err) {
		t.Errorf("a method the plugin lacks: %v, want NotImplemented", err)
	}
}

func TestANameFoundNowhereIsNotFoundAtOnce(t *testing.T) {
	r := newRegistry(t, plugintest.Dir(t), plugintest.Dir(t))
	r.Retry = time.Minute
	start := time.Now()
	_, err := r.NetworkDriver("nosuch")
	if !errdefs.IsNotFound(err) {
		t.Fatalf("got %v, want NotFound", err)
	}
	if !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("error does not name the plugin: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %s", d)
	}
}

func TestASocketNobodyListensOnIsTriedForTheRetryBoundThenNamed(t *testing.T) {
	dir := plugintest.Dir(t)
	plugintest.DeadSocket(t, filepath.Join(dir, "dead.sock"))
	r := newRegistry(t, dir)
	r.Retry = 400 * time.Millisecond
	start := time.Now()
	_, err := r.NetworkDriver("dead")
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "plugin dead") || !errdefs.IsUnavailable(err) {
		t.Fatalf("got %v, want an Unavailable error naming plugin dead", err)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error does not say why: %v", err)
	}
	if took < r.Retry || took > r.Retry+time.Second {
		t.Errorf("gave up after %s; the bound is %s", took, r.Retry)
	}
}

func TestAPluginThatRestartsIsActivatedAgainByTheNextCall(t *testing.T) {
	dir := plugintest.Dir(t)
	plugin := plugintest.Serve(t, filepath.Join(dir, "p.sock"), handler(network, map[string]string{
		"NetworkDriver.GetCapabilities": `{"Scope":"local"}`,
	}))
	retrying := make(chan struct{}, 100)
	log := slog.New(signalHandler{slog.NewTextHandler(testWriter{t}, nil), "trying again", retrying})
	r := plugins.New([]string{dir}, log)
	r.Retry = 10 * time.Second
	p, err := r.Get("p")
	if err != nil {
		t.Fatal(err)
	}

	plugin.Stop()
	done := make(chan error, 1)
	go func() { done <- p.Call("NetworkDriver.GetCapabilities", nil, &struct{}{}) }()
	select {
	case <-retrying:
	case err := <-done:
		t.Fatalf("the call to a stopped plugin returned before retrying: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the call to a stopped plugin did not retry")
	}
	if err := plugin.Start(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("call after the restart: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not finish after the plugin came back")
	}
	want := []string{"Plugin.Activate", "Plugin.Activate", "NetworkDriver.GetCapabilities"}
	if got := plugin.Methods(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("plugin got %v, want %v", got, want)
	}
}

func TestDriversComeOnlyFromPluginsImplementingThemAndAreKept(t *testing.T) {
	dir := plugintest.Dir(t)
	plugintest.Serve(t, filepath.Join(dir, "net.sock"), handler(network, map[string]string{
		"NetworkDriver.GetCapabilities": `{"Scope":"local","ConnectivityScope":"local"}`,
	}))
	plugintest.Serve(t, filepath.Join(dir, "addr.sock"), handler([]string{plugins.IPAMDriverKind}, map[string]string{
		"IpamDriver.GetDefaultAddressSpaces": `{"LocalDefaultAddressSpace":"l","GlobalDefaultAddressSpace":"g"}`,
	}))
	plugintest.Serve(t, filepath.Join(dir, "vol.sock"), handler([]string{"VolumeDriver"}, nil))
	r := newRegistry(t, dir)

	d1, err := r.NetworkDriver("net")
	if err != nil {
		t.Fatal(err)
	}
	d2, err := r.NetworkDriver("net")
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 || d1.Name() != "net" || d1.Capabilities().Scope != "local" {
		t.Errorf("drivers %p %p, name %s, caps %+v", d1, d2, d1.Name(), d1.Capabilities())
	}
	a1, err := r.IPAMDriver("addr")
	if err != nil {
		t.Fatal(err)
	}
	if a2, _ := r.IPAMDriver("addr"); a1 != a2 || a1.Name() != "addr" {
		t.Errorf("IPAM drivers %p %p", a1, a2)
	}
	if _, err := r.IPAMDriver("net"); err == nil || !strings.Contains(err.Error(), "IpamDriver") {
		t.Errorf("IPAM driver of a network plugin: %v", err)
	}
	if _, err := r.NetworkDriver("vol"); err == nil || !strings.Contains(err.Error(), "does not implement NetworkDriver") {
		t.Errorf("network driver of a volume plugin: %v", err)
	}

	got := r.List()
	var lines []string
	for _, info := range got {
		lines = append(lines, fmt.Sprintf("%s %v %v", info.Name, info.Active, info.Implements))
	}
	want := []string{"addr true [IpamDriver]", "net true [NetworkDriver]", "vol true [VolumeDriver]"}
	if strings.Join(lines, "; ") != strings.Join(want, "; ") {
		t.Errorf("list %q, want %q", lines, want)
	}
}

func TestListShowsPluginsFoundButNotActivated(t *testing.T) {
	dir := plugintest.Dir(t)
	plugintest.Serve(t, filepath.Join(dir, "a.sock"), handler(network, nil))
	writeFile(t, filepath.Join(dir, "b.spec"), "tcp://127.0.0.1:1")
	writeFile(t, filepath.Join(dir, "c.json"), `{"Addr":"tcp://127.0.0.1:1"}`)
	writeFile(t, filepath.Join(dir, "notes.txt"), "not a plugin")
	r := newRegistry(t, dir)
	if _, err := r.Get("a"); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, info := range r.List() {
		lines = append(lines, fmt.Sprintf("%s %v %q", info.Name, info.Active, info.Addr))
	}
	want := []string{`a true "unix://` + filepath.Join(dir, "a.sock") + `"`, `b false ""`, `c false ""`}
	if strings.Join(lines, "; ") != strings.Join(want, "; ") {
		t.Errorf("list %q, want %q", lines, want)
	}
}

// selfSignedPEM is a CA certificate of its own, which signed nothing the
// test serves.
func selfSignedPEM(t *testing.T) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// signalHandler logs, and signals each record whose message contains
// match.
type signalHandler struct {
	slog.Handler
	match string
	c     chan struct{}
}

func (h signalHandler) Handle(ctx context.Context, rec slog.Record) error {
	if strings.Contains(rec.Message, h.match) {
		select {
		case h.c <- struct{}{}:
		default:
		}
	}
	return h.Handler.Handle(ctx, rec)
}
