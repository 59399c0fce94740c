// Package plugintest serves test plugins on unix sockets the way Docker's
// plugins serve, and records the raw requests they receive, so that tests
// can check the wire (paths, media types, JSON field names) and not only
// what a plugin library decoded. It is for tests only.
package plugintest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
)

// Dir makes a plugin directory for the test. Not t.TempDir(): socket
// paths under it outgrow the 108 bytes a unix socket address may have.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bplug")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Call is one request a plugin received.
type Call struct {
	// Method is the path without its slash: "NetworkDriver.Join".
	Method      string
	ContentType string
	Accept      string
	Body        []byte
}

// Fields decodes the call's body as a JSON object, keeping the field
// names exactly as sent.
func (c Call) Fields(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(c.Body, &m); err != nil {
		t.Fatalf("%s: body %q is not a JSON object: %v", c.Method, c.Body, err)
	}
	return m
}

// Plugin is a test plugin served on a unix socket.
type Plugin struct {
	Path  string
	serve func(net.Listener) error

	mu    sync.Mutex
	calls []Call
	srv   *http.Server
	inner *pipeListener
}

// Serve serves a plugin on the socket path: serve is what serves the
// plugin's HTTP on a listener (the Serve method of a go-plugins-helpers
// handler). A recorder in front of it keeps every request. The plugin
// stops when the test ends.
func Serve(t testing.TB, path string, serve func(net.Listener) error) *Plugin {
	t.Helper()
	p := &Plugin{Path: path, serve: serve}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// Start starts (or starts again) serving on the socket.
func (p *Plugin) Start() error {
	l, err := net.Listen("unix", p.Path)
	if err != nil {
		return err
	}
	inner := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	go p.serve(inner)
	forward := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return inner.dial(ctx)
		},
	}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.calls = append(p.calls, Call{
			Method: strings.TrimPrefix(r.URL.Path, "/"), ContentType: r.Header.Get("Content-Type"),
			Accept: r.Header.Get("Accept"), Body: body,
		})
		p.mu.Unlock()
		req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://plugin"+r.URL.Path, bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header = r.Header.Clone()
		resp, err := forward.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})}
	go srv.Serve(l)
	p.mu.Lock()
	p.srv, p.inner = srv, inner
	p.mu.Unlock()
	return nil
}

// Stop stops serving and removes the socket, as a plugin that exits does.
func (p *Plugin) Stop() {
	p.mu.Lock()
	srv, inner := p.srv, p.inner
	p.srv, p.inner = nil, nil
	p.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Close()
	inner.Close()
	os.Remove(p.Path)
}

// Calls returns the calls received of method, in order.
func (p *Plugin) Calls(method string) []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Call
	for _, c := range p.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Methods lists the methods called, in order.
func (p *Plugin) Methods() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, c := range p.calls {
		out = append(out, c.Method)
	}
	return out
}

// Last returns the last call of method; the test fails if there was none.
func (p *Plugin) Last(t testing.TB, method string) Call {
	t.Helper()
	calls := p.Calls(method)
	if len(calls) == 0 {
		t.Fatalf("plugin got no %s call; got %v", method, p.Methods())
	}
	return calls[len(calls)-1]
}

// DeadSocket leaves a unix socket at path that nobody listens on, as a
// plugin that died without removing it does.
func DeadSocket(t testing.TB, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	t.Cleanup(func() { os.Remove(path) })
}

// pipeListener hands the served plugin in-memory connections from the
// recorder.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) dial(ctx context.Context) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "plugin" }
