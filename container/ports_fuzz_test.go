package container

import (
	"encoding/json"
	"testing"

	ctypes "github.com/moby/moby/api/types/container"
	ntypes "github.com/moby/moby/api/types/network"

	"github.com/berth-net/berth/network"
)

// FuzzPortSpecs decodes port bindings as the API does (a container's
// HostConfig.PortBindings, a sandbox's PortBindings) and turns them into
// what the controller publishes: a refusal is the client's error (400),
// and what is accepted is a port the kernel can be asked for.
func FuzzPortSpecs(f *testing.F) {
	for _, s := range []string{
		`{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}]}`,
		`{"53/udp":[{"HostPort":"5300-5310"},{"HostIp":"::1","HostPort":""}],"9/sctp":null}`,
		`{"80":[]}`, `{"0/tcp":[{}]}`, `{"80/icmp":[{}]}`, `{"80/TCP":[{"HostPort":"65535"}]}`,
		`{"80/tcp":[{"HostPort":"65536"}]}`, `{"80/tcp":[{"HostPort":"9-1"}]}`, `{"80/tcp":[{"HostPort":"-"}]}`,
		`{"80/tcp":[{"HostPort":"1-2-3"}]}`, `{"80/tcp":[{"HostPort":" 1"}]}`, `{"80/tcp":[{"HostPort":"+1"}]}`,
		`{"80/tcp":[{"HostPort":"0-100"}]}`, `{"80/tcp":[{"HostPort":"0-0"}]}`,
		`{"65535/udp":[{"HostIp":"0.0.0.0","HostPort":"0"}]}`, `{}`, `null`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, bindings string) {
		var m ntypes.PortMap
		if json.Unmarshal([]byte(bindings), &m) != nil {
			return
		}
		specs, err := PortSpecs(m)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("a refusal without a message")
			}
			return
		}
		want := 0
		for _, bs := range m {
			want += max(1, len(bs))
		}
		if len(specs) != want {
			t.Fatalf("%d specs for %d bindings", len(specs), want)
		}
		checkSpecs(t, specs)
	})
}

// FuzzPublishAll: a container's exposed ports published with -P, beside
// its bindings.
func FuzzPublishAll(f *testing.F) {
	for _, s := range [][2]string{
		{`{"80/tcp":{},"53/udp":{}}`, `{"80/tcp":[{"HostPort":"8080"}]}`},
		{`{"0/tcp":{}}`, `{}`}, {`{"80/icmp":{}}`, `{}`}, {`{"7/sctp":{}}`, `null`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, exposed, bindings string) {
		c := &Container{Config: &ctypes.Config{}, Host: &ctypes.HostConfig{PublishAllPorts: true}}
		if json.Unmarshal([]byte(exposed), &c.Config.ExposedPorts) != nil || json.Unmarshal([]byte(bindings), &c.Host.PortBindings) != nil {
			return
		}
		specs, err := portSpecs(c)
		if err != nil {
			return
		}
		checkSpecs(t, specs)
	})
}

// checkSpecs holds what the controller may be asked to publish.
func checkSpecs(t *testing.T, specs []network.PortSpec) {
	t.Helper()
	for i, s := range specs {
		switch {
		case s.Proto != "tcp" && s.Proto != "udp" && s.Proto != "sctp":
			t.Fatalf("spec %+v: protocol %q", s, s.Proto)
		case s.Port == 0:
			t.Fatalf("spec %+v: container port 0", s)
		case s.HostPortMin > s.HostPortMax:
			t.Fatalf("spec %+v: host ports %d-%d", s, s.HostPortMin, s.HostPortMax)
		case s.HostPortMin == 0 && s.HostPortMax != 0:
			t.Fatalf("spec %+v: a range from 0", s)
		case i > 0 && specs[i-1].Port > s.Port:
			t.Fatalf("specs out of order: %+v", specs)
		}
	}
}
