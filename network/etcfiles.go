package network

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Files are a sandbox's /etc/hosts and /etc/resolv.conf, for the caller
// to write where its container sees them.
type Files struct {
	Hosts      string
	ResolvConf string
}

const hostsHeader = "127.0.0.1\tlocalhost\n" +
	"::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\n" +
	"ff00::0\tip6-mcastprefix\n" +
	"ff02::1\tip6-allnodes\n" +
	"ff02::2\tip6-allrouters\n"

// filesOf are a sandbox's /etc files as its endpoints are now, or nil for
// a sandbox without a DNS configuration. Called with sb.mu held.
func (c *Controller) filesOf(sb *sbState) *Files {
	cfg := sb.rec.DNS
	if cfg == nil {
		return nil
	}
	var addrs []netip.Addr
	for _, ep := range sb.endpoints {
		for _, p := range []netip.Prefix{ep.rec.IPv4, ep.rec.IPv6} {
			if p.IsValid() {
				addrs = append(addrs, p.Addr())
			}
		}
	}
	return &Files{Hosts: hostsFile(cfg, addrs), ResolvConf: c.ResolvConf(cfg)}
}

// hostsFile is Docker's /etc/hosts: the localhost lines, --add-host
// entries, links, then the sandbox's own addresses with its hostname.
func hostsFile(cfg *DNSConfig, addrs []netip.Addr) string {
	var b strings.Builder
	b.WriteString(hostsHeader)
	for _, h := range cfg.ExtraHosts {
		name, ip, ok := strings.Cut(h, ":")
		if ok {
			fmt.Fprintf(&b, "%s\t%s\n", ip, name)
		}
	}
	for _, l := range cfg.LinkHosts {
		b.WriteString(l + "\n")
	}
	names := cfg.Hostname
	if cfg.Domainname != "" {
		names = cfg.Hostname + "." + cfg.Domainname + " " + cfg.Hostname
	}
	for _, a := range addrs {
		fmt.Fprintf(&b, "%s\t%s\n", a, names)
	}
	return b.String()
}

// ResolvConf is the resolv.conf of a sandbox with this configuration: with
// berth's resolver, only 127.0.0.11 with the search domains and options
// (ndots:0 unless the user set ndots) Docker writes; without, the --dns
// servers, else the host's without loopback ones (they mean nothing in
// another namespace), with --dns-search and --dns-option replacing the
// host's.
func (c *Controller) ResolvConf(cfg *DNSConfig) string {
	servers, search, options := c.hostResolvConf.read()
	if len(cfg.Search) > 0 {
		search = cfg.Search
	}
	var b strings.Builder
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if cfg.Resolver {
		opts := cfg.Options
		if !slices.ContainsFunc(opts, func(o string) bool { return strings.HasPrefix(o, "ndots:") }) {
			opts = append([]string{"ndots:0"}, opts...)
		}
		b.WriteString("nameserver 127.0.0.11\n")
		fmt.Fprintf(&b, "options %s\n", strings.Join(opts, " "))
		return b.String()
	}
	if len(cfg.Servers) > 0 {
		servers = nil
		for _, a := range cfg.Servers {
			servers = append(servers, a.String())
		}
	} else {
		servers = slices.DeleteFunc(servers, func(s string) bool {
			a, err := netip.ParseAddr(s)
			return err != nil || a.IsLoopback()
		})
	}
	if len(cfg.Options) > 0 {
		options = cfg.Options
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.String()
}

// HostResolvConf is the host's resolv.conf, read again only when it
// changed: every connect looks at it.
type HostResolvConf struct {
	path string

	mu                       sync.Mutex
	stamp                    fileStamp
	servers, search, options []string
}

// fileStamp tells one version of a file from another.
type fileStamp struct {
	ino, size int64
	mtime     time.Time
}

// NewHostResolvConf reads the resolv.conf at path.
func NewHostResolvConf(path string) *HostResolvConf { return &HostResolvConf{path: path} }

// read returns the nameservers, search domains and options; a missing
// file has none.
func (h *HostResolvConf) read() (servers, search, options []string) {
	var stamp fileStamp
	if fi, err := os.Stat(h.path); err == nil {
		stamp = fileStamp{size: fi.Size(), mtime: fi.ModTime()}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			stamp.ino = int64(st.Ino)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if stamp != h.stamp || stamp == (fileStamp{}) {
		h.servers, h.search, h.options = parseResolvConf(h.path)
		h.stamp = stamp
	}
	return h.servers, h.search, h.options
}

// Upstreams are the nameservers as upstreams: loopback ones included,
// since berthd asks them from the host's own namespace.
func (h *HostResolvConf) Upstreams() []netip.AddrPort {
	servers, _, _ := h.read()
	var out []netip.AddrPort
	for _, s := range servers {
		if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil {
			out = append(out, netip.AddrPortFrom(a, 53))
		}
	}
	return out
}

// parseResolvConf reads the nameservers, search domains and options of a
// resolv.conf.
func parseResolvConf(path string) (servers, search, options []string) {
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
