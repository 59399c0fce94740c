package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	ctypes "github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-net/berth/internal/stringid"
)

// execEntry is a process to run, or run, inside a container.
type execEntry struct {
	ID          string
	ContainerID string
	Config      ctypes.ExecCreateRequest

	mu       sync.Mutex
	started  bool
	running  bool
	pid      int
	exitCode *int
	// ended is when the process ended: the record is kept execKeep
	// longer for inspects, then forgotten.
	ended time.Time
	// console is the master of the exec's terminal, while it runs.
	console *os.File
}

// ExecCreate registers a process to run in a running container.
func (m *Manager) ExecCreate(term string, req ctypes.ExecCreateRequest) (string, error) {
	e, err := m.find(term)
	if err != nil {
		return "", err
	}
	if len(req.Cmd) == 0 {
		return "", errdefs.ErrInvalidArgument.WithMessage("No exec command specified")
	}
	if _, err := ParseDetachKeys(req.DetachKeys); err != nil {
		return "", err
	}
	e.mu.Lock()
	st := e.rec.State
	e.mu.Unlock()
	if st.Restarting() {
		return "", errRestarting(e.rec.ID)
	}
	if !st.Running() {
		return "", errdefs.ErrConflict.WithMessage(fmt.Sprintf("container %s is not running", e.rec.ID))
	}
	x := &execEntry{ID: stringid.New(), ContainerID: e.rec.ID, Config: req}
	m.mu.Lock()
	m.forgetExecs(time.Now())
	m.execs[x.ID] = x
	m.mu.Unlock()
	return x.ID, nil
}

func (m *Manager) findExec(id string) (*execEntry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if x, ok := m.execs[id]; ok {
		return x, nil
	}
	return nil, errdefs.ErrNotFound.WithMessage("No such exec instance: " + id)
}

// ExecStart runs the process. With a stream it is attached: output goes to
// it as Docker's multiplexed stream, input comes from it, and ExecStart
// returns when the process ends. Without one the process runs detached.
func (m *Manager) ExecStart(ctx context.Context, id string, stream io.ReadWriter) error {
	x, err := m.findExec(id)
	if err != nil {
		return err
	}
	x.mu.Lock()
	if x.started {
		x.mu.Unlock()
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf("Error: Exec command %s has already run", id))
	}
	x.started, x.running = true, true
	x.mu.Unlock()

	e, err := m.find(x.ContainerID)
	if err != nil {
		return err
	}
	e.mu.Lock()
	c := e.rec
	e.mu.Unlock()
	if c.State.Restarting() {
		return errRestarting(c.ID)
	}
	if !c.State.Running() {
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf("container %s is not running", c.ID))
	}
	procFile, err := m.execProcess(c, x)
	if err != nil {
		return err
	}
	defer os.Remove(procFile)
	pidFile := procFile + ".pid"
	defer os.Remove(pidFile)
	args := []string{"exec", "--process", procFile, "--pid-file", pidFile}
	if stream != nil && !x.Config.Tty {
		// Attached without a terminal: runc runs in the foreground with
		// the stream as the process's stdio, and its exit is the process's.
		fw := &frameWriter{w: stream}
		cmd := m.runc.command(context.WithoutCancel(ctx), append(args, c.ID)...)
		cmd.Stdout = streamWriter{f: fw, stream: streamStdout}
		cmd.Stderr = streamWriter{f: fw, stream: streamStderr}
		if x.Config.AttachStdin {
			cmd.Stdin = stream
		}
		code := exitCodeOf(cmd.Run())
		b, _ := os.ReadFile(pidFile)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		x.finish(pid, code)
		return nil
	}
	// Detached, or with a terminal: runc starts the process and leaves;
	// berthd, its subreaper, collects its exit.
	args = append(args, "--detach")
	var console <-chan consoleResult
	if x.Config.Tty {
		sock := filepath.Join(m.cfg.ExecRoot, "shim", x.ID[:16]+".exec")
		cs, err := listenConsole(sock)
		if err != nil {
			return err
		}
		defer cs.Close()
		console = acceptConsole(cs)
		args = append(args, "--tty", "--console-socket", sock)
	}
	var stderrBuf strings.Builder
	cmd := m.runc.command(context.WithoutCancel(ctx), append(args, c.ID)...)
	cmd.Stderr = &stderrBuf
	if err := cmd.Run(); err != nil {
		x.finish(0, 126)
		return fmt.Errorf("runc exec: %s", strings.TrimSpace(stderrBuf.String()))
	}
	b, _ := os.ReadFile(pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		x.finish(0, 126)
		return fmt.Errorf("runc exec: no pid: %w", err)
	}
	x.mu.Lock()
	x.pid = pid
	x.mu.Unlock()
	var term *os.File
	if console != nil {
		res := <-console
		if res.err != nil {
			unix.Kill(pid, unix.SIGKILL)
			go x.finish(pid, reap(pid))
			return fmt.Errorf("receive the exec's terminal: %w", res.err)
		}
		term = res.f
		x.mu.Lock()
		x.console = term
		x.mu.Unlock()
	}
	exited := make(chan int, 1)
	go func() { exited <- reap(pid) }()
	if stream == nil {
		go func() {
			if term != nil {
				// Nobody reads a detached exec's terminal; drain it so the
				// process never blocks on it.
				go io.Copy(io.Discard, term)
			}
			code := <-exited
			if term != nil {
				term.Close()
			}
			x.finish(pid, code)
		}()
		return nil
	}
	outDone := make(chan struct{})
	go func() {
		io.Copy(stream, term)
		close(outDone)
	}()
	if x.Config.AttachStdin {
		keys, _ := ParseDetachKeys(x.Config.DetachKeys)
		go copyUntilDetach(term, stream, keys)
	}
	code := <-exited
	// The terminal's last output, then its end (EIO) once the process and
	// its children are gone.
	select {
	case <-outDone:
	case <-time.After(time.Second):
	}
	term.Close()
	x.finish(pid, code)
	return nil
}

// finish records how an exec ended.
func (x *execEntry) finish(pid, code int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.pid = pid
	x.running = false
	x.exitCode = &code
	x.ended = time.Now()
	x.console = nil
}

// execKeep is how long an ended exec can still be inspected, as dockerd,
// which forgets ended execs within 5 to 10 minutes.
const execKeep = 5 * time.Minute

// forgetExecs drops the records of execs that ended more than execKeep
// ago and of execs of containers that are gone, so that a long-lived
// container exec'd into again and again holds no growing list. Called
// with m.mu held.
func (m *Manager) forgetExecs(now time.Time) {
	for id, x := range m.execs {
		x.mu.Lock()
		old := !x.ended.IsZero() && now.Sub(x.ended) > execKeep
		x.mu.Unlock()
		if _, ok := m.byID[x.ContainerID]; old || !ok {
			delete(m.execs, id)
		}
	}
}

// exitCodeOf is Docker's exit code of a finished command.
func exitCodeOf(err error) int {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	return 126
}

// reap waits for a process berthd is the subreaper of, and returns its
// exit code, as Docker reports it.
func reap(pid int) int {
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 126
		}
		return exitCode(ws)
	}
}

// execProcess writes the OCI process description of an exec.
func (m *Manager) execProcess(c Container, x *execEntry) (string, error) {
	rootfs := filepath.Join(m.runDir(c.ID), "rootfs")
	user := x.Config.User
	if user == "" {
		user = c.Config.User
	}
	uid, gid, err := lookupUser(rootfs, user)
	if err != nil {
		return "", errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	env := append(slices.Clone(c.Config.Env), c.LinkEnv...)
	if !hasEnv(env, "PATH") {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	env = append(env, x.Config.Env...)
	cwd := x.Config.WorkingDir
	if cwd == "" {
		cwd = c.Config.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	p := specs.Process{
		Args: x.Config.Cmd, Env: env, Cwd: cwd, User: specs.User{UID: uid, GID: gid},
		Capabilities: &specs.LinuxCapabilities{Bounding: defaultCaps, Effective: defaultCaps, Permitted: defaultCaps},
		Terminal:     x.Config.Tty,
	}
	if cs := x.Config.ConsoleSize; x.Config.Tty && cs != nil && cs[0] > 0 && cs[1] > 0 {
		p.ConsoleSize = &specs.Box{Height: cs[0], Width: cs[1]}
	}
	if x.Config.Tty && !hasEnv(p.Env, "TERM") {
		p.Env = append(p.Env, "TERM=xterm")
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	path := filepath.Join(m.runDir(c.ID), "exec-"+x.ID+".json")
	return path, os.WriteFile(path, b, 0o600)
}

// ExecResize sets the size of a running exec's terminal; one without a
// terminal has nothing to resize.
func (m *Manager) ExecResize(id string, height, width uint16) error {
	x, err := m.findExec(id)
	if err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.running {
		return errdefs.ErrConflict.WithMessage(fmt.Sprintf("Exec %s is not running", id))
	}
	if x.console == nil {
		return nil
	}
	return resizeConsole(x.console, height, width)
}

// ExecInspect reports an exec's state.
func (m *Manager) ExecInspect(id string) (ctypes.ExecInspectResponse, error) {
	x, err := m.findExec(id)
	if err != nil {
		return ctypes.ExecInspectResponse{}, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	args := x.Config.Cmd
	keys, _ := ParseDetachKeys(x.Config.DetachKeys)
	return ctypes.ExecInspectResponse{
		DetachKeys: keys, CanRemove: !x.running && x.started,
		ID: x.ID, Running: x.running, ExitCode: x.exitCode, ContainerID: x.ContainerID, Pid: x.pid,
		OpenStdin: x.Config.AttachStdin, OpenStdout: x.Config.AttachStdout, OpenStderr: x.Config.AttachStderr,
		ProcessConfig: &ctypes.ExecProcessConfig{Entrypoint: args[0], Arguments: args[1:], User: x.Config.User, Tty: x.Config.Tty},
	}, nil
}

// ExecIDs lists the execs of a container.
func (m *Manager) ExecIDs(containerID string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []string
	for id, x := range m.execs {
		if x.ContainerID == containerID {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
