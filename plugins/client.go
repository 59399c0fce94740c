package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/docker/go-connections/tlsconfig"
)

// The media types of Docker's plugin protocol: what the engine accepts
// and the type of the JSON it sends.
const (
	AcceptType  = "application/vnd.docker.plugins.v1.2+json"
	ContentType = "application/vnd.docker.plugins.v1+json"
)

// maxAnswer bounds what is read of one answer.
const maxAnswer = 16 << 20

// client sends calls to one address of a plugin.
type client struct {
	name string
	addr string
	base string
	http *http.Client
}

func newClient(s spec, timeout time.Duration) (*client, error) {
	u, err := url.Parse(s.Addr)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: bad address %q: %w", s.Name, s.Addr, err)
	}
	// One connection per call: after a plugin restarts, no pooled
	// connection to the old process is left to fail a call.
	tr := &http.Transport{DisableKeepAlives: true}
	scheme := "http"
	host := u.Host
	var d net.Dialer
	switch u.Scheme {
	case "unix":
		path := u.Path
		// The URL's host names nothing on a unix socket; the request
		// needs one all the same.
		host = "plugin"
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", path)
		}
	default:
		tr.DialContext = d.DialContext
	}
	// As Docker, TLS is for https addresses only: a spec's TLS settings
	// do not turn a tcp address into an https one.
	if u.Scheme == "https" {
		opts := tlsconfig.Options{InsecureSkipVerify: true}
		if s.TLS != nil {
			opts = *s.TLS
		}
		cfg, err := tlsconfig.Client(opts)
		if err != nil {
			return nil, fmt.Errorf("plugin %s: TLS configuration: %w", s.Name, err)
		}
		tr.TLSClientConfig = cfg
		scheme = "https"
	}
	return &client{
		name: s.Name, addr: s.Addr, base: scheme + "://" + host,
		http: &http.Client{Transport: tr, Timeout: timeout},
	}, nil
}

// errorAnswer is how a plugin says a call failed.
type errorAnswer struct {
	Err string
}

// call posts args as JSON to /method and decodes the answer into ret. A
// plugin that does not know the method (404) gives an error errdefs
// reports as NotImplemented; one that answers {"Err": …} gives an error
// with that text after the method's name, as Docker shows it. Errors of
// the transport are returned as they are, for the caller to tell whether
// to retry (see unreachable).
func (c *client) call(method string, args, ret any) error {
	var body io.Reader = http.NoBody
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("%s: encode request: %w", method, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(http.MethodPost, c.base+"/"+method, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", AcceptType)
	req.Header.Set("Content-Type", ContentType)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s: read answer of plugin %s: %w", method, c.name, err)
	}
	var answer errorAnswer
	jsonErr := json.Unmarshal(b, &answer)
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(b))
		if jsonErr == nil && answer.Err != "" {
			msg = answer.Err
		}
		if resp.StatusCode == http.StatusNotFound {
			return errdefs.ErrNotImplemented.WithMessage(fmt.Sprintf("%s: plugin %s does not implement it: %s", method, c.name, msg))
		}
		return fmt.Errorf("%s: %s", method, msg)
	}
	if answer.Err != "" {
		return fmt.Errorf("%s: %s", method, answer.Err)
	}
	if ret == nil || len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, ret); err != nil {
		return fmt.Errorf("%s: bad answer from plugin %s: %w", method, c.name, err)
	}
	return nil
}

// unreachable tells whether err means the call never reached the plugin:
// nobody listens on its socket, or the socket is gone. Such a call can be
// sent again without doing anything twice.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
