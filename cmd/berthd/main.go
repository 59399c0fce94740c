// Command berthd is the berth daemon: it serves the Docker-compatible network
// API on a unix socket (and on TCP, with TLS, when asked) and keeps the
// kernel's networks in line with its store. It runs as root, in the
// foreground.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-net/berth/cluster"
	"github.com/berth-net/berth/container"
	"github.com/berth-net/berth/daemon"
	"github.com/berth-net/berth/ipam"
)

func main() {
	// berthd is also each container's shim (see package container): the
	// daemon starts itself as `berthd shim …`.
	if len(os.Args) > 1 && os.Args[1] == "shim" {
		os.Exit(container.RunShim(os.Args[2:]))
	}
	if err := newCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "berthd:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	var (
		root, execRoot, bridgeName, logLevel, group string
		clusterStore, clusterAdvertise, cniConfDir  string
		logFormat, metricsAddr                      string
		fixedCIDR, fixedCIDRv6                      string
		ipv6                                        bool
		hosts, pools, dns, clusterOpts              []string
		pluginDirs, cniBinDirs                      []string
		useTLS, tlsVerify, insecureTCP              bool
		tlsOpts                                     daemon.TLS
	)
	cmd := &cobra.Command{
		Use:           "berthd [OPTIONS]",
		Short:         "The berth container networking daemon",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       daemon.Version,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("invalid --log-level %q: debug, info, warn or error", logLevel)
			}
			log, err := newLogger(logFormat, level)
			if err != nil {
				return err
			}
			cfg := daemon.Config{Hosts: hosts, Group: group, InsecureTCP: insecureTCP, MetricsAddr: metricsAddr,
				Root: root, ExecRoot: execRoot, BridgeName: bridgeName, Log: log,
				PluginDirs: pluginDirs, CNIConfDir: cniConfDir, CNIBinDirs: cniBinDirs, IPv6: ipv6}
			if err := parseFixedCIDRs(&cfg, fixedCIDR, fixedCIDRv6); err != nil {
				return err
			}
			if len(cfg.Hosts) == 0 {
				cfg.Hosts = []string{"unix://" + filepath.Join(execRoot, "berth.sock")}
			}
			// As dockerd: --tlsverify, even =false, means TLS.
			if useTLS || tlsVerify || cmd.Flags().Changed("tlsverify") {
				tlsOpts.Verify = tlsVerify
				cfg.TLS = &tlsOpts
			}
			clusterCfg, err := cluster.ParseFlags(clusterStore, clusterAdvertise, clusterOpts)
			if err != nil {
				return err
			}
			cfg.Cluster = clusterCfg
			for _, a := range dns {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					return fmt.Errorf("invalid --dns %q: not an IP address", a)
				}
				cfg.DNS = append(cfg.DNS, ip)
			}
			for _, p := range pools {
				spec, err := ipam.ParsePoolSpec(p)
				if err != nil {
					return fmt.Errorf("invalid --default-address-pool %q: %w", p, err)
				}
				cfg.Pools = append(cfg.Pools, spec)
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("berthd must run as root")
			}
			d, err := daemon.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return d.Serve(ctx)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&hosts, "host", "H", nil, "API endpoint, unix:///path or tcp://addr:port (repeatable; default unix://<exec-root>/berth.sock)")
	f.StringVarP(&group, "group", "G", daemon.DefaultSocketGroup, "group given the API socket, a name or a GID (\"\" for root alone; the default only where it exists)")
	certPath := defaultCertPath()
	f.BoolVar(&useTLS, "tls", false, "use TLS on tcp:// hosts; implied by --tlsverify")
	// Unlike dockerd, not on by $DOCKER_TLS_VERIFY: that is a client's
	// setting, and what the daemon accepts is asked for explicitly.
	f.BoolVar(&tlsVerify, "tlsverify", false, "use TLS on tcp:// hosts and accept only clients with a certificate signed by --tlscacert")
	f.StringVar(&tlsOpts.CA, "tlscacert", filepath.Join(certPath, "ca.pem"), "CA that clients' certificates must be signed by")
	f.StringVar(&tlsOpts.Cert, "tlscert", filepath.Join(certPath, "cert.pem"), "the daemon's TLS certificate")
	f.StringVar(&tlsOpts.Key, "tlskey", filepath.Join(certPath, "key.pem"), "the daemon's TLS key")
	f.BoolVar(&insecureTCP, "insecure-tcp", false, "allow tcp:// hosts other than loopback without --tlsverify: whoever reaches them is root here")
	f.StringVar(&root, "root", "/var/lib/berth", "directory of persistent state")
	f.StringVar(&execRoot, "exec-root", "/run/berth", "directory of run-time files")
	f.StringVar(&bridgeName, "bridge-name", "berth0", "bridge device of the default \"bridge\" network")
	f.StringArrayVar(&pools, "default-address-pool", nil, "default address pool, base=CIDR,size=N (repeatable; replaces the built-in pools)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text (key=value) or json (one object per line)")
	f.StringVar(&metricsAddr, "metrics-addr", "", "also serve /metrics (Prometheus) on this TCP address, without TLS or authentication, e.g. 127.0.0.1:9323")
	f.StringVar(&clusterStore, "cluster-store", "", "join a cluster through etcd://IP:PORT[,IP:PORT…] (etcd's v3 API, 3.4 and later), or run one here with \"embedded\": an etcd member inside berthd, clients on --cluster-advertise and 127.0.0.1 at 2379, peers at 2380, data under --root")
	f.StringVar(&clusterAdvertise, "cluster-advertise", "", "IP address other hosts of the cluster reach this one at (needed with --cluster-store)")
	f.StringArrayVar(&clusterOpts, "cluster-store-opt", nil, "cluster store option KEY=VALUE[,…] (repeatable): cacert=FILE, cert=FILE, key=FILE for TLS to etcd")
	f.BoolVar(&ipv6, "ipv6", false, "give the default \"bridge\" network IPv6 addresses too (a /64 of the host's unique local /48 unless --fixed-cidr-v6)")
	f.StringVar(&fixedCIDR, "fixed-cidr", "", "IPv4 subnet of the default \"bridge\" network (instead of the first free one of the default pools)")
	f.StringVar(&fixedCIDRv6, "fixed-cidr-v6", "", "IPv6 subnet of the default \"bridge\" network (needs --ipv6)")
	f.StringArrayVar(&pluginDirs, "plugins-dir", daemon.DefaultPluginDirs, "directory of Docker's legacy network and IPAM plugins' NAME.sock, NAME.spec and NAME.json (repeatable)")
	f.StringVar(&cniConfDir, "cni-conf-dir", daemon.DefaultCNIConfDir, "directory of CNI configurations (*.conf, *.conflist, *.json): each is a network named by its \"name\"")
	f.StringArrayVar(&cniBinDirs, "cni-bin-dir", daemon.DefaultCNIBinDirs, "directory of CNI plugin binaries (repeatable; searched in order)")
	f.StringArrayVar(&dns, "dns", nil, "DNS server for containers' names that are not containers' (repeatable; default: the host's)")
	cmd.SetVersionTemplate("berthd version {{.Version}}\n")
	return cmd
}

// newLogger is the daemon's structured log on stderr in the format asked.
func newLogger(format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("invalid --log-format %q: text or json", format)
}

// defaultCertPath is where the TLS files are looked for by default, as
// dockerd looks: $DOCKER_CERT_PATH, else ~/.docker.
func defaultCertPath() string {
	if p := os.Getenv("DOCKER_CERT_PATH"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".docker")
}

// parseFixedCIDRs reads --fixed-cidr and --fixed-cidr-v6 into cfg.
func parseFixedCIDRs(cfg *daemon.Config, v4, v6 string) error {
	if v4 != "" {
		p, err := netip.ParsePrefix(v4)
		if err != nil || !p.Addr().Is4() {
			return fmt.Errorf("invalid --fixed-cidr %q: an IPv4 subnet such as 172.17.0.0/16 is expected", v4)
		}
		cfg.FixedCIDR = p.Masked()
	}
	if v6 != "" {
		p, err := netip.ParsePrefix(v6)
		if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
			return fmt.Errorf("invalid --fixed-cidr-v6 %q: an IPv6 subnet such as fd00:dead:beef::/64 is expected", v6)
		}
		if !cfg.IPv6 {
			return fmt.Errorf("--fixed-cidr-v6 needs --ipv6")
		}
		cfg.FixedCIDRv6 = p.Masked()
	}
	return nil
}
