package api

import (
	"bytes"
	"context"
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

// Client calls berth's own routes. Docker-compatible routes are for
// github.com/moby/moby/client.
type Client struct {
	http *http.Client
	base string
}

// NewClient returns a client for a daemon at host: unix:///path or
// tcp://addr:port.
func NewClient(host string) (*Client, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("invalid host %q: %w", host, err)
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
		return &Client{http: &http.Client{Transport: tr}, base: "http://berthd"}, nil
	case "tcp", "http":
		return &Client{http: &http.Client{}, base: "http://" + u.Host}, nil
	}
	return nil, fmt.Errorf("invalid host %q: scheme must be unix or tcp", host)
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// do sends in as JSON (when not nil) and decodes the answer into out (when
// not nil). A daemon error comes back classified (errdefs) with the
// daemon's message.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		var e common.ErrorResponse
		b, _ := io.ReadAll(resp.Body)
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(b))
		}
		return &Error{Status: resp.StatusCode, Message: e.Message}
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
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

func (c *Client) CreateSandbox(ctx context.Context, req SandboxCreateRequest) (SandboxCreateResponse, error) {
	var out SandboxCreateResponse
	err := c.do(ctx, http.MethodPost, "/sandboxes/create", req, &out)
	return out, err
}

func (c *Client) Sandboxes(ctx context.Context) ([]Sandbox, error) {
	var out []Sandbox
	err := c.do(ctx, http.MethodGet, "/sandboxes", nil, &out)
	return out, err
}

func (c *Client) InspectSandbox(ctx context.Context, id string) (Sandbox, error) {
	var out Sandbox
	err := c.do(ctx, http.MethodGet, "/sandboxes/"+url.PathEscape(id), nil, &out)
	return out, err
}

func (c *Client) RemoveSandbox(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/sandboxes/"+url.PathEscape(id), nil, nil)
}

func (c *Client) ConnectSandbox(ctx context.Context, id string, req SandboxConnectRequest) (network.EndpointSettings, error) {
	var out network.EndpointSettings
	err := c.do(ctx, http.MethodPost, "/sandboxes/"+url.PathEscape(id)+"/connect", req, &out)
	return out, err
}

func (c *Client) DisconnectSandbox(ctx context.Context, id string, req SandboxDisconnectRequest) error {
	return c.do(ctx, http.MethodPost, "/sandboxes/"+url.PathEscape(id)+"/disconnect", req, nil)
}
