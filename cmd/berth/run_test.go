package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestRunTurnsFlagsIntoDockersCreateRequest(t *testing.T) {
	d := newFakeDaemon(t)
	d.addContainer(&fakeContainer{id: "c1", main: prints("", "", 0)})
	envFile := writeFile(t, "X=1\n# a comment\n\n  V= 4 \nFROMENV\nUNSET\n")

	d.runWithEnv(map[string]string{"FROMENV": "from berth", "HOME": "/root"}, "",
		"run", "--rm", "--name", "web", "-h", "hn",
		"--env-file", envFile, "-e", "A=1", "-e", "HOME", "-e", "NOPE",
		"-p", "8080:80", "-p", "127.0.0.1::53/udp", "-p", "[::1]:9000-9001:9000-9001", "-P", "--expose", "7000-7001/udp",
		"--network", "front", "--network-alias", "a1", "--ip", "10.0.0.5", "--ip6", "fd00::5",
		"--mac-address", "92:d0:c6:0a:29:33", "--link", "db:dbalias",
		"--dns", "1.1.1.1", "--dns-search", "example.com", "--dns-option", "ndots:2",
		"--add-host", "h1=10.1.1.1", "--add-host", "h2:[::1]",
		"--entrypoint", "/bin/sh", "-w", "/tmp", "-u", "1000:1000", "-l", "k=v", "-l", "flag",
		"--stop-signal", "SIGUSR1", "--stop-timeout", "7",
		"busybox", "-c", "echo hi", "-l").expect(t, "", "", 0)

	call := d.onlyCall("POST", "/containers/create")
	if got := call.Query["name"]; !slices.Equal(got, []string{"web"}) {
		t.Errorf("name = %q, want web", got)
	}
	for key, want := range map[string]string{
		"Hostname":     `"hn"`,
		"User":         `"1000:1000"`,
		"Image":        `"busybox"`,
		"Cmd":          `["-c", "echo hi", "-l"]`,
		"Entrypoint":   `["/bin/sh"]`,
		"WorkingDir":   `"/tmp"`,
		"Env":          `["X=1", "V= 4 ", "FROMENV=from berth", "A=1", "HOME=/root", "NOPE"]`,
		"Labels":       `{"k": "v", "flag": ""}`,
		"StopSignal":   `"SIGUSR1"`,
		"StopTimeout":  `7`,
		"ExposedPorts": `{"53/udp":{}, "7000/udp":{}, "7001/udp":{}, "80/tcp":{}, "9000/tcp":{}, "9001/tcp":{}}`,
		"AttachStdin":  `false`,
		"AttachStdout": `true`,
		"AttachStderr": `true`,
		"OpenStdin":    `false`,
		"Tty":          `false`,
	} {
		t.Run("Config."+key, func(t *testing.T) { jsonEqual(t, jsonAt(t, call.Body, key), want) })
	}
	for key, want := range map[string]string{
		"NetworkMode": `"front"`,
		"PortBindings": `{
			"53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
			"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
			"9000/tcp": [{"HostIp": "::1", "HostPort": "9000"}],
			"9001/tcp": [{"HostIp": "::1", "HostPort": "9001"}]}`,
		"PublishAllPorts": `true`,
		"AutoRemove":      `true`,
		"Dns":             `["1.1.1.1"]`,
		"DnsSearch":       `["example.com"]`,
		"DnsOptions":      `["ndots:2"]`,
		"ExtraHosts":      `["h1:10.1.1.1", "h2:::1"]`,
		"Links":           `["db:dbalias"]`,
	} {
		t.Run("HostConfig."+key, func(t *testing.T) { jsonEqual(t, jsonAt(t, call.Body, "HostConfig", key), want) })
	}
	ep := jsonAt(t, call.Body, "NetworkingConfig", "EndpointsConfig", "front")
	jsonEqual(t, jsonAt(t, ep, "IPAMConfig"), `{"IPv4Address": "10.0.0.5", "IPv6Address": "fd00::5"}`)
	jsonEqual(t, jsonAt(t, ep, "Aliases"), `["a1"]`)
	jsonEqual(t, jsonAt(t, ep, "Links"), `["db:dbalias"]`)
	jsonEqual(t, jsonAt(t, ep, "MacAddress"), `"92:d0:c6:0a:29:33"`)
}

func TestRunAttachesAndWaitsBeforeStartingThenExitsWithTheContainersCode(t *testing.T) {
	d := newFakeDaemon(t)
	d.addContainer(&fakeContainer{id: "c1", main: prints("hello\n", "oops\n", 3)})

	d.run("run", "busybox").expect(t, "hello\n", "oops\n", 3)
	want := []string{
		"POST /containers/create",
		"POST /containers/c1/attach?stderr=1&stdout=1&stream=1",
		"POST /containers/c1/wait?condition=next-exit",
		"POST /containers/c1/start",
	}
	if got := d.paths(); !slices.Equal(got, want) {
		t.Errorf("requests:\n%q\nwant:\n%q", got, want)
	}
}

func TestRunWithRmWaitsForTheRemoval(t *testing.T) {
	d := newFakeDaemon(t)
	d.addContainer(&fakeContainer{id: "c1", main: prints("hi\n", "", 0)})

	d.run("run", "--rm", "busybox", "echo", "hi").expect(t, "hi\n", "", 0)
	d.onlyCall("POST", "/containers/c1/wait")
	if got := d.paths()[2]; got != "POST /containers/c1/wait?condition=removed" {
		t.Errorf("third request %q, want the wait for removal", got)
	}
	jsonEqual(t, jsonAt(t, d.onlyCall("POST", "/containers/create").Body, "HostConfig", "AutoRemove"), "true")
}

func TestRunInteractiveSendsStdinToTheContainer(t *testing.T) {
	d := newFakeDaemon(t)
	cat := func(p fakeProcess) int {
		if _, err := io.Copy(p.stdout, p.stdin); err != nil {
			return 1
		}
		return 0
	}
	d.addContainer(&fakeContainer{id: "c1", main: cat})

	d.runWithInput("line 1\nline 2\n", "run", "-i", "busybox", "cat").expect(t, "line 1\nline 2\n", "", 0)
	if got := d.paths()[1]; got != "POST /containers/c1/attach?stderr=1&stdin=1&stdout=1&stream=1" {
		t.Errorf("attach %q does not ask for stdin", got)
	}
	body := d.onlyCall("POST", "/containers/create").Body
	for _, key := range []string{"AttachStdin", "OpenStdin", "StdinOnce"} {
		jsonEqual(t, jsonAt(t, body, key), "true")
	}
}

func TestRunDetachedPrintsTheIDAndAttachesNothing(t *testing.T) {
	d := newFakeDaemon(t)
	d.addContainer(&fakeContainer{id: "9f3a1c22b7e0", main: prints("unseen\n", "", 0)})

	d.run("run", "-d", "-i", "busybox").expect(t, "9f3a1c22b7e0\n", "", 0)
	want := []string{"POST /containers/create", "POST /containers/9f3a1c22b7e0/start"}
	if got := d.paths(); !slices.Equal(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
	body := d.onlyCall("POST", "/containers/create").Body
	jsonEqual(t, jsonAt(t, body, "AttachStdout"), "false")
	jsonEqual(t, jsonAt(t, body, "AttachStdin"), "false")
	jsonEqual(t, jsonAt(t, body, "OpenStdin"), "true")
}

func TestRunReportsCreateErrorsLikeDocker(t *testing.T) {
	d := newFakeDaemon(t)
	d.fail("POST /containers/create", http.StatusConflict,
		`Conflict. The container name "/web" is already in use by container "0f768a80860a". You have to remove (or rename) that container to be able to reuse that name.`)

	d.run("run", "--name", "web", "busybox").expect(t, "",
		`berth: Error response from daemon: Conflict. The container name "/web" is already in use by container "0f768a80860a". `+
			"You have to remove (or rename) that container to be able to reuse that name.\n"+
			"See 'berth run --help'.\n", 125)
	if got := d.paths(); len(got) != 1 {
		t.Errorf("requests %q, want only the create", got)
	}
}

func TestRunReportsStartErrorsAfterTheID(t *testing.T) {
	// F4 of the Docker reference: the ID first, then the daemon's refusal,
	// as a sentence without a pointer to --help.
	d := newFakeDaemon(t)
	d.addContainer(&fakeContainer{id: "88fd977fb20c", startError: "user specified IP address is supported on user defined networks only"})

	d.run("run", "-d", "--network", "bridge", "--ip", "172.17.0.99", "busybox").expect(t, "88fd977fb20c\n",
		"berth: Error response from daemon: user specified IP address is supported on user defined networks only.\n", 125)
	d.run("run", "busybox").expect(t, "",
		"berth: Error response from daemon: user specified IP address is supported on user defined networks only.\n", 125)
}

func TestRunExitsWithDockersCodesForCommandsThatCannotRun(t *testing.T) {
	for msg, code := range map[string]int{
		`failed to create task: exec: "nope": executable file not found in $PATH`: 127,
		`exec /etc: permission denied`:                                            126,
		`cgroup setup failed`:                                                     125,
	} {
		d := newFakeDaemon(t)
		d.addContainer(&fakeContainer{id: "c1", startError: msg})
		d.run("run", "busybox", "nope").expect(t, "", "berth: Error response from daemon: "+msg+".\n", code)
	}
}

func TestRunWithoutTheImageSaysHowImagesComeIn(t *testing.T) {
	d := newFakeDaemon(t)
	d.fail("POST /containers/create", http.StatusNotFound, "No such image: busybox:latest")

	d.run("run", "busybox").expect(t, "", ""+
		"Unable to find image 'busybox:latest' locally\n"+
		"berth: Error response from daemon: No such image: busybox:latest.\n"+
		"berth has no registry to pull from: bring the image in with 'berth image import FILE busybox:latest'.\n"+
		"See 'berth run --help'.\n", 125)
	d.run("create", "local/busybox:1.35").expect(t, "", ""+
		"Unable to find image 'local/busybox:1.35' locally\n"+
		"Error response from daemon: No such image: busybox:latest\n"+
		"berth has no registry to pull from: bring the image in with 'berth image import FILE local/busybox:1.35'\n", 1)
	if n := len(d.calls("POST", "/images/create")); n != 0 {
		t.Errorf("berth tried to pull %d times", n)
	}
}

func TestRunOtherNotFoundErrorsAreNoMissingImage(t *testing.T) {
	d := newFakeDaemon(t)
	d.fail("POST /containers/create", http.StatusNotFound, "network nosuchnet not found")

	d.run("run", "--network", "nosuchnet", "busybox").expect(t, "",
		"berth: Error response from daemon: network nosuchnet not found.\nSee 'berth run --help'.\n", 125)
}

func TestRunRefusesATerminal(t *testing.T) {
	d := newFakeDaemon(t)
	want := "berth: berth containers have no terminal: -t/--tty is not supported (use -i to send input).\n" +
		"See 'berth run --help'.\n"
	d.run("run", "-it", "busybox", "sh").expect(t, "", want, 125)
	d.run("create", "-t", "busybox").expect(t, "", strings.Replace(want, "run", "create", 1), 125)
	d.run("exec", "-t", "c1", "sh").expect(t, "",
		"berth containers have no terminal: -t/--tty is not supported (use -i to send input)\n", 1)
	if got := d.paths(); len(got) != 0 {
		t.Errorf("requests %q, want none", got)
	}
}

func TestRunRefusesMalformedPortsWithDockersWords(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-p", "foo"}, "invalid containerPort: foo"},
		{[]string{"-p", "80:foo"}, "invalid containerPort: foo"},
		{[]string{"-p", "1.2.3:80:80"}, "invalid IP address: 1.2.3"},
		{[]string{"-p", "80/xyz"}, "invalid proto: xyz"},
		{[]string{"-p", "8000-8010:80-81"}, "invalid ranges specified for container and host Ports: 80-81 and 8000-8010"},
		{[]string{"-p", ""}, "no port specified: <empty>"},
		{[]string{"--expose", "1.2.3.4:80"}, "invalid port format for --expose: 1.2.3.4:80"},
		{[]string{"--mac-address", "zz"}, "zz is not a valid mac address"},
		{[]string{"--ip", "10.0.0.300"}, "invalid IPv4 address: 10.0.0.300"},
		{[]string{"--network-alias", "a", "--network", "bridge"}, "network-scoped aliases are only supported for user-defined networks"},
		{[]string{"--network-alias", "a"}, "network-scoped aliases are only supported for user-defined networks"},
		{[]string{"--env-file", "/nonexistent/env"}, "open /nonexistent/env: no such file or directory"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			d := newFakeDaemon(t)
			args := append(append([]string{"run"}, tc.args...), "busybox")
			d.run(args...).expect(t, "", "berth: "+tc.want+".\nSee 'berth run --help'.\n", 125)
			if got := d.paths(); len(got) != 0 {
				t.Errorf("requests %q, want none", got)
			}
		})
	}
}

func TestRunChecksFlagValuesAsTheyAreGiven(t *testing.T) {
	for _, tc := range []struct {
		flag, value, want string
	}{
		{"--dns", "foo", "IP address is not correctly formatted: foo"},
		{"--add-host", "h:foo", `invalid IP address in add-host: "foo"`},
		{"--add-host", ":1.1.1.1", `bad format for add-host: ":1.1.1.1"`},
		{"-e", "=x", "invalid environment variable: =x"},
		{"-l", "=x", "invalid label '=x': empty name"},
		{"--link", "a:b:c", "bad format for links: a:b:c"},
	} {
		name := strings.TrimLeft(tc.flag, "-")
		if len(name) == 1 {
			name = map[string]string{"e": "-e, --env", "l": "-l, --label"}[name]
		} else {
			name = "--" + name
		}
		runBerth("", nil, "run", tc.flag, tc.value, "busybox").expect(t, "",
			"invalid argument \""+tc.value+"\" for \""+name+"\" flag: "+tc.want+"\nSee 'berth run --help'.\n", 125)
	}
}

func TestRunReadsEnvFilesAsDockerDoes(t *testing.T) {
	for _, tc := range []struct {
		file, want string
	}{
		{"Z = 2\n", "variable 'Z ' contains whitespaces"},
		{"A=1\n=x\n", "no variable name on line '=x'"},
		{"\xff\xfe\n", "invalid utf8 bytes at line 1: [255 254]"},
	} {
		d := newFakeDaemon(t)
		path := writeFile(t, tc.file)
		d.run("run", "--env-file", path, "busybox").expect(t, "",
			"berth: invalid env file ("+path+"): "+tc.want+".\nSee 'berth run --help'.\n", 125)
	}

	d := newFakeDaemon(t)
	d.addContainer(&fakeContainer{id: "c1", main: prints("", "", 0)})
	path := writeFile(t, "\xef\xbb\xbfA=1\n\tTAB=x y\n")
	d.run("create", "--env-file", path, "busybox").expect(t, "c1\n", "", 0)
	jsonEqual(t, jsonAt(t, d.onlyCall("POST", "/containers/create").Body, "Env"), `["A=1", "TAB=x y"]`)
}

func TestRunOnTheDefaultNetworkSendsItsEndpoint(t *testing.T) {
	d := newFakeDaemon(t)
	d.addContainer(&fakeContainer{id: "c1", main: prints("", "", 0)})

	d.run("run", "-d", "--ip", "172.17.0.99", "--mac-address", "92:d0:c6:0a:29:33", "--link", "db", "busybox").
		expect(t, "c1\n", "", 0)
	body := d.onlyCall("POST", "/containers/create").Body
	jsonEqual(t, jsonAt(t, body, "HostConfig", "NetworkMode"), `"default"`)
	jsonEqual(t, jsonAt(t, body, "HostConfig", "Links"), `["db"]`)
	ep := jsonAt(t, body, "NetworkingConfig", "EndpointsConfig", "default")
	jsonEqual(t, jsonAt(t, ep, "IPAMConfig"), `{"IPv4Address": "172.17.0.99"}`)
	jsonEqual(t, jsonAt(t, ep, "MacAddress"), `"92:d0:c6:0a:29:33"`)
	jsonEqual(t, jsonAt(t, ep, "Links"), `null`) // a legacy link, in HostConfig only
}

func TestRunOnANamedNetworkSendsNoEmptyEndpoint(t *testing.T) {
	d := newFakeDaemon(t)
	d.addContainer(&fakeContainer{id: "c1", main: prints("", "", 0)})

	d.run("run", "-d", "--net", "host", "busybox").expect(t, "c1\n", "", 0)
	body := d.onlyCall("POST", "/containers/create").Body
	jsonEqual(t, jsonAt(t, body, "HostConfig", "NetworkMode"), `"host"`)
	jsonEqual(t, jsonAt(t, body, "NetworkingConfig"), `{"EndpointsConfig": {}}`)
}

func TestRunPassesOnTheDaemonsWarnings(t *testing.T) {
	d := newFakeDaemon(t)
	d.addContainer(&fakeContainer{id: "c1", warnings: []string{"Your kernel does not support swap limit capabilities."}, main: prints("", "", 0)})

	d.run("run", "-d", "--dns", "127.0.0.1", "--dns", "::1", "busybox").expect(t, "c1\n", ""+
		"WARNING: Your kernel does not support swap limit capabilities.\n"+
		"WARNING: Localhost DNS (127.0.0.1) may fail in containers.\n", 0)
}

func TestRunReportsAFailedWaitWithDockersCode(t *testing.T) {
	d := newFakeDaemon(t)
	d.addContainer(&fakeContainer{id: "c1", main: prints("out\n", "", 0), waitError: "container c1 was removed"})

	d.run("run", "busybox").expect(t, "out\n", "berth: error waiting for container: container c1 was removed\n", 125)
}

func TestRunPassesSignalsToTheContainer(t *testing.T) {
	d := newFakeDaemon(t)
	// The container sends berth SIGUSR1 and exits with what berth passed
	// on: berth would die of it if it did not catch it.
	d.addContainer(&fakeContainer{id: "c1", main: func(p fakeProcess) int {
		if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
			return 1
		}
		io.WriteString(p.stdout, <-p.signals+"\n")
		return 138
	}})

	d.run("run", "busybox").expect(t, "SIGUSR1\n", "", 138)
}

func TestCreatePrintsTheIDAndReportsErrorsAsDockerCreateDoes(t *testing.T) {
	d := newFakeDaemon(t)
	d.addContainer(&fakeContainer{id: "0c0167fa5369", main: prints("", "", 0)})

	d.run("create", "-i", "--name", "y", "busybox", "echo", "-n").expect(t, "0c0167fa5369\n", "", 0)
	body := d.onlyCall("POST", "/containers/create").Body
	jsonEqual(t, jsonAt(t, body, "Cmd"), `["echo", "-n"]`)
	for _, key := range []string{"AttachStdin", "AttachStdout", "StdinOnce"} {
		jsonEqual(t, jsonAt(t, body, key), "true")
	}
	if got := d.paths(); len(got) != 1 {
		t.Errorf("requests %q, want only the create", got)
	}

	d = newFakeDaemon(t)
	d.fail("POST /containers/create", http.StatusBadRequest, "conflicting options: hostname and the network mode")
	d.run("create", "--network", "container:web", "-h", "x", "busybox").expect(t, "",
		"Error response from daemon: conflicting options: hostname and the network mode\n", 1)
}

func TestRunWithoutAnImageIsAUsageError(t *testing.T) {
	runBerth("", nil, "run").expect(t, "", ""+
		"\"berth run\" requires at least 1 argument.\n"+
		"See 'berth run --help'.\n\n"+
		"Usage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n"+
		"Create and run a new container from an image\n", 1)
}

// writeFile writes content to a new file of the test and returns its path.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
