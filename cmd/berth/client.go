package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

const (
	hostEnv     = "BERTH_HOST"
	defaultHost = "unix:///run/berth/berth.sock"
)

// host is the daemon address: -H, else $BERTH_HOST, else the default socket.
func (c *cli) host() string {
	if c.hostFlag != "" {
		return c.hostFlag
	}
	if h := c.getenv(hostEnv); h != "" {
		return h
	}
	return defaultHost
}

// client returns the Docker Engine API client. Its first request asks
// /_ping for the daemon's API version and uses the lower of that and its own
// for every request after.
func (c *cli) client() (*client.Client, error) {
	if c.docker != nil {
		return c.docker, nil
	}
	host := c.host()
	if _, _, err := splitHost(host); err != nil {
		return nil, err
	}
	dc, err := client.New(
		client.WithHost(host),
		client.WithAPIVersionNegotiation(),
		client.WithUserAgent("berth/"+clientVersion),
	)
	if err != nil {
		return nil, err
	}
	c.docker = dc
	return dc, nil
}

// rawClient returns the client for the routes the Docker API has no method
// for. It shares the Docker client's negotiated API version.
func (c *cli) rawClient() (*rawClient, error) {
	if c.raw != nil {
		return c.raw, nil
	}
	dc, err := c.client()
	if err != nil {
		return nil, err
	}
	network, addr, err := splitHost(c.host())
	if err != nil {
		return nil, err
	}
	base := "http://berth"
	if network == "tcp" {
		base = "http://" + addr
	}
	c.raw = &rawClient{
		host:   c.host(),
		base:   base,
		docker: dc,
		http: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			},
		}},
	}
	return c.raw, nil
}

func (c *cli) close() {
	if c.docker != nil {
		_ = c.docker.Close()
	}
	if c.raw != nil {
		c.raw.http.CloseIdleConnections()
	}
}

// splitHost checks a DOCKER_HOST-style URL and returns what to dial.
func splitHost(host string) (network, addr string, err error) {
	scheme, rest, ok := strings.Cut(host, "://")
	switch {
	case ok && scheme == "unix" && rest != "":
		return "unix", rest, nil
	case ok && scheme == "tcp" && rest != "":
		return "tcp", strings.TrimSuffix(rest, "/"), nil
	}
	return "", "", fmt.Errorf("invalid host %q: expected unix:///path/to/socket or tcp://host:port", host)
}

// rawClient calls berthd over the same socket as the Docker client, for
// berth's own routes and for requests whose bodies the Docker client types
// cannot carry unchanged (it parses addresses that the daemon should judge).
type rawClient struct {
	host   string
	base   string
	http   *http.Client
	docker *client.Client
	prefix string // "/v1.NN" once negotiated; "" if the daemon named no version
	ready  bool
}

// apiPrefix negotiates the API version once, through the Docker client, so
// both clients send the same /v1.NN prefix.
func (r *rawClient) apiPrefix(ctx context.Context) (string, error) {
	if r.ready {
		return r.prefix, nil
	}
	if _, err := r.docker.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return "", err
	}
	if v := r.docker.ClientVersion(); v != "" {
		r.prefix = "/v" + v
	}
	r.ready = true
	return r.prefix, nil
}

// versionBefore tells whether the negotiated API version is older than v.
func (r *rawClient) versionBefore(ctx context.Context, v string) (bool, error) {
	if _, err := r.apiPrefix(ctx); err != nil {
		return false, err
	}
	return versionLess(r.docker.ClientVersion(), v), nil
}

// versionLess compares API versions such as "1.41" and "1.44".
func versionLess(a, b string) bool {
	am, an, _ := strings.Cut(a, ".")
	bm, bn, _ := strings.Cut(b, ".")
	if am != bm {
		return atoi(am) < atoi(bm)
	}
	return atoi(an) < atoi(bn)
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// call sends in (JSON, unless nil) to path and decodes the answer into out
// (unless nil). It returns the raw answer too, for inspect.
func (r *rawClient) call(ctx context.Context, method, path string, query url.Values, in, out any) ([]byte, error) {
	prefix, err := r.apiPrefix(ctx)
	if err != nil {
		return nil, err
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	u := r.base + prefix + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "berth/"+clientVersion)
	resp, err := r.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, connectError{host: r.host, err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return nil, responseError(resp, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return data, nil
}

// daemonError is an error answer of berthd. Its text is the docker CLI's.
type daemonError struct {
	status  int
	message string
}

func (e daemonError) Error() string { return "Error response from daemon: " + e.message }

func responseError(resp *http.Response, body []byte) error {
	msg := strings.TrimSpace(string(body))
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mediaType == "application/json" {
		var answer struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &answer) == nil {
			msg = strings.TrimSpace(answer.Message)
		}
	}
	if msg == "" {
		msg = fmt.Sprintf("%s %s returned %s", resp.Request.Method, resp.Request.URL.Path, resp.Status)
	}
	return daemonError{status: resp.StatusCode, message: msg}
}

// isNotFound tells whether the daemon answered 404, through either client.
func isNotFound(err error) bool {
	var de daemonError
	if errors.As(err, &de) {
		return de.status == http.StatusNotFound
	}
	return cerrdefs.IsNotFound(err)
}

// connectError is a failure to reach the daemon at all.
type connectError struct {
	host string
	err  error
}

func (e connectError) Error() string {
	if errors.Is(e.err, os.ErrPermission) || errors.Is(e.err, syscall.EACCES) ||
		strings.Contains(e.err.Error(), "permission denied") {
		return fmt.Sprintf("permission denied while trying to connect to the berth daemon socket at %s", e.host)
	}
	return fmt.Sprintf("Cannot connect to the berth daemon at %s. Is the berth daemon running?", e.host)
}

func (e connectError) Unwrap() error { return e.err }

// errorText is how an error is shown to the user. The Docker client words
// connection failures for Docker; berth names itself.
func (c *cli) errorText(err error) string {
	if client.IsErrConnectionFailed(err) {
		var ce connectError
		if !errors.As(err, &ce) {
			err = connectError{host: c.host(), err: err}
		}
	}
	return err.Error()
}
