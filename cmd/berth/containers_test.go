package main

import (
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

// psJSON is three containers as berthd lists them, created 3 hours, 2 days
// and 40 days ago. The tables expected of them below are what the Docker
// 28.2 CLI printed for the same answer.
func psJSON() string {
	now := time.Now()
	ago := func(d time.Duration) int64 { return now.Add(-d).Unix() }
	return fmt.Sprintf(`[
 {"Id":"a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcdef0123456789abcdef01","Names":["/web","/other/alias"],
  "Image":"busybox","ImageID":"sha256:aaaa1111bbbb2222","Command":"sh -c 'while true; do echo hello world; sleep 1; done'","Created":%d,
  "Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},{"IP":"::","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
           {"PrivatePort":443,"Type":"tcp"},{"IP":"127.0.0.1","PrivatePort":53,"PublicPort":5353,"Type":"udp"},
           {"IP":"0.0.0.0","PrivatePort":7000,"PublicPort":7000,"Type":"tcp"},{"IP":"0.0.0.0","PrivatePort":7001,"PublicPort":7001,"Type":"tcp"}],
  "Labels":{"tier":"front","app":"web"},"State":"running","Status":"Up 3 hours","HostConfig":{"NetworkMode":"front"},
  "NetworkSettings":{"Networks":{"front":{},"back":{}}},"Mounts":[]},
 {"Id":"0f768a80860a02a2f39a63712dc7769a92be2f6d4adcf156d11e9f5b6975f3cc","Names":["/db"],
  "Image":"sha256:2222333344445555666677778888999900001111222233334444555566667777",
  "ImageID":"sha256:2222333344445555666677778888999900001111222233334444555566667777","Command":"echo done","Created":%d,
  "Ports":[],"Labels":{},"State":"exited","Status":"Exited (0) 2 days ago","HostConfig":{"NetworkMode":"bridge"},
  "NetworkSettings":{"Networks":{"bridge":{}}},"Mounts":[]},
 {"Id":"7dbb995879c93424ab0d0afbfd85f45d5588bdb70baf29439d262b0d70fabdda","Names":["/x"],
  "Image":"local/busybox:1.35@sha256:abababababababababababababababababababababababababababababababab","ImageID":"sha256:cccc",
  "Command":"sleep 100000 \"with space\" 日本語","Created":%d,
  "Ports":[],"Labels":null,"State":"created","Status":"Created","HostConfig":{},"Mounts":[]}
]`, ago(3*time.Hour+5*time.Second), ago(48*time.Hour+time.Minute), ago(40*24*time.Hour))
}

func TestPsPrintsDockersTableByteForByte(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("GET /containers/json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, psJSON())
	})

	d.run("ps").expect(t, ""+
		"CONTAINER ID   IMAGE                COMMAND                   CREATED       STATUS                  PORTS                                                                                                        NAMES\n"+
		"a1b2c3d4e5f6   busybox              \"sh -c 'while true; …\"    3 hours ago   Up 3 hours              443/tcp, 0.0.0.0:7000-7001->7000-7001/tcp, 127.0.0.1:5353->53/udp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp   web\n"+
		"0f768a80860a   222233334444         \"echo done\"               2 days ago    Exited (0) 2 days ago                                                                                                                db\n"+
		"7dbb995879c9   local/busybox:1.35   \"sleep 100000 \\\"with …\"   5 weeks ago   Created                                                                                                                              x\n",
		"", 0)
	d.run("ps", "--no-trunc").expect(t, ""+
		"CONTAINER ID                                                       IMAGE                                                                                        COMMAND                                                    CREATED       STATUS                  PORTS                                                                                                        NAMES\n"+
		"a1b2c3d4e5f60718293a4b5c6d7e8f9012345678abcdef0123456789abcdef01   busybox                                                                                      \"sh -c 'while true; do echo hello world; sleep 1; done'\"   3 hours ago   Up 3 hours              443/tcp, 0.0.0.0:7000-7001->7000-7001/tcp, 127.0.0.1:5353->53/udp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp   web,other/alias\n"+
		"0f768a80860a02a2f39a63712dc7769a92be2f6d4adcf156d11e9f5b6975f3cc   sha256:2222333344445555666677778888999900001111222233334444555566667777                      \"echo done\"                                                2 days ago    Exited (0) 2 days ago                                                                                                                db\n"+
		"7dbb995879c93424ab0d0afbfd85f45d5588bdb70baf29439d262b0d70fabdda   local/busybox:1.35@sha256:abababababababababababababababababababababababababababababababab   \"sleep 100000 \\\"with space\\\" 日本語\"                       5 weeks ago   Created                                                                                                                              x\n",
		"", 0)
}

func TestPsTemplatesQuietAndJSON(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("GET /containers/json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, psJSON())
	})

	d.run("ps", "-q").expect(t, "a1b2c3d4e5f6\n0f768a80860a\n7dbb995879c9\n", "", 0)
	d.run("ps", "--format", "{{.Names}} {{.State}} {{.Networks}} {{.Labels}} {{.Label \"app\"}}").expect(t, ""+
		"web running back,front app=web,tier=front web\n"+
		"db exited bridge  \n"+
		"x created   \n", "", 0)
	d.run("ps", "--format", `table {{.Names}}\t{{.RunningFor}}\t{{.Size}}\t{{.LocalVolumes}}`).expect(t, ""+
		"NAMES     CREATED       SIZE      LOCAL VOLUMES\n"+
		"web       3 hours ago   0B        0\n"+
		"db        2 days ago    0B        0\n"+
		"x         5 weeks ago   0B        0\n", "", 0)

	r := d.run("ps", "--format", "json")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 0 || len(lines) != 3 {
		t.Fatalf("got %+v, want three JSON lines", r)
	}
	jsonEqual(t, []byte(lines[1]), fmt.Sprintf(`{"Command":"\"echo done\"","CreatedAt":%q,"ID":"0f768a80860a",`+
		`"Image":"222233334444","Labels":"","LocalVolumes":"0","Mounts":"","Names":"db","Networks":"bridge",`+
		`"Platform":null,"Ports":"","RunningFor":"2 days ago","Size":"0B","State":"exited","Status":"Exited (0) 2 days ago"}`,
		time.Unix(time.Now().Add(-48*time.Hour-time.Minute).Unix(), 0).String()))
}

func TestPsSendsDockersListOptions(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /containers/json", "[]")

	d.run("ps").expect(t, "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n", "", 0)
	d.run("ps", "-a", "-n", "2", "-f", "status=exited", "--filter", "name=x", "-q").expect(t, "", "", 0)
	d.run("ps", "-l", "-q").expect(t, "", "", 0)
	want := []string{
		"GET /containers/json",
		"GET /containers/json?all=1&filters=%7B%22name%22%3A%7B%22x%22%3Atrue%7D%2C%22status%22%3A%7B%22exited%22%3Atrue%7D%7D&limit=2",
		"GET /containers/json?limit=1",
	}
	if got := d.paths(); !slices.Equal(got, want) {
		t.Errorf("requests:\n%q\nwant:\n%q", got, want)
	}
}

func TestDisplayPortsGroupsAndOrdersAsDocker(t *testing.T) {
	ip := netip.MustParseAddr
	port := func(addr string, private, public uint16, proto string) container.PortSummary {
		p := container.PortSummary{PrivatePort: private, PublicPort: public, Type: proto}
		if addr != "" {
			p.IP = ip(addr)
		}
		return p
	}
	// Each case as the Docker 28.2 CLI showed it.
	for _, tc := range []struct {
		ports []container.PortSummary
		want  string
	}{
		{nil, ""},
		{[]container.PortSummary{port("", 7000, 0, "tcp"), port("", 7001, 0, "tcp"), port("", 7002, 0, "tcp"), port("", 7004, 0, "tcp")},
			"7000-7002/tcp, 7004/tcp"},
		{[]container.PortSummary{port("0.0.0.0", 80, 80, "tcp"), port("0.0.0.0", 81, 81, "tcp"), port("::", 80, 80, "tcp"),
			port("::", 81, 81, "tcp"), port("", 53, 0, "udp"), port("", 54, 0, "udp")},
			"53-54/udp, 0.0.0.0:80-81->80-81/tcp, [::]:80-81->80-81/tcp"},
		{[]container.PortSummary{port("", 80, 0, "tcp"), port("0.0.0.0", 85, 85, "tcp"), port("", 90, 0, "tcp"), port("", 81, 0, "tcp")},
			"80-81/tcp, 90/tcp, 0.0.0.0:85->85/tcp"},
		{[]container.PortSummary{port("0.0.0.0", 80, 80, "tcp"), port("0.0.0.0", 80, 80, "tcp"), port("0.0.0.0", 90, 9090, "tcp"), port("", 80, 0, "udp")},
			"0.0.0.0:80->80/tcp, 80/udp, 0.0.0.0:80->80/tcp, 0.0.0.0:9090->90/tcp"},
	} {
		if got := displayPorts(tc.ports); got != tc.want {
			t.Errorf("displayPorts(%v)\n= %q\nwant %q", tc.ports, got, tc.want)
		}
	}
}

func TestStopKillRestartSendTheirOptionsAndPrintNames(t *testing.T) {
	d := newFakeDaemon(t)
	ok := func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "nope" {
			writeError(w, http.StatusNotFound, "No such container: nope")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
	d.handle("POST /containers/{id}/stop", ok)
	d.handle("POST /containers/{id}/kill", ok)
	d.handle("POST /containers/{id}/restart", ok)

	d.run("stop", "web", "nope", "db").expect(t, "web\ndb\n", "Error response from daemon: No such container: nope\n", 1)
	d.run("stop", "-t", "3", "-s", "KILL", "web").expect(t, "web\n", "", 0)
	d.run("kill", "-s", "9", "web").expect(t, "web\n", "", 0)
	d.run("kill", "web").expect(t, "web\n", "", 0)
	d.run("restart", "-t", "0", "web").expect(t, "web\n", "", 0)
	want := []string{
		"POST /containers/web/stop", "POST /containers/nope/stop", "POST /containers/db/stop",
		"POST /containers/web/stop?signal=KILL&t=3",
		"POST /containers/web/kill?signal=9",
		"POST /containers/web/kill",
		"POST /containers/web/restart?t=0",
	}
	if got := d.paths(); !slices.Equal(got, want) {
		t.Errorf("requests:\n%q\nwant:\n%q", got, want)
	}
}

func TestRmForceTakesMissingContainersAsGone(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("DELETE /containers/{id}", func(w http.ResponseWriter, r *http.Request) {
		if id := r.PathValue("id"); id != "web" {
			writeError(w, http.StatusNotFound, "No such container: "+id)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})

	d.run("rm", "nope", "web").expect(t, "web\n", "Error response from daemon: No such container: nope\n", 1)
	d.run("rm", "-f", "-v", "nope", "web").expect(t, "web\n", "Error response from daemon: No such container: nope\n", 0)
	if got := encodeQuery(d.calls("DELETE", "/containers/web")[1].Query); got != "force=1&v=1" {
		t.Errorf("query %q, want force=1&v=1", got)
	}
}

func TestStartPrintsNamesAndNamesTheFailures(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("POST /containers/{id}/start", func(w http.ResponseWriter, r *http.Request) {
		if id := r.PathValue("id"); id != "web" {
			writeError(w, http.StatusBadRequest, "user specified IP address is supported on user defined networks only")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})

	d.run("start", "web", "c1", "c2").expect(t, "web\n", ""+
		"Error response from daemon: user specified IP address is supported on user defined networks only\n"+
		"Error response from daemon: user specified IP address is supported on user defined networks only\n"+
		"Error: failed to start containers: c1, c2\n", 1)
	d.run("start", "-a", "web", "c1").expect(t, "", "you cannot start and attach multiple containers at once\n", 1)
}

func TestStartAttachedStreamsTheOutputAndExitsWithTheCode(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /containers/{id}/json", `{"Id":"c1","Config":{"OpenStdin":true},"HostConfig":{"AutoRemove":true}}`)
	echo := func(p fakeProcess) int {
		in, _ := io.ReadAll(p.stdin)
		fmt.Fprintf(p.stdout, "got %q\n", in)
		io.WriteString(p.stderr, "bye\n")
		return 4
	}
	d.addContainer(&fakeContainer{id: "c1", main: echo})

	d.runWithInput("hi", "start", "-a", "-i", "web").expect(t, "got \"hi\"\n", "bye\n", 4)
	want := []string{
		"GET /containers/web/json",
		"POST /containers/c1/attach?stderr=1&stdin=1&stdout=1&stream=1",
		"POST /containers/c1/wait?condition=removed",
		"POST /containers/c1/start",
	}
	if got := d.paths(); !slices.Equal(got, want) {
		t.Errorf("requests:\n%q\nwant:\n%q", got, want)
	}
}

func TestWaitPrintsExitCodes(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("POST /containers/{id}/wait", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("id") {
		case "nope":
			writeError(w, http.StatusNotFound, "No such container: nope")
		case "a":
			writeJSON(w, http.StatusOK, map[string]int{"StatusCode": 0})
		default:
			writeJSON(w, http.StatusOK, map[string]int{"StatusCode": 137})
		}
	})

	d.run("wait", "a", "nope", "b").expect(t, "0\n137\n", "Error response from daemon: No such container: nope\n", 1)
}

func TestLogsSendsStdoutAndStderrToTheirStreams(t *testing.T) {
	d := newFakeDaemon(t)
	d.handle("GET /containers/{id}/logs", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
		out, errOut := frameWriter{w, 1}, frameWriter{w, 2}
		io.WriteString(out, "line 1\n")
		io.WriteString(errOut, "warning\n")
		io.WriteString(out, "line 2\n")
	})

	d.run("logs", "web").expect(t, "line 1\nline 2\n", "warning\n", 0)
	d.run("logs", "-f", "-t", "-n", "5", "--until", "2026-01-01T00:00:00Z", "web").expect(t, "line 1\nline 2\n", "warning\n", 0)
	calls := d.calls("GET", "/containers/web/logs")
	if q := encodeQuery(calls[0].Query); q != "stderr=1&stdout=1" {
		t.Errorf("query %q", q)
	}
	if q := encodeQuery(calls[1].Query); q != "follow=1&stderr=1&stdout=1&tail=5&timestamps=1&until=1767225600.000000000" {
		t.Errorf("query %q", q)
	}
}

func TestLogsReportsAMissingContainer(t *testing.T) {
	d := newFakeDaemon(t)
	d.fail("GET /containers/{id}/logs", http.StatusNotFound, "No such container: nope")
	d.run("logs", "nope").expect(t, "", "Error response from daemon: No such container: nope\n", 1)
}

func TestExecStreamsTheOutputAndExitsWithTheCommandsCode(t *testing.T) {
	d := newFakeDaemon(t)
	d.addExec(&fakeExec{id: "e1", main: prints("exec out\n", "exec err\n", 7)})

	d.runWithEnv(map[string]string{"HOME": "/root"}, "", "exec", "-e", "A=1", "-e", "HOME", "-w", "/w", "-u", "nobody",
		"web", "sh", "-c", "exit 7").expect(t, "exec out\n", "exec err\n", 7)
	jsonEqual(t, d.onlyCall("POST", "/containers/web/exec").Body, `{
		"User": "nobody", "Privileged": false, "Tty": false,
		"AttachStdin": false, "AttachStdout": true, "AttachStderr": true, "DetachKeys": "",
		"Env": ["A=1", "HOME=/root"], "WorkingDir": "/w", "Cmd": ["sh", "-c", "exit 7"]}`)
	want := []string{"POST /containers/web/exec", "POST /exec/e1/start", "GET /exec/e1/json"}
	if got := d.paths(); !slices.Equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
}

func TestExecInteractiveSendsStdin(t *testing.T) {
	d := newFakeDaemon(t)
	d.addExec(&fakeExec{id: "e1", main: func(p fakeProcess) int {
		io.Copy(p.stdout, p.stdin)
		return 0
	}})

	d.runWithInput("some input\n", "exec", "-i", "web", "cat").expect(t, "some input\n", "", 0)
	jsonEqual(t, jsonAt(t, d.onlyCall("POST", "/containers/web/exec").Body, "AttachStdin"), "true")
}

func TestExecDetachedAttachesNothing(t *testing.T) {
	d := newFakeDaemon(t)
	d.addExec(&fakeExec{id: "e1", main: prints("unseen", "", 3)})

	d.run("exec", "-d", "web", "sleep", "1").expect(t, "", "", 0)
	body := d.onlyCall("POST", "/containers/web/exec").Body
	jsonEqual(t, jsonAt(t, body, "AttachStdout"), "false")
	jsonEqual(t, d.onlyCall("POST", "/exec/e1/start").Body, `{"Detach": true, "Tty": false}`)
}

func TestExecReportsDaemonErrors(t *testing.T) {
	d := newFakeDaemon(t)
	d.fail("POST /containers/{id}/exec", http.StatusConflict, "container 0f768a80860a is not running")
	d.run("exec", "db", "ls").expect(t, "", "Error response from daemon: container 0f768a80860a is not running\n", 1)
}

// portsJSON is NetworkSettings.Ports as berthd gives them (F12 of the
// Docker reference, with IPv6).
const portsJSON = `{"Id":"c1","NetworkSettings":{"Ports":{
	"5201/tcp":[{"HostIp":"0.0.0.0","HostPort":"15291"},{"HostIp":"::","HostPort":"15291"}],
	"5202/udp":[{"HostIp":"127.0.0.1","HostPort":"15292"}],
	"443/tcp":null,
	"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"32768"}]}}}`

func TestPortPrintsThePublishedPorts(t *testing.T) {
	d := newFakeDaemon(t)
	d.answerRaw("GET /containers/{id}/json", portsJSON)

	d.run("port", "f_p1").expect(t, ""+
		"80/tcp -> 0.0.0.0:32768\n"+
		"5201/tcp -> 0.0.0.0:15291\n"+
		"5201/tcp -> [::]:15291\n"+
		"5202/udp -> 127.0.0.1:15292\n", "", 0)
	d.run("port", "f_p1", "5201").expect(t, "0.0.0.0:15291\n[::]:15291\n", "", 0)
	d.run("port", "f_p1", "5202/udp").expect(t, "127.0.0.1:15292\n", "", 0)
	d.run("port", "f_p1", "443").expect(t, "", "Error: No public port '443' published for f_p1\n", 1)
	d.run("port", "f_p1", "5202").expect(t, "", "Error: No public port '5202' published for f_p1\n", 1)
	d.run("port", "f_p1", "foo/tcp").expect(t, "",
		"Error: invalid port (foo): strconv.ParseUint: parsing \"foo\": invalid syntax\n", 1)
}

func TestPortArgumentsAreChecked(t *testing.T) {
	runBerth("", nil, "port").expect(t, "", ""+
		"\"berth port\" requires at least 1 and at most 2 arguments.\n"+
		"See 'berth port --help'.\n\n"+
		"Usage:  berth port CONTAINER [PRIVATE_PORT[/PROTO]]\n\n"+
		"List port mappings or a specific mapping for the container\n", 1)
}
