package netdev

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Link kinds, as netlink names them, that berth's drivers make.
const (
	KindBridge  = "bridge"
	KindVeth    = "veth"
	KindMacvlan = "macvlan"
	KindIPVlan  = "ipvlan"
	KindVLAN    = "vlan"
	KindDummy   = "dummy"
	KindVxlan   = "vxlan"
)

// ProbeLinkKinds tells, for each link kind, whether the kernel makes
// links of it: nil, or why not (ErrUnsupported when the kernel lacks the
// kind). The links are made in a namespace of the probe's own, which
// goes, with them, when it returns: the host's devices are never touched.
func ProbeLinkKinds(kinds []string) (map[string]error, error) {
	ns, err := privateNamespace()
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("open netlink in the probe's namespace: %w", err)
	}
	defer h.Close()
	// A veth end is the parent of the kinds that need one.
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}, PeerName: "probe1"}
	parentErr := kernelSupport(KindVeth, h.LinkAdd(veth))
	parent := 0
	if parentErr == nil {
		l, err := h.LinkByName("probe0")
		if err != nil {
			return nil, fmt.Errorf("probe's veth: %w", err)
		}
		parent = l.Attrs().Index
	}
	out := map[string]error{}
	for _, kind := range kinds {
		attrs := netlink.LinkAttrs{Name: "probe-" + kind, ParentIndex: parent}
		var l netlink.Link
		switch kind {
		case KindVeth:
			out[kind] = parentErr
			continue
		case KindBridge:
			l = &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: attrs.Name}}
		case KindDummy:
			l = &netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: attrs.Name}}
		case KindVxlan:
			l = &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: attrs.Name}, VxlanId: 42, Port: 4789}
		case KindMacvlan:
			l = &netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE}
		case KindIPVlan:
			l = &netlink.IPVlan{LinkAttrs: attrs, Mode: netlink.IPVLAN_MODE_L2}
		case KindVLAN:
			l = &netlink.Vlan{LinkAttrs: attrs, VlanId: 10}
		default:
			out[kind] = fmt.Errorf("no probe for link kind %q", kind)
			continue
		}
		if l.Attrs().ParentIndex == 0 && parentErr != nil && (kind == KindMacvlan || kind == KindIPVlan || kind == KindVLAN) {
			out[kind] = fmt.Errorf("%s needs a parent to probe on, and %w", kind, parentErr)
			continue
		}
		out[kind] = kernelSupport(kind, h.LinkAdd(l))
	}
	return out, nil
}

// privateNamespace makes a network namespace that lives as long as its
// handle, mounted nowhere. The creating thread goes back to where it was,
// or, if it cannot, stays locked so that the runtime discards it.
func privateNamespace() (netns.NsHandle, error) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return netns.None(), fmt.Errorf("get current namespace: %w", err)
	}
	defer orig.Close()
	ns, err := netns.New()
	if serr := netns.Set(orig); serr != nil {
		if err == nil {
			ns.Close()
		}
		return netns.None(), fmt.Errorf("return from the probe's namespace: %w", serr)
	}
	runtime.UnlockOSThread()
	if err != nil {
		return netns.None(), fmt.Errorf("create the probe's namespace: %w", err)
	}
	return ns, nil
}
