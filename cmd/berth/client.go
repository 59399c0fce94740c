package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/docker/go-connections/tlsconfig"
	"github.com/moby/moby/client"
	"github.com/spf13/pflag"

	"github.com/berth-net/berth/api"
)

// The environment the CLI reads to find the daemon: berth's own variable
// first, then the docker CLI's, which mean what they mean to docker.
const (
	hostEnv       = "BERTH_HOST"
	dockerHostEnv = "DOCKER_HOST"
	// Any value, even "0", turns verification on, as with docker.
	tlsVerifyEnv = "DOCKER_TLS_VERIFY"
	tlsEnv       = "DOCKER_TLS"
	certPathEnv  = "DOCKER_CERT_PATH"
	configEnv    = "DOCKER_CONFIG"
	defaultHost  = "unix:///run/berth/berth.sock"
)

// connection holds the global flags that say how to reach the daemon.
type connection struct {
	host      string
	tls       bool
	tlsVerify bool
	tlsFiles  tlsconfig.Options
	flags     *pflag.FlagSet
}

// addConnectionFlags adds -H and docker's TLS flags, their defaults taken
// from the environment as the docker CLI takes them.
func (c *cli) addConnectionFlags(f *pflag.FlagSet) {
	c.conn.flags = f
	f.StringVarP(&c.conn.host, "host", "H", "",
		fmt.Sprintf("Daemon socket to connect to (default $%s, $%s or %s)", hostEnv, dockerHostEnv, defaultHost))
	f.BoolVar(&c.conn.tls, "tls", c.env(tlsEnv) != "", "Use TLS; implied by --tlsverify")
	f.BoolVar(&c.conn.tlsVerify, "tlsverify", c.env(tlsVerifyEnv) != "", "Use TLS and verify the remote")
	certPath := c.certPath()
	f.StringVar(&c.conn.tlsFiles.CAFile, "tlscacert", filepath.Join(certPath, "ca.pem"), "Trust certs signed only by this CA")
	f.StringVar(&c.conn.tlsFiles.CertFile, "tlscert", filepath.Join(certPath, "cert.pem"), "Path to TLS certificate file")
	f.StringVar(&c.conn.tlsFiles.KeyFile, "tlskey", filepath.Join(certPath, "key.pem"), "Path to TLS key file")
}

func (c *cli) env(name string) string {
	v, _ := c.lookupEnv(name)
	return v
}

// certPath is where the TLS files are by default: $DOCKER_CERT_PATH, else
// docker's configuration directory ($DOCKER_CONFIG or ~/.docker).
func (c *cli) certPath() string {
	if p := c.env(certPathEnv); p != "" {
		return p
	}
	if p := c.env(configEnv); p != "" {
		return p
	}
	home := c.env("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".docker")
}

// host is the daemon address: -H, else $BERTH_HOST, else $DOCKER_HOST,
// else the default socket.
func (c *cli) host() string {
	if c.conn.host != "" {
		return c.conn.host
	}
	for _, name := range []string{hostEnv, dockerHostEnv} {
		if h := c.env(name); h != "" {
			return h
		}
	}
	return defaultHost
}

// useTLS tells whether TLS is asked for: --tls, or --tlsverify given at
// all (even =false), or their variables.
func (c *cli) useTLS() bool {
	return c.conn.tls || c.conn.tlsVerify || c.conn.flags.Changed("tlsverify")
}

// endpoint is the daemon's address in full and, for TCP with TLS, the
// client's TLS configuration. Like docker, a host without a scheme is TCP,
// and a TCP host without a port has 2375, or 2376 with TLS. TLS applies to
// TCP only: a unix socket is guarded by its mode.
func (c *cli) endpoint() (string, *tls.Config, error) {
	raw := c.host()
	invalid := fmt.Errorf("invalid host %q: expected unix:///path/to/socket or tcp://host:port", raw)
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, rest = "tcp", raw
	}
	switch scheme {
	case "unix":
		return raw, nil, nil
	case "tcp":
	default:
		return "", nil, invalid
	}
	u, err := url.Parse("tcp://" + rest)
	if err != nil || rest == "" || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" {
		return "", nil, invalid
	}
	withTLS := c.useTLS()
	hostname, port := u.Hostname(), u.Port()
	if hostname == "" {
		hostname = "127.0.0.1"
	}
	if port == "" {
		port = "2375"
		if withTLS {
			port = "2376"
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", nil, invalid
	}
	host := "tcp://" + net.JoinHostPort(hostname, port)
	if !withTLS {
		return host, nil, nil
	}
	cfg, err := c.clientTLS()
	return host, cfg, err
}

// clientTLS is the docker CLI's TLS configuration: without verification
// the server's certificate is not checked; with it, it must be signed by
// --tlscacert alone. The client certificate and key are sent when given,
// or when their default files exist.
func (c *cli) clientTLS() (*tls.Config, error) {
	opts := c.conn.tlsFiles
	opts.InsecureSkipVerify = !c.conn.tlsVerify
	opts.ExclusiveRootPools = true
	for _, f := range []struct {
		flag string
		path *string
	}{{"tlscert", &opts.CertFile}, {"tlskey", &opts.KeyFile}} {
		if _, err := os.Stat(*f.path); !c.conn.flags.Changed(f.flag) && errors.Is(err, os.ErrNotExist) {
			*f.path = ""
		}
	}
	cfg, err := tlsconfig.Client(opts)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	return cfg, nil
}

// client returns the Docker Engine API client. Its first request asks
// /_ping for the daemon's API version and uses the lower of that and its own
// for every request after.
//
// The client of berth's own routes is made here too, first: api.NewClient
// checks the host and says what a valid one looks like, which the Docker
// client does not.
func (c *cli) client() (*client.Client, error) {
	if c.docker != nil {
		return c.docker, nil
	}
	host, tlsConfig, err := c.endpoint()
	if err != nil {
		return nil, err
	}
	userAgent := "berth/" + clientVersion
	bc, err := api.NewClient(host)
	if err != nil {
		return nil, err
	}
	bc.SetUserAgent(userAgent)
	var opts []client.Opt
	if tlsConfig != nil {
		bc.SetTLS(tlsConfig)
		// Before WithHost, which sets up this transport's dialing.
		opts = append(opts, client.WithHTTPClient(&http.Client{
			Transport: &http.Transport{TLSClientConfig: tlsConfig}, CheckRedirect: client.CheckRedirect}))
	}
	dc, err := client.New(append(opts,
		client.WithHost(host),
		client.WithAPIVersionNegotiation(),
		client.WithUserAgent(userAgent),
	)...)
	if err != nil {
		return nil, err
	}
	c.docker, c.berth = dc, bc
	return dc, nil
}

// berthClient returns the client for berth's own routes and for requests
// whose bodies the Docker client's types would not carry unchanged. It
// speaks the API version the Docker client negotiates, so both send the same
// /v1.NN prefix; the daemon is asked once.
func (c *cli) berthClient(ctx context.Context) (*api.Client, error) {
	dc, err := c.client()
	if err != nil {
		return nil, err
	}
	if !c.negotiated {
		if _, err := dc.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
			return nil, err
		}
		c.berth.SetVersion(dc.ClientVersion())
		c.negotiated = true
	}
	return c.berth, nil
}

func (c *cli) close() {
	if c.docker != nil {
		_ = c.docker.Close()
		c.berth.Close()
	}
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

// errorText is how an error is shown to the user: the daemon's answers in
// the docker CLI's words, and a daemon out of reach named as berth's, where
// the Docker client would name Docker.
func (c *cli) errorText(err error) string {
	var answer *api.Error
	var unreachable *url.Error
	switch {
	case errors.As(err, &answer):
		return "Error response from daemon: " + answer.Message
	case client.IsErrConnectionFailed(err), errors.As(err, &unreachable):
		return connectErrorText(c.host(), err)
	}
	return err.Error()
}

// connectErrorText words a failure to reach the daemon at all.
func connectErrorText(host string, err error) string {
	if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES) ||
		strings.Contains(err.Error(), "permission denied") {
		return fmt.Sprintf("permission denied while trying to connect to the berth daemon socket at %s", host)
	}
	return fmt.Sprintf("Cannot connect to the berth daemon at %s. Is the berth daemon running?", host)
}
