package remote

import (
	"fmt"
	"maps"
	"net/netip"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/ipam"
)

// Caller sends one call of Docker's plugin protocol: args as JSON to
// /method, the answer decoded into ret. A method the plugin does not
// implement gives an error errdefs reports as NotImplemented.
type Caller interface {
	Call(method string, args, ret any) error
}

// Plugin is a plugin's address manager.
type Plugin struct {
	name   string
	plugin Caller
	spaces addressSpaces
	caps   capabilities
}

type capabilities struct {
	RequiresMACAddress bool
}

type addressSpaces struct {
	LocalDefaultAddressSpace  string
	GlobalDefaultAddressSpace string
}

type poolRequest struct {
	AddressSpace string
	Pool         string
	SubPool      string
	Options      map[string]string
	V6           bool
}

type poolAnswer struct {
	PoolID string
	Pool   string
	Data   map[string]string
}

type poolID struct {
	PoolID string
}

type addressRequest struct {
	PoolID  string
	Address string
	Options map[string]string
}

type addressAnswer struct {
	Address string
	Data    map[string]string
}

type addressRelease struct {
	PoolID  string
	Address string
}

// MACAddressOption is the option of RequestAddress carrying the
// endpoint's MAC, for a plugin that RequiresMACAddress.
const MACAddressOption = ipam.MACAddressOption

// New asks the plugin for its capabilities (a plugin may not answer that
// call; it then has none) and its default address spaces, as Docker does
// when it registers one, and returns its address manager.
func New(name string, plugin Caller) (*Plugin, error) {
	p := &Plugin{name: name, plugin: plugin}
	if err := p.call("GetCapabilities", nil, &p.caps); err != nil && !errdefs.IsNotImplemented(err) {
		return nil, fmt.Errorf("capabilities of IPAM plugin %s: %w", name, err)
	}
	if err := p.call("GetDefaultAddressSpaces", nil, &p.spaces); err != nil {
		return nil, fmt.Errorf("default address spaces of IPAM plugin %s: %w", name, err)
	}
	return p, nil
}

func (p *Plugin) call(method string, args, ret any) error {
	return p.plugin.Call("IpamDriver."+method, args, ret)
}

func (p *Plugin) Name() string { return p.name }

// RequiresMACAddress tells whether the plugin wants the endpoint's MAC in
// RequestAddress's options, under MACAddressOption.
func (p *Plugin) RequiresMACAddress() bool { return p.caps.RequiresMACAddress }

// RequestPool asks for a pool in the plugin's default local or global
// address space.
func (p *Plugin) RequestPool(req ipam.PoolRequest) (ipam.PoolGrant, error) {
	r := poolRequest{AddressSpace: p.spaces.LocalDefaultAddressSpace, Options: nonNil(req.Options), V6: req.V6}
	if req.Global {
		r.AddressSpace = p.spaces.GlobalDefaultAddressSpace
	}
	if req.Subnet.IsValid() {
		r.Pool = req.Subnet.String()
	}
	if req.IPRange.IsValid() {
		r.SubPool = req.IPRange.String()
	}
	var ans poolAnswer
	if err := p.call("RequestPool", r, &ans); err != nil {
		return ipam.PoolGrant{}, err
	}
	pool, err := netip.ParsePrefix(ans.Pool)
	if err != nil || pool.Addr().Is4() == req.V6 {
		family := "IPv4"
		if req.V6 {
			family = "IPv6"
		}
		return ipam.PoolGrant{}, fmt.Errorf("IPAM plugin %s gave a bad pool %q for an %s request", p.name, ans.Pool, family)
	}
	if ans.PoolID == "" {
		return ipam.PoolGrant{}, fmt.Errorf("IPAM plugin %s gave pool %s no ID", p.name, ans.Pool)
	}
	return ipam.PoolGrant{ID: ans.PoolID, Pool: pool.Masked(), Data: ans.Data}, nil
}

func (p *Plugin) ReleasePool(id string) error {
	return p.call("ReleasePool", poolID{PoolID: id}, nil)
}

// RequestAddress asks for addr, or any address when addr is zero; the
// plugin answers with the address and its pool's prefix length.
func (p *Plugin) RequestAddress(id string, addr netip.Addr, opts map[string]string) (netip.Prefix, error) {
	r := addressRequest{PoolID: id, Options: nonNil(opts)}
	if addr.IsValid() {
		r.Address = addr.String()
	}
	var ans addressAnswer
	if err := p.call("RequestAddress", r, &ans); err != nil {
		return netip.Prefix{}, err
	}
	got, err := netip.ParsePrefix(ans.Address)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("IPAM plugin %s gave a bad address %q: want address/length", p.name, ans.Address)
	}
	if addr.IsValid() && got.Addr() != addr {
		err := fmt.Errorf("IPAM plugin %s gave %s when asked for %s", p.name, got.Addr(), addr)
		if rerr := p.ReleaseAddress(id, got.Addr()); rerr != nil {
			return netip.Prefix{}, fmt.Errorf("%w; give it back: %w", err, rerr)
		}
		return netip.Prefix{}, err
	}
	return got, nil
}

func (p *Plugin) ReleaseAddress(id string, addr netip.Addr) error {
	return p.call("ReleaseAddress", addressRelease{PoolID: id, Address: addr.String()}, nil)
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}
