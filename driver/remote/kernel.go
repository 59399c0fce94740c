package remote

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/berth-net/berth/netdev"
)

// host is the namespace where plugins make their interfaces: the one the
// driver was made in (berthd's own).
type host struct {
	fd netns.NsHandle
	h  *netlink.Handle
}

func openHost() (*host, error) {
	fd, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("open the host's network namespace: %w", err)
	}
	h, err := netlink.NewHandleAt(fd)
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("open netlink on the host: %w", err)
	}
	return &host{fd: fd, h: h}, nil
}

// handleIn opens netlink inside a sandbox, for what netdev.Namespace does
// not offer (a device's MAC and alias).
func handleIn(ns *netdev.Namespace) (*netlink.Handle, error) {
	h, err := netlink.NewHandleAt(netns.NsHandle(ns.Fd()))
	if err != nil {
		return nil, fmt.Errorf("open netlink in %s: %w", ns.Path(), err)
	}
	return h, nil
}

// moveIn moves the host's device src into the sandbox as name, with mac
// (when set) and alias, still down and unaddressed; it returns the MAC
// the device has.
func (k *host) moveIn(src string, ns *netdev.Namespace, name string, mac net.HardwareAddr, alias string) (net.HardwareAddr, error) {
	l, err := k.h.LinkByName(src)
	if err != nil {
		return nil, fmt.Errorf("find the plugin's interface %s on the host: %w", src, err)
	}
	if err := k.h.LinkSetNsFd(l, ns.Fd()); err != nil {
		return nil, fmt.Errorf("move %s into %s: %w", src, ns.Path(), err)
	}
	h, err := handleIn(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	if l, err = h.LinkByName(src); err != nil {
		return nil, fmt.Errorf("find %s in %s: %w", src, ns.Path(), err)
	}
	if src != name {
		if err := h.LinkSetName(l, name); err != nil {
			return nil, fmt.Errorf("rename %s to %s: %w", src, name, err)
		}
	}
	if mac != nil {
		if err := h.LinkSetHardwareAddr(l, mac); err != nil {
			return nil, fmt.Errorf("set MAC %s on %s: %w", mac, name, err)
		}
	} else {
		mac = l.Attrs().HardwareAddr
	}
	if alias != "" {
		if err := h.LinkSetAlias(l, alias); err != nil {
			return nil, fmt.Errorf("set alias of %s: %w", name, err)
		}
	}
	return mac, nil
}

// giveBack takes the sandbox's device name out of service and returns it
// to the host under its first name src, where the plugin made it, as
// Docker does; the plugin deletes it (or its veth peer) when the endpoint
// is deleted. A device that cannot go back (src unknown, or taken on the
// host meanwhile) is deleted. A device already gone is no error.
func (k *host) giveBack(ns *netdev.Namespace, name, src string) error {
	h, err := handleIn(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) || errors.Is(err, unix.ENODEV) {
			return nil
		}
		return fmt.Errorf("find %s in %s: %w", name, ns.Path(), err)
	}
	if err := h.LinkSetDown(l); err != nil {
		return fmt.Errorf("set %s down: %w", name, err)
	}
	if src != "" {
		err := h.LinkSetAlias(l, "")
		if err == nil && src != name {
			err = h.LinkSetName(l, src)
		}
		if err == nil {
			err = h.LinkSetNsFd(l, int(k.fd))
		}
		if err == nil {
			return nil
		}
	}
	if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete %s in %s: %w", name, ns.Path(), err)
	}
	return nil
}

// alias reads the alias of the sandbox's device name; "" when it has
// none or is gone.
func alias(ns *netdev.Namespace, name string) string {
	h, err := handleIn(ns)
	if err != nil {
		return ""
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		return ""
	}
	return l.Attrs().Alias
}
