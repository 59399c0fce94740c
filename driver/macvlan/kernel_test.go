package macvlan

import (
	"slices"
	"testing"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/netdev"
)

func TestANetworkNeedsTheKindsOfTheParentBerthMakesForIt(t *testing.T) {
	for _, tc := range []struct {
		driver *Driver
		state  string
		want   []string
	}{
		{New(nil, nil), `{"Parent":"eth0"}`, []string{netdev.KindMacvlan}},
		{New(nil, nil), `{"Parent":"eth0.10","Created":true}`, []string{netdev.KindMacvlan, netdev.KindVLAN}},
		{NewIPVlan(nil, nil), `{"Parent":"di-0123456789ab","Created":true}`, []string{netdev.KindIPVlan, netdev.KindDummy}},
		{NewIPVlan(nil, nil), `not json`, []string{netdev.KindIPVlan}},
	} {
		got := tc.driver.NetworkKernelFeatures(&driver.Network{Name: "n", State: []byte(tc.state)})
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s network with state %s needs %q, want %q", tc.driver.Name(), tc.state, got, tc.want)
		}
	}
}
