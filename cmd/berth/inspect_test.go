package main

import (
	"net/http"
	"slices"
	"testing"
)

// containerJSON is a container as berthd shows it: on F2's network of the
// Docker reference, before it ever ran on the second one.
const containerJSON = `{"Id":"a1b2c3d4e5f6","Name":"/f_a1","State":{"Status":"running","Running":true,"Pid":4242,"ExitCode":0},
 "HostConfig":{"NetworkMode":"f_auto1","PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]},"Dns":[],"Privileged":false},
 "Config":{"Image":"busybox","Env":["PATH=/bin"]},
 "NetworkSettings":{"Ports":{},"Networks":{
   "f_auto1":{"IPAMConfig":null,"IPAddress":"172.18.0.2","IPPrefixLen":16,"Gateway":"172.18.0.1","MacAddress":"02:42:ac:12:00:02"},
   "f_exp":{"IPAMConfig":{"IPv4Address":"172.29.10.77"},"IPAddress":"","IPPrefixLen":0,"Gateway":"","MacAddress":""}}}}`

// serveObjects answers for one container (web), one image (busybox) and
// one network (front), and "not found" for anything else.
func serveObjects(d *fakeDaemon) {
	one := func(want, body, missing string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if name := r.PathValue("name"); name != want {
				writeError(w, http.StatusNotFound, missing+name)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(body))
		}
	}
	d.handle("GET /containers/{name}/json", one("web", containerJSON, "No such container: "))
	d.handle("GET /images/{name}/json", one("busybox", `{"Id":"sha256:aaaa","RepoTags":["busybox:latest"]}`, "No such image: "))
	d.handle("GET /networks/{name}", one("front", `{"Name":"front","Id":"4f0c","Driver":"bridge"}`, "network not found: "))
}

func TestInspectLooksForContainersThenImagesThenNetworks(t *testing.T) {
	d := newFakeDaemon(t)
	serveObjects(d)

	d.run("inspect", "-f", "{{.Id}}", "web", "busybox", "front").expect(t, "a1b2c3d4e5f6\nsha256:aaaa\n4f0c\n", "", 0)
	want := []string{
		"GET /containers/web/json",
		"GET /containers/busybox/json", "GET /images/busybox/json",
		"GET /containers/front/json", "GET /images/front/json", "GET /networks/front",
	}
	if got := d.paths(); !slices.Equal(got, want) {
		t.Errorf("requests:\n%q\nwant:\n%q", got, want)
	}
	d.run("inspect", "nope").expect(t, "[]\n", "Error: No such object: nope\n", 1)
}

func TestInspectWithTypeLooksOnlyThere(t *testing.T) {
	d := newFakeDaemon(t)
	serveObjects(d)

	d.run("inspect", "--type", "image", "busybox").expect(t, "[\n    {\n        \"Id\": \"sha256:aaaa\",\n        \"RepoTags\": [\n            \"busybox:latest\"\n        ]\n    }\n]\n", "", 0)
	d.run("inspect", "--type", "container", "busybox").expect(t, "[]\n", "Error: No such container: busybox\n", 1)
	d.run("inspect", "--type", "volume", "busybox").expect(t, "",
		`unknown type: "volume": must be one of "container", "image", "network"`+"\n", 1)
}

func TestInspectContainerTemplatesSeeAddressesAsDockerPrintsThem(t *testing.T) {
	// F2 and F3 of the Docker reference: a network without an address yet
	// prints an empty one, not an invalid address.
	d := newFakeDaemon(t)
	serveObjects(d)

	d.run("inspect", "-f", "{{.Name}} {{range $k,$v := .NetworkSettings.Networks}}{{$k}} ip={{$v.IPAddress}}/{{$v.IPPrefixLen}} gw={{$v.Gateway}} mac={{$v.MacAddress}} ipam={{$v.IPAMConfig}};{{end}}", "web").
		expect(t, "/f_a1 f_auto1 ip=172.18.0.2/16 gw=172.18.0.1 mac=02:42:ac:12:00:02 ipam=<nil>;f_exp ip=/0 gw= mac= ipam={172.29.10.77  []};\n", "", 0)
	d.run("inspect", "-f", "{{.State.Pid}} {{.HostConfig.NetworkMode}} {{json .HostConfig.PortBindings}} {{.Config.Env}}", "web").
		expect(t, "4242 f_auto1 {\"80/tcp\":[{\"HostIp\":\"\",\"HostPort\":\"8080\"}]} [PATH=/bin]\n", "", 0)
	// Fields berth does not model come from the daemon's JSON.
	d.run("inspect", "-f", "{{.HostConfig.Privileged}}", "web").expect(t, "false\n", "", 0)
}
