package main

import (
	"net/http"
	"testing"

	"github.com/berth-net/berth/api"
)

var doctorReport = api.DoctorReport{Findings: []api.Finding{
	{Check: "kernel", Status: "ok", Message: "bridge: the kernel has bridge, veth"},
	{Check: "kernel", Status: "warn", Message: "ipvlan: the kernel lacks ipvlan (every network)", Fix: "modprobe ipvlan (CONFIG_IPVLAN)"},
	{Check: "firewall", Status: "fail", Message: "ip filter FORWARD drops forwarded packets by policy", Fix: `nft insert rule ip filter FORWARD iifname "br-1" accept`},
}}

func TestDoctorPrintsOneLinePerFindingAndFailsOnAFailure(t *testing.T) {
	d := newFakeDaemon(t)
	d.answer("GET /berth/doctor", http.StatusOK, doctorReport)
	d.run("doctor").expect(t, ""+
		"ok    kernel    bridge: the kernel has bridge, veth\n"+
		"warn  kernel    ipvlan: the kernel lacks ipvlan (every network) | fix: modprobe ipvlan (CONFIG_IPVLAN)\n"+
		`fail  firewall  ip filter FORWARD drops forwarded packets by policy | fix: nft insert rule ip filter FORWARD iifname "br-1" accept`+"\n",
		"", 1)
	d.run("doctor", "-q", "--format", "{{.Status}} {{.Check}}").expect(t, "warn kernel\nfail firewall\n", "", 1)
	if n := len(d.calls("GET", "/berth/doctor")); n != 2 {
		t.Errorf("%d doctor requests for two runs", n)
	}
}

func TestDoctorSucceedsWithWarnings(t *testing.T) {
	d := newFakeDaemon(t)
	d.answer("GET /berth/doctor", http.StatusOK, api.DoctorReport{Findings: doctorReport.Findings[:2]})
	d.run("doctor", "--quiet").expect(t, "warn  kernel  ipvlan: the kernel lacks ipvlan (every network) | fix: modprobe ipvlan (CONFIG_IPVLAN)\n", "", 0)
	d.run("doctor", "-f", "json").expect(t, ""+
		`{"Check":"kernel","Status":"ok","Message":"bridge: the kernel has bridge, veth"}`+"\n"+
		`{"Check":"kernel","Status":"warn","Message":"ipvlan: the kernel lacks ipvlan (every network)","Fix":"modprobe ipvlan (CONFIG_IPVLAN)"}`+"\n", "", 0)
	d.run("doctor", "extra").expect(t, "", "\"berth doctor\" accepts no arguments.\nSee 'berth doctor --help'.\n\nUsage:  berth doctor [OPTIONS]\n\nCheck the host and berth's state for what keeps containers' networking from working\n", 1)
}

func TestNetworkTraceExplainsAndExitsByTheVerdict(t *testing.T) {
	d := newFakeDaemon(t)
	denied := api.TraceReport{Source: "web", Destination: "db, port 5432/tcp", Verdict: "denied",
		Rule:   "inet berth forward: iifname @bridges oifname @bridges drop",
		Path:   []string{"web (172.18.0.2 on app) to db (172.19.0.2 on data), port 5432/tcp", "routed by the host from br-a (network app) to br-d (network data)"},
		Reason: "berth's networks are isolated from each other", Notes: []string{"db publishes 5432/tcp on port 8080"}}
	d.answer("GET /berth/trace", http.StatusOK, denied)
	d.run("network", "trace", "web", "db:5432").expect(t, ""+
		"web -> db, port 5432/tcp: denied\n"+
		"  web (172.18.0.2 on app) to db (172.19.0.2 on data), port 5432/tcp\n"+
		"  routed by the host from br-a (network app) to br-d (network data)\n"+
		"rule: inet berth forward: iifname @bridges oifname @bridges drop\n"+
		"why:  berth's networks are isolated from each other\n"+
		"note: db publishes 5432/tcp on port 8080\n", "", 1)
	q := d.calls("GET", "/berth/trace")[0].Query
	if q["src"][0] != "web" || q["dst"][0] != "db:5432" {
		t.Errorf("query %v", q)
	}

	d2 := newFakeDaemon(t)
	d2.answer("GET /berth/trace", http.StatusOK, api.TraceReport{Source: "web", Destination: "api", Verdict: "allowed", Reachable: true, Reason: "one network"})
	d2.run("network", "trace", "--format", "{{.Verdict}} {{.Reachable}}", "web", "api").expect(t, "allowed true\n", "", 0)
	d3 := newFakeDaemon(t)
	d3.fail("GET /berth/trace", http.StatusNotFound, "no such container or sandbox: ghost")
	d3.run("network", "trace", "ghost", "api").expect(t, "", "Error response from daemon: no such container or sandbox: ghost\n", 1)
}
