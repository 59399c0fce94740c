package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/containerd/errdefs/pkg/errhttp"
	"github.com/moby/moby/api/types/common"
	"github.com/moby/moby/api/types/network"
)

// Client calls berth's own routes. It also serves the Docker routes where
// github.com/moby/moby/client would change what is sent or answered: that
// client parses addresses the daemon should judge, and drops fields of some
// answers. Other Docker routes are for that client.
//
// SetVersion and SetUserAgent are for before the first request; after that a
// Client is safe for concurrent use.
type Client struct {
	http      *http.Client
	base      string
	version   string
	userAgent string
}

// NewClient returns a client for a daemon at host: unix:///path or
// tcp://addr:port, as DOCKER_HOST spells them. It dials nothing yet.
func NewClient(host string) (*Client, error) {
	network, addr, err := splitHost(host)
	if err != nil {
		return nil, err
	}
	base := "http://berthd"
	if network == "tcp" {
		base = "http://" + addr
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	return &Client{http: &http.Client{Transport: tr}, base: base}, nil
}

// SetTLS makes the client speak TLS with cfg to a tcp:// host, as a
// daemon with --tls or --tlsverify wants. For before the first request.
func (c *Client) SetTLS(cfg *tls.Config) {
	c.http.Transport.(*http.Transport).TLSClientConfig = cfg
	c.base = "https://" + strings.TrimPrefix(c.base, "http://")
}

// splitHost returns what to dial for a host. Like Docker, everything after
// the scheme is the address, so unix://relative/path is a relative path.
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

// SetVersion makes every request go to version v of the API ("1.56" gives
// /v1.56/…), so that a caller that negotiated with the daemon gets answers
// in the shape of that version. Without it, or with "", requests are
// unprefixed and the daemon answers in the shape of its own version.
func (c *Client) SetVersion(v string) { c.version = v }

// Version is the API version set with SetVersion.
func (c *Client) Version() string { return c.version }

// SetUserAgent names the caller to the daemon (and its logs) in every
// request's User-Agent header.
func (c *Client) SetUserAgent(ua string) { c.userAgent = ua }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Call sends method path?query under the version prefix, with in as its JSON
// body unless in is nil, and returns the body of the answer, decoded into out
// too unless out is nil. The raw body is for callers that pass on what the
// daemon said, fields they do not model included (inspect).
//
// An error answer is an *Error; a daemon that cannot be reached, the
// *url.Error of net/http; a context that ended, the context's error.
func (c *Client) Call(ctx context.Context, method, path string, query url.Values, in, out any) ([]byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode body of %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	u := c.base + path
	if c.version != "" {
		u = c.base + "/v" + c.version + path
	}
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
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return nil, answerError(resp, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return data, nil
}

// answerError reads an error answer. berthd sends {"message": …}; a proxy
// in between may send text, or nothing, and then the status has to do.
func answerError(resp *http.Response, body []byte) *Error {
	msg := strings.TrimSpace(string(body))
	var e common.ErrorResponse
	if json.Unmarshal(body, &e) == nil && strings.TrimSpace(e.Message) != "" {
		msg = strings.TrimSpace(e.Message)
	}
	if msg == "" {
		msg = fmt.Sprintf("%s %s returned %s", resp.Request.Method, resp.Request.URL.Path, resp.Status)
	}
	return &Error{Status: resp.StatusCode, Message: msg}
}

// Error is an error answer of the daemon.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// Unwrap gives the errdefs class of the status, so errdefs.IsNotFound and
// friends work on daemon errors.
func (e *Error) Unwrap() error { return errhttp.ToNative(e.Status) }

// The sandbox routes take a sandbox's ID, name or a unique prefix of its ID.

// CreateSandbox is POST /sandboxes/create.
func (c *Client) CreateSandbox(ctx context.Context, req SandboxCreateRequest) (SandboxCreateResponse, error) {
	var out SandboxCreateResponse
	_, err := c.Call(ctx, http.MethodPost, "/sandboxes/create", nil, req, &out)
	return out, err
}

// Sandboxes is GET /sandboxes.
func (c *Client) Sandboxes(ctx context.Context) ([]Sandbox, error) {
	var out []Sandbox
	_, err := c.Call(ctx, http.MethodGet, "/sandboxes", nil, nil, &out)
	return out, err
}

// InspectSandbox is GET /sandboxes/{id}.
func (c *Client) InspectSandbox(ctx context.Context, id string) (Sandbox, error) {
	var out Sandbox
	_, err := c.Call(ctx, http.MethodGet, SandboxPath(id), nil, nil, &out)
	return out, err
}

// RemoveSandbox is DELETE /sandboxes/{id}.
func (c *Client) RemoveSandbox(ctx context.Context, id string) error {
	_, err := c.Call(ctx, http.MethodDelete, SandboxPath(id), nil, nil, nil)
	return err
}

// ConnectSandbox is POST /sandboxes/{id}/connect.
func (c *Client) ConnectSandbox(ctx context.Context, id string, req SandboxConnectRequest) (network.EndpointSettings, error) {
	var out network.EndpointSettings
	_, err := c.Call(ctx, http.MethodPost, SandboxPath(id)+"/connect", nil, req, &out)
	return out, err
}

// DisconnectSandbox is POST /sandboxes/{id}/disconnect.
func (c *Client) DisconnectSandbox(ctx context.Context, id string, req SandboxDisconnectRequest) error {
	_, err := c.Call(ctx, http.MethodPost, SandboxPath(id)+"/disconnect", nil, req, nil)
	return err
}

// SandboxPath is the route of one sandbox, for Call.
func SandboxPath(id string) string { return "/sandboxes/" + url.PathEscape(id) }
