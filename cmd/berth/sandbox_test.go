package main

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"testing"

	"github.com/berth-net/berth/api"
)

const sandboxListJSON = `[
 {"Id":"9f3a1c22b7e04d1a8c55e6f0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678","Name":"web","Key":"/run/berth/netns/9f3a1c22b7e0","External":false,
  "Networks":{"front":{"NetworkID":"n1","IPAddress":"172.18.0.2","IPPrefixLen":16,"Gateway":"172.18.0.1"},
              "back":{"NetworkID":"n2","IPAddress":"10.9.0.2","IPPrefixLen":24,"Gateway":""}}},
 {"Id":"0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcdef0123456789abcdef0","Name":"db","Key":"/run/netns/db","External":true,"Networks":{}}
]`

func TestSandboxCreateSendsNameAndNamespace(t *testing.T) {
	d := newFakeDaemon(t)
	d.answer("POST /sandboxes/create", http.StatusCreated, api.SandboxCreateResponse{ID: "9f3a1c22b7e0"})

	d.run("sandbox", "create", "--name", "web", "--netns", "/run/netns/web").expect(t, "9f3a1c22b7e0\n", "", 0)
	call := d.onlyCall("POST", "/sandboxes/create")
	jsonEqual(t, call.Body, `{"Name":"web","Key":"/run/netns/web"}`)
	if call.Version != "1.41" {
		t.Errorf("sandbox route called with API version %q, want the negotiated 1.41", call.Version)
	}
}

func TestSandboxRoutesUseTheNegotiatedVersion(t *testing.T) {
	d := newFakeDaemon(t)
	d.apiVersion = "1.44"
	d.answerRaw("GET /sandboxes", "[]")

	d.run("sandbox", "ls", "-q").expect(t, "", "", 0)
	if v := d.onlyCall("GET", "/sandboxes").Version; v != "1.44" {
		t.Errorf("API version %q, want 1.44", v)
	}
}

func TestSandboxLsPrintsATable(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /sandboxes", sandboxListJSON)

	d.run("sandbox", "ls").expect(t, ""+
		"SANDBOX ID     NAME      KEY                             NETWORKS\n"+
		"0a1b2c3d4e5f   db        /run/netns/db                   \n"+
		"9f3a1c22b7e0   web       /run/berth/netns/9f3a1c22b7e0   back,front\n", "", 0)
	d.run("sandbox", "ls", "-q").expect(t, "0a1b2c3d4e5f\n9f3a1c22b7e0\n", "", 0)
	d.run("sandbox", "ls", "--no-trunc", "--format", "{{.ID}} {{.External}}").expect(t, ""+
		"0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcdef0123456789abcdef0 true\n"+
		"9f3a1c22b7e04d1a8c55e6f0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678 false\n", "", 0)
	d.run("sandbox", "ls", "--format", "json").expect(t, ""+
		`{"External":"true","ID":"0a1b2c3d4e5f","Key":"/run/netns/db","Name":"db","Networks":""}`+"\n"+
		`{"External":"false","ID":"9f3a1c22b7e0","Key":"/run/berth/netns/9f3a1c22b7e0","Name":"web","Networks":"back,front"}`+"\n",
		"", 0)
}

func TestSandboxInspectPrintsJSONAndTemplates(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("GET /sandboxes/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "web" {
			writeError(w, http.StatusNotFound, "sandbox "+r.PathValue("id")+" not found")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"Id":"9f3a","Name":"web","Networks":{"back":{"IPAddress":"10.9.0.2","Gateway":""}}}`))
	})

	d.run("sandbox", "inspect", "web", "nope").expect(t, `[
    {
        "Id": "9f3a",
        "Name": "web",
        "Networks": {
            "back": {
                "IPAddress": "10.9.0.2",
                "Gateway": ""
            }
        }
    }
]
`, "Error: No such sandbox: nope\n", 1)
	d.run("sandbox", "inspect", "-f", "{{.Name}}{{range $k, $v := .Networks}} {{$k}}={{$v.IPAddress}} gw={{$v.Gateway}}{{end}}", "web").
		expect(t, "web back=10.9.0.2 gw=\n", "", 0)
}

func TestSandboxConnectSendsTheEndpointConfig(t *testing.T) {
	d := newFakeDaemon(t)
	d.answer("POST /sandboxes/{id}/connect", http.StatusOK, map[string]string{"IPAddress": "10.9.0.7"})

	d.run("sandbox", "connect", "--ip", "10.9.0.7", "--alias", "db", "--alias", "cache", "back", "web").expect(t, "", "", 0)

	var req api.SandboxConnectRequest
	if err := json.Unmarshal(d.onlyCall("POST", "/sandboxes/web/connect").Body, &req); err != nil {
		t.Fatal(err)
	}
	if req.Network != "back" || req.EndpointConfig == nil || req.EndpointConfig.IPAMConfig == nil {
		t.Fatalf("request %+v lacks the network or the endpoint config", req)
	}
	if got := req.EndpointConfig.IPAMConfig.IPv4Address; got != netip.MustParseAddr("10.9.0.7") {
		t.Errorf("IPv4Address = %v, want 10.9.0.7", got)
	}
	if got := req.EndpointConfig.Aliases; !slices.Equal(got, []string{"db", "cache"}) {
		t.Errorf("Aliases = %v, want [db cache]", got)
	}
}

func TestSandboxConnectRefusesABadAddressBeforeSending(t *testing.T) {
	d := newFakeDaemon(t)
	d.run("sandbox", "connect", "--ip", "10.9.0.300", "back", "web").expect(t, "", "invalid IPv4 address: 10.9.0.300\n", 1)
	d.run("sandbox", "connect", "--ip6", "10.9.0.3", "back", "web").expect(t, "", "invalid IPv6 address: 10.9.0.3\n", 1)
	if n := len(d.calls("POST", "/sandboxes/web/connect")); n != 0 {
		t.Errorf("connect sent %d times", n)
	}
}

func TestSandboxConnectPrintsDaemonErrors(t *testing.T) {
	d := newFakeDaemon(t)
	d.fail("POST /sandboxes/{id}/connect", http.StatusForbidden, "endpoint with name web already exists in network back")

	d.run("sandbox", "connect", "back", "web").expect(t, "",
		"Error response from daemon: endpoint with name web already exists in network back\n", 1)
}

func TestSandboxDisconnectSendsForce(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("POST /sandboxes/{id}/disconnect", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })

	d.run("sandbox", "disconnect", "-f", "back", "web").expect(t, "", "", 0)
	jsonEqual(t, d.onlyCall("POST", "/sandboxes/web/disconnect").Body, `{"Network":"back","Force":true}`)
}

func TestSandboxRmPrintsRemovedAndReportsMissing(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("DELETE /sandboxes/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "nope" {
			writeError(w, http.StatusNotFound, "sandbox nope not found")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})

	d.run("sandbox", "rm", "web", "nope", "db").expect(t, "web\ndb\n", "Error: No such sandbox: nope\n", 1)
	d.onlyCall("DELETE", "/sandboxes/db")
}

func TestSandboxArgumentsAreChecked(t *testing.T) {
	runBerth("", nil, "sandbox", "connect", "back").expect(t, "", ""+
		"\"berth sandbox connect\" requires exactly 2 arguments.\n"+
		"See 'berth sandbox connect --help'.\n\n"+
		"Usage:  berth sandbox connect [OPTIONS] NETWORK SANDBOX\n\n"+
		"Connect a sandbox to a network\n", 1)
}
