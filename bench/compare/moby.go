package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"
)

// Containers through the Docker Engine API, which berthd and dockerd both
// serve.

// importImage imports the busybox root filesystem at tar as "busybox".
func importImage(ctx context.Context, cli *client.Client, tar string) error {
	f, err := os.Open(tar)
	if err != nil {
		return fmt.Errorf("the busybox image (make image builds it): %w", err)
	}
	defer f.Close()
	res, err := cli.ImageImport(ctx, client.ImageImportSource{Source: f, SourceName: "-"}, "busybox", client.ImageImportOptions{})
	if err != nil {
		return fmt.Errorf("import busybox: %w", err)
	}
	defer res.Close()
	_, err = io.Copy(io.Discard, res)
	return err
}

// running is a started container.
type running struct {
	ID  string
	PID int
	NS  string // its network namespace
	IP  netip.Addr
}

// runContainer creates and starts a sleeping busybox container on a
// network, publishing ports.
func runContainer(ctx context.Context, cli *client.Client, name, nw string, ports network.PortMap) (running, error) {
	res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       name,
		Config:     &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "1000000"}},
		HostConfig: &ctypes.HostConfig{NetworkMode: ctypes.NetworkMode(nw), PortBindings: ports},
	})
	if err != nil {
		return running{}, err
	}
	if _, err := cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return running{}, err
	}
	return inspectRunning(ctx, cli, res.ID, nw)
}

// inspectRunning finds a running container's process, namespace and
// address on a network.
func inspectRunning(ctx context.Context, cli *client.Client, id, nw string) (running, error) {
	in, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return running{}, err
	}
	c := in.Container
	if c.State == nil || c.State.Pid == 0 {
		return running{}, fmt.Errorf("container %s is not running", id)
	}
	r := running{ID: c.ID, PID: c.State.Pid, NS: fmt.Sprintf("/proc/%d/ns/net", c.State.Pid)}
	if c.NetworkSettings != nil {
		if ep := c.NetworkSettings.Networks[nw]; ep != nil {
			r.IP = ep.IPAddress
		}
	}
	return r, nil
}

// checkConnect connects a running container to network nw and
// disconnects it once, untimed, and checks that its namespace gains the
// address the engine reports and loses it again: the rounds that follow
// then time real work on the container, not requests that do nothing.
func checkConnect(ctx context.Context, cli *client.Client, c running, nw string) error {
	if _, err := cli.NetworkConnect(ctx, nw, client.NetworkConnectOptions{Container: c.ID}); err != nil {
		return fmt.Errorf("connect to %s: %w", nw, err)
	}
	in, err := inspectRunning(ctx, cli, c.ID, nw)
	if err != nil {
		return err
	}
	if !in.IP.IsValid() {
		return fmt.Errorf("container %.12s has no address on %s after connect", c.ID, nw)
	}
	if has, err := nsHasAddr(ctx, c.NS, in.IP); err != nil || !has {
		return errors.Join(fmt.Errorf("container %.12s lacks its address %s on %s after connect", c.ID, in.IP, nw), err)
	}
	if _, err := cli.NetworkDisconnect(ctx, nw, client.NetworkDisconnectOptions{Container: c.ID}); err != nil {
		return fmt.Errorf("disconnect from %s: %w", nw, err)
	}
	if has, err := nsHasAddr(ctx, c.NS, in.IP); err != nil || has {
		return errors.Join(fmt.Errorf("container %.12s keeps its address %s on %s after disconnect", c.ID, in.IP, nw), err)
	}
	return nil
}

// nsHasAddr says whether an interface in the namespace at ns has address a.
func nsHasAddr(ctx context.Context, ns string, a netip.Addr) (bool, error) {
	out, err := Output(ctx, ns, "ip", "-o", "addr", "show")
	if err != nil {
		return false, err
	}
	return slices.Contains(ipAddrs(out), a), nil
}

// ipAddrs are the addresses in `ip -o addr show` output, one interface
// address a line: "2: eth0    inet 10.0.0.2/24 brd … scope global eth0…".
func ipAddrs(out string) []netip.Addr {
	var addrs []netip.Addr
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] != "inet" && f[i] != "inet6" {
				continue
			}
			if p, err := netip.ParsePrefix(f[i+1]); err == nil {
				addrs = append(addrs, p.Addr())
			}
			break
		}
	}
	return addrs
}

// removeAllContainers force-removes every container.
func removeAllContainers(ctx context.Context, cli *client.Client) error {
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list.Items {
		if _, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// UnmountUnder detaches every mount at or below dir, deepest first.
func UnmountUnder(dir string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	dir = filepath.Clean(dir)
	var points []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		p := unescapeMount(f[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// FlushFirewall empties the test host's firewall, as a reboot or a reload
// of the firewall would.
func FlushFirewall() error {
	_, err := Output(context.Background(), "", "nft", "flush", "ruleset")
	return err
}
