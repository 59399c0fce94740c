package netdev

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Namespace is an open network namespace other than the daemon's own: a
// sandbox. Work inside it goes through a netlink handle bound to it, so no
// thread ever has to switch namespace for it.
type Namespace struct {
	path string
	fd   netns.NsHandle
	h    *netlink.Handle
}

// OpenNamespace opens the namespace bind-mounted (or linked under /proc) at
// path.
func OpenNamespace(path string) (*Namespace, error) {
	fd, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(fd), &st); err != nil || (st.Type != unix.NSFS_MAGIC && st.Type != unix.PROC_SUPER_MAGIC) {
		fd.Close()
		return nil, fmt.Errorf("open network namespace %s: not a namespace", path)
	}
	h, err := netlink.NewHandleAt(fd, unix.NETLINK_ROUTE)
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("open netlink in %s: %w", path, err)
	}
	return &Namespace{path: path, fd: fd, h: h}, nil
}

// dup opens the same namespace again, independent of n's lifetime.
func (n *Namespace) dup() (*Namespace, error) {
	fd, err := unix.Dup(int(n.fd))
	if err != nil {
		return nil, fmt.Errorf("duplicate namespace handle: %w", err)
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(fd), unix.NETLINK_ROUTE)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("open netlink in %s: %w", n.path, err)
	}
	return &Namespace{path: n.path, fd: netns.NsHandle(fd), h: h}, nil
}

// Path is where the namespace is mounted.
func (n *Namespace) Path() string { return n.path }

// Close releases the handle; the namespace lives on while it is mounted or
// used by a process.
func (n *Namespace) Close() {
	n.h.Close()
	n.fd.Close()
}

// CreateNamespace makes a new network namespace and bind-mounts it at path,
// with its loopback up.
func CreateNamespace(path string) (*Namespace, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o444)
	if err != nil {
		return nil, fmt.Errorf("create namespace mount point: %w", err)
	}
	f.Close()
	if err := unshareAndMount(path); err != nil {
		os.Remove(path)
		return nil, err
	}
	ns, err := OpenNamespace(path)
	if err != nil {
		DeleteNamespace(path)
		return nil, err
	}
	if err := ns.LoopbackUp(); err != nil {
		ns.Close()
		DeleteNamespace(path)
		return nil, err
	}
	return ns, nil
}

// unshareAndMount creates the namespace on a locked thread and pins it with
// a bind mount. If the thread cannot return to the original namespace it
// stays locked, so the runtime discards it instead of reusing it.
func unshareAndMount(path string) (err error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current namespace: %w", err)
	}
	defer orig.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("create network namespace: %w", err)
	}
	src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	mountErr := unix.Mount(src, path, "none", unix.MS_BIND, "")
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("return to the daemon's namespace: %w", err)
	}
	runtime.UnlockOSThread()
	if mountErr != nil {
		return fmt.Errorf("bind-mount namespace at %s: %w", path, mountErr)
	}
	return nil
}

// DeleteNamespace unmounts and removes a namespace made by CreateNamespace.
// Its devices die with it, in the background.
func DeleteNamespace(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount namespace %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// LoopbackUp sets lo up.
func (n *Namespace) LoopbackUp() error {
	lo, err := n.h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo in %s: %w", n.path, err)
	}
	if err := n.h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up in %s: %w", n.path, err)
	}
	return nil
}

// Interface is one interface to bring up inside the namespace.
type Interface struct {
	Name  string
	Addrs []netip.Prefix
}

// ConfigureInterface brings the named interface up with its addresses and
// returns its index.
func (n *Namespace) ConfigureInterface(ifc Interface) (int, error) {
	l, err := n.h.LinkByName(ifc.Name)
	if err != nil {
		return 0, fmt.Errorf("find %s in %s: %w", ifc.Name, n.path, err)
	}
	if !hasIPv6(ifc.Addrs) {
		// Without IPv6 on the network the interface needs no link-local
		// address, and so sends no DAD, router or MLD solicitations that
		// the bridge would flood to every other endpoint.
		if err := n.h.LinkSetIP6AddrGenMode(l, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
			return 0, fmt.Errorf("set %s's IPv6 address generation: %w", ifc.Name, err)
		}
	}
	for _, a := range ifc.Addrs {
		if err := n.h.AddrReplace(l, toAddr(a)); err != nil {
			return 0, fmt.Errorf("add %s to %s: %w", a, ifc.Name, err)
		}
	}
	if err := n.h.LinkSetUp(l); err != nil {
		return 0, fmt.Errorf("set %s up: %w", ifc.Name, err)
	}
	return l.Attrs().Index, nil
}

// InterfaceIndex returns the index of the named interface, or ok=false.
func (n *Namespace) InterfaceIndex(name string) (int, bool, error) {
	l, err := n.h.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return 0, false, nil
		}
		return 0, false, err
	}
	return l.Attrs().Index, true, nil
}

// RetireInterface takes an interface out of service: down, so nothing goes
// through it and its routes vanish, and without its addresses, so nothing
// in the namespace still shows them. Deleting it would make the caller wait
// for the kernel's grace period; the device goes when its host end is
// reaped. index may be 0 when unknown. A missing interface is not an error.
func (n *Namespace) RetireInterface(name string, index int, addrs []netip.Prefix) error {
	var l netlink.Link = &netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: name, Index: index}}
	if index == 0 {
		var err error
		if l, err = n.h.LinkByName(name); err != nil {
			if isNotFound(err) {
				return nil
			}
			return err
		}
	}
	if err := n.h.LinkSetDown(l); err != nil && !isNotFound(err) {
		return fmt.Errorf("set %s down: %w", name, err)
	}
	for _, a := range addrs {
		if err := n.h.AddrDel(l, toAddr(a)); err != nil && !isNotFound(err) && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("remove %s from %s: %w", a, name, err)
		}
	}
	return nil
}

// SetDefaultRoute points the namespace's default route for gw's family at gw
// through the interface with index ifindex (or, viaDevice, out of that
// interface with no gateway), replacing any previous one.
func (n *Namespace) SetDefaultRoute(gw netip.Addr, ifindex int, viaDevice bool) error {
	bits := gw.BitLen()
	r := &netlink.Route{
		LinkIndex: ifindex,
		Dst:       &net.IPNet{IP: make(net.IP, bits/8), Mask: net.CIDRMask(0, bits)},
	}
	if viaDevice {
		r.Scope = netlink.SCOPE_LINK
	} else {
		r.Gw = gw.AsSlice()
	}
	if err := n.h.RouteReplace(r); err != nil {
		return fmt.Errorf("set default route via %s: %w", gw, err)
	}
	return nil
}

// DeleteDefaultRoute removes the default route of gw's family if present.
func (n *Namespace) DeleteDefaultRoute(ipv6 bool) error {
	family, bits := netlink.FAMILY_V4, 32
	if ipv6 {
		family, bits = netlink.FAMILY_V6, 128
	}
	r := &netlink.Route{Dst: &net.IPNet{IP: make(net.IP, bits/8), Mask: net.CIDRMask(0, bits)}, Family: family}
	if err := n.h.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) && !isNotFound(err) {
		return fmt.Errorf("delete default route: %w", err)
	}
	return nil
}

// Alive tells whether the namespace behind path is still the one opened.
func (n *Namespace) Alive() bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(n.fd), &a) != nil || unix.Stat(n.path, &b) != nil {
		return false
	}
	return a.Ino == b.Ino && a.Dev == b.Dev
}

// SameNamespace tells whether a and b are one namespace.
func SameNamespace(a, b *Namespace) bool {
	var sa, sb unix.Stat_t
	if unix.Fstat(int(a.fd), &sa) != nil || unix.Fstat(int(b.fd), &sb) != nil {
		return false
	}
	return sa.Ino == sb.Ino && sa.Dev == sb.Dev
}

// HasInterface tells whether the namespace has the interface up with all of
// its addresses.
func (n *Namespace) HasInterface(ifc Interface) (bool, error) {
	l, err := n.h.LinkByName(ifc.Name)
	if err != nil {
		if isNotFound(err) {
			return false, nil
		}
		return false, err
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		return false, nil
	}
	have, err := retryDump(func() ([]netlink.Addr, error) { return n.h.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		return false, err
	}
	for _, want := range ifc.Addrs {
		found := false
		for _, a := range have {
			if p, ok := prefixOf(a.IPNet); ok && p == want {
				found = true
			}
		}
		if !found {
			return false, nil
		}
	}
	return true, nil
}

func hasIPv6(addrs []netip.Prefix) bool {
	for _, a := range addrs {
		if a.Addr().Is6() {
			return true
		}
	}
	return false
}

// Fd is the namespace's file descriptor, for APIs that work on another
// namespace (nftables.WithNetNSFd).
func (n *Namespace) Fd() int { return int(n.fd) }

// Do runs fn on a thread inside the namespace; sockets fn opens stay in it.
func (n *Namespace) Do(fn func() error) error { return RunIn(n.fd, n.path, fn) }

// RunIn runs fn on a thread inside the namespace ns (named name in
// errors). The thread goes back afterwards, or, if it cannot, stays locked
// so the runtime discards it rather than reuse it in the wrong namespace.
func RunIn(ns netns.NsHandle, name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("leave %s: %w", name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
