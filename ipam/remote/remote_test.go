package remote_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"

	"github.com/docker/go-plugins-helpers/ipam"

	berthipam "github.com/berth-net/berth/ipam"
	"github.com/berth-net/berth/ipam/remote"
	"github.com/berth-net/berth/plugins"
	"github.com/berth-net/berth/plugins/plugintest"
)

// addrPlugin is an IPAM plugin written with go-plugins-helpers: pools are
// what was asked for (or its own defaults), addresses are handed out in
// order and can be given back.
type addrPlugin struct {
	requiresMAC bool
	// badAddress makes RequestAddress answer without a prefix length.
	badAddress bool

	mu    sync.Mutex
	pools map[string]netip.Prefix
	used  map[netip.Addr]bool
}

func (p *addrPlugin) GetCapabilities() (*ipam.CapabilitiesResponse, error) {
	return &ipam.CapabilitiesResponse{RequiresMACAddress: p.requiresMAC}, nil
}

func (p *addrPlugin) GetDefaultAddressSpaces() (*ipam.AddressSpacesResponse, error) {
	return &ipam.AddressSpacesResponse{LocalDefaultAddressSpace: "lspace", GlobalDefaultAddressSpace: "gspace"}, nil
}

func (p *addrPlugin) RequestPool(r *ipam.RequestPoolRequest) (*ipam.RequestPoolResponse, error) {
	pool := r.Pool
	switch {
	case pool == "" && r.V6:
		pool = "fd77::/64"
	case pool == "":
		pool = "10.77.0.0/24"
	}
	pfx, err := netip.ParsePrefix(pool)
	if err != nil {
		return nil, err
	}
	id := r.AddressSpace + "/" + pool
	p.mu.Lock()
	p.pools[id] = pfx
	p.mu.Unlock()
	return &ipam.RequestPoolResponse{PoolID: id, Pool: pool, Data: map[string]string{"com.docker.network.gateway": pfx.Addr().Next().String() + fmt.Sprintf("/%d", pfx.Bits())}}, nil
}

func (p *addrPlugin) ReleasePool(r *ipam.ReleasePoolRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pools[r.PoolID]; !ok {
		return fmt.Errorf("no pool %s", r.PoolID)
	}
	delete(p.pools, r.PoolID)
	return nil
}

func (p *addrPlugin) RequestAddress(r *ipam.RequestAddressRequest) (*ipam.RequestAddressResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pool, ok := p.pools[r.PoolID]
	if !ok {
		return nil, fmt.Errorf("no pool %s", r.PoolID)
	}
	var a netip.Addr
	if r.Address != "" {
		a = netip.MustParseAddr(r.Address)
		if p.used[a] {
			return nil, fmt.Errorf("address %s is in use", a)
		}
	} else {
		for a = pool.Addr().Next(); p.used[a]; a = a.Next() {
		}
	}
	p.used[a] = true
	if p.badAddress {
		return &ipam.RequestAddressResponse{Address: a.String()}, nil
	}
	return &ipam.RequestAddressResponse{Address: netip.PrefixFrom(a, pool.Bits()).String()}, nil
}

func (p *addrPlugin) ReleaseAddress(r *ipam.ReleaseAddressRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.used, netip.MustParseAddr(r.Address))
	return nil
}

func serve(t *testing.T, p *addrPlugin) (*remote.Plugin, *plugintest.Plugin) {
	t.Helper()
	p.pools, p.used = map[string]netip.Prefix{}, map[netip.Addr]bool{}
	dir := plugintest.Dir(t)
	wire := plugintest.Serve(t, filepath.Join(dir, "addr.sock"), ipam.NewHandler(p).Serve)
	d, err := plugins.New([]string{dir}, nil).IPAMDriver("addr")
	if err != nil {
		t.Fatal(err)
	}
	return d.(*remote.Plugin), wire
}

// sameJSON fails the test unless the call's body is want, field names and
// all.
func sameJSON(t *testing.T, c plugintest.Call, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(c.Fields(t))
	wb, _ := json.Marshal(w)
	if string(got) != string(wb) {
		t.Errorf("%s sent %s, want %s", c.Method, got, wb)
	}
}

func TestAPluginIsAskedForItsAddressSpacesAndCapabilitiesOnce(t *testing.T) {
	p, wire := serve(t, &addrPlugin{requiresMAC: true})
	if !p.RequiresMACAddress() {
		t.Error("RequiresMACAddress is false")
	}
	for _, m := range []string{"IpamDriver.GetCapabilities", "IpamDriver.GetDefaultAddressSpaces"} {
		if calls := wire.Calls(m); len(calls) != 1 || len(calls[0].Body) != 0 {
			t.Errorf("%s: %d calls, want one without payload", m, len(calls))
		}
	}
	if _, err := p.RequestPool(berthipam.PoolRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.RequestPool(berthipam.PoolRequest{Global: true}); err != nil {
		t.Fatal(err)
	}
	if n := len(wire.Calls("IpamDriver.GetDefaultAddressSpaces")); n != 1 {
		t.Errorf("address spaces asked %d times", n)
	}
}

func TestPoolsAndAddressesAreRequestedAndReleasedWithDockersJSON(t *testing.T) {
	p, wire := serve(t, &addrPlugin{})

	grant, err := p.RequestPool(berthipam.PoolRequest{
		Subnet: netip.MustParsePrefix("10.1.0.0/24"), IPRange: netip.MustParsePrefix("10.1.0.128/25"),
		Options: map[string]string{"color": "blue"},
	})
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, wire.Last(t, "IpamDriver.RequestPool"),
		`{"AddressSpace":"lspace","Pool":"10.1.0.0/24","SubPool":"10.1.0.128/25","Options":{"color":"blue"},"V6":false}`)
	if grant.ID != "lspace/10.1.0.0/24" || grant.Pool != netip.MustParsePrefix("10.1.0.0/24") || grant.Data["com.docker.network.gateway"] != "10.1.0.1/24" {
		t.Errorf("grant %+v", grant)
	}

	gw, err := p.RequestAddress(grant.ID, netip.MustParseAddr("10.1.0.1"), map[string]string{berthipam.RequestAddressType: berthipam.GatewayAddressType})
	if err != nil || gw != netip.MustParsePrefix("10.1.0.1/24") {
		t.Fatalf("gateway %s, %v", gw, err)
	}
	sameJSON(t, wire.Last(t, "IpamDriver.RequestAddress"),
		`{"PoolID":"lspace/10.1.0.0/24","Address":"10.1.0.1","Options":{"RequestAddressType":"com.docker.network.gateway"}}`)

	some, err := p.RequestAddress(grant.ID, netip.Addr{}, nil)
	if err != nil || some != netip.MustParsePrefix("10.1.0.2/24") {
		t.Fatalf("any address: %s, %v", some, err)
	}
	sameJSON(t, wire.Last(t, "IpamDriver.RequestAddress"), `{"PoolID":"lspace/10.1.0.0/24","Address":"","Options":{}}`)

	_, err = p.RequestAddress(grant.ID, netip.MustParseAddr("10.1.0.2"), nil)
	if err == nil || err.Error() != "IpamDriver.RequestAddress: address 10.1.0.2 is in use" {
		t.Errorf("an address in use: %v", err)
	}

	if err := p.ReleaseAddress(grant.ID, some.Addr()); err != nil {
		t.Fatal(err)
	}
	sameJSON(t, wire.Last(t, "IpamDriver.ReleaseAddress"), `{"PoolID":"lspace/10.1.0.0/24","Address":"10.1.0.2"}`)
	if again, err := p.RequestAddress(grant.ID, netip.Addr{}, nil); err != nil || again != some {
		t.Errorf("after release: %s, %v; want %s again", again, err, some)
	}

	if err := p.ReleasePool(grant.ID); err != nil {
		t.Fatal(err)
	}
	sameJSON(t, wire.Last(t, "IpamDriver.ReleasePool"), `{"PoolID":"lspace/10.1.0.0/24"}`)
	if err := p.ReleasePool(grant.ID); err == nil {
		t.Error("releasing a released pool: no error from the plugin")
	}
	for _, c := range wire.Calls("IpamDriver.RequestAddress") {
		if c.ContentType != plugins.ContentType {
			t.Errorf("RequestAddress sent as %q", c.ContentType)
		}
	}
}

func TestAGlobalOrIPv6PoolComesFromTheRightSpaceAndFamily(t *testing.T) {
	p, wire := serve(t, &addrPlugin{})
	grant, err := p.RequestPool(berthipam.PoolRequest{Global: true, V6: true})
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, wire.Last(t, "IpamDriver.RequestPool"), `{"AddressSpace":"gspace","Pool":"","SubPool":"","Options":{},"V6":true}`)
	if grant.Pool != netip.MustParsePrefix("fd77::/64") {
		t.Errorf("pool %s", grant.Pool)
	}
	// A plugin that gives an IPv4 pool for IPv6 is wrong.
	if _, err := p.RequestPool(berthipam.PoolRequest{V6: true, Subnet: netip.MustParsePrefix("10.9.0.0/16")}); err == nil {
		t.Error("an IPv4 pool for an IPv6 request was accepted")
	}
}

func TestAnAddressWithoutItsPrefixLengthIsRefused(t *testing.T) {
	p, _ := serve(t, &addrPlugin{badAddress: true})
	grant, err := p.RequestPool(berthipam.PoolRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.RequestAddress(grant.ID, netip.Addr{}, nil)
	if err == nil {
		t.Fatal("an address without length was accepted")
	}
	want := "IPAM plugin addr gave a bad address \"10.77.0.1\": want address/length"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}
