package container

import (
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// A container with a terminal (-t): runc makes the pseudo-terminal and
// hands its master over a unix socket (--console-socket) as a file
// descriptor; whoever holds the master reads the container's output from
// it, writes its input to it, and sets its size.

// consoleResult is the master received, or why none was.
type consoleResult struct {
	f   *os.File
	err error
}

// listenConsole opens the socket runc hands the terminal over on.
func listenConsole(path string) (*net.UnixListener, error) {
	os.Remove(path)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("console socket: %w", err)
	}
	l.SetUnlinkOnClose(true)
	return l, nil
}

// consoleWait bounds the wait for runc's connection.
const consoleWait = 30 * time.Second

// acceptConsole takes the one connection runc makes and the master it
// sends.
func acceptConsole(l *net.UnixListener) <-chan consoleResult {
	out := make(chan consoleResult, 1)
	go func() {
		l.SetDeadline(time.Now().Add(consoleWait))
		c, err := l.AcceptUnix()
		if err != nil {
			out <- consoleResult{err: err}
			return
		}
		defer c.Close()
		f, err := receiveFd(c)
		out <- consoleResult{f: f, err: err}
	}()
	return out
}

// receiveFd reads one file descriptor sent with SCM_RIGHTS.
func receiveFd(c *net.UnixConn) (*os.File, error) {
	name := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := c.ReadMsgUnix(name, oob)
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	if len(msgs) != 1 {
		return nil, errors.New("no file descriptor came")
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil {
		return nil, err
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("%d file descriptors came, want one", len(fds))
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}

// resizeConsole sets a terminal's size.
func resizeConsole(f *os.File, height, width uint16) error {
	if err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: height, Col: width}); err != nil {
		return fmt.Errorf("resize the terminal: %w", err)
	}
	return nil
}
