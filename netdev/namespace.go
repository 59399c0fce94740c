package netdev

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Namespace is an open network namespace other than the daemon's own: a
// sandbox. Its Links work on it through a handle bound to it.
type Namespace struct {
	Links
	path string
	fd   netns.NsHandle
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
	return namespaceAt(fd, path)
}

func namespaceAt(fd netns.NsHandle, path string) (*Namespace, error) {
	h, err := netlink.NewHandleAt(fd, unix.NETLINK_ROUTE)
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("open netlink in %s: %w", path, err)
	}
	n := &Namespace{path: path, fd: fd}
	n.Links = Links{h: h, where: path, run: n.Do}
	return n, nil
}

// Dup opens the same namespace again, independent of n's lifetime.
func (n *Namespace) Dup() (*Namespace, error) {
	fd, err := unix.Dup(int(n.fd))
	if err != nil {
		return nil, fmt.Errorf("duplicate namespace handle: %w", err)
	}
	return namespaceAt(netns.NsHandle(fd), n.path)
}

// Path is where the namespace is mounted.
func (n *Namespace) Path() string { return n.path }

// Fd is the namespace's file descriptor, for APIs that work on another
// namespace (nftables.WithNetNSFd).
func (n *Namespace) Fd() int { return int(n.fd) }

// Inode identifies the namespace: two handles with one inode are one
// namespace.
func (n *Namespace) Inode() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(n.fd), &st); err != nil {
		return 0, fmt.Errorf("stat namespace %s: %w", n.path, err)
	}
	return st.Ino, nil
}

// Close releases the handle; the namespace lives on while it is mounted or
// used by a process.
func (n *Namespace) Close() {
	n.h.Close()
	n.fd.Close()
}

// SameNamespace tells whether a and b are one namespace.
func SameNamespace(a, b *Namespace) bool {
	var sa, sb unix.Stat_t
	if unix.Fstat(int(a.fd), &sa) != nil || unix.Fstat(int(b.fd), &sb) != nil {
		return false
	}
	return sa.Ino == sb.Ino && sa.Dev == sb.Dev
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
