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
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/berth-net/berth/cluster"
	"github.com/berth-net/berth/container"
	"github.com/berth-net/berth/events"
	"github.com/berth-net/berth/firewall"
	"github.com/berth-net/berth/image"
	"github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/metrics"
	"github.com/berth-net/berth/netdev"
	"github.com/berth-net/berth/netdev/reap"
	"github.com/berth-net/berth/network"
	"github.com/berth-net/berth/plugins"
	"github.com/berth-net/berth/resolver"
	"github.com/berth-net/berth/store"
	"github.com/berth-net/berth/volume"
)

// Version and GitCommit are reported by /version; make build sets them.
var (
	Version   = "dev"
	GitCommit string
)

// Config is berthd's configuration, from its flags.
type Config struct {
	// Hosts are where the API listens, one listener each: unix:///path
	// or tcp://addr:port (see listen.go).
	Hosts []string
	// Group is given the unix sockets (a name or a GID); "" leaves them
	// root's. See DefaultSocketGroup.
	Group string
	// TLS, when set, puts TLS on the TCP endpoints.
	TLS *TLS
	// InsecureTCP allows TCP endpoints without client verification on
	// addresses other than loopback.
	InsecureTCP bool
	// Root holds the state (berth.db).
	Root string
	// ExecRoot holds run-time files: namespace mounts and, by default, the
	// socket.
	ExecRoot string
	// BridgeName is the device of the default "bridge" network; IPv6,
	// FixedCIDR and FixedCIDRv6 its addresses (dockerd's --ipv6,
	// --fixed-cidr, --fixed-cidr-v6).
	BridgeName  string
	IPv6        bool
	FixedCIDR   netip.Prefix
	FixedCIDRv6 netip.Prefix
	// Pools replace the default address pools when set.
	Pools []ipam.PoolSpec
	// DNS are the servers containers' other queries go to; empty means the
	// host's (/etc/resolv.conf).
	DNS []netip.Addr
	// Cluster, when set, is the cluster store to join (--cluster-store);
	// New fills in the host's ID, the version, the log and, unless set,
	// the embedded member's data directory, <Root>/etcd.
	Cluster *cluster.Config
	// PluginDirs are where Docker's legacy plugins are found (see
	// DefaultPluginDirs).
	PluginDirs []string
	// CNIConfDir holds CNI configurations, each a network; CNIBinDirs the
	// plugins they name.
	CNIConfDir string
	CNIBinDirs []string
	// MetricsAddr, when set, is a TCP address serving /metrics alone,
	// without TLS (dockerd's --metrics-addr); the API serves it too.
	MetricsAddr string
	Log         *slog.Logger
}

// Where plugins are looked for unless told otherwise: Docker's plugin
// directories; the CNI directories of the CNI specification's
// conventions, and Debian's place for the reference plugins.
var (
	DefaultPluginDirs = []string{"/run/docker/plugins", "/etc/docker/plugins", "/usr/lib/docker/plugins"}
	DefaultCNIConfDir = "/etc/cni/net.d"
	DefaultCNIBinDirs = []string{"/opt/cni/bin", "/usr/lib/cni"}
)

// Daemon is a running berthd.
type Daemon struct {
	cfg        Config
	store      store.Store
	cluster    *cluster.Store
	host       *netdev.Host
	reaper     *reap.Reaper
	fw         *firewall.Firewall
	ctrl       *network.Controller
	plugins    *plugins.Registry
	images     *image.Store
	containers *container.Manager
	volumes    *volume.Store
	events     *events.Log
	resolver   *resolver.Resolver
	metrics    *metrics.Metrics
	server     *http.Server
	// metricsServer serves --metrics-addr, when given.
	metricsServer   *http.Server
	metricsListener net.Listener
	// done closes when the server shuts down: streams end then.
	done      chan struct{}
	listeners []net.Listener
	sockets   []string
	// apiWarnings are what the log and /info say of the API endpoints.
	apiWarnings []string
	started     time.Time
	id          string
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
	api, err := planAPI(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("create root %s: %w", cfg.Root, err)
	}
	if err := os.MkdirAll(cfg.ExecRoot, 0o710); err != nil {
		return nil, fmt.Errorf("create exec-root %s: %w", cfg.ExecRoot, err)
	}
	d := &Daemon{cfg: cfg, started: time.Now(), apiWarnings: api.warnings, events: events.New(), done: make(chan struct{}), metrics: metrics.New()}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	dbPath := filepath.Join(cfg.Root, "berth.db")
	st, err := store.OpenSplit(dbPath, filepath.Join(cfg.ExecRoot, "runtime.db"), storeLockTimeout, network.RuntimeBuckets...)
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("another berthd is using the root %s (%s is locked)", cfg.Root, dbPath)
		}
		return nil, err
	}
	d.store = timedStore{st, d.metrics}
	if d.id, err = daemonID(d.store); err != nil {
		return nil, err
	}
	if cfg.Cluster != nil {
		cc := *cfg.Cluster
		cc.HostID, cc.Version, cc.Log = d.id, Version, cfg.Log
		if cc.DataDir == "" {
			cc.DataDir = filepath.Join(cfg.Root, "etcd")
		}
		if d.cluster, err = cluster.Open(context.Background(), cc); err != nil {
			return nil, err
		}
		if err := d.cluster.Register(context.Background()); err != nil {
			return nil, err
		}
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
	d.resolver = resolver.New(table, resolver.Options{Logger: cfg.Log, Forwarded: d.metrics.Forwarded})
	hostResolvConf := network.NewHostResolvConf("/etc/resolv.conf")
	d.plugins = plugins.New(cfg.PluginDirs, cfg.Log)
	d.ctrl, err = network.New(network.Config{
		Store:   d.store,
		Kernel:  kernel{d.host, d.reaper},
		Drivers: d.drivers(),
		// Docker's default for networks created without -d.
		DefaultDriver: "bridge",
		Pools:         cfg.Pools,
		HostID:        d.id,
		// Docker's legacy plugins, found by name the first time a
		// network names one.
		Plugins:      d.plugins,
		NamespaceDir: filepath.Join(cfg.ExecRoot, "netns"),
		Firewall:     timedFirewall{d.fw, d.metrics},
		DNS: &network.DNS{
			Table: table, Resolver: d.resolver,
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
		Events:  d.events,
		Cluster: d.cluster,
		Observe: observeOperation(d.metrics),
		Log:     cfg.Log,
	})
	if err != nil {
		return nil, err
	}
	if d.volumes, err = volume.New(cfg.Root, d.store); err != nil {
		return nil, err
	}
	if d.images, err = image.NewStore(filepath.Join(cfg.Root, "images"), d.store); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	d.containers, err = container.New(container.Config{
		Store: d.store, Networks: d.ctrl, Images: d.images, Root: cfg.Root, ExecRoot: cfg.ExecRoot, Self: self, Log: cfg.Log,
		Removed: d.collectImages, Volumes: d.volumes, Events: d.events,
	})
	if err != nil {
		return nil, err
	}
	d.collectImages()
	if err := d.metrics.Register(stateCollector{d}); err != nil {
		return nil, err
	}
	if err := d.listen(api); err != nil {
		return nil, err
	}
	if cfg.MetricsAddr != "" {
		if err := d.listenMetrics(cfg.MetricsAddr); err != nil {
			return nil, err
		}
	}
	d.server = &http.Server{Handler: d.routes(), ReadHeaderTimeout: 10 * time.Second,
		// Refused TLS clients and other connection errors, in the log.
		ErrorLog: slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn)}
	d.server.RegisterOnShutdown(func() { close(d.done) })
	for _, w := range slices.Concat(d.apiWarnings, d.forwardWarnings()) {
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

// Serve answers API requests until ctx is done, then shuts down cleanly:
// requests in flight finish, the socket goes, kernel state stays.
func (d *Daemon) Serve(ctx context.Context) error {
	errc := make(chan error, len(d.listeners))
	for _, l := range d.listeners {
		go func() { errc <- d.server.Serve(l) }()
	}
	go d.serveMetrics()
	d.cfg.Log.Info("berthd ready", "hosts", strings.Join(d.cfg.Hosts, ","), "root", d.cfg.Root, "version", Version)
	var err error
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = d.server.Shutdown(sctx)
		d.stopMetrics(sctx)
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
	d.closeListeners()
	if d.metricsListener != nil {
		d.metricsListener.Close()
	}
	if d.containers != nil {
		// Before the store and the controller close: no restart by a
		// policy may begin once they do.
		d.containers.Close()
	}
	if d.ctrl != nil {
		d.ctrl.Close()
	}
	if d.cluster != nil {
		d.cluster.Close()
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

// closeListeners closes the API endpoints and removes the sockets.
func (d *Daemon) closeListeners() {
	for _, l := range d.listeners {
		l.Close()
	}
	for _, s := range d.sockets {
		os.Remove(s)
	}
	d.listeners, d.sockets = nil, nil
}
