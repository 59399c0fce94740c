package cluster

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name, store, advertise string
		opts                   []string
		want                   *Config
		err                    string
	}{
		{name: "no cluster store", want: nil},
		{name: "external etcd", store: "etcd://10.1.0.1:2379,etcd-2.example:2379,[fd00::3]:2379", advertise: "10.1.0.7",
			want: &Config{Endpoints: []string{"10.1.0.1:2379", "etcd-2.example:2379", "[fd00::3]:2379"}, Advertise: netip.MustParseAddr("10.1.0.7")}},
		{name: "embedded", store: "embedded", advertise: "fd00::7",
			want: &Config{Embedded: true, Advertise: netip.MustParseAddr("fd00::7")}},
		{name: "TLS", store: "etcd://10.1.0.1:2379", advertise: "10.1.0.7", opts: []string{"cacert=/c/ca.pem,cert=/c/cert.pem", "key=/c/key.pem"},
			want: &Config{Endpoints: []string{"10.1.0.1:2379"}, Advertise: netip.MustParseAddr("10.1.0.7"), TLS: TLSFiles{CA: "/c/ca.pem", Cert: "/c/cert.pem", Key: "/c/key.pem"}}},
		{name: "Docker's TLS option names", store: "etcd://10.1.0.1:2379", advertise: "10.1.0.7", opts: []string{"kv.cacertfile=/ca,kv.certfile=/cert,kv.keyfile=/key"},
			want: &Config{Endpoints: []string{"10.1.0.1:2379"}, Advertise: netip.MustParseAddr("10.1.0.7"), TLS: TLSFiles{CA: "/ca", Cert: "/cert", Key: "/key"}}},

		{name: "store without advertise", store: "etcd://10.1.0.1:2379", err: "--cluster-store needs --cluster-advertise IP"},
		{name: "embedded without advertise", store: "embedded", err: "--cluster-store needs --cluster-advertise IP"},
		{name: "advertise without store", advertise: "10.1.0.7", err: "--cluster-advertise needs --cluster-store"},
		{name: "opts without store", opts: []string{"cacert=/ca"}, err: "--cluster-store-opt needs --cluster-store"},
		{name: "another store", store: "consul://10.1.0.1:8500", advertise: "10.1.0.7", err: `invalid --cluster-store "consul://10.1.0.1:8500": etcd://IP:PORT[,IP:PORT…] or embedded`},
		{name: "no address", store: "etcd://", advertise: "10.1.0.7", err: "no etcd address after etcd://"},
		{name: "no port", store: "etcd://10.1.0.1", advertise: "10.1.0.7", err: `"10.1.0.1": an etcd address is HOST:PORT`},
		{name: "bad port", store: "etcd://10.1.0.1:70000", advertise: "10.1.0.7", err: `port "70000" is not a number from 1 to 65535`},
		{name: "path", store: "etcd://10.1.0.1:2379/berth", advertise: "10.1.0.7", err: "with no path, query or user"},
		{name: "empty address in list", store: "etcd://10.1.0.1:2379,", advertise: "10.1.0.7", err: `"": an etcd address is HOST:PORT`},
		{name: "bad host", store: "etcd://a_b:2379", advertise: "10.1.0.7", err: `"a_b" is neither an IP address nor a host name`},
		{name: "advertise not an IP", store: "embedded", advertise: "eth0", err: `invalid --cluster-advertise "eth0": not an IP address`},
		{name: "advertise with a port", store: "embedded", advertise: "10.1.0.7:2376", err: "an IP address without a port"},
		{name: "advertise unspecified", store: "embedded", advertise: "0.0.0.0", err: "an address other hosts can reach this one at, not 0.0.0.0"},
		{name: "unknown option", store: "embedded", advertise: "10.1.0.7", opts: []string{"cacert=/ca,user=x"}, err: `unknown option "user" (cacert, cert, key)`},
		{name: "option without value", store: "embedded", advertise: "10.1.0.7", opts: []string{"cacert="}, err: `"cacert=" is not KEY=VALUE`},
		{name: "cert without key", store: "etcd://10.1.0.1:2379", advertise: "10.1.0.7", opts: []string{"cert=/cert"}, err: "cert and key go together"},
		{name: "embedded TLS without cert", store: "embedded", advertise: "10.1.0.7", opts: []string{"cacert=/ca"}, err: "an embedded store serves TLS only with a cert and key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFlags(tc.store, tc.advertise, tc.opts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) {
				t.Fatalf("config %+v, want %+v", got, tc.want)
			}
			if got == nil {
				return
			}
			if !slices.Equal(got.Endpoints, tc.want.Endpoints) || got.Embedded != tc.want.Embedded ||
				got.Advertise != tc.want.Advertise || got.TLS != tc.want.TLS {
				t.Fatalf("config %+v, want %+v", got, tc.want)
			}
		})
	}
}
