package api

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
)

// serve runs h behind a daemon address of the given scheme and returns a
// client for it.
func serve(t *testing.T, scheme string, h http.HandlerFunc) *Client {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	host := "tcp://" + srv.Listener.Addr().String()
	if scheme == "unix" {
		sock := filepath.Join(t.TempDir(), "berthd.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		srv.Listener.Close()
		srv.Listener = l
		host = "unix://" + sock
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := NewClient(host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestCallSendsVersionQueryBodyAndUserAgent(t *testing.T) {
	for _, scheme := range []string{"unix", "tcp"} {
		t.Run(scheme, func(t *testing.T) {
			requests := make(chan *http.Request, 1)
			bodies := make(chan string, 1)
			c := serve(t, scheme, func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				requests <- r
				bodies <- string(body)
				io.WriteString(w, `{"Id":"9f3a","Extra":[1]}`)
			})
			c.SetVersion("1.56")
			c.SetUserAgent("berth/test")

			var out SandboxCreateResponse
			raw, err := c.Call(context.Background(), http.MethodPost, "/sandboxes/create",
				url.Values{"x": {"a b"}}, SandboxCreateRequest{Name: "web"}, &out)
			if err != nil {
				t.Fatal(err)
			}
			got := <-requests
			if got.URL.Path != "/v1.56/sandboxes/create" || got.URL.RawQuery != "x=a+b" {
				t.Errorf("request went to %s, want /v1.56/sandboxes/create?x=a+b", got.URL)
			}
			if ua, ct := got.Header.Get("User-Agent"), got.Header.Get("Content-Type"); ua != "berth/test" || ct != "application/json" {
				t.Errorf("User-Agent %q, Content-Type %q", ua, ct)
			}
			if body := <-bodies; body != `{"Name":"web","Key":""}` {
				t.Errorf("body %s", body)
			}
			if out.ID != "9f3a" || string(raw) != `{"Id":"9f3a","Extra":[1]}` {
				t.Errorf("answer decoded to %+v, raw %s", out, raw)
			}
		})
	}
}

func TestSandboxRoutesEscapeIDsAndGoUnprefixedWithoutAVersion(t *testing.T) {
	paths := make(chan string, 1)
	c := serve(t, "unix", func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.EscapedPath()
		w.WriteHeader(http.StatusNoContent)
	})
	if err := c.RemoveSandbox(context.Background(), "a/b"); err != nil {
		t.Fatal(err)
	}
	if path := <-paths; path != "/sandboxes/a%2Fb" || c.Version() != "" {
		t.Errorf("path %q, version %q; want /sandboxes/a%%2Fb and no version", path, c.Version())
	}
}

func TestErrorAnswersKeepTheDaemonsWordsAndClass(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      int
		contentType string
		body        string
		want        string
		is          func(error) bool
	}{
		{"json", http.StatusNotFound, "application/json", `{"message":"sandbox x not found"}` + "\n", "sandbox x not found", cerrdefs.IsNotFound},
		{"text", http.StatusNotImplemented, "text/plain", "sandboxes are not enabled\n", "sandboxes are not enabled", cerrdefs.IsNotImplemented},
		{"empty", http.StatusConflict, "", "", "GET /sandboxes/x returned 409 Conflict", cerrdefs.IsConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := serve(t, "unix", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			_, err := c.InspectSandbox(context.Background(), "x")
			var e *Error
			if !errors.As(err, &e) || e.Status != tc.status || e.Error() != tc.want {
				t.Fatalf("error %#v, want status %d and message %q", err, tc.status, tc.want)
			}
			if !tc.is(err) {
				t.Errorf("%v is not of the errdefs class of %d", err, tc.status)
			}
		})
	}
}

func TestUnreachableDaemonIsAURLError(t *testing.T) {
	c, err := NewClient("unix:///nonexistent/berth.sock")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Sandboxes(context.Background())
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Errorf("error %#v, want a *url.Error", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Sandboxes(ctx); err != context.Canceled {
		t.Errorf("error %#v with a cancelled context, want context.Canceled", err)
	}
}

func TestNewClientRefusesHostsItCannotDial(t *testing.T) {
	for _, host := range []string{"/run/berth.sock", "unix://", "http://localhost:2375", "localhost:2375"} {
		_, err := NewClient(host)
		if err == nil || !strings.Contains(err.Error(), "expected unix:///path/to/socket or tcp://host:port") {
			t.Errorf("NewClient(%q) = %v, want an error naming the valid forms", host, err)
		}
	}
}
