package remote

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/berth-net/berth/driver"
)

func TestWhatAJoinGaveFitsTheAliasRoutesLastOut(t *testing.T) {
	info := driver.JoinInfo{Gateway4: netip.MustParseAddr("10.1.0.1"), Gateway6: netip.MustParseAddr("fd00::1")}
	for i := range 20 {
		info.Routes = append(info.Routes, driver.Route{
			Dst: netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", 100+i)), Via: netip.MustParseAddr("10.1.0.254"),
		})
	}
	info.Routes[0].Via = netip.Addr{}
	a := aliasOf(info)
	if len(a) > maxAlias {
		t.Fatalf("alias of %d bytes", len(a))
	}
	got, ok := infoOfAlias(a)
	if !ok {
		t.Fatalf("alias %q not read back", a)
	}
	if len(got.Routes) == 0 || len(got.Routes) == len(info.Routes) {
		t.Fatalf("%d of %d routes kept", len(got.Routes), len(info.Routes))
	}
	want := info
	want.Routes = info.Routes[:len(got.Routes)]
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("read back %+v, want %+v", got, want)
	}
	for _, other := range []string{"", "eth0 of the plugin", aliasPrefix + "{", aliasPrefix + `{"R":[["x",""]]}`} {
		if _, ok := infoOfAlias(other); ok {
			t.Errorf("alias %q read as a join's", other)
		}
	}
}
