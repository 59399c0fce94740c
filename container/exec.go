package container

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	ctypes "github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"

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
	if req.Tty {
		return "", errdefs.ErrInvalidArgument.WithMessage("berth containers have no terminal support (-t)")
	}
	e.mu.Lock()
	running := e.rec.State.Running()
	e.mu.Unlock()
	if !running {
		return "", errdefs.ErrConflict.WithMessage(fmt.Sprintf("container %s is not running", e.rec.ID))
	}
	x := &execEntry{ID: stringid.New(), ContainerID: e.rec.ID, Config: req}
	m.mu.Lock()
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
	if stream == nil {
		args = append(args, "--detach")
	}
	cmd := m.runc.command(context.WithoutCancel(ctx), append(args, c.ID)...)
	var stderrBuf strings.Builder
	if stream != nil {
		fw := &frameWriter{w: stream}
		cmd.Stdout = streamWriter{f: fw, stream: streamStdout}
		cmd.Stderr = streamWriter{f: fw, stream: streamStderr}
		if x.Config.AttachStdin {
			cmd.Stdin = stream
		}
	} else {
		cmd.Stderr = &stderrBuf
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	waitErr := cmd.Wait()
	code := 0
	if waitErr != nil {
		if ee, ok := waitErr.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			code = 126
		}
	}
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	x.mu.Lock()
	x.pid = pid
	if stream != nil {
		x.running = false
		x.exitCode = &code
	}
	x.mu.Unlock()
	if stream == nil && waitErr != nil {
		return fmt.Errorf("runc exec: %s", strings.TrimSpace(stderrBuf.String()))
	}
	return nil
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
	}
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	path := filepath.Join(m.runDir(c.ID), "exec-"+x.ID+".json")
	return path, os.WriteFile(path, b, 0o600)
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
	return ctypes.ExecInspectResponse{
		ID: x.ID, Running: x.running, ExitCode: x.exitCode, ContainerID: x.ContainerID, Pid: x.pid,
		OpenStdin: x.Config.AttachStdin, OpenStdout: x.Config.AttachStdout, OpenStderr: x.Config.AttachStderr,
		ProcessConfig: &ctypes.ExecProcessConfig{Entrypoint: args[0], Arguments: args[1:], User: x.Config.User},
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
