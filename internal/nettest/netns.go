package nettest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berth-net/berth/netdev"
)

// RequireRoot skips a test that needs root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, bridges and veth pairs")
	}
}

// Namespace is a network namespace a test made, bind-mounted at Path.
type Namespace struct {
	Path string
	ns   netns.NsHandle
	// Netlink works inside the namespace without switching threads.
	Netlink *netlink.Handle
	// release closes what OpenNamespace opened, once.
	release func()
}

// NewNamespace makes a fresh network namespace with lo up, mounted under
// dir; it is removed when the test ends.
func NewNamespace(t testing.TB, dir, name string) *Namespace {
	t.Helper()
	RequireRoot(t)
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		t.Fatalf("namespace mount point: %v", err)
	}
	f.Close()
	if err := createMounted(path); err != nil {
		os.Remove(path)
		t.Fatal(err)
	}
	n := &Namespace{Path: path}
	t.Cleanup(func() { n.remove() })
	if n.ns, err = netns.GetFromPath(path); err != nil {
		t.Fatalf("open namespace %s: %v", path, err)
	}
	if n.Netlink, err = netlink.NewHandleAt(n.ns); err != nil {
		t.Fatalf("netlink in %s: %v", path, err)
	}
	lo, err := n.Netlink.LinkByName("lo")
	if err == nil {
		err = n.Netlink.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("lo up in %s: %v", path, err)
	}
	return n
}

func (n *Namespace) remove() {
	if n.Netlink != nil {
		n.Netlink.Close()
	}
	if n.ns.IsOpen() {
		n.ns.Close()
	}
	unix.Unmount(n.Path, unix.MNT_DETACH)
	os.Remove(n.Path)
}

// createMounted makes a namespace on a locked thread and pins it with a bind
// mount. A thread that cannot go back stays locked and dies with its
// goroutine.
func createMounted(path string) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("unshare: %w", err)
	}
	mountErr := unix.Mount(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), path, "none", unix.MS_BIND, "")
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("back to the original namespace: %w", err)
	}
	runtime.UnlockOSThread()
	if mountErr != nil {
		return fmt.Errorf("bind-mount namespace: %w", mountErr)
	}
	return nil
}

// Do runs fn on a thread inside the namespace. Sockets fn opens stay in it.
func (n *Namespace) Do(fn func() error) error { return netdev.RunIn(n.ns, n.Path, fn) }

// Listen opens a listener inside the namespace.
func (n *Namespace) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := n.Do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}

// Dial connects from inside the namespace.
func (n *Namespace) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Addrs lists the IPv4 and IPv6 addresses of an interface, as prefixes
// ("10.0.0.2/24").
func (n *Namespace) Addrs(ifname string) ([]string, error) {
	l, err := n.Netlink.LinkByName(ifname)
	if err != nil {
		return nil, err
	}
	addrs, err := n.Netlink.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, a.IPNet.String())
	}
	return out, nil
}

// LinkNames lists the interfaces of the namespace.
func (n *Namespace) LinkNames() ([]string, error) {
	links, err := n.Netlink.LinkList()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range links {
		out = append(out, l.Attrs().Name)
	}
	return out, nil
}

// unmountUnder detaches every mount below dir: namespaces a daemon mounted
// under its exec-root.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var targets []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			targets = append(targets, fields[4])
		}
	}
	for i := len(targets) - 1; i >= 0; i-- {
		unix.Unmount(targets[i], unix.MNT_DETACH)
	}
}

// OpenNamespace opens an existing namespace (a daemon's sandbox) for the
// test to look into; the handle closes when the test ends.
func OpenNamespace(t testing.TB, path string) *Namespace {
	t.Helper()
	h, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatalf("open namespace %s: %v", path, err)
	}
	n := &Namespace{Path: path, ns: h}
	if n.Netlink, err = netlink.NewHandleAt(h); err != nil {
		h.Close()
		t.Fatalf("netlink in %s: %v", path, err)
	}
	n.release = sync.OnceFunc(func() { n.Netlink.Close(); h.Close() })
	t.Cleanup(n.release)
	return n
}

// Close closes a namespace opened with OpenNamespace before the test ends:
// a long test that looks into many namespaces would run out of files.
func (n *Namespace) Close() {
	if n.release != nil {
		n.release()
	}
}

// Fd is the namespace's file descriptor, for APIs that work on another
// namespace (nftables.WithNetNSFd).
func (n *Namespace) Fd() int { return int(n.ns) }
