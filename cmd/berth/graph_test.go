package main

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-net/berth/topology"
)

const (
	graphApp    = "a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2"
	graphBridge = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"
	graphWeb    = "1111111111111111111111111111111111111111111111111111111111111111"
)

// graphDaemon answers what network graph reads: info, the networks with
// their containers (web on app, nothing on bridge) and the containers.
func graphDaemon(t *testing.T) *fakeDaemon {
	d := newFakeDaemon(t)
	d.answerRaw("GET /info", `{"ID":"d-1","Name":"h1"}`)
	inspects := map[string]string{
		graphApp: `{"Name":"app","Id":"` + graphApp + `","Scope":"local","Driver":"bridge","Internal":true,` +
			`"IPAM":{"Driver":"default","Config":[{"Subnet":"172.18.0.0/16","Gateway":"172.18.0.1"}]},"Options":{},"Labels":{},` +
			`"Containers":{"` + graphWeb + `":{"Name":"web","EndpointID":"e1","MacAddress":"02:42:ac:12:00:02","IPv4Address":"172.18.0.2/16","IPv6Address":""}}}`,
		graphBridge: `{"Name":"bridge","Id":"` + graphBridge + `","Scope":"local","Driver":"bridge",` +
			`"IPAM":{"Driver":"default","Config":[{"Subnet":"172.17.0.0/16","Gateway":"172.17.0.1"}]},"Options":{},"Labels":{},"Containers":{}}`,
	}
	d.answerRaw("GET /networks", "["+inspects[graphBridge]+","+inspects[graphApp]+"]")
	d.handle("GET /networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		for id, body := range inspects {
			if id == r.PathValue("id") || strings.Contains(body, `"Name":"`+r.PathValue("id")+`"`) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, body)
				return
			}
		}
		writeError(w, http.StatusNotFound, "network "+r.PathValue("id")+" not found")
	})
	d.answerRaw("GET /containers/json", `[{"Id":"`+graphWeb+`","Names":["/web"],"Image":"busybox","State":"running",`+
		`"Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"}],"HostConfig":{"NetworkMode":"app"},`+
		`"NetworkSettings":{"Networks":{"app":{"NetworkID":"`+graphApp+`","Aliases":["www"]}}}}]`)
	return d
}

func TestNetworkGraphDrawsTheDaemonsNetworksAsSVG(t *testing.T) {
	d := graphDaemon(t)
	r := d.run("network", "graph")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	dec := xml.NewDecoder(strings.NewReader(r.stdout))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed SVG: %v\n%s", err, r.stdout)
		}
	}
	for _, want := range []string{"<svg ", `data-name="app"`, `data-name="bridge"`, `data-name="web" data-network="app"`,
		"172.18.0.2/16", "alias www", "0.0.0.0:8080→80/tcp web", "internal: nothing in or out", "host h1"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the picture has no %q", want)
		}
	}
	if got := len(d.calls("GET", "/containers/json")); got != 1 {
		t.Errorf("%d container lists, want 1", got)
	} else if all := d.calls("GET", "/containers/json")[0].Query["all"]; len(all) != 1 || all[0] != "1" && all[0] != "true" {
		t.Errorf("the containers are listed with all=%q: stopped ones would be missing", all)
	}
}

func TestNetworkGraphWritesTheNamedNetworksToAFile(t *testing.T) {
	d := graphDaemon(t)
	out := filepath.Join(t.TempDir(), "app.json")
	d.run("network", "graph", "--format", "json", "-o", out, "app").expect(t, "", "", 0)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var m topology.Model
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	if len(m.Networks) != 1 || m.Networks[0].ID != graphApp || !m.Networks[0].Internal {
		t.Errorf("networks %+v, want app alone", m.Networks)
	}
	if len(m.Containers) != 1 || m.Containers[0].Name != "web" || len(m.Containers[0].Endpoints) != 1 {
		t.Errorf("containers %+v, want web", m.Containers)
	}
	if len(m.Hosts) != 1 || m.Hosts[0].Name != "h1" {
		t.Errorf("hosts %+v", m.Hosts)
	}

	r := d.run("network", "graph", "--format", "dot", "bridge")
	if r.code != 0 || !strings.HasPrefix(r.stdout, `graph "berth" {`) || !strings.Contains(r.stdout, "n:"+graphBridge) || strings.Contains(r.stdout, graphApp) {
		t.Errorf("DOT of bridge alone: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
}

func TestNetworkGraphRefusesWhatItCannotDraw(t *testing.T) {
	d := graphDaemon(t)
	d.run("network", "graph", "--format", "png").expect(t, "",
		"invalid format \"png\": the picture is drawn as svg, dot or json\n", 1)
	out := filepath.Join(t.TempDir(), "x.svg")
	r := d.run("network", "graph", "-o", out, "nope")
	if r.code != 1 || !strings.Contains(r.stderr, "network nope not found") {
		t.Errorf("an unknown network: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed graph left %s behind", out)
	}
}
