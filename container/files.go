package container

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-net/berth/network"
)

// The files berth bind-mounts over a container's /etc/hostname, /etc/hosts
// and /etc/resolv.conf live in its run-time directory.
func (m *Manager) hostnamePath(id string) string { return filepath.Join(m.runDir(id), "hostname") }
func (m *Manager) hostsPath(id string) string    { return filepath.Join(m.runDir(id), "hosts") }
func (m *Manager) resolvPath(id string) string   { return filepath.Join(m.runDir(id), "resolv.conf") }

const hostsHeader = "127.0.0.1\tlocalhost\n" +
	"::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\n" +
	"ff00::0\tip6-mcastprefix\n" +
	"ff02::1\tip6-allnodes\n" +
	"ff02::2\tip6-allrouters\n"

// FilePath is the file berth mounts at /etc/<name> (hosts, hostname,
// resolv.conf) in a container: its own, or that of the container whose
// network it shares.
func (m *Manager) FilePath(c Container, name string) string {
	return filepath.Join(m.runDir(m.filesOf(&c)), name)
}

// hostsFile is Docker's /etc/hosts: the localhost lines, --add-host entries,
// then the container's own addresses with its hostname.
func hostsFile(hostname, domain string, extra, links []string, eps []network.EndpointDetail) string {
	var b strings.Builder
	b.WriteString(hostsHeader)
	for _, h := range extra {
		name, ip, ok := strings.Cut(h, ":")
		if ok {
			fmt.Fprintf(&b, "%s\t%s\n", ip, name)
		}
	}
	for _, l := range links {
		b.WriteString(l + "\n")
	}
	names := hostname
	if domain != "" {
		names = hostname + "." + domain + " " + hostname
	}
	for _, ep := range eps {
		for _, p := range []netip.Prefix{ep.IPv4, ep.IPv6} {
			if p.IsValid() {
				fmt.Fprintf(&b, "%s\t%s\n", p.Addr(), names)
			}
		}
	}
	return b.String()
}

// hostResolvers reads the nameservers, search domains and options of the
// host's resolv.conf.
func hostResolvers(path string) (servers, search, options []string) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 2 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			servers = append(servers, fields[1])
		case "search", "domain":
			search = fields[1:]
		case "options":
			options = append(options, fields[1:]...)
		}
	}
	return servers, search, options
}

// resolvFile is a container's resolv.conf: its --dns servers, else the
// host's without loopback ones (they mean nothing in another namespace),
// with --dns-search and --dns-option replacing the host's.
func resolvFile(servers, search, options, dns, dnsSearch, dnsOptions []string) string {
	if len(dns) > 0 {
		servers = dns
	} else {
		var kept []string
		for _, s := range servers {
			if a, err := netip.ParseAddr(s); err == nil && !a.IsLoopback() {
				kept = append(kept, s)
			}
		}
		servers = kept
	}
	if len(dnsSearch) > 0 {
		search = dnsSearch
	}
	if len(dnsOptions) > 0 {
		options = dnsOptions
	}
	var b strings.Builder
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.String()
}

// resolverFile is the resolv.conf of a container with berth's resolver:
// only 127.0.0.11, with the search domains and options (ndots:0 unless the
// user set ndots) Docker writes.
func resolverFile(search, options, dnsSearch, dnsOptions []string) string {
	if len(dnsSearch) > 0 {
		search = dnsSearch
	}
	opts := dnsOptions
	if !slices.ContainsFunc(opts, func(o string) bool { return strings.HasPrefix(o, "ndots:") }) {
		opts = append([]string{"ndots:0"}, opts...)
	}
	var b strings.Builder
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	b.WriteString("nameserver 127.0.0.11\n")
	fmt.Fprintf(&b, "options %s\n", strings.Join(opts, " "))
	return b.String()
}

// writeFile replaces a file's content in place: it is bind-mounted into a
// running container, so it must keep its inode.
func writeFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// mountRootFS mounts the container's root filesystem: the image read-only
// below, the container's own writable layer above.
func (m *Manager) mountRootFS(c *Container) (string, error) {
	upper, work := filepath.Join(m.dir(c.ID), "upper"), filepath.Join(m.dir(c.ID), "work")
	target := filepath.Join(m.runDir(c.ID), "rootfs")
	for _, d := range []string{upper, work, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	if mounted(target) {
		return target, nil
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", m.cfg.Images.RootFS(c.ImageID), upper, work)
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return "", fmt.Errorf("mount the root filesystem: %w", err)
	}
	return target, nil
}

func (m *Manager) unmountRootFS(id string) error {
	target := filepath.Join(m.runDir(id), "rootfs")
	if err := unix.Unmount(target, unix.MNT_DETACH); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount the root filesystem: %w", err)
	}
	return nil
}

// mounted tells whether path is a mount point.
func mounted(path string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(path, &st) != nil || unix.Stat(filepath.Dir(path), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// lookupUser resolves Docker's user[:group] against the image's passwd and
// group files.
func lookupUser(rootfs, spec string) (uid, gid uint32, err error) {
	if spec == "" {
		return 0, 0, nil
	}
	user, group, hasGroup := strings.Cut(spec, ":")
	uid, gid, err = lookupID(filepath.Join(rootfs, "etc/passwd"), user, true)
	if err != nil {
		return 0, 0, err
	}
	if hasGroup {
		if gid, _, err = lookupID(filepath.Join(rootfs, "etc/group"), group, false); err != nil {
			return 0, 0, err
		}
	}
	return uid, gid, nil
}

// lookupID finds name (or a number) in a passwd or group file and returns
// its ID and, for passwd, its primary group.
func lookupID(path, name string, passwd bool) (uint32, uint32, error) {
	var n uint32
	if _, err := fmt.Sscanf(name, "%d", &n); err == nil && fmt.Sprint(n) == name {
		return n, n, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("unable to find user %s: no matching entries in passwd file", name)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Split(s.Text(), ":")
		if len(fields) < 3 || fields[0] != name {
			continue
		}
		var id, g uint32
		fmt.Sscanf(fields[2], "%d", &id)
		g = id
		if passwd && len(fields) > 3 {
			fmt.Sscanf(fields[3], "%d", &g)
		}
		return id, g, nil
	}
	return 0, 0, fmt.Errorf("unable to find user %s: no matching entries in passwd file", name)
}
