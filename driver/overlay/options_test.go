package overlay_test

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/driver/overlay"
)

// These tests need no kernel: options, VXLAN IDs and what the controller
// is told.

func TestOverlayOptionsAreCheckedWithClearErrors(t *testing.T) {
	d := overlay.New(nil, nil, netip.Addr{})
	for _, tc := range []struct {
		opts map[string]string
		// want is a part of the error; empty for none.
		want  string
		check func(error) bool
	}{
		{opts: nil},
		{opts: map[string]string{overlay.OptionMTU: "1400", overlay.OptionVNIs: "4097", "com.example.kept": "x"}},
		{opts: map[string]string{overlay.OptionMTU: "68"}},
		{opts: map[string]string{overlay.OptionMTU: "65485"}},
		{opts: map[string]string{overlay.OptionVNIs: "1"}},
		{opts: map[string]string{overlay.OptionVNIs: "16777215"}},
		{opts: map[string]string{overlay.OptionMTU: "67"}, want: `invalid value "67" for com.docker.network.driver.mtu: must be a number from 68 to 65485`, check: errdefs.IsInvalidArgument},
		{opts: map[string]string{overlay.OptionMTU: "65486"}, want: "from 68 to 65485", check: errdefs.IsInvalidArgument},
		{opts: map[string]string{overlay.OptionMTU: "big"}, want: `invalid value "big"`, check: errdefs.IsInvalidArgument},
		{opts: map[string]string{overlay.OptionVNIs: "0"}, want: "must be a VXLAN ID from 1 to 16777215", check: errdefs.IsInvalidArgument},
		{opts: map[string]string{overlay.OptionVNIs: "16777216"}, want: "must be a VXLAN ID from 1 to 16777215", check: errdefs.IsInvalidArgument},
		{opts: map[string]string{overlay.OptionVNIs: "x"}, want: "must be a VXLAN ID", check: errdefs.IsInvalidArgument},
		{opts: map[string]string{overlay.OptionVNIs: "4097,4098"}, want: "one VXLAN ID, not 2", check: errdefs.IsInvalidArgument},
		{opts: map[string]string{overlay.OptionEncrypted: ""}, want: "need IPsec", check: errdefs.IsNotImplemented},
		{opts: map[string]string{"com.docker.network.driver.overlay.bogus": "1"}, want: "unknown option com.docker.network.driver.overlay.bogus", check: errdefs.IsInvalidArgument},
	} {
		err := d.ValidateOptions(tc.opts)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v refused: %v", tc.opts, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !tc.check(err) {
			t.Errorf("%v: error %v (%T), want one with %q", tc.opts, err, err, tc.want)
		}
	}
}

const netID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func prepared(t *testing.T, d *overlay.Driver, id string, opts map[string]string, existing ...*driver.Network) (*driver.Network, error) {
	t.Helper()
	nw := &driver.Network{ID: id, Name: "n" + id[:4], Options: opts}
	st, err := d.Prepare(nw, existing)
	nw.State = st
	return nw, err
}

func stateOf(t *testing.T, nw *driver.Network) overlay.State {
	t.Helper()
	var st overlay.State
	if err := json.Unmarshal(nw.State, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestVXLANIDsAreTheLowestFreeFrom4096OrTheOptionsOne(t *testing.T) {
	d := overlay.New(nil, nil, netip.Addr{})
	first, err := prepared(t, d, netID, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := stateOf(t, first)
	if st.VNI != overlay.FirstVNI || st.Bridge != "ov-0123456789ab" || st.Vxlan != "vx-0123456789ab" {
		t.Errorf("first network's state %+v", st)
	}
	second, err := prepared(t, d, "1"+netID[1:], nil, first)
	if err != nil || stateOf(t, second).VNI != 4097 {
		t.Fatalf("second network: %v, %+v", err, second)
	}
	mine, err := prepared(t, d, "2"+netID[1:], map[string]string{overlay.OptionVNIs: "4098"}, first)
	if err != nil || stateOf(t, mine).VNI != 4098 {
		t.Fatalf("network with the option: %v", err)
	}
	// A gap is filled first.
	gap, err := prepared(t, d, "3"+netID[1:], nil, first, mine)
	if err != nil || stateOf(t, gap).VNI != 4097 {
		t.Errorf("with 4096 and 4098 taken: %v, %s", err, gap.State)
	}
	// The network itself, asked again, does not count as taking its ID.
	again, err := prepared(t, d, netID, nil, first)
	if err != nil || stateOf(t, again).VNI != overlay.FirstVNI {
		t.Errorf("asked again: %v, %s", err, again.State)
	}
	_, err = prepared(t, d, "4"+netID[1:], map[string]string{overlay.OptionVNIs: "4098"}, first, mine)
	if !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "VXLAN ID 4098 is taken by network "+mine.Name) {
		t.Errorf("a taken VXLAN ID: %v", err)
	}
}

func TestOverlayNetworksAreGlobalFirewalledAndClaimTheirVXLANID(t *testing.T) {
	d := overlay.New(nil, nil, netip.Addr{})
	caps := d.Capabilities()
	if d.Name() != "overlay" || caps.Scope != driver.ScopeGlobal || !caps.Addresses || caps.Sharing != driver.Shares || caps.Singleton || len(caps.Predefined) != 0 {
		t.Errorf("%s: capabilities %+v", d.Name(), caps)
	}
	nw, err := prepared(t, d, netID, map[string]string{overlay.OptionVNIs: "77"})
	if err != nil {
		t.Fatal(err)
	}
	info := d.Describe(nw)
	if fw := info.Firewall; fw == nil || *fw != (driver.Firewall{Device: "ov-0123456789ab", Masquerade: true, AntiSpoof: true}) {
		t.Errorf("firewall %+v", fw)
	}
	if len(info.Claims) != 1 || info.Claims[0] != "vni/77" || info.Notes[overlay.OptionVNIs] != "77" || len(info.Notes) != 1 {
		t.Errorf("claims %v, notes %v", info.Claims, info.Notes)
	}
	nw.Internal = true
	if fw := d.Describe(nw).Firewall; fw == nil || fw.Masquerade {
		t.Errorf("internal network's firewall %+v: no masquerade", fw)
	}
	if devs := d.Devices(nw); len(devs) != 2 || devs[0] != "ov-0123456789ab" || devs[1] != "vx-0123456789ab" {
		t.Errorf("devices %v", devs)
	}
}
