package topology

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	idBridge = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"
	idApp    = "a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2"
	idSecret = "c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3"
	idQuiet  = "d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4"
	idHost   = "e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5"
	idNone   = "f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6f6"
	idOver   = "0707070707070707070707070707070707070707070707070707070707070707"

	idWeb  = "1111111111111111111111111111111111111111111111111111111111111111"
	idDB   = "2222222222222222222222222222222222222222222222222222222222222222"
	idQ1   = "3333333333333333333333333333333333333333333333333333333333333333"
	idQ2   = "4444444444444444444444444444444444444444444444444444444444444444"
	idSide = "5555555555555555555555555555555555555555555555555555555555555555"
	idTool = "6666666666666666666666666666666666666666666666666666666666666666"
	idOld  = "7777777777777777777777777777777777777777777777777777777777777777"
	idWork = "8888888888888888888888888888888888888888888888888888888888888888"
	idDemo = "9999999999999999999999999999999999999999999999999999999999999999"
)

func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr     { return netip.MustParseAddr(s) }

func mac(s string) network.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return network.HardwareAddr(m)
}

func bridgeNet(id, name, subnet, gw string, eps map[string]network.EndpointResource) network.Inspect {
	n := network.Inspect{Network: network.Network{ID: id, Name: name, Driver: "bridge", Scope: "local", EnableIPv4: true,
		IPAM: network.IPAM{Driver: "default", Config: []network.IPAMConfig{{Subnet: prefix(subnet), Gateway: addr(gw)}}}},
		Containers: eps}
	return n
}

func ep(name, id, ip, hw string) network.EndpointResource {
	return network.EndpointResource{Name: name, EndpointID: id, IPv4Address: prefix(ip), MacAddress: mac(hw)}
}

func summary(id, name string, state container.ContainerState, mode string, nets map[string]*network.EndpointSettings) container.Summary {
	s := container.Summary{ID: id, Names: []string{"/" + name}, Image: "busybox", State: state,
		NetworkSettings: &container.NetworkSettingsSummary{Networks: nets}}
	s.HostConfig.NetworkMode = mode
	return s
}

// fixedInput is a daemon's state with each thing the picture draws: the
// default bridge, a network with IPv6, an internal one, one with ICC off,
// host and none, an overlay shared with another host; containers on one
// and on several networks, with aliases, published ports, one sharing
// another's namespace, one stopped, and a sandbox that is no container.
func fixedInput() Input {
	app := bridgeNet(idApp, "app", "172.18.0.0/16", "172.18.0.1", map[string]network.EndpointResource{
		idWeb:  ep("web", "e01", "172.18.0.2/16", "02:42:ac:12:00:02"),
		idDemo: ep("demo", "e02", "172.18.0.3/16", "02:42:ac:12:00:03"),
	})
	app.EnableIPv6 = true
	app.IPAM.Config = append(app.IPAM.Config, network.IPAMConfig{Subnet: prefix("fd00:18::/64"), Gateway: addr("fd00:18::1")})
	web := app.Containers[idWeb]
	web.IPv6Address = prefix("fd00:18::2/64")
	app.Containers[idWeb] = web
	app.Labels = map[string]string{"team": "web"}

	secret := bridgeNet(idSecret, "secret", "172.19.0.0/16", "172.19.0.1", map[string]network.EndpointResource{
		idWeb: ep("web", "e03", "172.19.0.2/16", "02:42:ac:13:00:02"),
		idDB:  ep("db", "e04", "172.19.0.3/16", "02:42:ac:13:00:03"),
	})
	secret.Internal = true
	quiet := bridgeNet(idQuiet, "quiet", "10.30.0.0/24", "10.30.0.1", map[string]network.EndpointResource{
		idQ1: ep("q1", "e05", "10.30.0.2/24", "02:42:0a:1e:00:02"),
		idQ2: ep("q2", "e06", "10.30.0.3/24", "02:42:0a:1e:00:03"),
	})
	quiet.Options = map[string]string{"com.docker.network.bridge.enable_icc": "false"}
	// As dockerd, berthd's inspect shows no gateway it chose itself; the
	// containers' endpoints report it.
	quiet.IPAM.Config[0].Gateway = netip.Addr{}
	bridge := bridgeNet(idBridge, "bridge", "172.17.0.0/16", "172.17.0.1", map[string]network.EndpointResource{
		idWork: ep("worker", "e07", "172.17.0.2/16", "02:42:ac:11:00:02"),
	})
	bridge.Options = map[string]string{"com.docker.network.bridge.default_bridge": "true", "com.docker.network.bridge.name": "berth0"}
	over := network.Inspect{Network: network.Network{ID: idOver, Name: "ov", Driver: "overlay", Scope: "global", EnableIPv4: true,
		IPAM:  network.IPAM{Driver: "default", Config: []network.IPAMConfig{{Subnet: prefix("10.0.9.0/24"), Gateway: addr("10.0.9.1")}}},
		Peers: []network.PeerInfo{{Name: "h1", IP: addr("192.168.100.11")}, {Name: "h2", IP: addr("192.168.100.12")}}},
		Containers: map[string]network.EndpointResource{idWork: ep("worker", "e08", "10.0.9.2/24", "02:42:0a:00:09:02")}}
	host := network.Inspect{Network: network.Network{ID: idHost, Name: "host", Driver: "host", Scope: "local"}, Containers: map[string]network.EndpointResource{}}
	none := network.Inspect{Network: network.Network{ID: idNone, Name: "none", Driver: "null", Scope: "local"}, Containers: map[string]network.EndpointResource{}}

	webSummary := summary(idWeb, "web", container.StateRunning, "app", map[string]*network.EndpointSettings{
		"app":    {NetworkID: idApp, Aliases: []string{"www", "frontend"}},
		"secret": {NetworkID: idSecret},
	})
	webSummary.Ports = []container.PortSummary{
		{IP: addr("0.0.0.0"), PrivatePort: 80, PublicPort: 8080, Type: "tcp"},
		{IP: addr("127.0.0.1"), PrivatePort: 53, PublicPort: 5353, Type: "udp"},
		{PrivatePort: 90, Type: "tcp"},
	}
	return Input{
		Host:     "h1",
		Networks: []network.Inspect{over, none, host, quiet, secret, app, bridge},
		Containers: []container.Summary{
			webSummary,
			summary(idDB, "db", container.StateRunning, "secret", map[string]*network.EndpointSettings{
				"secret": {NetworkID: idSecret, Aliases: []string{"database", "postgres"}}}),
			summary(idQ1, "q1", container.StateRunning, "quiet", map[string]*network.EndpointSettings{"quiet": {NetworkID: idQuiet, Gateway: addr("10.30.0.1")}}),
			summary(idQ2, "q2", container.StateRunning, "quiet", map[string]*network.EndpointSettings{"quiet": {NetworkID: idQuiet}}),
			summary(idSide, "side", container.StateRunning, "container:web", map[string]*network.EndpointSettings{}),
			summary(idTool, "tool", container.StateRunning, "host", map[string]*network.EndpointSettings{"host": {NetworkID: idHost}}),
			summary(idOld, "old", container.StateExited, "app", map[string]*network.EndpointSettings{
				"app": {NetworkID: idApp, IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: addr("172.18.0.50")}}}),
			summary(idWork, "worker", container.StateRunning, "bridge", map[string]*network.EndpointSettings{
				"bridge": {NetworkID: idBridge}, "ov": {NetworkID: idOver}}),
		},
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./topology/ -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; got:\n%s", name, got)
	}
}

func TestFixedTopologyMatchesGoldenFiles(t *testing.T) {
	m := Build(fixedInput())
	for _, format := range Formats {
		var b bytes.Buffer
		if err := Render(&b, m, format); err != nil {
			t.Fatal(err)
		}
		golden(t, "fixed."+format, b.Bytes())
	}
}

func TestOnlyNetworksMatchesGoldenFile(t *testing.T) {
	var b bytes.Buffer
	if err := Render(&b, Build(fixedInput()).Only(idApp, idSecret), FormatSVG); err != nil {
		t.Fatal(err)
	}
	golden(t, "app-secret.svg", b.Bytes())
}

func TestBuildReadsTheDaemonsState(t *testing.T) {
	// Any order of the daemon's lists gives the same model.
	in := fixedInput()
	a := Build(in)
	slices.Reverse(in.Networks)
	slices.Reverse(in.Containers)
	b := Build(in)
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) {
		t.Fatalf("the model depends on the order of the input:\n%s\n%s", ja, jb)
	}

	names := func(m Model) (nets, ctrs []string) {
		for _, n := range m.Networks {
			nets = append(nets, n.Name)
		}
		for _, c := range m.Containers {
			ctrs = append(ctrs, c.Name+"/"+c.Kind)
		}
		return
	}
	nets, ctrs := names(a)
	if want := []string{"app", "bridge", "host", "none", "ov", "quiet", "secret"}; !slices.Equal(nets, want) {
		t.Errorf("networks %v, want %v", nets, want)
	}
	if want := []string{"db/container", "demo/sandbox", "old/container", "q1/container", "q2/container", "side/container", "tool/container", "web/container", "worker/container"}; !slices.Equal(ctrs, want) {
		t.Errorf("containers %v, want %v", ctrs, want)
	}

	c := func(name string) Container {
		i := slices.IndexFunc(a.Containers, func(c Container) bool { return c.Name == name })
		return a.Containers[i]
	}
	web := c("web")
	if len(web.Endpoints) != 2 || web.Endpoints[0].Network != idApp || web.Endpoints[1].Network != idSecret {
		t.Fatalf("web's endpoints %+v, want app then secret", web.Endpoints)
	}
	if e := web.Endpoints[0]; e.IPv4 != "172.18.0.2/16" || e.IPv6 != "fd00:18::2/64" || e.MAC != "02:42:ac:12:00:02" ||
		!slices.Equal(e.Aliases, []string{"www", "frontend"}) || !e.Live {
		t.Errorf("web on app: %+v", e)
	}
	if want := []Port{{"127.0.0.1", 5353, 53, "udp"}, {"0.0.0.0", 8080, 80, "tcp"}}; !slices.Equal(web.Ports, want) {
		t.Errorf("web's ports %v, want the published ones only, %v", web.Ports, want)
	}
	if got := c("side").SharesWith; got != idWeb {
		t.Errorf("side shares with %q, want web", got)
	}
	if e := c("old").Endpoints; len(e) != 1 || e[0].Live || e[0].IPv4 != "172.18.0.50" {
		t.Errorf("a stopped container's endpoint is what it asked for, not live: %+v", e)
	}
	if n, _ := a.Network(idQuiet); n.ICC || len(n.Subnets) != 1 || n.Subnets[0].Gateway != "10.30.0.1" {
		t.Errorf("quiet has enable_icc=false and the gateway its containers report: %+v", n)
	}
	if n, _ := a.Network(idSecret); !n.Internal || !n.ICC {
		t.Errorf("secret: %+v", n)
	}
	if want := []Host{{Name: "h1", IP: "192.168.100.11", Local: true}, {Name: "h2", IP: "192.168.100.12", Networks: []string{idOver}}}; !slices.EqualFunc(a.Hosts, want, func(x, y Host) bool {
		return x.Name == y.Name && x.IP == y.IP && x.Local == y.Local && slices.Equal(x.Networks, y.Networks)
	}) {
		t.Errorf("hosts %+v, want %+v", a.Hosts, want)
	}
}

func TestOnlyKeepsTheNetworksAndWhatIsAttachedToThem(t *testing.T) {
	m := Build(fixedInput()).Only(idApp)
	if len(m.Networks) != 1 || m.Networks[0].Name != "app" {
		t.Fatalf("networks %+v", m.Networks)
	}
	var got []string
	for _, c := range m.Containers {
		got = append(got, c.Name)
		for _, e := range c.Endpoints {
			if e.Network != idApp {
				t.Errorf("%s keeps an endpoint on %s", c.Name, e.Network)
			}
		}
	}
	if want := []string{"demo", "old", "side", "web"}; !slices.Equal(got, want) {
		t.Errorf("containers %v, want %v", got, want)
	}
	if len(m.Hosts) != 1 || !m.Hosts[0].Local {
		t.Errorf("hosts %+v, want the local one only: no global network kept", m.Hosts)
	}
	if len(Build(fixedInput()).Only(idOver).Hosts) != 2 {
		t.Error("the overlay's other host is not kept with it")
	}
}

// TestSVGEscapesWhatUsersNamed: names, aliases and labels come from
// users, and the page puts the picture into its document.
func TestSVGEscapesWhatUsersNamed(t *testing.T) {
	in := fixedInput()
	evil := `<script>alert("x")</script>&`
	in.Networks[5].Name = evil
	in.Containers[0].Names = []string{"/" + evil}
	in.Containers[0].NetworkSettings.Networks[evil] = in.Containers[0].NetworkSettings.Networks["app"]
	delete(in.Containers[0].NetworkSettings.Networks, "app")
	for _, format := range []string{FormatSVG, FormatDOT} {
		var b bytes.Buffer
		if err := Render(&b, Build(in), format); err != nil {
			t.Fatal(err)
		}
		if format == FormatSVG {
			if strings.Contains(b.String(), "<script") {
				t.Fatal("a name became markup in the SVG")
			}
			wellFormed(t, b.Bytes())
		} else if strings.Contains(b.String(), `("x")`) {
			t.Fatal("a quote in a name ended a DOT string")
		}
	}
}

func wellFormed(t *testing.T, doc []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
	}
}

// TestCardsNeverOverlap lays out many containers on many networks, some
// on several, and checks that no two cards share any pixel and that each
// card lies in its own network's column.
func TestCardsNeverOverlap(t *testing.T) {
	var in Input
	in.Host = "h"
	const nets, ctrs = 9, 60
	for i := range nets {
		id := strings.Repeat(string(rune('a'+i)), 64)
		in.Networks = append(in.Networks, bridgeNet(id, "net"+string(rune('a'+i)), "10.0.0.0/24", "10.0.0.1", map[string]network.EndpointResource{}))
	}
	for i := range ctrs {
		id := strings.Repeat(string(rune('A'+i%26)), 63) + string(rune('0'+i/26))
		settings := map[string]*network.EndpointSettings{}
		for j := range nets {
			// A pattern that puts containers on 1 to 3 networks, some
			// next to each other and some far apart.
			if j == i%nets || (i%4 == 0 && j == (i*7)%nets) || (i%5 == 0 && j == (i+3)%nets) {
				n := &in.Networks[j]
				n.Containers[id] = ep("c", "e", "10.0.0.2/24", "02:00:00:00:00:02")
				settings[n.Name] = &network.EndpointSettings{NetworkID: n.ID, Aliases: slices.Repeat([]string{"alias"}, i%4)}
			}
		}
		in.Containers = append(in.Containers, summary(id, "c"+id[:3], container.StateRunning, "", settings))
	}
	p := layout(Build(in))
	var cards []*card
	for _, it := range p.items {
		for i, c := range it.cards {
			if c.y != it.cards[0].y {
				t.Errorf("%s's cards are not in one row", c.c.Name)
			}
			if i > 0 && c.col <= it.cards[i-1].col {
				t.Errorf("%s's cards are not left to right", c.c.Name)
			}
			cards = append(cards, c)
		}
	}
	if len(cards) < ctrs {
		t.Fatalf("%d cards for %d containers", len(cards), ctrs)
	}
	for i, a := range cards {
		x := columnX(p, a.col)
		if a.x < x || a.x+cardWidth > x+columnWidth || a.y < p.colTop+p.headerH || a.y+a.h > p.colBottom {
			t.Errorf("card of %s is out of its column", a.c.Name)
		}
		for _, b := range cards[i+1:] {
			if a.x < b.x+cardWidth && b.x < a.x+cardWidth && a.y < b.y+b.h && b.y < a.y+a.h {
				t.Errorf("cards of %s and %s overlap", a.c.Name, b.c.Name)
			}
		}
	}
	// A line joining a container's cards crosses no other card.
	for _, it := range p.items {
		if len(it.cards) < 2 {
			continue
		}
		y := it.cards[0].y + cardPad + lineHeight/2
		x0, x1 := it.cards[0].x+cardWidth, it.cards[len(it.cards)-1].x
		for _, c := range cards {
			if c.c != it.cards[0].c && c.x < x1 && x0 < c.x+cardWidth && c.y <= y && y <= c.y+c.h {
				t.Errorf("the line of %s crosses %s's card", it.cards[0].c.Name, c.c.Name)
			}
		}
	}
	if p.colBottom > p.height || columnX(p, nets-1)+columnWidth > p.width {
		t.Error("the columns do not fit the picture")
	}
}

func TestFormatsAreChecked(t *testing.T) {
	err := Render(io.Discard, Model{}, "png")
	if err == nil || !strings.Contains(err.Error(), "svg, dot or json") {
		t.Fatalf("png: %v", err)
	}
}

func TestWrapBreaksListsAtTheWidth(t *testing.T) {
	got := wrap("alias ", []string{"alpha", "beta", "gamma", "delta"}, 18, plain)
	var texts []string
	for _, l := range got {
		texts = append(texts, l.text)
		if n := len([]rune(l.text)); n > 18 {
			t.Errorf("%q is %d characters, more than 18", l.text, n)
		}
	}
	if want := []string{"alias alpha, beta,", "      gamma,", "      delta"}; !slices.Equal(texts, want) {
		t.Errorf("got %q, want %q", texts, want)
	}
	if got := fit("abcdefgh", 5); got != "abcd…" {
		t.Errorf("fit: %q", got)
	}
}
