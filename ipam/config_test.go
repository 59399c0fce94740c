package ipam

import (
	"net/netip"
	"testing"

	"github.com/containerd/errdefs"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name                     string
		subnet, ipRange, gateway string
		aux                      map[string]string
		wantErr                  string
	}{
		{name: "subnet only", subnet: "172.29.0.0/16"},
		{name: "everything inside", subnet: "172.29.0.0/16", ipRange: "172.29.5.0/24", gateway: "172.29.0.254", aux: map[string]string{"router": "172.29.0.2"}},
		{name: "host bits in subnet are accepted", subnet: "172.29.30.1/24", gateway: "172.29.30.1"},
		{name: "range with host bits", subnet: "10.1.0.0/16", ipRange: "10.1.2.7/24"},
		{name: "range equal to subnet", subnet: "10.1.0.0/16", ipRange: "10.1.0.0/16"},
		{name: "IPv6", subnet: "fd00:1::/64", ipRange: "fd00:1::100/120", gateway: "fd00:1::1"},
		{name: "prefix length too long", subnet: "10.0.0.0/33", wantErr: "Invalid subnet 10.0.0.0/33 : invalid CIDR address: 10.0.0.0/33"},
		{name: "not a prefix", subnet: "10.0.0.0", wantErr: "Invalid subnet 10.0.0.0 : invalid CIDR address: 10.0.0.0"},
		{name: "gateway without subnet", gateway: "10.0.0.1", wantErr: "every ip-range or gateway must have a corresponding subnet"},
		{name: "gateway outside", subnet: "172.29.20.0/24", gateway: "172.29.21.1", wantErr: "no matching subnet for gateway 172.29.21.1"},
		{name: "gateway of other family", subnet: "172.29.20.0/24", gateway: "fd00::1", wantErr: "no matching subnet for gateway fd00::1"},
		{name: "range outside", subnet: "10.0.0.0/24", ipRange: "10.1.0.0/24", wantErr: "no matching subnet for range 10.1.0.0/24"},
		{name: "range wider than subnet", subnet: "10.0.0.0/24", ipRange: "10.0.0.0/23", wantErr: "no matching subnet for range 10.0.0.0/23"},
		{name: "aux outside", subnet: "10.0.0.0/24", aux: map[string]string{"a": "10.0.0.8", "b": "10.1.0.9"}, wantErr: "no matching subnet for aux-address 10.1.0.9"},
		{name: "bad range", subnet: "10.0.0.0/24", ipRange: "10.0.0.300/25", wantErr: "invalid CIDR address: 10.0.0.300/25"},
		{name: "bad gateway", subnet: "10.0.0.0/24", gateway: "10.0.0.x", wantErr: "invalid gateway address 10.0.0.x in Ipam configuration"},
		{name: "bad aux", subnet: "10.0.0.0/24", aux: map[string]string{"a": "nope"}, wantErr: "invalid address: nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConfig(tt.subnet, tt.ipRange, tt.gateway, tt.aux)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || !errdefs.IsInvalidArgument(err) {
					t.Errorf("error = %v, want %q (InvalidArgument)", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Subnet.String() != tt.subnet {
				t.Errorf("Subnet = %s, want %s as given", c.Subnet, tt.subnet)
			}
			if len(c.AuxAddresses) != len(tt.aux) {
				t.Errorf("AuxAddresses = %v", c.AuxAddresses)
			}
		})
	}
}

func TestValidateConfigs(t *testing.T) {
	cfg := func(subnet string) Config { return Config{Subnet: netip.MustParsePrefix(subnet)} }
	tests := []struct {
		name    string
		cfgs    []Config
		wantErr string
	}{
		{name: "none"},
		{name: "IPv4 and IPv6", cfgs: []Config{cfg("10.0.0.0/24"), cfg("fd00::/64")}},
		{name: "two disjoint", cfgs: []Config{cfg("10.0.0.0/24"), cfg("10.0.1.0/24")}},
		{name: "nested", cfgs: []Config{cfg("10.0.0.0/16"), cfg("10.0.1.0/24")}, wantErr: "multiple overlapping subnet configuration is not allowed"},
		{name: "same with host bits", cfgs: []Config{cfg("10.0.0.0/24"), cfg("fd00::/64"), cfg("10.0.0.9/24")}, wantErr: "multiple overlapping subnet configuration is not allowed"},
		{name: "gateway outside its own subnet", cfgs: []Config{cfg("10.0.0.0/24"), {Subnet: netip.MustParsePrefix("10.0.1.0/24"), Gateway: netip.MustParseAddr("10.0.0.1")}}, wantErr: "no matching subnet for gateway 10.0.0.1"},
		{name: "missing subnet", cfgs: []Config{{Gateway: netip.MustParseAddr("10.0.0.1")}}, wantErr: "missing or invalid subnet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateConfigs(tt.cfgs)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr || !errdefs.IsInvalidArgument(err) {
				t.Errorf("error = %v, want %q (InvalidArgument)", err, tt.wantErr)
			}
		})
	}
}
