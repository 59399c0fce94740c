package daemon_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/miekg/dns"
	ctypes "github.com/moby/moby/api/types/container"
	mevents "github.com/moby/moby/api/types/events"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// eventLine is an event as a test compares it.
func eventLine(m mevents.Message) string {
	s := string(m.Type) + " " + string(m.Action)
	for _, k := range []string{"name", "container", "exitCode", "signal", "oldName"} {
		if v, ok := m.Actor.Attributes[k]; ok {
			if k == "container" && len(v) > 12 {
				v = v[:12]
			}
			s += " " + k + "=" + v
		}
	}
	return s
}

func TestEventsFollowNetworksContainersAndVolumes(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	ctx := ctxT(t)
	start := time.Now()
	live := d.Client.Events(ctx, client.EventsListOptions{Filters: client.Filters{}.Add("type", "network", "container")})

	create(t, d, "evnet", client.NetworkCreateOptions{})
	id := runContainer(t, d, sleeper("ev", "evnet", nil))
	if _, err := d.Client.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: "ev2"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.ContainerStop(ctx, id, client.ContainerStopOptions{Signal: "KILL"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.ContainerRemove(ctx, id, client.ContainerRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.NetworkRemove(ctx, "evnet", client.NetworkRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	short := id[:12]
	want := []string{
		"network create name=evnet",
		"container create name=ev",
		"network connect name=evnet container=" + short,
		"container start name=ev",
		"container rename name=ev2 oldName=/ev",
		"container kill name=ev2 signal=9",
		"container die name=ev2 exitCode=137",
		"network disconnect name=evnet container=" + short,
		"container stop name=ev2",
		"container destroy name=ev2",
		"network destroy name=evnet",
	}
	var got []string
	deadline := time.After(20 * time.Second)
	for len(got) < len(want) {
		select {
		case m := <-live.Messages:
			got = append(got, eventLine(m))
		case err := <-live.Err:
			t.Fatalf("event stream: %v (after %q)", err, got)
		case <-deadline:
			t.Fatalf("events so far:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The past replays, filtered, and a client with until returns.
	since := start.Add(-time.Second).Format(time.RFC3339Nano)
	until := time.Now().Add(500 * time.Millisecond).Format(time.RFC3339Nano)
	past := d.Client.Events(ctx, client.EventsListOptions{Since: since, Until: until, Filters: client.Filters{}.Add("event", "create").Add("container", "ev")})
	var replayed []string
	for done := false; !done; {
		select {
		case m := <-past.Messages:
			replayed = append(replayed, eventLine(m))
		case err := <-past.Err:
			if err.Error() != "EOF" {
				t.Fatalf("replay: %v", err)
			}
			done = true
		case <-time.After(10 * time.Second):
			t.Fatalf("a client with until did not return; it had %q", replayed)
		}
	}
	if !slices.Equal(replayed, []string{"container create name=ev"}) {
		t.Errorf("replayed %q, want the container's create alone", replayed)
	}
	if res := d.Client.Events(ctx, client.EventsListOptions{Filters: client.Filters{}.Add("colour", "red")}); !errdefs.IsInvalidArgument(<-res.Err) {
		t.Errorf("an unknown filter was not refused as invalid")
	}
}

func TestRenamedContainersAndPerNetworkLinksResolve(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	ctx := ctxT(t)
	create(t, d, "app", client.NetworkCreateOptions{})
	db := runContainer(t, d, sleeper("db", "app", nil))
	dbIP := inspectContainer(t, d, db).NetworkSettings.Networks["app"].IPAddress.String()
	// Links given per network, as compose and the SDKs give them.
	res, err := d.Client.ContainerCreate(ctx, client.ContainerCreateOptions{Name: "web",
		Config: &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "100000"}},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			"app": {Links: []string{"db:database"}},
		}},
		HostConfig: &ctypes.HostConfig{NetworkMode: "app"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	web := netnsOf(t, d, res.ID)
	if got := answers(dnsAsk(t, web, "database", dns.TypeA)); !slices.Equal(got, []string{dbIP}) {
		t.Errorf("the per-network link database resolves to %v, want %s", got, dbIP)
	}
	// DELETE /containers/web/database?link=1 takes the link back.
	if _, err := d.Client.ContainerRemove(ctx, "web/database", client.ContainerRemoveOptions{RemoveLinks: true}); err != nil {
		t.Fatalf("remove the link: %v", err)
	}
	if got := dnsAsk(t, web, "database", dns.TypeA); len(got.Answer) != 0 {
		t.Errorf("the removed link still resolves: %v", got.Answer)
	}
	if _, err := d.Client.ContainerRemove(ctx, "web/database", client.ContainerRemoveOptions{RemoveLinks: true}); !errdefs.IsNotFound(err) {
		t.Errorf("remove a link twice: err = %v, want not found", err)
	}
	// A rename is seen at once.
	if _, err := d.Client.ContainerRename(ctx, db, client.ContainerRenameOptions{NewName: "store"}); err != nil {
		t.Fatal(err)
	}
	if got := answers(dnsAsk(t, web, "store", dns.TypeA)); !slices.Equal(got, []string{dbIP}) {
		t.Errorf("the renamed container resolves to %v, want %s", got, dbIP)
	}
	if got := dnsAsk(t, web, "db", dns.TypeA); len(got.Answer) != 0 {
		t.Errorf("the old name still resolves: %v", got.Answer)
	}
	if _, err := d.Client.ContainerRename(ctx, db, client.ContainerRenameOptions{NewName: "web"}); !errdefs.IsConflict(err) {
		t.Errorf("rename onto a taken name: err = %v, want a conflict", err)
	}
	if inspectContainer(t, d, db).Name != "/store" {
		t.Errorf("inspect shows %s after the rename", inspectContainer(t, d, db).Name)
	}
}

func TestOutsideASwarmAsDockerIs(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	for _, path := range []string{"/swarm", "/nodes", "/services", "/tasks", "/secrets", "/configs"} {
		code, body := raw(t, d, http.MethodGet, "/v1.41"+path, "", "")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, `This node is not a swarm manager. Use "docker swarm init"`) {
			t.Errorf("GET %s: %d %s, want 503 and dockerd's words", path, code, body)
		}
	}
	if _, err := d.Client.SwarmLeave(ctxT(t), client.SwarmLeaveOptions{}); !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "This node is not part of a swarm") {
		t.Errorf("swarm leave: err = %v, want 503 not part of a swarm", err)
	}
	plugins, err := d.Client.PluginList(ctxT(t), client.PluginListOptions{})
	if err != nil || len(plugins.Items) != 0 {
		t.Errorf("plugin list: %+v, %v, want none", plugins, err)
	}
	// A route berthd does not serve is in its log at info.
	if code, _ := raw(t, d, http.MethodGet, "/v1.41/no/such/route", "", ""); code != http.StatusNotFound {
		t.Errorf("an unknown route answered %d", code)
	}
	waitFor(t, 5*time.Second, func() error {
		if !strings.Contains(d.Log(), `level=INFO msg="request for no route berthd serves" method=GET path=/no/such/route status=404`) {
			return errString("the unknown route is not in the log at info")
		}
		return nil
	})
}
