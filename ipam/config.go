package ipam

import (
	"maps"
	"net/netip"
	"slices"
)

// Config is one --subnet with its --ip-range, --gateway and --aux-address
// values, as given by the user. Subnet keeps any host bits the user wrote
// (172.29.30.1/24), because Docker reports the subnet as given; whatever
// computes with it masks it.
type Config struct {
	Subnet       netip.Prefix
	IPRange      netip.Prefix // zero when not given
	Gateway      netip.Addr   // zero when not given
	AuxAddresses map[string]netip.Addr
}

// ParseConfig parses and validates one IPAM configuration. Empty strings
// stand for values not given; the subnet is required.
func ParseConfig(subnet, ipRange, gateway string, aux map[string]string) (Config, error) {
	if subnet == "" && (ipRange != "" || gateway != "" || len(aux) > 0) {
		return Config{}, invalid("every ip-range or gateway must have a corresponding subnet")
	}
	var c Config
	var err error
	if c.Subnet, err = netip.ParsePrefix(subnet); err != nil {
		return Config{}, invalid("Invalid subnet %s : invalid CIDR address: %s", subnet, subnet)
	}
	if ipRange != "" {
		if c.IPRange, err = netip.ParsePrefix(ipRange); err != nil {
			return Config{}, invalid("invalid CIDR address: %s", ipRange)
		}
	}
	if gateway != "" {
		if c.Gateway, err = netip.ParseAddr(gateway); err != nil {
			return Config{}, invalid("invalid gateway address %s in Ipam configuration", gateway)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(aux)) {
		a, err := netip.ParseAddr(aux[name])
		if err != nil {
			return Config{}, invalid("invalid address: %s", aux[name])
		}
		if c.AuxAddresses == nil {
			c.AuxAddresses = make(map[string]netip.Addr, len(aux))
		}
		c.AuxAddresses[name] = a
	}
	return c, c.Validate()
}

// Validate checks that the ip-range, gateway and aux-addresses lie inside
// the subnet.
func (c Config) Validate() error {
	if !c.Subnet.IsValid() {
		return invalid("missing or invalid subnet")
	}
	subnet := c.Subnet.Masked()
	if c.IPRange.IsValid() && !prefixContains(subnet, c.IPRange.Masked()) {
		return invalid("no matching subnet for range %s", c.IPRange)
	}
	if c.Gateway.IsValid() && !subnet.Contains(c.Gateway) {
		return invalid("no matching subnet for gateway %s", c.Gateway)
	}
	for _, name := range slices.Sorted(maps.Keys(c.AuxAddresses)) {
		if a := c.AuxAddresses[name]; !subnet.Contains(a) {
			return invalid("no matching subnet for aux-address %s", a)
		}
	}
	return nil
}

// ValidateConfigs validates the configurations of one network: each one,
// and that no two subnets overlap.
func ValidateConfigs(cfgs []Config) error {
	for i, a := range cfgs {
		for _, b := range cfgs[i+1:] {
			if a.Subnet.Overlaps(b.Subnet) {
				return invalid("multiple overlapping subnet configuration is not allowed")
			}
		}
	}
	for _, c := range cfgs {
		if err := c.Validate(); err != nil {
			return err
		}
	}
	return nil
}
