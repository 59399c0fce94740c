package cni

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/containernetworking/cni/pkg/types/create"

	"github.com/berth-net/berth/driver"
)

func TestResultBecomesJoinInfo(t *testing.T) {
	bridgeOut := `{"cniVersion":"1.0.0",
		"interfaces":[{"name":"cni-t0","mac":"aa:aa:aa:aa:aa:aa"},{"name":"veth1","mac":"bb:bb:bb:bb:bb:bb"},
			{"name":"eth0","mac":"02:42:0a:4d:00:02","sandbox":"/run/netns/x"}],
		"ips":[{"interface":2,"address":"10.77.0.2/24","gateway":"10.77.0.1"},
			{"interface":2,"address":"fd77::2/64","gateway":"fd77::1"}],
		"routes":[{"dst":"0.0.0.0/0"},{"dst":"192.168.9.0/24","gw":"10.77.0.254"},{"dst":"10.9.0.0/16"},
			{"dst":"172.16.0.0/12","priority":100}]}`
	tests := []struct {
		name, result string
		want         joinInfo
	}{{
		name:   "bridge with a default route through its gateway",
		result: bridgeOut,
		want: joinInfo{
			IPv4: "10.77.0.2/24", IPv6: "fd77::2/64", MAC: "02:42:0a:4d:00:02", Gateway4: "10.77.0.1",
			Routes: []string{"192.168.9.0/24 via 10.77.0.254", "10.9.0.0/16 via 10.77.0.1"},
		},
	}, {
		name: "no default route: no gateway",
		result: `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"02:00:00:00:00:01","sandbox":"/x"}],
			"ips":[{"interface":0,"address":"192.168.5.9/24","gateway":"192.168.5.1"}]}`,
		want: joinInfo{IPv4: "192.168.5.9/24", MAC: "02:00:00:00:00:01"},
	}, {
		name:   "an IPv6 default route with its own gateway",
		result: `{"cniVersion":"1.0.0","ips":[{"address":"fd00::5/64"}],"routes":[{"dst":"::/0","gw":"fd00::fe"}]}`,
		want:   joinInfo{IPv6: "fd00::5/64", Gateway6: "fd00::fe"},
	}, {
		name: "addresses of another interface are not the endpoint's",
		result: `{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/x"},{"name":"eth1","sandbox":"/x"}],
			"ips":[{"interface":1,"address":"10.1.0.2/24"},{"interface":0,"address":"10.2.0.2/24"}]}`,
		want: joinInfo{IPv4: "10.2.0.2/24"},
	}, {
		name:   "spec 0.3.1",
		result: `{"cniVersion":"0.3.1","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"version":"4","interface":0,"address":"10.3.0.7/16","gateway":"10.3.0.1"}],"routes":[{"dst":"0.0.0.0/0"}]}`,
		want:   joinInfo{IPv4: "10.3.0.7/16", Gateway4: "10.3.0.1"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := create.CreateFromBytes([]byte(tt.result))
			if err != nil {
				t.Fatal(err)
			}
			info, err := fromResult(res, "eth0")
			if err != nil {
				t.Fatal(err)
			}
			if got := joinInfoOf(info); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// joinInfo is driver.JoinInfo in strings, for tables.
type joinInfo struct {
	IPv4, IPv6, MAC, Gateway4, Gateway6 string
	Routes                              []string
}

func joinInfoOf(i driver.JoinInfo) joinInfo {
	out := joinInfo{MAC: i.MAC.String(), Gateway4: str(i.Gateway4), Gateway6: str(i.Gateway6)}
	if i.IPv4.IsValid() {
		out.IPv4 = i.IPv4.String()
	}
	if i.IPv6.IsValid() {
		out.IPv6 = i.IPv6.String()
	}
	if len(i.MAC) == 0 {
		out.MAC = ""
	}
	for _, r := range i.Routes {
		out.Routes = append(out.Routes, r.Dst.String()+" via "+str(r.Via))
	}
	return out
}

func str(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
