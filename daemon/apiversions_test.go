package daemon_test

import (
	"encoding/json"
	"net/http"
	"testing"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/internal/nettest"
)

// legacyFields are the top-level NetworkSettings fields moby's API
// dropped in 1.52, as a test reads them.
type legacyFields struct {
	NetworkSettings struct {
		IPAddress   *string
		IPPrefixLen *int
		Gateway     *string
		MacAddress  *string
		EndpointID  *string
		Networks    map[string]struct {
			IPAddress, Gateway, MacAddress, EndpointID string
			IPPrefixLen                                int
		}
	}
}

func inspectAt(t *testing.T, d *nettest.Daemon, version, id string) legacyFields {
	t.Helper()
	code, body := raw(t, d, http.MethodGet, "/v"+version+"/containers/"+id+"/json", "", "")
	if code != http.StatusOK {
		t.Fatalf("inspect at API %s: %d %s", version, code, body)
	}
	var out legacyFields
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestResponsesFollowTheAPIVersionAsked(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	for _, version := range []string{"1.41", "1.44", "1.51", "1.52", client.MaxAPIVersion} {
		// The SDK pinned to the version: create and start on the default
		// bridge as its users do.
		c, err := client.New(client.WithHost(d.URL()), client.WithAPIVersion(version))
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.ContainerCreate(ctxT(t), client.ContainerCreateOptions{Name: "v" + version,
			Config: &ctypes.Config{Image: "busybox", Cmd: []string{"sleep", "100000"}}})
		if err != nil {
			t.Fatalf("create at API %s: %v", version, err)
		}
		if _, err := c.ContainerStart(ctxT(t), res.ID, client.ContainerStartOptions{}); err != nil {
			t.Fatalf("start at API %s: %v", version, err)
		}
		got := inspectAt(t, d, version, res.ID)
		ns, ep := got.NetworkSettings, got.NetworkSettings.Networks["bridge"]
		if ep.IPAddress == "" {
			t.Fatalf("API %s: no address on the default bridge: %+v", version, ns)
		}
		legacy := version < "1.52"
		if !legacy {
			if ns.IPAddress != nil || ns.Gateway != nil || ns.MacAddress != nil || ns.EndpointID != nil {
				t.Errorf("API %s shows the fields removed in 1.52: %+v", version, ns)
			}
			c.Close()
			continue
		}
		if ns.IPAddress == nil || *ns.IPAddress != ep.IPAddress || *ns.Gateway != ep.Gateway || *ns.MacAddress != ep.MacAddress ||
			*ns.EndpointID != ep.EndpointID || *ns.IPPrefixLen != ep.IPPrefixLen {
			t.Errorf("API %s: the top-level fields do not repeat the default bridge's endpoint %+v", version, ep)
		}
		c.Close()
	}

	// Before 1.52 a create's Config.MacAddress goes to the first network.
	code, body := raw(t, d, http.MethodPost, "/v1.41/containers/create?name=mac", "application/json",
		`{"Image":"busybox","Cmd":["sleep","100000"],"MacAddress":"02:42:ac:11:99:99"}`)
	if code != http.StatusCreated {
		t.Fatalf("create with a MAC at API 1.41: %d %s", code, body)
	}
	if _, err := d.Client.ContainerStart(ctxT(t), "mac", client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := inspectAt(t, d, "1.41", "mac").NetworkSettings; got.MacAddress == nil || *got.MacAddress != "02:42:ac:11:99:99" {
		t.Errorf("the MAC given at create is %v, want 02:42:ac:11:99:99", got.MacAddress)
	}
	// At 1.56 that field is not read.
	code, _ = raw(t, d, http.MethodPost, "/v1.56/containers/create?name=mac2", "application/json",
		`{"Image":"busybox","Cmd":["sleep","100000"],"MacAddress":"02:42:ac:11:99:98"}`)
	if code != http.StatusCreated {
		t.Fatalf("create at API 1.56: %d", code)
	}
	if _, err := d.Client.ContainerStart(ctxT(t), "mac2", client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := inspectAt(t, d, "1.51", "mac2").NetworkSettings; got.MacAddress == nil || *got.MacAddress == "02:42:ac:11:99:98" {
		t.Errorf("at API 1.56 the create's Config.MacAddress was applied: %v", got.MacAddress)
	}
}
