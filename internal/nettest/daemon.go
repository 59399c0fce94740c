package nettest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/api"
)

var berthd string

// Main builds berthd once for the test binary (unless $BERTHD names a built
// one), runs the tests and removes the build.
func Main(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	defer removeBusyboxImage()
	if os.Geteuid() != 0 {
		return m.Run()
	}
	sweepAbandoned()
	if berthd = os.Getenv("BERTHD"); berthd == "" {
		dir, err := tempDir("berth-nettest-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "nettest:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		berthd = filepath.Join(dir, "berthd")
		out, err := exec.Command("go", "build", "-o", berthd, "github.com/berth-net/berth/cmd/berthd").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "nettest: build berthd: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// Host is a network namespace standing in for a machine, with a directory
// for the files of the daemons it runs.
type Host struct {
	*Namespace
	Dir string
	t   testing.TB
}

// NewHost makes a fresh host. When the test ends its daemons are stopped
// and the namespace, with every device in it, is removed.
func NewHost(t testing.TB) *Host {
	t.Helper()
	RequireRoot(t)
	// Not t.TempDir(): socket paths under it outgrow the 108 bytes a unix
	// socket address may have.
	dir, err := tempDir("berth-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// BERTH_TEST_KEEP=1 keeps daemon logs and state for a look after.
		if os.Getenv("BERTH_TEST_KEEP") == "" {
			os.RemoveAll(dir)
		} else {
			// Kept for a look: not for the next test binary to sweep.
			os.Remove(filepath.Join(dir, ownerFile))
		}
	})
	h := &Host{Dir: dir, t: t}
	// Registered before the namespace so it runs after the daemons have
	// stopped: mounts the daemons made go first.
	t.Cleanup(func() { unmountUnder(dir) })
	h.Namespace = NewNamespace(t, dir, "host.netns")
	return h
}

// NewNamespace makes another namespace (a container) for this host's test.
func (h *Host) NewNamespace(name string) *Namespace {
	h.t.Helper()
	return NewNamespace(h.t, h.Dir, name+".netns")
}

// Daemon is a berthd running in a Host.
type Daemon struct {
	Host     *Host
	Root     string
	ExecRoot string
	Socket   string
	// Args are extra berthd flags, kept across restarts.
	Args []string
	// Client is Docker's client, API version negotiated.
	Client *client.Client
	// API reaches berth's own routes.
	API *api.Client

	t       testing.TB
	logPath string
	cmd     *exec.Cmd
	last    *exec.Cmd
	exited  chan struct{}
}

// StartDaemon starts berthd in the host with fresh directories.
func (h *Host) StartDaemon(args ...string) *Daemon {
	h.t.Helper()
	if berthd == "" {
		h.t.Fatal("nettest: berthd was not built; the package's TestMain must call nettest.Main")
	}
	dir, err := os.MkdirTemp(h.Dir, "d")
	if err != nil {
		h.t.Fatal(err)
	}
	d := &Daemon{
		Host: h, t: h.t, Args: args,
		Root: filepath.Join(dir, "root"), ExecRoot: filepath.Join(dir, "run"),
		Socket: filepath.Join(dir, "run", "berth.sock"), logPath: filepath.Join(dir, "berthd.log"),
	}
	h.t.Cleanup(func() {
		d.Stop()
		d.killContainers()
		if strings.Contains(d.Log(), "WARNING: DATA RACE") {
			h.t.Errorf("berthd reported a data race")
		}
		if h.t.Failed() {
			d.dumpLog()
		}
	})
	d.Start()
	return d
}

// URL is the daemon's API endpoint, as DOCKER_HOST wants it.
func (d *Daemon) URL() string { return "unix://" + d.Socket }

// Start (re)starts the daemon with its directories and waits until it
// answers.
func (d *Daemon) Start() {
	d.t.Helper()
	if err := d.start(); err != nil {
		d.dumpLog()
		d.t.Fatal(err)
	}
}

func (d *Daemon) start() error {
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"--host", d.URL(), "--root", d.Root, "--exec-root", d.ExecRoot, "--log-level", "debug"}
	// The machine's own plugins and CNI configurations stay out of tests
	// that do not name theirs.
	if !slices.ContainsFunc(d.Args, func(a string) bool { return strings.HasPrefix(a, "--plugins-dir") }) {
		args = append(args, "--plugins-dir", filepath.Join(d.Root, "..", "plugins"))
	}
	if !slices.ContainsFunc(d.Args, func(a string) bool { return strings.HasPrefix(a, "--cni-conf-dir") }) {
		args = append(args, "--cni-conf-dir", filepath.Join(d.Root, "..", "cni"))
	}
	args = append(args, d.Args...)
	cmd := exec.Command(berthd, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := startIn(d.Host.Namespace, cmd); err != nil {
		return fmt.Errorf("start berthd: %w", err)
	}
	d.cmd, d.last = cmd, cmd
	d.exited = make(chan struct{})
	go func() { cmd.Wait(); close(d.exited) }()

	if d.Client == nil {
		if d.Client, err = client.New(client.WithHost(d.URL()), client.WithAPIVersionNegotiation()); err != nil {
			return err
		}
		if d.API, err = api.NewClient(d.URL()); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := d.Client.Ping(ctx, client.PingOptions{})
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-d.exited:
			return fmt.Errorf("berthd exited while starting: %v", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("berthd did not answer within 20s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startIn starts cmd from a thread inside ns: a forked child inherits the
// network namespace of the thread that forked it.
func startIn(ns *Namespace, cmd *exec.Cmd) error {
	return ns.Do(cmd.Start)
}

// PID is the running daemon's process ID, 0 when it does not run.
func (d *Daemon) PID() int {
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Kill ends the daemon with SIGKILL, as a crash would.
func (d *Daemon) Kill() {
	d.t.Helper()
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Kill()
	<-d.exited
	d.cmd = nil
}

// Stop ends the daemon with SIGTERM and waits for it.
func (d *Daemon) Stop() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(15 * time.Second):
		d.t.Errorf("berthd ignored SIGTERM for 15s; killing it")
		d.cmd.Process.Kill()
		<-d.exited
	}
	d.cmd = nil
}

// ExitCode is the exit status of the daemon's last run, -1 while it runs.
func (d *Daemon) ExitCode() int {
	select {
	case <-d.exited:
		return d.last.ProcessState.ExitCode()
	default:
		return -1
	}
}

// Log returns what the daemon has logged.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

func (d *Daemon) dumpLog() {
	log := d.Log()
	if lines := strings.Split(log, "\n"); len(lines) > 200 {
		log = strings.Join(lines[len(lines)-200:], "\n")
	}
	d.t.Logf("berthd log (%s):\n%s", d.logPath, log)
}

// Berthd is the path of the berthd binary under test.
func Berthd() string { return berthd }

// Run runs a command inside the host's namespace with the daemon's endpoint
// in DOCKER_HOST and BERTH_HOST, returning its output and exit code.
func (d *Daemon) Run(ctx context.Context, stdin string, name string, args ...string) (stdout, stderr string, code int, err error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.URL(), "BERTH_HOST="+d.URL(), "DOCKER_CONFIG="+d.Host.Dir)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errOut, strings.NewReader(stdin)
	if err := startIn(d.Host.Namespace, cmd); err != nil {
		return "", "", 0, err
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), errOut.String(), exit.ExitCode(), nil
	}
	return out.String(), errOut.String(), 0, err
}

// killContainers ends every container the daemon left running (containers
// outlive berthd by design); their shims end with them.
func (d *Daemon) killContainers() {
	root := filepath.Join(d.ExecRoot, "runc")
	out, err := exec.Command("runc", "--root", root, "list", "-q").Output()
	if err != nil {
		return
	}
	for _, id := range strings.Fields(string(out)) {
		exec.Command("runc", "--root", root, "kill", "--all", id, "KILL").Run()
		exec.Command("runc", "--root", root, "delete", "--force", id).Run()
	}
}

// Reboot does to the daemon and its host what a reboot would: berthd and
// its containers end, every mount under the exec-root goes and the
// exec-root is emptied (it is a tmpfs), and the kernel forgets the
// devices and nftables tables berth made. The root stays. Start brings
// berthd up again, as the boot would.
func (d *Daemon) Reboot() {
	d.t.Helper()
	d.Kill()
	d.killContainers()
	unmountUnder(d.ExecRoot)
	if err := os.RemoveAll(d.ExecRoot); err != nil {
		d.t.Fatal(err)
	}
	h := d.Host
	links, err := h.Netlink.LinkList()
	if err != nil {
		d.t.Fatal(err)
	}
	for _, l := range links {
		name := l.Attrs().Name
		if name == "berth0" || strings.HasPrefix(name, "br-") || strings.HasPrefix(name, "veth") || l.Type() == "vxlan" {
			if err := h.Netlink.LinkDel(l); err != nil && !errors.Is(err, syscall.ENODEV) {
				d.t.Fatalf("delete %s: %v", name, err)
			}
		}
	}
	conn, err := nftables.New(nftables.WithNetNSFd(h.Fd()))
	if err != nil {
		d.t.Fatal(err)
	}
	tables, err := conn.ListTables()
	if err != nil {
		d.t.Fatal(err)
	}
	for _, t := range tables {
		if strings.HasPrefix(t.Name, "berth") {
			conn.DelTable(t)
		}
	}
	if err := conn.Flush(); err != nil {
		d.t.Fatalf("delete berth's tables: %v", err)
	}
}
