package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/go-connections/tlsconfig"
)

// The API is root on the machine: whoever may send it requests may run
// anything as root. Its endpoints are guarded the way dockerd guards its
// own: a unix socket by its mode and group, TCP by TLS with client
// certificates. Unlike dockerd, berthd refuses TCP without client
// verification on any address but loopback unless told --insecure-tcp.

// DefaultSocketGroup is the group given the API socket when --group is
// not set, as with dockerd: the socket gets it where it exists and stays
// root's where it does not. Any other group that does not exist is an
// error.
const DefaultSocketGroup = "docker"

// Docker's ports for a tcp:// host that names none.
const (
	defaultTCPPort = "2375"
	defaultTLSPort = "2376"
)

// TLS is how the TCP endpoints use TLS.
type TLS struct {
	// Verify requires every client to present a certificate signed by CA
	// (mutual TLS); without it any client may connect.
	Verify bool
	// CA, Cert and Key are PEM files: the CA clients' certificates must be
	// signed by, and the daemon's own certificate and unencrypted key.
	CA, Cert, Key string
}

// endpoint is one place the API listens, decided before anything binds.
type endpoint struct {
	host  string // as normalized, for messages
	proto string // "unix" or "tcp"
	addr  string // socket path, or host:port
	// insecure: TCP without client verification.
	insecure bool
}

// apiPlan is what the API endpoints need, checked before the daemon
// touches its state or the kernel, so bad flags fail fast and change
// nothing.
type apiPlan struct {
	endpoints []endpoint
	tls       *tls.Config // nil: plain TCP
	gid       int         // group of unix sockets; 0 is root's
	group     string      // its name, for messages
	// warnings are for /info and the log: endpoints more than root can
	// use, and flags that do less than they seem to.
	warnings []string
}

// planAPI parses the hosts and loads what they need: the TLS files, the
// socket group. TCP without client verification is allowed on loopback,
// with a warning, and elsewhere only with insecureTCP, with a louder one.
func planAPI(cfg Config) (*apiPlan, error) {
	if len(cfg.Hosts) == 0 {
		return nil, errors.New("no API host: give at least one -H unix:///path or tcp://addr:port")
	}
	p := &apiPlan{}
	var tcp bool
	for _, h := range cfg.Hosts {
		ep, err := parseHost(h, cfg.TLS != nil)
		if err != nil {
			return nil, err
		}
		if ep.proto == "tcp" {
			tcp = true
			ep.insecure = cfg.TLS == nil || !cfg.TLS.Verify
			if ep.insecure {
				w, err := insecureWarning(ep, cfg.TLS != nil, cfg.InsecureTCP)
				if err != nil {
					return nil, err
				}
				p.warnings = append(p.warnings, w)
			}
		}
		p.endpoints = append(p.endpoints, ep)
	}
	if cfg.TLS != nil {
		if !tcp {
			p.warnings = append(p.warnings, "WARNING: --tls and --tlsverify apply to tcp:// hosts and none is given; the unix socket is guarded by its mode and group")
		} else {
			var err error
			if p.tls, err = serverTLS(*cfg.TLS); err != nil {
				return nil, err
			}
		}
	}
	var err error
	if p.gid, p.group, err = socketGroup(cfg.Group); err != nil {
		return nil, err
	}
	if p.gid < 0 {
		p.warnings = append(p.warnings, fmt.Sprintf("WARNING: group %q does not exist: the API socket is root's alone; --group names another", cfg.Group))
		p.gid, p.group = 0, ""
	}
	return p, nil
}

// parseHost reads a -H value as dockerd does: unix:///path, or
// tcp://host:port where an empty host is 127.0.0.1, a missing port is
// 2375 (2376 with TLS) and a value without a scheme is TCP.
func parseHost(h string, withTLS bool) (endpoint, error) {
	scheme, rest, ok := strings.Cut(h, "://")
	if !ok {
		scheme, rest = "tcp", h
	}
	switch scheme {
	case "unix":
		if rest == "" {
			return endpoint{}, fmt.Errorf("invalid --host %q: no socket path", h)
		}
		return endpoint{host: h, proto: "unix", addr: rest}, nil
	case "tcp":
		u, err := url.Parse("tcp://" + rest)
		if err != nil || (u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" {
			return endpoint{}, fmt.Errorf("invalid --host %q: expected tcp://addr:port", h)
		}
		host, port := u.Hostname(), u.Port()
		if host == "" {
			host = "127.0.0.1"
		}
		if port == "" {
			port = defaultTCPPort
			if withTLS {
				port = defaultTLSPort
			}
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return endpoint{}, fmt.Errorf("invalid --host %q: invalid port %q", h, port)
		}
		addr := net.JoinHostPort(host, port)
		return endpoint{host: "tcp://" + addr, proto: "tcp", addr: addr}, nil
	}
	return endpoint{}, fmt.Errorf("invalid --host %q: scheme must be unix or tcp", h)
}

// insecureWarning judges a TCP endpoint without client verification: on
// loopback it is served with a warning; elsewhere it is refused unless
// allowed, and then served with a louder one.
func insecureWarning(ep endpoint, withTLS, allowed bool) (string, error) {
	what := "without TLS"
	if withTLS {
		what = "with TLS but without client verification (--tlsverify)"
	}
	loopback, err := isLoopback(ep.addr)
	if err != nil {
		return "", fmt.Errorf("invalid --host %q: %w", ep.host, err)
	}
	switch {
	case loopback:
		return fmt.Sprintf("WARNING: the API is served on %s %s: every local user, and any web page a local browser opens, "+
			"can use it, and using it is root on this machine; use --tlsverify or the unix socket", ep.host, what), nil
	case !allowed:
		return "", fmt.Errorf("refusing to serve the API on %s %s: anyone who can reach that address would be root on this machine. "+
			"Use --tlsverify with --tlscacert, --tlscert and --tlskey (clients then need a certificate signed by that CA), "+
			"or give --insecure-tcp to accept the risk", ep.host, what)
	}
	return fmt.Sprintf("WARNING: INSECURE (--insecure-tcp): the API is served on %s %s: anyone who can reach that address "+
		"is root on this machine; use --tlsverify", ep.host, what), nil
}

// isLoopback tells whether every address host:port names is a loopback
// one. Names are resolved (bounded), as the listener would resolve them.
func isLoopback(hostport string) (bool, error) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false, err
	}
	if host == "localhost" {
		return true, nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback(), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false, nil
		}
	}
	return len(addrs) > 0, nil
}

// serverTLS loads the daemon's certificate and, with Verify, the CA its
// clients' certificates must chain to — that CA alone, never the system's.
func serverTLS(t TLS) (*tls.Config, error) {
	opts := tlsconfig.Options{CertFile: t.Cert, KeyFile: t.Key, ExclusiveRootPools: true}
	if t.Verify {
		if t.CA == "" {
			return nil, errors.New("--tlsverify needs --tlscacert: the CA clients' certificates must be signed by")
		}
		opts.CAFile, opts.ClientAuth = t.CA, tls.RequireAndVerifyClientCert
	}
	cfg, err := tlsconfig.Server(opts)
	if err != nil {
		return nil, fmt.Errorf("TLS for the API: %w", err)
	}
	return cfg, nil
}

// socketGroup finds the group of the API socket, by name or number as
// dockerd does. "" is root's; a missing DefaultSocketGroup gives -1 for
// the caller to warn about; any other missing group is an error.
func socketGroup(name string) (int, string, error) {
	if name == "" {
		return 0, "", nil
	}
	if g, err := user.LookupGroup(name); err == nil {
		gid, err := strconv.Atoi(g.Gid)
		return gid, name, err
	}
	if gid, err := strconv.Atoi(name); err == nil && gid >= 0 {
		return gid, name, nil
	}
	if name == DefaultSocketGroup {
		return -1, "", nil
	}
	return 0, "", fmt.Errorf("invalid --group %q: no such group", name)
}

// listen binds every endpoint of the plan. On error, what was bound is
// closed again.
func (d *Daemon) listen(p *apiPlan) (err error) {
	defer func() {
		if err != nil {
			d.closeListeners()
		}
	}()
	for _, ep := range p.endpoints {
		switch ep.proto {
		case "unix":
			l, err := listenUnix(ep.addr, p.gid, d.cfg.ExecRoot, d.cfg.Log)
			if err != nil {
				return err
			}
			d.listeners = append(d.listeners, l)
			d.sockets = append(d.sockets, ep.addr)
			d.cfg.Log.Info("API socket", "path", ep.addr, "mode", "0660", "group", groupText(p))
		case "tcp":
			l, err := net.Listen("tcp", ep.addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", ep.host, err)
			}
			if p.tls != nil {
				l = tls.NewListener(l, p.tls)
			}
			d.listeners = append(d.listeners, l)
			d.cfg.Log.Info("API on TCP", "host", ep.host, "tls", p.tls != nil, "tlsverify", !ep.insecure)
		}
	}
	return nil
}

func groupText(p *apiPlan) string {
	if p.group == "" {
		return "root"
	}
	return p.group
}

// listenUnix binds a unix socket of mode 0660, owned by root and group
// gid. It is made in a private directory and renamed into place, so it is
// never reachable with the mode the umask would give it. A stale socket
// left by a dead daemon is replaced; a live one is refused, and so is a
// path that is not a socket.
//
// The socket's directory, when berth owns it (the exec-root, or one made
// here), is root's and gid's with mode 0710: the group may pass through
// to the socket and list nothing.
func listenUnix(path string, gid int, execRoot string, log *slog.Logger) (net.Listener, error) {
	dir := filepath.Dir(path)
	_, statErr := os.Stat(dir)
	made := errors.Is(statErr, fs.ErrNotExist)
	if err := os.MkdirAll(dir, 0o710); err != nil {
		return nil, err
	}
	if made || sameDir(dir, execRoot) {
		if err := os.Chown(dir, 0, gid); err != nil {
			return nil, err
		}
		if err := os.Chmod(dir, 0o710); err != nil {
			return nil, err
		}
	} else if gid != 0 {
		if st, err := os.Stat(dir); err == nil && !searchable(st, gid) {
			log.Warn("members of the socket's group cannot pass through its directory", "dir", dir, "gid", gid)
		}
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("listen on %s: it exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("another daemon is listening on %s", path)
		}
	}
	private, err := os.MkdirTemp(dir, ".s")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// Its name is about to change; the daemon removes the socket itself.
	l.SetUnlinkOnClose(false)
	err = os.Chmod(tmp, 0o660)
	if err == nil {
		err = os.Chown(tmp, 0, gid)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return l, nil
}

func sameDir(a, b string) bool {
	a, errA := filepath.Abs(a)
	b, errB := filepath.Abs(b)
	return errA == nil && errB == nil && a == b
}

// searchable tells whether members of gid may pass through a directory.
func searchable(st fs.FileInfo, gid int) bool {
	perm := st.Mode().Perm()
	if perm&0o001 != 0 {
		return true
	}
	s, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(s.Gid) == gid && perm&0o010 != 0
}
