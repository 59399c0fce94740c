package daemon

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-net/berth/container"
	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/image"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/netdev/reap"
	"github.com/berth-net/berth/network"
	"github.com/berth-net/berth/resolver"
	"github.com/berth-net/berth/store"
)

// Version and GitCommit are reported by /version; make build sets them.
var (
	Version   = "dev"
	GitCommit string
)

// Config is berthd's configuration, from its flags.
type Config struct {
	// Host is where the API listens: unix:///path or tcp://addr:port.
	Host string
	// Root holds the state (berth.db).
	Root string
	// ExecRoot holds run-time files: namespace mounts and, by default, the
	// socket.
	ExecRoot string
	// BridgeName is the device of the default "bridge" network.
	BridgeName string
	// Pools replace the default address pools when set.
	Pools []ipam.PoolSpec
	// DNS are the servers containers' other queries go to; empty means the
	// host's (/etc/resolv.conf).
	DNS []netip.Addr
	Log *slog.Logger
}

// Daemon is a running berthd.
type Daemon struct {
	cfg        Config
	store      store.Store
	host       *netdev.Host
	reaper     *reap.Reaper
	fw         *firewall.Firewall
	ctrl       *network.Controller
	images     *image.Store
	containers *container.Manager
	server     *http.Server
	listener   net.Listener
	socket     string
	started    time.Time
	id         string
}

// storeLockTimeout bounds the wait for the database: a second daemon on the
// same root fails within it instead of hanging.
const storeLockTimeout = time.Second

// New opens the state, reconciles the kernel and binds the API socket. It
// does not serve yet.
func New(cfg Config) (_ *Daemon, err error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, err
	}
	cfg.Root = root
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("create root %s: %w", cfg.Root, err)
	}
	if err := os.MkdirAll(cfg.ExecRoot, 0o710); err != nil {
		return nil, fmt.Errorf("create exec-root %s: %w", cfg.ExecRoot, err)
	}
	d := &Daemon{cfg: cfg, started: time.Now()}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	dbPath := filepath.Join(cfg.Root, "berth.db")
	st, err := store.OpenBolt(dbPath, storeLockTimeout)
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("another berthd is using the root %s (%s is locked)", cfg.Root, dbPath)
		}
		return nil, err
	}
	d.store = st
	if d.id, err = daemonID(st); err != nil {
		return nil, err
	}
	if d.host, err = netdev.NewHost(cfg.Root); err != nil {
		return nil, err
	}
	d.reaper = reap.New(d.host, func(err error) { cfg.Log.Warn("reap retired devices", "err", err) })
	if err := netdev.SetForwarding(false); err != nil {
		return nil, err
	}
	if d.fw, err = firewall.New(tableName(cfg.Root)); err != nil {
		return nil, err
	}
	table := resolver.NewTable()
	hostResolvConf := network.NewHostResolvConf("/etc/resolv.conf")
	d.ctrl, err = network.New(network.Config{
		Store:   st,
		Kernel:  kernel{d.host, d.reaper},
		Drivers: d.drivers(),
		// Docker's default for networks created without -d.
		DefaultDriver: "bridge",
		Pools:         cfg.Pools,
		NamespaceDir:  filepath.Join(cfg.ExecRoot, "netns"),
		Firewall:      d.fw,
		DNS: &network.DNS{
			Table: table, Resolver: resolver.New(table, resolver.Options{Logger: cfg.Log}),
			Upstreams: func() []netip.AddrPort {
				if len(cfg.DNS) == 0 {
					return hostResolvConf.Upstreams()
				}
				var out []netip.AddrPort
				for _, a := range cfg.DNS {
					out = append(out, netip.AddrPortFrom(a, 53))
				}
				return out
			},
		},
		Log: cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	if d.images, err = image.NewStore(filepath.Join(cfg.Root, "images"), st); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	d.containers, err = container.New(container.Config{
		Store: st, Networks: d.ctrl, Images: d.images, Root: cfg.Root, ExecRoot: cfg.ExecRoot, Self: self, Log: cfg.Log,
		Removed: d.collectImages,
	})
	if err != nil {
		return nil, err
	}
	d.collectImages()
	if d.listener, d.socket, err = listen(cfg.Host); err != nil {
		return nil, err
	}
	d.server = &http.Server{Handler: d.routes(), ReadHeaderTimeout: 10 * time.Second}
	for _, w := range d.forwardWarnings() {
		cfg.Log.Warn(w)
	}
	return d, nil
}

// tableName is berth's nftables table: "berth" for the default root, and
// a name of its own for every other root, so daemons side by side in one
// namespace never share a table.
func tableName(root string) string {
	if root == "/var/lib/berth" {
		return "berth"
	}
	sum := fnv.New32a()
	sum.Write([]byte(root))
	return fmt.Sprintf("berth_%08x", sum.Sum32())
}

// daemonID is a stable identity, made on first start.
func daemonID(st store.Store) (string, error) {
	var id string
	err := st.Update(func(tx store.Tx) error {
		if b := tx.Get("meta", "id"); b != nil {
			id = string(b)
			return nil
		}
		id = strings.ToUpper(newUUID())
		return tx.Put("meta", "id", []byte(id))
	})
	return id, err
}

// listen binds the API endpoint. A unix socket gets mode 0660 in a
// directory of mode 0710; a stale socket left by a dead daemon is replaced,
// a live one is refused.
func listen(hostURL string) (net.Listener, string, error) {
	u, err := url.Parse(hostURL)
	if err != nil {
		return nil, "", fmt.Errorf("invalid --host %q: %w", hostURL, err)
	}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			return nil, "", fmt.Errorf("invalid --host %q: no socket path", hostURL)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o710); err != nil {
			return nil, "", err
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, "", fmt.Errorf("another daemon is listening on %s", path)
		}
		os.Remove(path)
		l, err := net.Listen("unix", path)
		if err != nil {
			return nil, "", fmt.Errorf("listen on %s: %w", path, err)
		}
		if err := os.Chmod(path, 0o660); err != nil {
			l.Close()
			return nil, "", err
		}
		return l, path, nil
	case "tcp":
		l, err := net.Listen("tcp", u.Host)
		if err != nil {
			return nil, "", fmt.Errorf("listen on %s: %w", u.Host, err)
		}
		return l, "", nil
	}
	return nil, "", fmt.Errorf("invalid --host %q: scheme must be unix or tcp", hostURL)
}

// Serve answers API requests until ctx is done, then shuts down cleanly:
// requests in flight finish, the socket goes, kernel state stays.
func (d *Daemon) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- d.server.Serve(d.listener) }()
	d.cfg.Log.Info("berthd ready", "host", d.cfg.Host, "root", d.cfg.Root, "version", Version)
	var err error
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = d.server.Shutdown(sctx)
		cancel()
	case err = <-errc:
	}
	d.close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	d.cfg.Log.Info("berthd stopped")
	return err
}

func (d *Daemon) close() {
	if d.listener != nil {
		d.listener.Close()
	}
	if d.socket != "" {
		os.Remove(d.socket)
	}
	if d.ctrl != nil {
		d.ctrl.Close()
	}
	if d.reaper != nil {
		d.reaper.Close()
	}
	if d.host != nil {
		d.host.Close()
	}
	if d.fw != nil {
		d.fw.Close()
	}
	if d.store != nil {
		d.store.Close()
	}
}
