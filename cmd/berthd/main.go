// Command berthd is the berth daemon: it serves the Docker-compatible network
// API on a unix socket and keeps the kernel's networks in line with its
// store. It runs as root, in the foreground.
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
		host, root, execRoot, bridgeName, logLevel string
		pools, dns                                 []string
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
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			cfg := daemon.Config{Host: host, Root: root, ExecRoot: execRoot, BridgeName: bridgeName, Log: log}
			if cfg.Host == "" {
				cfg.Host = "unix://" + filepath.Join(execRoot, "berth.sock")
			}
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
	f.StringVarP(&host, "host", "H", "", "API endpoint, unix:///path or tcp://addr:port (default unix://<exec-root>/berth.sock)")
	f.StringVar(&root, "root", "/var/lib/berth", "directory of persistent state")
	f.StringVar(&execRoot, "exec-root", "/run/berth", "directory of run-time files")
	f.StringVar(&bridgeName, "bridge-name", "berth0", "bridge device of the default \"bridge\" network")
	f.StringArrayVar(&pools, "default-address-pool", nil, "default address pool, base=CIDR,size=N (repeatable; replaces the built-in pools)")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringArrayVar(&dns, "dns", nil, "DNS server for containers' names that are not containers' (repeatable; default: the host's)")
	cmd.SetVersionTemplate("berthd version {{.Version}}\n")
	return cmd
}
