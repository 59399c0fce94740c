package cluster

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Prefix is where berth's keys live in etcd. The keys that Store and Cache
// take and return are relative to it: "hosts/ID" is /berth/v1/hosts/ID.
const Prefix = "/berth/v1/"

// Defaults of Config.
const (
	DefaultClientPort = 2379
	DefaultPeerPort   = 2380
	// DefaultLeaseTTL is the host lease's TTL: how long a host that died
	// keeps its records (see Store for the whole bound).
	DefaultLeaseTTL = 10 * time.Second
	// DefaultOpTimeout bounds one operation on etcd: past it, the operation
	// fails as unavailable instead of waiting for etcd to come back.
	DefaultOpTimeout = 5 * time.Second
	// DefaultReadyTimeout bounds Open: the embedded member's start, or the
	// first answer of an external etcd.
	DefaultReadyTimeout = 30 * time.Second
)

// TLSFiles are PEM files for talking to etcd over TLS. CA verifies the
// servers; Cert and Key, when set, are this host's client certificate (and
// the embedded member's server certificate).
type TLSFiles struct {
	CA, Cert, Key string
}

func (t TLSFiles) enabled() bool { return t != TLSFiles{} }

// Config says which etcd to use and how this host appears in it.
type Config struct {
	// Endpoints are an external etcd's client addresses, host:port, from
	// --cluster-store etcd://host:port[,host:port…].
	Endpoints []string
	// Embedded runs an etcd member inside the process (--cluster-store
	// embedded): a cluster of one that other hosts use through Endpoints.
	Embedded bool
	// DataDir holds the embedded member's data.
	DataDir string
	// ClientPort and PeerPort are the embedded member's ports; zero means
	// DefaultClientPort and DefaultPeerPort. Clients are served on
	// Advertise and on 127.0.0.1, peers on Advertise.
	ClientPort, PeerPort int
	// Advertise is the address other hosts reach this one at.
	Advertise netip.Addr
	TLS       TLSFiles
	// HostID names this host in the cluster (hosts/HostID); it should
	// survive restarts.
	HostID string
	// Version is the software version the host record shows.
	Version string
	// LeaseTTL, OpTimeout and ReadyTimeout default to DefaultLeaseTTL,
	// DefaultOpTimeout and DefaultReadyTimeout.
	LeaseTTL, OpTimeout, ReadyTimeout time.Duration
	// Lost, when set, is called with each leased claim that another holder
	// took while this host's lease was lost: the Store no longer keeps it.
	Lost func(key string)
	Log  *slog.Logger

	// progressInterval is how often a Cache asks etcd whether its watch is
	// alive; tests shorten it.
	progressInterval time.Duration
}

// ParseFlags makes a Config of berthd's --cluster-store, --cluster-advertise
// and --cluster-store-opt flags; nil when there is no cluster store. The
// caller fills in DataDir, HostID, Version and Log.
func ParseFlags(store, advertise string, opts []string) (*Config, error) {
	if store == "" {
		switch {
		case advertise != "":
			return nil, fmt.Errorf("--cluster-advertise needs --cluster-store")
		case len(opts) > 0:
			return nil, fmt.Errorf("--cluster-store-opt needs --cluster-store")
		}
		return nil, nil
	}
	cfg := &Config{}
	if store == "embedded" {
		cfg.Embedded = true
	} else {
		eps, err := parseEndpoints(store)
		if err != nil {
			return nil, fmt.Errorf("invalid --cluster-store %q: %w", store, err)
		}
		cfg.Endpoints = eps
	}
	if advertise == "" {
		return nil, fmt.Errorf("--cluster-store needs --cluster-advertise IP, the address other hosts reach this one at")
	}
	addr, err := parseAdvertise(advertise)
	if err != nil {
		return nil, fmt.Errorf("invalid --cluster-advertise %q: %w", advertise, err)
	}
	cfg.Advertise = addr
	for _, o := range opts {
		if err := parseStoreOpt(o, &cfg.TLS); err != nil {
			return nil, fmt.Errorf("invalid --cluster-store-opt %q: %w", o, err)
		}
	}
	if (cfg.TLS.Cert == "") != (cfg.TLS.Key == "") {
		return nil, fmt.Errorf("invalid --cluster-store-opt: cert and key go together")
	}
	if cfg.Embedded && cfg.TLS.enabled() && cfg.TLS.Cert == "" {
		return nil, fmt.Errorf("invalid --cluster-store-opt: an embedded store serves TLS only with a cert and key")
	}
	return cfg, nil
}

func parseEndpoints(store string) ([]string, error) {
	rest, ok := strings.CutPrefix(store, "etcd://")
	if !ok {
		return nil, fmt.Errorf("etcd://IP:PORT[,IP:PORT…] or embedded")
	}
	if rest == "" {
		return nil, fmt.Errorf("no etcd address after etcd://")
	}
	var eps []string
	for ep := range strings.SplitSeq(rest, ",") {
		if strings.ContainsAny(ep, "/?#@") {
			return nil, fmt.Errorf("%q: an etcd address is HOST:PORT, with no path, query or user", ep)
		}
		host, port, err := net.SplitHostPort(ep)
		if err != nil {
			return nil, fmt.Errorf("%q: an etcd address is HOST:PORT", ep)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%q: port %q is not a number from 1 to 65535", ep, port)
		}
		if !validHost(host) {
			return nil, fmt.Errorf("%q: %q is neither an IP address nor a host name", ep, host)
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

func validHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func parseAdvertise(s string) (netip.Addr, error) {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		if _, perr := netip.ParseAddrPort(s); perr == nil {
			return netip.Addr{}, fmt.Errorf("an IP address without a port")
		}
		return netip.Addr{}, fmt.Errorf("not an IP address")
	}
	if addr.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("an IP address without a zone")
	}
	if addr.IsUnspecified() || addr.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("an address other hosts can reach this one at, not %s", addr)
	}
	return addr.Unmap(), nil
}

func parseStoreOpt(opt string, t *TLSFiles) error {
	for kv := range strings.SplitSeq(opt, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" {
			return fmt.Errorf("%q is not KEY=VALUE", kv)
		}
		switch k {
		case "cacert", "kv.cacertfile":
			t.CA = v
		case "cert", "kv.certfile":
			t.Cert = v
		case "key", "kv.keyfile":
			t.Key = v
		default:
			return fmt.Errorf("unknown option %q (cacert, cert, key)", k)
		}
	}
	return nil
}

// withDefaults fills in what the caller left zero.
func (c Config) withDefaults() Config {
	if c.ClientPort == 0 {
		c.ClientPort = DefaultClientPort
	}
	if c.PeerPort == 0 {
		c.PeerPort = DefaultPeerPort
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.progressInterval == 0 {
		c.progressInterval = 2 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}
