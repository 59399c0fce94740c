package main

import (
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/moby/moby/client"
)

const versionJSON = `{"Platform":{"Name":""},"Version":"0.1.0","ApiVersion":"1.41","MinAPIVersion":"1.24",
 "GitCommit":"5d6db84","GoVersion":"go1.26.8","Os":"linux","Arch":"amd64","KernelVersion":"6.1.0-berth",
 "BuildTime":"2026-11-28T06:59:25.000000000+00:00",
 "Components":[{"Name":"Engine","Version":"0.1.0","Details":{"ApiVersion":"1.41"}},
               {"Name":"runc","Version":"1.1.12","Details":{"GitCommit":"v1.1.12-0-g51d5e946"}}]}`

func TestVersionPrintsClientAndServerLikeDocker(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /version", versionJSON)

	d.run("version").expect(t, ""+
		"Client:\n"+
		" Version:           dev\n"+
		" API version:       1.41 (downgraded from "+client.MaxAPIVersion+")\n"+
		" Go version:        "+runtime.Version()+"\n"+
		" OS/Arch:           "+runtime.GOOS+"/"+runtime.GOARCH+"\n"+
		"\n"+
		"Server:\n"+
		" Engine:\n"+
		"  Version:          0.1.0\n"+
		"  API version:      1.41 (minimum version 1.24)\n"+
		"  Go version:       go1.26.8\n"+
		"  Git commit:       5d6db84\n"+
		"  Built:            Sat Nov 28 06:59:25 2026\n"+
		"  OS/Arch:          linux/amd64\n"+
		"  Kernel Version:   6.1.0-berth\n"+
		"  Experimental:     false\n"+
		" runc:\n"+
		"  Version:          1.1.12\n"+
		"  GitCommit:        v1.1.12-0-g51d5e946\n", "", 0)
}

func TestVersionFormat(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /version", versionJSON)

	d.run("version", "--format", "{{.Client.Version}} {{.Client.APIVersion}} / {{.Server.Version}} {{.Server.APIVersion}}").
		expect(t, "dev 1.41 / 0.1.0 1.41\n", "", 0)
	r := d.run("version", "-f", "json")
	if r.code != 0 || !strings.HasPrefix(r.stdout, `{"Client":{"Version":"dev","APIVersion":"1.41"`) ||
		!strings.Contains(r.stdout, `"KernelVersion":"6.1.0-berth"`) {
		t.Errorf("version -f json = %+v", r)
	}
}

func TestVersionWithoutDaemonPrintsClientAndFails(t *testing.T) {
	r := runBerth("", map[string]string{hostEnv: "unix:///nonexistent/berth.sock"}, "version")
	wantOut := "Client:\n" +
		" Version:           dev\n" +
		" API version:       " + client.MaxAPIVersion + "\n" +
		" Go version:        " + runtime.Version() + "\n" +
		" OS/Arch:           " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	r.expect(t, wantOut,
		"Cannot connect to the berth daemon at unix:///nonexistent/berth.sock. Is the berth daemon running?\n", 1)
}

func TestHostFlagWinsOverEnvironment(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /networks", "[]")

	r := runBerth("", map[string]string{hostEnv: "unix:///nonexistent/berth.sock"}, "-H", d.host, "network", "ls", "-q")
	r.expect(t, "", "", 0)
	d.onlyCall("GET", "/networks")

	runBerth("", nil, "--host", "unix:///nonexistent/other.sock", "network", "ls").expect(t, "",
		"Cannot connect to the berth daemon at unix:///nonexistent/other.sock. Is the berth daemon running?\n", 1)
	runBerth("", nil, "-H", "/run/berth.sock", "network", "ls").expect(t, "",
		"invalid host \"/run/berth.sock\": expected unix:///path/to/socket or tcp://host:port\n", 1)
}

const infoJSON = `{"ID":"B3RT:H000","Containers":3,"ContainersRunning":2,"ContainersPaused":0,"ContainersStopped":1,
 "Images":1,"ServerVersion":"0.1.0","KernelVersion":"6.1.0-berth","OperatingSystem":"Debian GNU/Linux 12 (bookworm)",
 "OSType":"linux","Architecture":"x86_64","NCPU":4,"MemTotal":16750372864,"Name":"host1",
 "DockerRootDir":"/var/lib/berth","Debug":false,
 "DefaultAddressPools":[{"Base":"172.17.0.0/16","Size":16},{"Base":"192.168.0.0/16","Size":20}],
 "Warnings":["WARNING: bridge-nf-call-iptables is disabled"]}`

func TestInfoPrintsTheServerSummary(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /info", infoJSON)

	d.run("info").expect(t, ""+
		"Server:\n"+
		" Containers: 3\n"+
		"  Running: 2\n"+
		"  Paused: 0\n"+
		"  Stopped: 1\n"+
		" Images: 1\n"+
		" Server Version: 0.1.0\n"+
		" Kernel Version: 6.1.0-berth\n"+
		" Operating System: Debian GNU/Linux 12 (bookworm)\n"+
		" OSType: linux\n"+
		" Architecture: x86_64\n"+
		" CPUs: 4\n"+
		" Total Memory: 15.6GiB\n"+
		" Name: host1\n"+
		" ID: B3RT:H000\n"+
		" Docker Root Dir: /var/lib/berth\n"+
		" Debug Mode: false\n"+
		" Experimental: false\n"+
		" Default Address Pools:\n"+
		"   Base: 172.17.0.0/16, Size: 16\n"+
		"   Base: 192.168.0.0/16, Size: 20\n"+
		"\n",
		"WARNING: bridge-nf-call-iptables is disabled\n", 0)
}

func TestInfoFormat(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /info", infoJSON)

	d.run("info", "--format", "{{.Name}} {{.NCPU}} {{.ServerVersion}}").expect(t, "host1 4 0.1.0\n", "", 0)
	r := d.run("info", "--format", "{{json .}}")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "{") || !strings.Contains(r.stdout, `"ServerVersion":"0.1.0"`) ||
		strings.Count(r.stdout, "\n") != 1 {
		t.Errorf("info --format '{{json .}}' = %+v", r)
	}
}

func TestDaemonErrorsWithoutJSONBodyStillReadWell(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("GET /sandboxes", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "sandboxes are not enabled", http.StatusNotImplemented)
	})

	d.run("sandbox", "ls").expect(t, "", "Error response from daemon: sandboxes are not enabled\n", 1)
}

func TestUnknownCommandsAreRefused(t *testing.T) {
	runBerth("", nil, "netwrk").expect(t, "", "berth: 'netwrk' is not a berth command.\nSee 'berth --help'\n", 1)
	r := runBerth("", nil, "network", "lss")
	if r.code != 1 || !strings.Contains(r.stderr, "Usage:  berth network COMMAND") {
		t.Errorf("berth network lss = %+v, want the usage and exit 1", r)
	}
}
