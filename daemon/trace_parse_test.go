package daemon

import (
	"net/netip"
	"testing"

	"github.com/containerd/errdefs"
)

func TestTraceDestinationsAreReadAsWritten(t *testing.T) {
	a := netip.MustParseAddr
	for _, tc := range []struct {
		in   string
		want traceTarget
	}{
		{"db", traceTarget{name: "db", proto: "tcp"}},
		{"db:5432", traceTarget{name: "db", port: 5432, proto: "tcp"}},
		{"db:53/udp", traceTarget{name: "db", port: 53, proto: "udp"}},
		{"host:8080", traceTarget{host: true, port: 8080, proto: "tcp"}},
		{"host:5353/UDP", traceTarget{host: true, port: 5353, proto: "udp"}},
		{"172.18.0.3", traceTarget{addr: a("172.18.0.3"), proto: "tcp"}},
		{"172.18.0.3:80", traceTarget{addr: a("172.18.0.3"), port: 80, proto: "tcp"}},
		{"fd00::3", traceTarget{addr: a("fd00::3"), proto: "tcp"}},
		{"[fd00::3]:80/sctp", traceTarget{addr: a("fd00::3"), port: 80, proto: "sctp"}},
		{"[fd00::3]", traceTarget{addr: a("fd00::3"), proto: "tcp"}},
		{"my.app_1:8080", traceTarget{name: "my.app_1", port: 8080, proto: "tcp"}},
	} {
		got, err := parseTraceTarget(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("%q read as %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", ":80", "db:", "db:0", "db:65536", "db:http", "db:80/icmp", "db/udp", "[fd00::3", "[nothing]:80", "[fd00::3]80", "host:"} {
		if got, err := parseTraceTarget(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q read as %+v, %v; want an invalid argument", in, got, err)
		}
	}
}
