package main

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/berth-net/berth/container"
)

// Fuzz targets of the CLI's parsers: what a user types never panics the
// CLI, and what the CLI accepts the daemon accepts too.

// FuzzPublishFlag: -p [ip:][hostPort:]containerPort[/proto] and --expose
// port[-port][/proto]. Every bound port is exposed, and the bindings pass
// the daemon's own check (container.PortSpecs): the CLI refuses at once
// what berthd would refuse.
func FuzzPublishFlag(f *testing.F) {
	for _, s := range [][2]string{
		{"8080:80", "90"}, {"127.0.0.1:5353:53/udp", "1000-1002/udp"}, {"[::1]:80:80", ""}, {"80", ""},
		{"1000-1002:2000-2002", ""}, {"0.0.0.0::80/sctp", ""}, {"8080-8090:80", ""}, {"0-100:80", ""},
		{"80/icmp", ""}, {"a:b:c:d", ""}, {"1.2.3.4:80", ""}, {":80", ""}, {"", "80:90"}, {"", "2-1"}, {"", "70000"},
		{"65535:65535", "65535/tcp"}, {"999999:80", ""}, {"::1:80:80", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, publish, expose string) {
		var p, e []string
		if publish != "" {
			p = []string{publish}
		}
		if expose != "" {
			e = []string{expose}
		}
		exposed, bindings, err := parsePorts(p, e)
		if err != nil {
			return
		}
		for port := range bindings {
			if _, ok := exposed[port]; !ok {
				t.Fatalf("-p %q binds %s without exposing it", publish, port)
			}
		}
		if _, err := container.PortSpecs(bindings); err != nil {
			t.Fatalf("-p %q accepted by the CLI, refused by berthd: %v", publish, err)
		}
	})
}

// FuzzFlagValues: the checks made as flag values are given (--dns,
// --add-host, --label, --link, -e, --ip, --ip6, --filter, -o). What a check
// accepts it accepts again as it rewrote it.
func FuzzFlagValues(f *testing.F) {
	for _, s := range []string{
		"1.1.1.1", " 8.8.8.8 ", "::1", "fe80::1%eth0", "h:10.0.0.1", "h=10.0.0.1", "h:[::1]", "h:host-gateway",
		"h::1", ":1.2.3.4", "a=b", "=b", " =x", "web", "web:alias", "a:b:c", "", "A", "A=", "=A",
		"name=web", "label=a=b", "nofilter", "172.30.100.104", "2001:db8::33", "1.2.3.4.5", "\xff",
	} {
		f.Add(s)
	}
	env := func(name string) (string, bool) { return "v-" + name, name == "SET" }
	f.Fuzz(func(t *testing.T, s string) {
		if ip, err := checkIP(s); err == nil {
			if again, err := checkIP(ip); err != nil || again != ip {
				t.Fatalf("--dns %q gave %q, which checks as %q, %v", s, ip, again, err)
			}
		}
		if h, err := checkExtraHost(s); err == nil {
			if again, err := checkExtraHost(h); err != nil || again != h {
				t.Fatalf("--add-host %q gave %q, which checks as %q, %v", s, h, again, err)
			}
		}
		if l, err := checkLabel(s); err == nil && l != s {
			t.Fatalf("--label %q became %q", s, l)
		}
		if l, err := checkLink(s); err == nil && (l == "" || strings.Count(l, ":") > 1) {
			t.Fatalf("--link %q accepted as %q", s, l)
		}
		if kv, err := resolveEnv(s, env); err == nil && !strings.HasPrefix(kv, strings.SplitN(s, "=", 2)[0]) {
			t.Fatalf("-e %q became %q", s, kv)
		}
		for _, family := range []string{"IPv4", "IPv6"} {
			a, err := parseAddr(s, family)
			if err == nil && s != "" && a.Is4() != (family == "IPv4") {
				t.Fatalf("--ip of %s %q gave %s", family, s, a)
			}
		}
		var fv filterValue
		if fv.Set(s) == nil && s != "" && fv.filters == nil {
			t.Fatalf("--filter %q accepted and lost", s)
		}
		mv := newMapValue()
		mv.Set(s)
		if len(keyValues([]string{s})) != 1 || len(mv.get()) != 1 {
			t.Fatalf("-o %q did not give one option", s)
		}
	})
}

// FuzzIPAMFlags: --subnet, --ip-range, --gateway and --aux-address of
// network create, grouped per subnet. What is grouped under a subnet lies
// in it. A subnet alone is not checked here, as the docker CLI does not:
// berthd refuses a bad one.
func FuzzIPAMFlags(f *testing.F) {
	for _, s := range [][5]string{
		{"10.20.0.0/24", "10.20.0.128/25", "10.20.0.1", "r", "10.20.0.2"},
		{"10.20.0.0/24,fd00::/64", "", "fd00::1", "", ""},
		{"10.0.0.0/8,10.1.0.0/16", "", "", "", ""},
		{"10.20.0.0/24", "10.21.0.0/25", "", "", ""},
		{"10.20.0.0/24", "", "10.20.0.1,10.20.0.2", "", ""},
		{"", "10.0.0.0/24", "", "", ""},
		{"bad", "", "", "x", "1.2.3.4"},
		{"10.20.0.0/24", "", "", "a", "10.20.0.0/30"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	f.Fuzz(func(t *testing.T, subnets, ranges, gateways, auxName, auxAddr string) {
		aux := map[string]string{}
		if auxName != "" {
			aux[auxName] = auxAddr
		}
		configs, err := ipamConfigs(split(subnets), split(ranges), split(gateways), aux)
		if err != nil {
			return
		}
		for _, c := range configs {
			_, sn, err := net.ParseCIDR(c.Subnet)
			if err != nil {
				// As with the docker CLI, berthd refuses it, in Docker's words.
				continue
			}
			if c.IPRange != "" {
				ip, _, err := net.ParseCIDR(c.IPRange)
				if err != nil || !sn.Contains(ip) {
					t.Fatalf("range %q grouped under %s", c.IPRange, c.Subnet)
				}
			}
			for _, a := range append([]string{c.Gateway}, valuesOf(c.AuxAddress)...) {
				if a == "" {
					continue
				}
				ip := net.ParseIP(a)
				if p, err := netip.ParsePrefix(a); err == nil {
					ip = net.IP(p.Addr().AsSlice())
				}
				if ip == nil || !sn.Contains(ip) {
					t.Fatalf("address %q grouped under %s", a, c.Subnet)
				}
			}
		}
	})
}

func valuesOf(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// FuzzEnvFile: --env-file contents. Every variable read has a name
// without blanks, and the file's text is UTF-8.
func FuzzEnvFile(f *testing.F) {
	for _, s := range []string{
		"A=1\n# c\n\n  B=2\nC\nSET\n", "\xef\xbb\xbfA=1", "=x\n", "A B=1\n", "A=\xff\n", "A=1\r\nB=2\r\n",
		strings.Repeat("X", 70000) + "=1\n",
	} {
		f.Add([]byte(s))
	}
	path := filepath.Join(f.TempDir(), "env")
	env := func(name string) (string, bool) { return "v", name == "SET" }
	f.Fuzz(func(t *testing.T, content []byte) {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		vars, err := readEnvFile(path, env)
		if err != nil {
			return
		}
		for _, v := range vars {
			name, _, _ := strings.Cut(v, "=")
			if name == "" || strings.ContainsAny(name, " \t\n\v\f\r") || !utf8.ValidString(v) {
				t.Fatalf("variable %q read from %q", v, content)
			}
		}
	})
}
