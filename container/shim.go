package container

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The shim is a small process per container, started by berthd as
// `berthd shim …` in a session of its own. It listens on its socket, and
// when berthd has connected the clients attached before the start, it runs
// `runc run --detach` (one runc process per start rather than create and
// start) with pipes for the container's stdio. It is the subreaper that
// collects the container's exit status, writes the container's output to
// its log and to attached clients, and records the exit status in a file.
// Because it does not depend on berthd, containers keep running, logging
// and being reaped while berthd restarts.

// shimRequest opens a conversation on the shim's socket.
type shimRequest struct {
	// Op is "start", "attach", "wait", "state", "abort" or "resize".
	Op                    string
	Stdin, Stdout, Stderr bool
	// Height and Width are a resize's terminal size.
	Height, Width uint16 `json:",omitempty"`
}

// Phases of a shim's container, as the state request reports them.
const (
	// phaseWaiting: nobody asked for the start yet; a daemon that died
	// before it did leaves its shim so.
	phaseWaiting = "waiting"
	// phaseStarting: runc is starting the container.
	phaseStarting = "starting"
	phaseRunning  = "running"
	// phaseExited: the container ended; the shim answers the last waits.
	phaseExited = "exited"
)

// shimState is the answer to a state request.
type shimState struct {
	Phase string
	Pid   int `json:",omitempty"`
}

// ExitStatus is how a container ended.
type ExitStatus struct {
	ExitCode   int
	FinishedAt time.Time
}

// shimReady is the shim's answer: on its ready pipe once it listens (an
// Error when it cannot), and to the start request (the container's Pid, or
// the Error that stopped it).
type shimReady struct {
	Pid   int    `json:",omitempty"`
	Error string `json:",omitempty"`
}

// shimConfig are the shim's flags.
type shimConfig struct {
	id, bundle, runc, runcRoot, log, socket, exitFile, pidFile string
	stdin, stdinOnce                                           bool
	// tty gives the container a terminal, whose master runc hands over
	// on consoleSocket.
	tty           bool
	consoleSocket string
}

// RunShim is the shim's main; berthd calls it for `berthd shim`.
func RunShim(args []string) int {
	var c shimConfig
	fs := flag.NewFlagSet("shim", flag.ContinueOnError)
	fs.StringVar(&c.id, "id", "", "container ID")
	fs.StringVar(&c.bundle, "bundle", "", "OCI bundle")
	fs.StringVar(&c.runc, "runc", "runc", "runc binary")
	fs.StringVar(&c.runcRoot, "runc-root", "", "runc state directory")
	fs.StringVar(&c.log, "log", "", "container log")
	fs.StringVar(&c.socket, "socket", "", "shim socket")
	fs.StringVar(&c.exitFile, "exit-file", "", "where the exit status goes")
	fs.StringVar(&c.pidFile, "pid-file", "", "container init pid file")
	fs.BoolVar(&c.stdin, "stdin", false, "keep the container's stdin open for attach")
	fs.BoolVar(&c.stdinOnce, "stdin-once", false, "close stdin when the first attached client's input ends")
	fs.BoolVar(&c.tty, "tty", false, "give the container a terminal")
	fs.StringVar(&c.consoleSocket, "console-socket", "", "where runc hands over the terminal")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ready := os.NewFile(3, "ready")
	s, err := newShim(c)
	if err != nil {
		json.NewEncoder(ready).Encode(shimReady{Error: err.Error()})
		return 1
	}
	json.NewEncoder(ready).Encode(shimReady{})
	ready.Close()
	if !s.serve() {
		return 1
	}
	return 0
}

type shim struct {
	cfg      shimConfig
	pid      int
	listener net.Listener
	logs     *logWriter
	stdin    *os.File // write end of the container's stdin, nil without -i
	// console is the master of the container's terminal, with -t; it is
	// there once consoleReady is closed (after the start, or without one).
	console      *os.File
	consoleReady chan struct{}

	// The container's stdio, kept until the start hands them to runc.
	stdio   [3]*os.File
	started chan error

	mu        sync.Mutex
	startOnce sync.Once
	phase     string
	clients   map[*frameWriter]shimRequest
	exit      *ExitStatus
	exited    chan struct{}
	stdinUsed bool
	outputs   sync.WaitGroup
	// accepting is closed when the listener stops taking connections;
	// handlers counts the connections being answered.
	accepting chan struct{}
	handlers  sync.WaitGroup
}

func newShim(c shimConfig) (*shim, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("become subreaper: %w", err)
	}
	logs, err := newLogWriter(c.log)
	if err != nil {
		return nil, err
	}
	os.Remove(c.socket)
	l, err := net.Listen("unix", c.socket)
	if err != nil {
		logs.close()
		return nil, err
	}
	s := &shim{cfg: c, listener: l, logs: logs, phase: phaseWaiting, clients: map[*frameWriter]shimRequest{}, exited: make(chan struct{}), started: make(chan error, 1), accepting: make(chan struct{}), consoleReady: make(chan struct{})}
	if c.tty {
		// The terminal arrives with the start; stdio is runc's own.
		null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			l.Close()
			logs.close()
			return nil, err
		}
		s.stdio = [3]*os.File{null, null, null}
		return s, nil
	}
	if err := s.pipes(); err != nil {
		l.Close()
		os.Remove(c.socket)
		logs.close()
		return nil, err
	}
	return s, nil
}

// pipes makes the container's stdio: pipes the shim reads for its output,
// and for its input a pipe when it keeps stdin open, /dev/null otherwise.
func (s *shim) pipes() error {
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	inR, err := os.Open(os.DevNull)
	if s.cfg.stdin {
		inR, s.stdin, err = os.Pipe()
	}
	if err != nil {
		return err
	}
	s.stdio = [3]*os.File{inR, outW, errW}
	s.outputs.Add(2)
	go s.copyOutput("stdout", streamStdout, outR)
	go s.copyOutput("stderr", streamStderr, errR)
	return nil
}

// start runs the container with `runc run --detach`; its init is then the
// shim's to reap.
func (s *shim) start() error {
	runcLog := s.cfg.bundle + "/runc.log"
	args := []string{"--root", s.cfg.runcRoot, "--log", runcLog, "--log-format", "json",
		"run", "--detach", "--bundle", s.cfg.bundle, "--pid-file", s.cfg.pidFile}
	var console <-chan consoleResult
	if s.cfg.tty {
		cs, err := listenConsole(s.cfg.consoleSocket)
		if err != nil {
			return err
		}
		defer cs.Close()
		console = acceptConsole(cs)
		args = append(args, "--console-socket", s.cfg.consoleSocket)
	}
	cmd := exec.Command(s.cfg.runc, append(args, s.cfg.id)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.stdio[0], s.stdio[1], s.stdio[2]
	runErr := cmd.Run()
	for _, f := range s.stdio {
		f.Close()
	}
	if runErr != nil {
		return fmt.Errorf("%s", runcFailure(runcLog, runErr))
	}
	if console != nil {
		res := <-console
		if res.err != nil {
			return fmt.Errorf("receive the container's terminal: %w", res.err)
		}
		s.mu.Lock()
		s.console = res.f
		s.mu.Unlock()
		close(s.consoleReady)
		s.outputs.Add(1)
		go s.copyOutput("stdout", streamStdout, s.console)
	}
	b, err := os.ReadFile(s.cfg.pidFile)
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("bad pid file: %w", err)
	}
	s.mu.Lock()
	s.pid, s.phase = pid, phaseRunning
	s.mu.Unlock()
	return nil
}

func (s *shim) setPhase(p string) {
	s.mu.Lock()
	s.phase = p
	s.mu.Unlock()
}

// runcFailure digs runc's own error message out of its log.
func runcFailure(logPath string, err error) string {
	b, _ := os.ReadFile(logPath)
	msg := ""
	for _, line := range strings.Split(string(b), "\n") {
		var e struct{ Level, Msg string }
		if json.Unmarshal([]byte(line), &e) == nil && (e.Level == "error" || e.Level == "fatal") {
			msg = e.Msg
		}
	}
	switch {
	case msg == "":
		return fmt.Sprintf("runc run: %v", err)
	case strings.HasPrefix(msg, "runc run failed"):
		return msg
	}
	return "runc run failed: " + msg
}

// copyOutput logs one of the container's streams and hands it to attached
// clients that want it.
func (s *shim) copyOutput(name string, stream byte, r *os.File) {
	defer s.outputs.Done()
	defer r.Close()
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			s.logs.write(name, buf[:n])
			s.mu.Lock()
			for fw, req := range s.clients {
				if (stream == streamStdout && req.Stdout) || (stream == streamStderr && req.Stderr) {
					if fw.writeFrame(stream, buf[:n]) != nil {
						delete(s.clients, fw)
					}
				}
			}
			s.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// startTimeout bounds the wait for berthd's start request: a shim whose
// daemon died before starting the container does not linger.
const startTimeout = time.Minute

// serve answers clients until the container has exited, then records the
// exit status and ends. It reports false when the container never started.
func (s *shim) serve() bool {
	go s.accept()
	var err error
	select {
	case err = <-s.started:
	case <-time.After(startTimeout):
		err = errors.New("no start request")
	}
	if err != nil {
		s.listener.Close()
		os.Remove(s.cfg.socket)
		return false
	}
	status := s.reap()
	// The streams end when the last process holding them is gone.
	s.outputs.Wait()
	s.logs.close()
	writeExitFile(s.cfg.exitFile, status)
	// The socket goes before anyone learns of the exit: a restarted
	// container's next shim takes the same path at once, and must not lose
	// it to this one. Connections already made stay open.
	s.listener.Close()
	os.Remove(s.cfg.socket)
	<-s.accepting
	s.mu.Lock()
	s.exit = &status
	s.phase = phaseExited
	close(s.exited)
	s.mu.Unlock()
	// Waiters were told; let them finish writing, within bounds.
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
	return true
}

// reap collects every child that ends (the shim is their subreaper) until
// the container's init has ended, and returns how it ended.
func (s *shim) reap() ExitStatus {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			// No children left: the init was reaped by someone else.
			return ExitStatus{ExitCode: 255, FinishedAt: time.Now().UTC()}
		}
		if pid == s.pid {
			return ExitStatus{ExitCode: exitCode(ws), FinishedAt: time.Now().UTC()}
		}
	}
}

// exitCode is Docker's exit code: the status, or 128 + the signal.
func exitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

func writeExitFile(path string, st ExitStatus) {
	b, _ := json.Marshal(st)
	tmp := path + ".tmp"
	if os.WriteFile(tmp, b, 0o644) == nil {
		os.Rename(tmp, path)
	}
}

// readExitFile returns the exit status a shim recorded, if any.
func readExitFile(path string) (ExitStatus, bool) {
	var st ExitStatus
	b, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(b, &st) != nil {
		return st, false
	}
	return st, true
}

func (s *shim) accept() {
	defer close(s.accepting)
	for {
		conn, err := s.listener.Accept()
		if err != nil {
			return
		}
		s.handlers.Add(1)
		go func() {
			defer s.handlers.Done()
			s.handle(conn)
		}()
	}
}

func (s *shim) handle(conn net.Conn) {
	defer conn.Close()
	r := bufio.NewReader(conn)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return
	}
	var req shimRequest
	if json.Unmarshal(line, &req) != nil {
		return
	}
	switch req.Op {
	case "start":
		// The container runs once per shim: only the first start counts.
		ran := false
		s.startOnce.Do(func() {
			ran = true
			s.setPhase(phaseStarting)
			err := s.start()
			// The answer goes out before the shim may end on a failure.
			s.mu.Lock()
			answer := shimReady{Pid: s.pid}
			s.mu.Unlock()
			if err != nil {
				answer = shimReady{Error: err.Error()}
			}
			json.NewEncoder(conn).Encode(answer)
			s.started <- err
		})
		if !ran {
			json.NewEncoder(conn).Encode(shimReady{Error: "the container was already started"})
		}
	case "abort":
		// A daemon that restarted gives up a start its predecessor did
		// not ask for: the shim ends without running anything.
		aborted := false
		s.startOnce.Do(func() {
			aborted = true
			s.started <- errors.New("the start was given up")
		})
		answer := shimReady{}
		if !aborted {
			answer.Error = "the container was already started"
		}
		json.NewEncoder(conn).Encode(answer)
	case "state":
		s.mu.Lock()
		st := shimState{Phase: s.phase, Pid: s.pid}
		s.mu.Unlock()
		json.NewEncoder(conn).Encode(st)
	case "resize":
		answer := shimReady{}
		s.mu.Lock()
		console := s.console
		s.mu.Unlock()
		if console == nil {
			answer.Error = "the container has no terminal"
		} else if err := resizeConsole(console, req.Height, req.Width); err != nil {
			answer.Error = err.Error()
		}
		json.NewEncoder(conn).Encode(answer)
	case "wait":
		<-s.exited
		json.NewEncoder(conn).Encode(s.exit)
	case "attach":
		s.attach(conn, r, req)
	}
}

// attach streams the container's output to conn until the container ends,
// and feeds conn's input to the container's stdin when asked.
func (s *shim) attach(conn net.Conn, r *bufio.Reader, req shimRequest) {
	fw := &frameWriter{w: conn, raw: s.cfg.tty}
	s.mu.Lock()
	if s.exit != nil {
		s.mu.Unlock()
		return
	}
	s.clients[fw] = req
	useStdin := req.Stdin && (s.stdin != nil || s.cfg.tty && s.cfg.stdin) && !(s.cfg.stdinOnce && s.stdinUsed)
	if useStdin {
		s.stdinUsed = true
	}
	s.mu.Unlock()
	if useStdin {
		go func() {
			if !s.cfg.tty {
				io.Copy(s.stdin, r)
				if s.cfg.stdinOnce {
					s.stdin.Close()
				}
				return
			}
			// A client attached before the start types into the terminal
			// once there is one.
			select {
			case <-s.consoleReady:
			case <-s.exited:
				return
			}
			s.mu.Lock()
			console := s.console
			s.mu.Unlock()
			if console != nil {
				io.Copy(console, r)
			}
		}()
	}
	<-s.exited
	s.outputs.Wait()
	s.mu.Lock()
	delete(s.clients, fw)
	s.mu.Unlock()
}

// shimClient talks to a running shim.
type shimClient struct{ socket string }

func (c shimClient) dial(ctx context.Context, req shimRequest) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(req)
	if _, err := conn.Write(append(b, '\n')); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// start asks the shim to run the container and returns its pid.
func (c shimClient) start(ctx context.Context) (int, error) {
	conn, err := c.dial(ctx, shimRequest{Op: "start"})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	var answer shimReady
	if err := json.NewDecoder(conn).Decode(&answer); err != nil {
		return 0, fmt.Errorf("the shim ended while starting the container: %w", err)
	}
	if answer.Error != "" {
		return 0, errors.New(answer.Error)
	}
	return answer.Pid, nil
}

// state asks the shim how far its container got.
func (c shimClient) state(ctx context.Context) (shimState, error) {
	var st shimState
	err := c.ask(ctx, shimRequest{Op: "state"}, &st)
	return st, err
}

// settledState asks the shim's state until its container is not being
// started any more, or ctx ends.
func (c shimClient) settledState(ctx context.Context) (shimState, error) {
	for {
		st, err := c.state(ctx)
		if err != nil || st.Phase != phaseStarting {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// abort gives up a start nobody asked the shim for.
func (c shimClient) abort(ctx context.Context) error {
	var answer shimReady
	if err := c.ask(ctx, shimRequest{Op: "abort"}, &answer); err != nil {
		return err
	}
	if answer.Error != "" {
		return errors.New(answer.Error)
	}
	return nil
}

// ask sends a request and decodes the one answer.
func (c shimClient) ask(ctx context.Context, req shimRequest, answer any) error {
	conn, err := c.dial(ctx, req)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if err := json.NewDecoder(conn).Decode(answer); err != nil {
		return fmt.Errorf("shim %s: %w", req.Op, err)
	}
	return nil
}

// wait blocks until the container ends and returns its exit status.
func (c shimClient) wait(ctx context.Context) (ExitStatus, error) {
	conn, err := c.dial(ctx, shimRequest{Op: "wait"})
	if err != nil {
		return ExitStatus{}, err
	}
	defer conn.Close()
	// Not a goroutine waiting on ctx: one that is never cancelled would
	// keep it, one per container run, for the daemon's life.
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	var st ExitStatus
	if err := json.NewDecoder(conn).Decode(&st); err != nil {
		return ExitStatus{}, errors.Join(errShimGone, err)
	}
	return st, nil
}

var errShimGone = errors.New("shim is gone")
