package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// fakeDaemon is an HTTP server on a unix socket that answers like berthd:
// /_ping names its API version, other routes are registered per test with
// the paths a client uses after the /v1.NN prefix. Every request is recorded.
type fakeDaemon struct {
	t          *testing.T
	host       string
	apiVersion string
	mux        *http.ServeMux

	mu       sync.Mutex
	requests []recordedRequest
}

type recordedRequest struct {
	Method  string
	Path    string // without the version prefix
	Version string // "1.41" from /v1.41/…, "" without a prefix
	Query   map[string][]string
	Body    []byte
}

var versionPrefix = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)(/.*)$`)

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	d := &fakeDaemon{t: t, apiVersion: "1.41", mux: http.NewServeMux()}
	dir := t.TempDir()
	if len(dir) > 90 { // unix socket paths are short
		var err error
		if dir, err = os.MkdirTemp("", "berth"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	sock := filepath.Join(dir, "berthd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(d.serve))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	d.host = "unix://" + sock
	return d
}

func (d *fakeDaemon) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_ping" {
		w.Header().Set("Api-Version", d.apiVersion)
		w.Header().Set("Ostype", "linux")
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, "OK")
		}
		return
	}
	body, _ := io.ReadAll(r.Body)
	rec := recordedRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Body: body}
	if m := versionPrefix.FindStringSubmatch(r.URL.Path); m != nil {
		rec.Version, rec.Path = m[1], m[2]
	}
	d.mu.Lock()
	d.requests = append(d.requests, rec)
	d.mu.Unlock()

	r2 := r.Clone(r.Context())
	r2.URL.Path = rec.Path
	r2.URL.RawPath = ""
	r2.Body = io.NopCloser(bytes.NewReader(body))
	d.mux.ServeHTTP(w, r2)
}

// handle registers a route, as "METHOD /path/{name}".
func (d *fakeDaemon) handle(pattern string, h http.HandlerFunc) { d.mux.HandleFunc(pattern, h) }

// answer registers a route that always answers v as JSON.
func (d *fakeDaemon) answer(pattern string, status int, v any) {
	d.handle(pattern, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, status, v) })
}

// answerRaw registers a route that always answers the given JSON text.
func (d *fakeDaemon) answerRaw(pattern string, body string) {
	d.handle(pattern, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	})
}

// fail registers a route that always answers an error.
func (d *fakeDaemon) fail(pattern string, status int, message string) {
	d.handle(pattern, func(w http.ResponseWriter, _ *http.Request) { writeError(w, status, message) })
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers an error the way berthd does.
func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]string{"message": message})
}

// calls returns the recorded requests to a path (without version prefix).
func (d *fakeDaemon) calls(method, path string) []recordedRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []recordedRequest
	for _, r := range d.requests {
		if r.Method == method && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

// onlyCall returns the one request to a path, failing the test otherwise.
func (d *fakeDaemon) onlyCall(method, path string) recordedRequest {
	d.t.Helper()
	calls := d.calls(method, path)
	if len(calls) != 1 {
		d.t.Fatalf("%s %s called %d times, want once; requests: %+v", method, path, len(calls), d.requests)
	}
	return calls[0]
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs berth against the daemon.
func (d *fakeDaemon) run(args ...string) result {
	return d.runWithInput("", args...)
}

func (d *fakeDaemon) runWithInput(stdin string, args ...string) result {
	return d.runWithEnv(nil, stdin, args...)
}

// runWithEnv runs berth with env as its environment besides the host.
func (d *fakeDaemon) runWithEnv(env map[string]string, stdin string, args ...string) result {
	all := map[string]string{hostEnv: d.host}
	maps.Copy(all, env)
	return runBerth(stdin, all, args...)
}

// runBerth runs berth in-process with the given environment.
func runBerth(stdin string, env map[string]string, args ...string) result {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut,
		func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// expect fails the test unless the run printed exactly stdout and stderr
// and exited with code.
func (r result) expect(t *testing.T, stdout, stderr string, code int) {
	t.Helper()
	if r.stdout != stdout {
		t.Errorf("stdout:\n%q\nwant:\n%q", r.stdout, stdout)
	}
	if r.stderr != stderr {
		t.Errorf("stderr:\n%q\nwant:\n%q", r.stderr, stderr)
	}
	if r.code != code {
		t.Errorf("exit code %d, want %d", r.code, code)
	}
}

// jsonAt returns the JSON value at a path of object keys in body:
// jsonAt(t, body, "HostConfig", "PortBindings").
func jsonAt(t *testing.T, body []byte, keys ...string) []byte {
	t.Helper()
	v := json.RawMessage(body)
	for _, k := range keys {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(v, &obj); err != nil {
			t.Fatalf("%s of %s: %v", k, body, err)
		}
		var ok bool
		if v, ok = obj[k]; !ok {
			t.Fatalf("no %s in %s", k, v)
		}
	}
	return v
}

// jsonEqual fails the test unless got and want are the same JSON value.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("body %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %q is not JSON: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("JSON body:\n%s\nwant:\n%s", gb, wb)
	}
}
