package daemon

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The fuzz targets of berthd's API: each request body decoder, through
// the router of a daemon over fakes (harness_fuzz_test.go), and any raw
// request at all. After every input: no handler panicked, an error came
// as {"message": …}, whatever the request made can be removed, and the
// store holds what memory does. `make fuzz` runs each for a while; `go
// test` runs the seeds and testdata/fuzz.

// fuzzBody serves one request with a fuzzed body and resets the daemon.
func fuzzBody(t *testing.T, fd *fakeDaemon, method, target, body string) {
	code, out := fd.do(method, target, body)
	fd.check(t, method+" "+target, code, out)
	fd.reset(t)
}

// pathSegment makes a fuzzed string one segment of a path.
func pathSegment(s string) string { return url.PathEscape(s) }

func FuzzNetworkCreate(f *testing.F) {
	for _, s := range []string{
		`{"Name":"n"}`,
		`{"Name":"n","Driver":"bridge","IPAM":{"Driver":"default","Config":[{"Subnet":"10.1.0.0/16","IPRange":"10.1.1.0/24","Gateway":"10.1.1.1","AuxiliaryAddresses":{"r":"10.1.0.2"}}]}}`,
		`{"Name":"n6","EnableIPv6":true,"IPAM":{"Config":[{"Subnet":"fd00::/64"},{"Subnet":"10.2.0.0/24"}]}}`,
		`{"Name":"n","EnableIPv4":false,"EnableIPv6":true}`,
		`{"Name":"n","Options":{"com.docker.network.bridge.name":"br-x","com.docker.network.bridge.enable_icc":"false","com.docker.network.driver.mtu":"1400","com.docker.network.bridge.host_binding_ipv4":"127.0.0.1"},"Labels":{"a":"b"}}`,
		`{"Name":"m","Driver":"macvlan","Options":{"macvlan_mode":"private"},"IPAM":{"Config":[{"Subnet":"192.168.5.0/24","Gateway":"192.168.5.1"}]}}`,
		`{"Name":"i","Driver":"ipvlan","Options":{"ipvlan_mode":"l3","ipvlan_flag":"vepa"}}`,
		`{"Name":"h","Driver":"host"}`,
		`{"Name":"x","Internal":true,"Attachable":true,"Scope":"local","CheckDuplicate":true}`,
		`{"Name":"x","Ingress":true}`,
		`{"Name":"x","ConfigFrom":{"Network":"y"}}`,
		`{"Name":"x","IPAM":{"Config":[{"Subnet":"10.0.0.0/33"}]}}`,
		`{"Name":"x","IPAM":{"Config":[{"Subnet":"10.9.0.0/31"}]}}`,
		`{"Name":"x","IPAM":{"Config":[{"Subnet":"10.9.0.0/32","Gateway":"10.9.0.0"}]}}`,
		`{"Name":"x","IPAM":{"Config":[{"Subnet":"::/0"}]},"EnableIPv6":true}`,
		`{"Name":"x","IPAM":{"Config":[{"Subnet":"10.9.0.1/24","IPRange":"10.9.0.128/25"}]}}`,
		`{"Name":` + `"` + strings.Repeat("n", 200) + `"}`,
		`{"Name":"a b"}`, `{"Name":""}`, `{}`, `[]`, `null`, `{"Name":`, ``,
	} {
		f.Add(s)
	}
	fd := newFakeDaemon(f)
	f.Fuzz(func(t *testing.T, body string) {
		fuzzBody(t, fd, "POST", "/networks/create", body)
	})
}

func FuzzContainerCreate(f *testing.F) {
	for _, s := range []struct{ name, body string }{
		{"web", `{"Image":"fuzzbase"}`},
		{"", `{"Image":"fuzzbase","Cmd":["httpd","-f"],"Entrypoint":["/bin/sh","-c"],"Env":["A=1","B"],"Labels":{"l":"v"},"ExposedPorts":{"80/tcp":{},"53/udp":{}},"StopTimeout":3}`},
		{"/p", `{"Image":"fuzzbase","HostConfig":{"NetworkMode":"net1","PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8080"}],"53/udp":[{"HostPort":"5300-5310"}]},"PublishAllPorts":true,"Dns":["1.1.1.1"],"ExtraHosts":["h:10.0.0.1"]}}`},
		{"s", `{"Image":"fuzzbase","HostConfig":{"NetworkMode":"container:c1"}}`},
		{"h", `{"Image":"fuzzbase","HostConfig":{"NetworkMode":"host"}}`},
		{"n", `{"Image":"fuzzbase","HostConfig":{"NetworkMode":"none"},"NetworkingConfig":{"EndpointsConfig":{"net1":{}}}}`},
		{"e", `{"Image":"fuzzbase","HostConfig":{"NetworkMode":"net1"},"NetworkingConfig":{"EndpointsConfig":{"net1":{"IPAMConfig":{"IPv4Address":"10.77.0.9"},"Aliases":["db"],"MacAddress":"02:42:ac:11:00:02","Links":["c1:x"]},"bridge":null}}}`},
		{"l", `{"Image":"fuzzbase","HostConfig":{"Links":["c1:alias"],"PortBindings":{"0/tcp":null}}}`},
		{"t", `{"Image":"fuzzbase","Tty":true}`},
		{"c1", `{"Image":"fuzzbase"}`},
		{"x", `{"Image":"nosuch"}`},
		{"a b", `{"Image":"fuzzbase"}`},
		{"", `{"HostConfig":{"PortBindings":{"80/sctp":[{}],"x/tcp":[{}]}}}`},
		{"", `{}`}, {"", `{"Image":`},
	} {
		f.Add(s.name, s.body)
	}
	fd := newFakeDaemon(f)
	f.Fuzz(func(t *testing.T, name, body string) {
		fuzzBody(t, fd, "POST", "/containers/create?name="+url.QueryEscape(name), body)
	})
}

// FuzzNetworkConnect: POST /networks/{id}/connect and …/disconnect of the
// fake daemon's container (created, not running).
func FuzzNetworkConnect(f *testing.F) {
	for _, s := range []struct {
		network, body string
		disconnect    bool
	}{
		{"bridge", `{"Container":"c1"}`, false},
		{"net1", `{"Container":"c1","EndpointConfig":{"IPAMConfig":{"IPv4Address":"10.77.0.20","IPv6Address":"fd00::1"},"Aliases":["a","b.c"],"MacAddress":"02:00:00:00:00:01","Links":["x:y"],"DriverOpts":{"k":"v"}}}`, false},
		{"net1", `{"Container":"c1","Force":true}`, true},
		{"bridge", `{"Container":"c1"}`, true},
		{"host", `{"Container":"c1"}`, false},
		{"none", `{"Container":"c1"}`, false},
		{"nosuch", `{"Container":"c1"}`, false},
		{"bridge", `{"Container":""}`, false},
		{"bridge", `{"Container":"c1","EndpointConfig":{"Aliases":["-bad-"]}}`, false},
		{"bridge", `{"Container":"c1","EndpointConfig":{"IPAMConfig":{"IPv4Address":"fd00::1"}}}`, false},
		{"bridge", `{"Container":"c1","EndpointConfig":{"MacAddress":"zz"}}`, false},
		{"bridge", `{`, false},
	} {
		f.Add(s.network, s.body, s.disconnect)
	}
	fd := newFakeDaemon(f)
	f.Fuzz(func(t *testing.T, network, body string, disconnect bool) {
		verb := "connect"
		if disconnect {
			verb = "disconnect"
		}
		fuzzBody(t, fd, "POST", "/networks/"+pathSegment(network)+"/"+verb, body)
	})
}

func FuzzSandboxCreate(f *testing.F) {
	for _, s := range []string{
		`{"Name":"s2"}`, `{"Name":"s2","Key":"/run/netns/s2"}`, `{"Key":"/proc/1/ns/net"}`,
		`{"Name":"sb1"}`, `{"Name":"-x"}`, `{"Name":"` + strings.Repeat("s", 129) + `"}`, `{}`, `{"Key":""}`, `"x"`,
	} {
		f.Add(s)
	}
	fd := newFakeDaemon(f)
	f.Fuzz(func(t *testing.T, body string) {
		fuzzBody(t, fd, "POST", "/sandboxes/create", body)
	})
}

// FuzzSandboxConnect: POST /sandboxes/{id}/connect and …/disconnect.
func FuzzSandboxConnect(f *testing.F) {
	for _, s := range []struct {
		sandbox, body string
		disconnect    bool
	}{
		{"sb1", `{"Network":"bridge"}`, false},
		{"sb1", `{"Network":"bridge","EndpointConfig":{"IPAMConfig":{"IPv4Address":"172.17.0.9"},"Aliases":["x"],"MacAddress":"02:00:00:00:00:09"},"PortBindings":{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"}],"53/udp":[{"HostPort":"1000-1010"},{"HostIp":"::1"}]}}`, false},
		{"sb1", `{"Network":"bridge","PortBindings":{"0/tcp":[]}}`, false},
		{"sb1", `{"Network":"bridge","PortBindings":{"80/icmp":[]}}`, false},
		{"sb1", `{"Network":"bridge","PortBindings":{"80/tcp":[{"HostPort":"9-1"}]}}`, false},
		{"sb1", `{"Network":"net1"}`, true},
		{"sb1", `{"Network":"net1","Force":true}`, true},
		{"sb1", `{"Network":"host"}`, false},
		{"sb1", `{"Network":"none"}`, false},
		{"sb1", `{"Network":""}`, false},
		{"nosuch", `{"Network":"bridge"}`, false},
		{"sb1", `{"Network":"bridge","EndpointConfig":{"IPAMConfig":{"IPv6Address":"10.0.0.1"}}}`, false},
	} {
		f.Add(s.sandbox, s.body, s.disconnect)
	}
	fd := newFakeDaemon(f)
	f.Fuzz(func(t *testing.T, sandbox, body string, disconnect bool) {
		verb := "connect"
		if disconnect {
			verb = "disconnect"
		}
		fuzzBody(t, fd, "POST", "/sandboxes/"+pathSegment(sandbox)+"/"+verb, body)
	})
}

// FuzzExec: exec create and start. No container runs over fakes, so what
// is fuzzed is the decoding and the checks before the process would start.
func FuzzExec(f *testing.F) {
	for _, s := range []struct{ container, create, exec, start string }{
		{"c1", `{"Cmd":["ip","addr"],"AttachStdout":true,"AttachStderr":true,"Env":["A=1"],"WorkingDir":"/","User":"0"}`, "x", `{"Detach":false}`},
		{"c1", `{"Cmd":[]}`, "x", `{"Detach":true}`},
		{"c1", `{"Cmd":["sh"],"Tty":true}`, "", `{"Tty":true}`},
		{"nosuch", `{"Cmd":["sh"]}`, "nosuch", `{`},
		{"c1", ``, "x", ``},
	} {
		f.Add(s.container, s.create, s.exec, s.start)
	}
	fd := newFakeDaemon(f)
	f.Fuzz(func(t *testing.T, container, create, exec, start string) {
		code, out := fd.do("POST", "/containers/"+pathSegment(container)+"/exec", create)
		fd.check(t, "exec create", code, out)
		code, out = fd.do("POST", "/exec/"+pathSegment(exec)+"/start", start)
		fd.check(t, "exec start", code, out)
		code, out = fd.do("GET", "/exec/"+pathSegment(exec)+"/json", "")
		fd.check(t, "exec inspect", code, out)
		fd.reset(t)
	})
}

// FuzzImageImport: the parameters of POST /images/create and the archive
// it streams.
func FuzzImageImport(f *testing.F) {
	rootfs, err := tinyRootFS()
	if err != nil {
		f.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(rootfs)
	zw.Close()
	for _, s := range []struct {
		query string
		body  []byte
	}{
		{"fromSrc=-&repo=img&tag=v1&message=m&changes=CMD+%5B%22sh%22%5D&changes=ENV+A%3D1&changes=EXPOSE+80%2Fudp", rootfs},
		{"fromSrc=-&repo=img&changes=LABEL+a%3Db+c%3Dd&changes=WORKDIR+%2Fw&changes=USER+1&changes=STOPSIGNAL+TERM&changes=VOLUME+%2Fv&changes=ENTRYPOINT+sh", gz.Bytes()},
		{"fromSrc=-&repo=fuzzbase", rootfs},
		{"fromSrc=-&repo=img%40sha256%3A0123", rootfs},
		{"fromSrc=-&repo=UPPER&tag=x", rootfs},
		{"fromSrc=-&platform=windows", rootfs},
		{"fromSrc=http%3A%2F%2Fx", nil},
		{"fromImage=busybox&tag=1", nil},
		{"fromSrc=-&changes=RUN+x", rootfs},
		{"fromSrc=-", []byte("not a tar")},
		{"fromSrc=-", []byte("BZh91AY&SY")},
		{"fromSrc=-", nil},
		{"", nil},
	} {
		f.Add(s.query, s.body)
	}
	fd := newFakeDaemon(f)
	f.Fuzz(func(t *testing.T, query string, body []byte) {
		if bytes.HasPrefix(body, []byte{0xfd, '7', 'z', 'X', 'Z', 0}) || bytes.HasPrefix(body, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
			// xz and zstd input goes to a process of its own.
			t.Skip("external decompressor")
		}
		req := httptest.NewRequest("POST", "/images/create", bytes.NewReader(body))
		req.URL.RawQuery = query
		code, out := fd.serve(req)
		fd.check(t, "import", code, out)
		fd.reset(t)
	})
}

// FuzzListFilters: the filters parameter of every route that takes one.
func FuzzListFilters(f *testing.F) {
	for _, s := range []struct {
		route   uint8
		filters string
	}{
		{0, `{"name":{"net":true},"driver":{"bridge":true},"type":{"custom":true},"dangling":{"true":true},"label":{"a=b":true}}`},
		{0, `{"id":["^[0-9a-f]+$"],"scope":["local"]}`},
		{0, `{"name":{"(":true}}`},
		{0, `{"type":{"other":true}}`},
		{1, `{"until":{"10m":true},"label":{"a":true},"label!":{"b=c":true}}`},
		{1, `{"until":{"2024-01-01T00:00:00":true}}`},
		{1, `{"until":{"1700000000.5":true}}`},
		{1, `{"until":{"x":true}}`},
		{2, `{"status":{"created":true},"name":{"c.":true},"network":{"net1":true},"exited":{"0":true},"ancestor":{"fuzzbase":true},"id":{"0":true}}`},
		{3, `{"dangling":{"false":true},"reference":{"fuzz*":true},"before":{"fuzzbase":true},"since":{"fuzzbase":true},"until":{"1h":true}}`},
		{3, `{"reference":{"[":true}}`},
		{4, `{"nosuch":{"x":true}}`},
		{5, `{"dangling":{"false":true},"until":{"1h":true},"label!":{"a":true}}`},
		{5, `{"dangling":{"maybe":true}}`},
		{0, `null`}, {0, `[]`}, {0, `{"name":null}`}, {0, `{"name":[null]}`}, {0, ``},
	} {
		f.Add(s.route, s.filters)
	}
	routes := []struct{ method, path string }{
		{"GET", "/networks"}, {"POST", "/networks/prune"}, {"GET", "/containers/json?all=1"},
		{"GET", "/images/json"}, {"GET", "/containers/json?limit=1"}, {"POST", "/images/prune"},
	}
	fd := newFakeDaemon(f)
	f.Fuzz(func(t *testing.T, route uint8, filters string) {
		r := routes[int(route)%len(routes)]
		sep := "?"
		if strings.Contains(r.path, "?") {
			sep = "&"
		}
		fuzzBody(t, fd, r.method, r.path+sep+"filters="+url.QueryEscape(filters), "")
	})
}

// FuzzAPIRequest: any request at all, as the server reads it off the
// socket, to any route.
func FuzzAPIRequest(f *testing.F) {
	for _, s := range []string{
		"GET /_ping HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"HEAD /v1.41/_ping HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /v1.56/version HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /v9.9/networks HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /v1.2.3/networks HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /networks/net1 HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"DELETE /networks/bridge HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"POST /networks/create HTTP/1.1\r\nHost: berthd\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"Name\":\"x\"}",
		"POST /networks/create HTTP/1.1\r\nHost: berthd\r\nContent-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"Nam\r\n7\r\ne\":\"y\"}\r\n0\r\n\r\n",
		"POST /networks/create HTTP/1.1\r\nHost: berthd\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}",
		"POST /containers/c1/start HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"POST /containers/c1/stop?t=x HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"POST /containers/c1/kill?signal=NOPE HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"POST /containers/c1/restart?t=-1 HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /containers/c1/json HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /containers/c1/logs?stdout=1&tail=x&since=1h HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /containers/c1/logs?stdout=1&tail=2&until=0 HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"POST /containers/c1/resize?h=1&w=1 HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"DELETE /containers/c1?force=maybe HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /sandboxes HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /sandboxes/sb1 HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"DELETE /sandboxes/sb1 HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /images/fuzzbase/json HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /images/library/fuzzbase:latest/json HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"DELETE /images/fuzzbase?force=1 HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /images/json?filters=%7B%22reference%22%3A%7B%22%5B%22%3Atrue%7D%7D HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /debug/pprof/cmdline HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /nothing HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET //networks/../networks HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /containers/json?all=1&limit=x HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /containers/json?limit=2 HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /containers/c1/logs?stdout=1&stderr=1&follow=1&timestamps=1&tail=all HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"POST /containers/c1/wait?condition=next-exit HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"POST /containers/c1/wait?condition=bogus HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"POST /containers/c1/attach?stream=1&stdout=1&stdin=1 HTTP/1.1\r\nHost: berthd\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n",
		"POST /exec/x/resize?h=1&w=x HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"POST /containers/c1/resize?h=70000&w=-1 HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /metrics HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /topology?format=svg&network=net1 HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /topology?format=dot&network=nosuch HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /topology?format=png HTTP/1.1\r\nHost: berthd\r\n\r\n",
		"GET /ui/ HTTP/1.1\r\nHost: berthd\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	fd := newFakeDaemon(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		req := rawRequest(raw)
		if req == nil {
			return
		}
		if skipped.MatchString(versionPrefix.ReplaceAllString(req.URL.Path, "$2")) {
			return
		}
		if strings.HasPrefix(req.URL.Path, "/debug/") && req.URL.Query().Has("seconds") {
			return
		}
		// Waits for conditions that never come end with the client.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		code, out := fd.serve(req.WithContext(ctx))
		fd.check(t, req.Method+" "+req.URL.String(), code, out)
		fd.reset(t)
	})
}

// skipped are the routes the generic fuzz target leaves out: info reads
// the host's firewall, which fakes do not have, starts mount root
// filesystems, and profiles take seconds.
var skipped = regexp.MustCompile(`^(/info|/containers/[^/]*/(start|restart)|/debug/pprof/(profile|trace))/?$`)
