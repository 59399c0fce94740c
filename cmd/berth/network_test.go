package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// networkJSON is a network as berthd lists it (Docker 20.10's shape), with
// labels given as a JSON object.
func networkJSON(id, name, driver, labels string) string {
	return fmt.Sprintf(`{"Name":%q,"Id":%q,"Created":"2026-11-28T06:59:25.123456789Z","Scope":"local",`+
		`"Driver":%q,"EnableIPv6":false,"IPAM":{"Driver":"default","Options":null,"Config":[]},`+
		`"Internal":false,"Attachable":false,"Ingress":false,"ConfigFrom":{"Network":""},"ConfigOnly":false,`+
		`"Containers":{},"Options":{},"Labels":%s}`, name, id, driver, labels)
}

// The predefined networks of F1 in the Docker reference, listed by the
// daemon in an order that is not docker's.
var f1Networks = "[" + strings.Join([]string{
	networkJSON("351d2e0c392ec6b695cb2c72321616ed614053077bfadd545fc383f7def6e00b", "none", "null", "{}"),
	networkJSON("30dc41dd27870685f94c168ae7107f3a89bc8da017b8750bb8a604fee03051d9", "bridge", "bridge", "{}"),
	networkJSON("d77fde168e301c4ec408e496c38a720fab53bc70e0f38b294a6174481edf92cb", "host", "host", "{}"),
}, ",") + "]"

func TestNetworkLsPrintsDockersTableByteForByte(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /networks", f1Networks)

	d.run("network", "ls").expect(t, ""+
		"NETWORK ID     NAME      DRIVER    SCOPE\n"+
		"30dc41dd2787   bridge    bridge    local\n"+
		"d77fde168e30   host      host      local\n"+
		"351d2e0c392e   none      null      local\n", "", 0)
}

func TestNetworkLsAlignsUserNetworksLikeDocker(t *testing.T) {
	// F13 of the Docker reference: only the short IDs are known, so the
	// daemon's full IDs are padded with zeros.
	var nets []string
	for _, n := range [][3]string{
		{"fca218a98d08", "f_exp", "bridge"}, {"d77fde168e30", "host", "host"},
		{"8fed2b2f81bc", "f_int", "bridge"}, {"30dc41dd2787", "bridge", "bridge"},
		{"80766ce7ea81", "f_auto2", "bridge"}, {"351d2e0c392e", "none", "null"},
		{"74f6e1e9e80b", "f_auto1", "bridge"}, {"e70021d29450", "f_iso", "bridge"},
	} {
		nets = append(nets, networkJSON(n[0]+strings.Repeat("0", 52), n[1], n[2], "{}"))
	}
	d := newFakeDaemon(t)
	d.answerRaw("GET /networks", "["+strings.Join(nets, ",")+"]")

	d.run("network", "ls").expect(t, ""+
		"NETWORK ID     NAME      DRIVER    SCOPE\n"+
		"30dc41dd2787   bridge    bridge    local\n"+
		"74f6e1e9e80b   f_auto1   bridge    local\n"+
		"80766ce7ea81   f_auto2   bridge    local\n"+
		"fca218a98d08   f_exp     bridge    local\n"+
		"8fed2b2f81bc   f_int     bridge    local\n"+
		"e70021d29450   f_iso     bridge    local\n"+
		"d77fde168e30   host      host      local\n"+
		"351d2e0c392e   none      null      local\n", "", 0)
}

func TestNetworkLsTemplateWithNoTruncPrintsFullIDs(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /networks", f1Networks)

	d.run("network", "ls", "--no-trunc", "--format",
		"{{.ID}} {{.Name}} {{.Driver}} {{.Scope}} ipv6={{.IPv6}} internal={{.Internal}}").expect(t, ""+
		"30dc41dd27870685f94c168ae7107f3a89bc8da017b8750bb8a604fee03051d9 bridge bridge local ipv6=false internal=false\n"+
		"d77fde168e301c4ec408e496c38a720fab53bc70e0f38b294a6174481edf92cb host host local ipv6=false internal=false\n"+
		"351d2e0c392ec6b695cb2c72321616ed614053077bfadd545fc383f7def6e00b none null local ipv6=false internal=false\n",
		"", 0)
}

func TestNetworkLsQuietPrintsOnlyIDs(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /networks", f1Networks)

	d.run("network", "ls", "-q").expect(t, "30dc41dd2787\nd77fde168e30\n351d2e0c392e\n", "", 0)
	d.run("network", "ls", "-q", "--no-trunc").expect(t, ""+
		"30dc41dd27870685f94c168ae7107f3a89bc8da017b8750bb8a604fee03051d9\n"+
		"d77fde168e301c4ec408e496c38a720fab53bc70e0f38b294a6174481edf92cb\n"+
		"351d2e0c392ec6b695cb2c72321616ed614053077bfadd545fc383f7def6e00b\n", "", 0)
}

func TestNetworkLsSendsFiltersAsDockerDoes(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /networks", "[]")

	d.run("network", "ls", "--filter", "driver=bridge").expect(t, "NETWORK ID   NAME      DRIVER    SCOPE\n", "", 0)
	d.run("network", "list", "-f", "label=a=1", "-f", "Label=b", "-f", "name= x ", "--format", "{{.Name}}").
		expect(t, "", "", 0)

	calls := d.calls("GET", "/networks")
	if len(calls) != 2 {
		t.Fatalf("GET /networks called %d times, want 2", len(calls))
	}
	if got := calls[0].Query["filters"]; len(got) != 1 || got[0] != `{"driver":{"bridge":true}}` {
		t.Errorf("filters = %q, want {\"driver\":{\"bridge\":true}}", got)
	}
	if got := calls[1].Query["filters"]; len(got) != 1 || got[0] != `{"label":{"a=1":true,"b":true},"name":{"x":true}}` {
		t.Errorf("filters = %q", got)
	}
	if calls[0].Version != "1.41" {
		t.Errorf("request went to API version %q, want the daemon's 1.41", calls[0].Version)
	}
}

func TestNetworkLsWithoutFiltersSendsNone(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /networks", "[]")
	d.run("network", "ls", "-q").expect(t, "", "", 0)
	if q := d.onlyCall("GET", "/networks").Query; len(q) != 0 {
		t.Errorf("query = %v, want none", q)
	}
}

func TestNetworkLsRejectsFilterWithoutEquals(t *testing.T) {
	d := newFakeDaemon(t)
	d.run("network", "ls", "--filter", "bridge").expect(t, "",
		"invalid argument \"bridge\" for \"-f, --filter\" flag: bad format of filter (expected name=value)\n"+
			"See 'berth network ls --help'.\n", 125)
	if n := len(d.calls("GET", "/networks")); n != 0 {
		t.Errorf("daemon asked %d times despite the bad flag", n)
	}
}

func TestNetworkLsJSONFormatPrintsOneObjectPerRow(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /networks", "["+networkJSON("d77fde168e301c4ec408e496c38a720fab53bc70e0f38b294a6174481edf92cb",
		"host", "host", "{}")+"]")

	d.run("network", "ls", "--format", "json").expect(t,
		`{"CreatedAt":"2026-11-28 06:59:25.123456789 +0000 UTC","Driver":"host","ID":"d77fde168e30",`+
			`"IPv6":"false","Internal":"false","Labels":"","Name":"host","Scope":"local"}`+"\n", "", 0)
}

func TestNetworkLsCustomTableHasHeadersAndNaturalOrder(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /networks", "["+strings.Join([]string{
		networkJSON("aa", "net10", "bridge", `{"env":"prod","team":"blue"}`),
		networkJSON("bb", "net2", "macvlan", `{}`),
	}, ",")+"]")

	d.run("network", "ls", "--format", `table {{.Name}}\t{{.Label "env"}}\t{{.Labels}}\t{{json .Driver}}`).expect(t, ""+
		"NAME      env       LABELS               DRIVER\n"+
		"net2                                     \"macvlan\"\n"+
		"net10     prod      env=prod,team=blue   \"bridge\"\n", "", 0)
}

func TestNetworkLsReportsTemplateErrors(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /networks", f1Networks)

	r := d.run("network", "ls", "--format", "{{.Nope}}")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "Template parsing error: ") || !strings.Contains(r.stderr, "can't evaluate field Nope") {
		t.Errorf("got %+v, want a template error and exit 1", r)
	}
	r = d.run("network", "ls", "--format", "{{.Name")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "Template parsing error: ") || r.stdout != "" {
		t.Errorf("got %+v, want a template parsing error and exit 1", r)
	}
}

func TestNetworkCreateGroupsAddressesUnderTheirSubnets(t *testing.T) {
	d := newFakeDaemon(t)
	d.answer("POST /networks/create", http.StatusCreated, map[string]string{"Id": "4f0c1d", "Warning": ""})

	d.run("network", "create",
		"--subnet", "10.1.0.0/16", "--subnet", "10.2.0.0/16,fd00:1::/64",
		"--gateway", "10.2.0.1", "--gateway", "10.1.0.254",
		"--ip-range", "10.1.4.0/24",
		"--aux-address", "router=10.2.0.2", "--aux-address", "printer=10.1.0.5", "--aux-address", "v6=fd00:1::5",
		"-d", "macvlan", "-o", "parent=eth0", "--opt", "macvlan_mode=bridge",
		"--ipam-driver", "custom", "--ipam-opt", "x=1",
		"--label", "env=prod", "--label", "flag",
		"--internal", "--attachable", "--ipv6", "--scope", "local",
		"mynet").expect(t, "4f0c1d\n", "", 0)

	jsonEqual(t, d.onlyCall("POST", "/networks/create").Body, `{
		"Name": "mynet",
		"CheckDuplicate": true,
		"Driver": "macvlan",
		"Scope": "local",
		"EnableIPv6": true,
		"IPAM": {
			"Driver": "custom",
			"Options": {"x": "1"},
			"Config": [
				{"Subnet": "10.1.0.0/16", "IPRange": "10.1.4.0/24", "Gateway": "10.1.0.254",
				 "AuxiliaryAddresses": {"printer": "10.1.0.5"}},
				{"Subnet": "10.2.0.0/16", "Gateway": "10.2.0.1",
				 "AuxiliaryAddresses": {"router": "10.2.0.2"}},
				{"Subnet": "fd00:1::/64", "AuxiliaryAddresses": {"v6": "fd00:1::5"}}
			]
		},
		"Internal": true,
		"Attachable": true,
		"Ingress": false,
		"ConfigOnly": false,
		"Options": {"parent": "eth0", "macvlan_mode": "bridge"},
		"Labels": {"env": "prod", "flag": ""}
	}`)
}

func TestNetworkCreateSendsDockersDefaults(t *testing.T) {
	d := newFakeDaemon(t)
	d.answer("POST /networks/create", http.StatusCreated, map[string]string{"Id": "abc"})

	d.run("network", "create", "plain").expect(t, "abc\n", "", 0)
	jsonEqual(t, d.onlyCall("POST", "/networks/create").Body, `{
		"Name": "plain", "CheckDuplicate": true, "Driver": "bridge", "Scope": "",
		"IPAM": {"Driver": "default", "Options": {}, "Config": []},
		"Internal": false, "Attachable": false, "Ingress": false, "ConfigOnly": false,
		"Options": {}, "Labels": {}
	}`)
}

func TestNetworkCreateSendsIPv4AndIPv6OnlyWhenGiven(t *testing.T) {
	d := newFakeDaemon(t)
	d.apiVersion = "1.44" // recent daemons refuse duplicate names unasked
	d.answer("POST /networks/create", http.StatusCreated, map[string]string{"Id": "abc"})

	d.run("network", "create", "--ipv4=false", "--ipv6=false", "--config-from", "tmpl", "--config-only", "--ingress", "v4off").
		expect(t, "abc\n", "", 0)
	jsonEqual(t, d.onlyCall("POST", "/networks/create").Body, `{
		"Name": "v4off", "Driver": "bridge", "Scope": "", "EnableIPv4": false, "EnableIPv6": false,
		"IPAM": {"Driver": "default", "Options": {}, "Config": []},
		"Internal": false, "Attachable": false, "Ingress": true, "ConfigOnly": true,
		"ConfigFrom": {"Network": "tmpl"},
		"Options": {}, "Labels": {}
	}`)
}

func TestNetworkCreateRefusesAddressesItCannotGroup(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--subnet", "172.29.20.0/24", "--gateway", "172.29.21.1"}, "no matching subnet for gateway 172.29.21.1"},
		{[]string{"--subnet", "10.0.0.0/24", "--ip-range", "10.1.0.0/26"}, "no matching subnet for range 10.1.0.0/26"},
		{[]string{"--subnet", "10.0.0.0/24", "--aux-address", "a=10.1.0.5"}, "no matching subnet for aux-address 10.1.0.5"},
		{[]string{"--subnet", "10.0.0.0/24", "--subnet", "10.0.0.0/16"}, "multiple overlapping subnet configuration is not supported"},
		{[]string{"--subnet", "10.0.0.0/16", "--subnet", "10.0.5.0/24"}, "multiple overlapping subnet configuration is not supported"},
		{[]string{"--subnet", "10.0.0.0/24", "--subnet", "10.1.0.0/24", "--ip-range", "10.0.0.0/26", "--ip-range", "10.0.0.64/26"},
			"cannot configure multiple ranges (10.0.0.64/26, 10.0.0.0/26) on the same subnet (10.0.0.0/24)"},
		{[]string{"--subnet", "10.0.0.0/24", "--subnet", "10.1.0.0/24", "--gateway", "10.0.0.1", "--gateway", "10.0.0.2"},
			"cannot configure multiple gateways (10.0.0.2, 10.0.0.1) for the same subnet (10.0.0.0/24)"},
		{[]string{"--subnet", "10.0.0.0/24", "--gateway", "10.0.0.1", "--gateway", "10.0.0.2"},
			"every ip-range or gateway must have a corresponding subnet"},
		{[]string{"--gateway", "10.0.0.1"}, "every ip-range or gateway must have a corresponding subnet"},
		{[]string{"--subnet", "10.0.0.0/24", "--ip-range", "foo"}, "invalid CIDR address: foo"},
		{[]string{"--subnet", "10.0.0.0/33", "--gateway", "10.0.0.1"}, "invalid subnet: invalid CIDR address: 10.0.0.0/33"},
		{[]string{"--subnet", "10.0.0.0/24", "--gateway", "foo"}, "no matching subnet for gateway foo"},
		{[]string{"--subnet", "10.0.0.0/24", "--aux-address", "a10.0.0.5"}, "no matching subnet for aux-address "},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			d := newFakeDaemon(t)
			d.answer("POST /networks/create", http.StatusCreated, map[string]string{"Id": "abc"})
			d.run(append(append([]string{"network", "create"}, tc.args...), "n")...).expect(t, "", tc.want+"\n", 1)
			if n := len(d.calls("POST", "/networks/create")); n != 0 {
				t.Errorf("the network was sent to the daemon %d times", n)
			}
		})
	}
}

func TestNetworkCreateLeavesSubnetSyntaxToTheDaemon(t *testing.T) {
	// F4: docker sends a lone bad subnet and prints the daemon's verdict.
	d := newFakeDaemon(t)
	d.fail("POST /networks/create", http.StatusBadRequest, "Invalid subnet 10.0.0.0/33 : invalid CIDR address: 10.0.0.0/33")

	d.run("network", "create", "--subnet", "10.0.0.0/33", "f_bad").expect(t, "",
		"Error response from daemon: Invalid subnet 10.0.0.0/33 : invalid CIDR address: 10.0.0.0/33\n", 1)
	if body := string(d.onlyCall("POST", "/networks/create").Body); !strings.Contains(body, `"Subnet":"10.0.0.0/33"`) {
		t.Errorf("body %s does not carry the subnet as typed", body)
	}
}

func TestNetworkCreatePrintsDaemonErrors(t *testing.T) {
	d := newFakeDaemon(t)
	d.fail("POST /networks/create", http.StatusConflict, "network with name f_exp already exists")

	d.run("network", "create", "f_exp").expect(t, "",
		"Error response from daemon: network with name f_exp already exists\n", 1)
}

func TestNetworkCreatePrintsWarningsOnStderr(t *testing.T) {
	d := newFakeDaemon(t)
	d.answer("POST /networks/create", http.StatusCreated,
		map[string]string{"Id": "7823432ec294", "Warning": "subnet overlaps a host route"})

	d.run("network", "create", "w").expect(t, "7823432ec294\n", "WARNING: subnet overlaps a host route\n", 0)
}

func TestNetworkCreateWithoutNameIsAUsageError(t *testing.T) {
	runBerth("", nil, "network", "create").expect(t, "", ""+
		"\"berth network create\" requires exactly 1 argument.\n"+
		"See 'berth network create --help'.\n"+
		"\n"+
		"Usage:  berth network create [OPTIONS] NETWORK\n"+
		"\n"+
		"Create a network\n", 1)
}

func TestUnknownFlagExitsWithDockersCode(t *testing.T) {
	runBerth("", nil, "network", "create", "--nope", "x").expect(t, "",
		"unknown flag: --nope\nSee 'berth network create --help'.\n", 125)
}

func TestNetworkInspectPrintsDaemonJSONIndentedByFourSpaces(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /networks/{id}", `{"Name":"a","Id":"1","IPAM":{"Config":[{"Subnet":"10.0.0.0/24"}]},"Containers":{},"BerthExtra":{"k":[1,"<x>"]}}`+"\n")

	// Both names get the same network, so it is printed twice.
	const network = `    {
        "Name": "a",
        "Id": "1",
        "IPAM": {
            "Config": [
                {
                    "Subnet": "10.0.0.0/24"
                }
            ]
        },
        "Containers": {},
        "BerthExtra": {
            "k": [
                1,
                "<x>"
            ]
        }
    }`
	d.run("network", "inspect", "a", "b").expect(t, "[\n"+network+",\n"+network+"\n]\n", "", 0)
}

func TestNetworkInspectJSONFormatIsTheArrayOnOneLine(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /networks/{id}", `{"Name": "a",`+"\n"+` "Labels": {"x": "\u003c"}}`)

	d.run("network", "inspect", "--format", "json", "a", "a").
		expect(t, `[{"Name":"a","Labels":{"x":"\u003c"}},{"Name":"a","Labels":{"x":"\u003c"}}]`+"\n", "", 0)
}

func TestNetworkInspectReportsMissingNetworksAfterTheOthers(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("GET /networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch id := r.PathValue("id"); id {
		case "here":
			writeJSON(w, http.StatusOK, map[string]string{"Name": "here"})
		case "broken":
			writeError(w, http.StatusInternalServerError, "store is closed")
		default:
			writeError(w, http.StatusNotFound, "network "+id+" not found")
		}
	})

	d.run("network", "inspect", "gone", "here", "broken").expect(t,
		"[\n    {\n        \"Name\": \"here\"\n    }\n]\n",
		"Error: No such network: gone\nError response from daemon: store is closed\n", 1)
	d.run("network", "inspect", "gone").expect(t, "[]\n", "Error: No such network: gone\n", 1)
	d.run("network", "inspect", "-f", "{{.Name}}", "gone").expect(t, "\n", "Error: No such network: gone\n", 1)
}

func TestNetworkInspectTemplates(t *testing.T) {
	d := newFakeDaemon(t)
	// F4's f_bad2: a subnet without gateway; the daemon leaves Gateway out.
	d.answerRaw("GET /networks/{id}", `{"Name":"f_bad2","Id":"7823432ec294020fec48c7aeb4e465306f10af20fa463bc9a5011a9472a56a86",`+
		`"Internal":true,"IPAM":{"Driver":"default","Config":[{"Subnet":"172.29.30.1/24"}]},"Options":{},`+
		`"Labels":{"a":"<b>"},"BerthExtra":"kept"}`)

	d.run("network", "inspect", "-f", "{{range .IPAM.Config}}subnet={{.Subnet}} gw={{.Gateway}}{{end}}", "f_bad2").
		expect(t, "subnet=172.29.30.1/24 gw=\n", "", 0)
	d.run("network", "inspect", "-f", "internal={{.Internal}} opts={{.Options}} {{json .Labels}} {{printf \"%.12s\" .Id}}", "f_bad2").
		expect(t, "internal=true opts=map[] {\"a\":\"<b>\"} 7823432ec294\n", "", 0)
	// A field berth does not model is read from the daemon's JSON.
	d.run("network", "inspect", "--format", "{{.BerthExtra}} {{.Name}}", "f_bad2", "f_bad2").
		expect(t, "kept f_bad2\nkept f_bad2\n", "", 0)
}

func TestNetworkRmPrintsRemovedNamesAndReportsMissingOnes(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("DELETE /networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		if id := r.PathValue("id"); id == "nosuchnet" {
			writeError(w, http.StatusNotFound, "network "+id+" not found")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})

	d.run("network", "rm", "n1", "nosuchnet", "n2").expect(t, "n1\nn2\n", "Error: No such network: nosuchnet\n", 1)
	d.run("network", "remove", "nosuchnet").expect(t, "", "Error: No such network: nosuchnet\n", 1)
	d.run("network", "rm", "-f", "nosuchnet", "n3").expect(t, "n3\n", "", 0)
	if n := len(d.calls("DELETE", "/networks/nosuchnet")); n != 3 {
		t.Errorf("DELETE /networks/nosuchnet called %d times, want 3", n)
	}
}

func TestNetworkRmPrintsDaemonRefusals(t *testing.T) {
	d := newFakeDaemon(t)
	d.fail("DELETE /networks/{id}", http.StatusForbidden, "bridge is a pre-defined network and cannot be removed")

	d.run("network", "rm", "bridge").expect(t, "",
		"Error response from daemon: bridge is a pre-defined network and cannot be removed\n", 1)
}

const pruneQuestion = "WARNING! This will remove all custom networks not used by at least one container.\n" +
	"Are you sure you want to continue? [y/N] "

func TestNetworkPruneAsksFirstAndStopsOnNo(t *testing.T) {
	d := newFakeDaemon(t)
	d.answer("POST /networks/prune", http.StatusOK, map[string][]string{"NetworksDeleted": {"n1"}})

	d.runWithInput("n\n", "network", "prune").expect(t, pruneQuestion, "", 0)
	d.runWithInput("", "network", "prune").expect(t, pruneQuestion, "", 0)
	if n := len(d.calls("POST", "/networks/prune")); n != 0 {
		t.Errorf("pruned %d times without a yes", n)
	}
}

func TestNetworkPrunePrintsDeletedNetworks(t *testing.T) {
	d := newFakeDaemon(t)
	d.answer("POST /networks/prune", http.StatusOK, map[string][]string{"NetworksDeleted": {"f_auto1", "f_auto2"}})

	d.runWithInput("y\n", "network", "prune").
		expect(t, pruneQuestion+"Deleted Networks:\nf_auto1\nf_auto2\n\n", "", 0)
	d.run("network", "prune", "-f", "--filter", "until=24h").
		expect(t, "Deleted Networks:\nf_auto1\nf_auto2\n\n", "", 0)

	calls := d.calls("POST", "/networks/prune")
	if len(calls) != 2 {
		t.Fatalf("prune called %d times, want 2", len(calls))
	}
	if got := calls[1].Query["filters"]; len(got) != 1 || got[0] != `{"until":{"24h":true}}` {
		t.Errorf("filters = %q", got)
	}
}

func TestNetworkPrunePrintsNothingWhenNothingWasDeleted(t *testing.T) {
	d := newFakeDaemon(t)
	d.answer("POST /networks/prune", http.StatusOK, map[string][]string{"NetworksDeleted": nil})

	d.run("network", "prune", "--force").expect(t, "", "", 0)
	d.onlyCall("POST", "/networks/prune")
}

func TestNetworkConnectSendsTheEndpointConfig(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("POST /networks/{id}/connect", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })

	d.run("network", "connect", "--ip", "172.29.10.77", "--ip6", "fd00::77", "--alias", "db", "--alias", "cache",
		"--link", "web:front", "--driver-opt", "k=v", "f_exp", "f_e5").expect(t, "", "", 0)
	call := d.onlyCall("POST", "/networks/f_exp/connect")
	jsonEqual(t, jsonAt(t, call.Body, "Container"), `"f_e5"`)
	ep := jsonAt(t, call.Body, "EndpointConfig")
	jsonEqual(t, jsonAt(t, ep, "IPAMConfig"), `{"IPv4Address": "172.29.10.77", "IPv6Address": "fd00::77"}`)
	jsonEqual(t, jsonAt(t, ep, "Aliases"), `["db", "cache"]`)
	jsonEqual(t, jsonAt(t, ep, "Links"), `["web:front"]`)
	jsonEqual(t, jsonAt(t, ep, "DriverOpts"), `{"k": "v"}`)
}

func TestNetworkConnectPrintsDaemonRefusals(t *testing.T) {
	// F4 of the Docker reference.
	d := newFakeDaemon(t)
	d.fail("POST /networks/{id}/connect", http.StatusBadRequest, "user specified IP address is supported on user defined networks only")

	d.run("network", "connect", "--ip", "172.17.0.98", "bridge", "f_e3").expect(t, "",
		"Error response from daemon: user specified IP address is supported on user defined networks only\n", 1)
	d.run("network", "connect", "--ip", "172.17.0.300", "bridge", "f_e3").expect(t, "", "invalid IPv4 address: 172.17.0.300\n", 1)
	if n := len(d.calls("POST", "/networks/bridge/connect")); n != 1 {
		t.Errorf("connect sent %d times, want once", n)
	}
}

func TestNetworkDisconnectSendsForce(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("POST /networks/{id}/disconnect", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "f_auto1" {
			writeError(w, http.StatusNotFound, "container 0f768a80860a is not connected to network f_auto1")
			return
		}
		w.WriteHeader(http.StatusOK)
	})

	d.run("network", "disconnect", "-f", "f_exp", "f_e1").expect(t, "", "", 0)
	jsonEqual(t, d.onlyCall("POST", "/networks/f_exp/disconnect").Body, `{"Container": "f_e1", "Force": true}`)
	d.run("network", "disconnect", "f_auto1", "f_e2").expect(t, "",
		"Error response from daemon: container 0f768a80860a is not connected to network f_auto1\n", 1)
}
