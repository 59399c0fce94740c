package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/berth-net/berth/internal/nettest"
)

// output gathers what a stream sends, for tests to wait on.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitOutput waits until the output holds want.
func waitOutput(t *testing.T, o *output, want string) {
	t.Helper()
	waitFor(t, 10*time.Second, func() error {
		if !strings.Contains(o.String(), want) {
			return fmt.Errorf("no %q in %q", want, o.String())
		}
		return nil
	})
}

// attachTTY attaches to a container with a terminal and gathers its output.
func attachTTY(t *testing.T, d *nettest.Daemon, id, keys string) (io.Writer, *output, <-chan struct{}) {
	t.Helper()
	res, err := d.Client.ContainerAttach(context.Background(), id, client.ContainerAttachOptions{Stream: true, Stdin: true, Stdout: true, Stderr: true, DetachKeys: keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(res.Close)
	out := &output{}
	done := make(chan struct{})
	go func() { io.Copy(out, res.Reader); close(done) }()
	return res.Conn, out, done
}

func TestContainersWithATerminal(t *testing.T) {
	t.Parallel()
	_, d := containerHost(t)
	ctx := ctxT(t)
	res, err := d.Client.ContainerCreate(ctx, client.ContainerCreateOptions{Name: "term",
		Config:     &ctypes.Config{Image: "busybox", Cmd: []string{"sh"}, Tty: true, OpenStdin: true, AttachStdin: true, AttachStdout: true},
		HostConfig: &ctypes.HostConfig{ConsoleSize: [2]uint{24, 80}}})
	if err != nil {
		t.Fatal(err)
	}
	in, out, _ := attachTTY(t, d, res.ID, "")
	if _, err := d.Client.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	// A terminal: sh is interactive, echoes, and the stream is raw.
	fmt.Fprintf(in, "tty; echo sum-$((6*7))\n")
	waitOutput(t, out, "sum-42")
	if s := out.String(); !strings.Contains(s, "/dev/pts/0") || strings.Contains(s, "\x01\x00\x00\x00") {
		t.Errorf("terminal output %q: the tty, raw", s)
	}
	if _, err := d.Client.ContainerResize(ctx, res.ID, client.ContainerResizeOptions{Height: 33, Width: 111}); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(in, "stty size\n")
	waitOutput(t, out, "33 111")

	// exec -t, with its own size.
	x, err := d.Client.ExecCreate(ctx, res.ID, client.ExecCreateOptions{Cmd: []string{"sh", "-c", "tty; stty size"}, TTY: true,
		AttachStdout: true, ConsoleSize: client.ConsoleSize{Height: 40, Width: 120}})
	if err != nil {
		t.Fatal(err)
	}
	xa, err := d.Client.ExecAttach(ctx, x.ID, client.ExecAttachOptions{TTY: true, ConsoleSize: client.ConsoleSize{Height: 40, Width: 120}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(xa.Reader)
	xa.Close()
	if s := string(got); !strings.Contains(s, "/dev/pts/1") || !strings.Contains(s, "40 120") {
		t.Errorf("exec -t printed %q, want its own terminal of 40x120", s)
	}

	// ctrl-p ctrl-q leaves the container running.
	in2, out2, done := attachTTY(t, d, res.ID, "")
	fmt.Fprintf(in2, "echo second\n")
	waitOutput(t, out2, "second")
	in2.Write([]byte{16, 17})
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the detach keys did not end the attach")
	}
	if st := inspectContainer(t, d, res.ID).State; !st.Running {
		t.Fatalf("the container stopped on detach: %+v", st)
	}

	// The terminal outlives a crash of berthd.
	d.Kill()
	d.Start()
	in3, out3, _ := attachTTY(t, d, res.ID, "ctrl-a")
	fmt.Fprintf(in3, "echo after-$((1+1))\n")
	waitOutput(t, out3, "after-2")
	// Logs of a terminal are raw too.
	logs, err := d.Client.ContainerLogs(ctx, res.ID, client.ContainerLogsOptions{ShowStdout: true})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(logs)
	logs.Close()
	if !bytes.Contains(b, []byte("sum-42")) || bytes.HasPrefix(b, []byte{1, 0, 0, 0}) {
		t.Errorf("logs %q", b)
	}
	fmt.Fprintf(in3, "exit 3\n")
	waitFor(t, 10*time.Second, func() error {
		if st := inspectContainer(t, d, res.ID).State; st.Running || st.ExitCode != 3 {
			return fmt.Errorf("state %+v, want exited with 3", st)
		}
		return nil
	})
}

func TestStockDockerRunIT(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat(dockerCLI); err != nil {
		t.Skipf("the stock Docker CLI is not at %s: %v", dockerCLI, err)
	}
	_, d := containerHost(t)
	cmd := exec.Command(dockerCLI, "run", "-it", "--rm", "--name", "it", "busybox", "sh")
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.URL(), "DOCKER_CONFIG="+d.Host.Dir)
	var ptmx *os.File
	err := d.Host.Do(func() (err error) {
		ptmx, err = pty.StartWithSize(cmd, &pty.Winsize{Rows: 25, Cols: 90})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	out := &output{}
	go io.Copy(out, bufio.NewReader(ptmx))
	fmt.Fprintf(ptmx, "stty size; echo it-$((2*21))\n")
	waitOutput(t, out, "it-42")
	waitOutput(t, out, "25 90")
	// The CLI follows its own terminal's size.
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 31, Cols: 101}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		fmt.Fprintf(ptmx, "stty size\n")
		if !strings.Contains(out.String(), "31 101") {
			return fmt.Errorf("no resized terminal in %q", out.String())
		}
		return nil
	})
	fmt.Fprintf(ptmx, "exit 5\n")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 5 {
			t.Errorf("docker run -it ended with %v, want exit code 5", err)
		}
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("docker run -it did not end: %q", out.String())
	}
}
