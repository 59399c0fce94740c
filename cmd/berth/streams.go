package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/sys/unix"
)

// The standard streams of containers and execs, which berthd hands over on a
// hijacked connection: output multiplexed in frames (berth containers have
// no terminal, so always), input raw.

// attachment is a hijacked connection being copied: its output to berth's
// stdout and stderr, frame by frame, and, when asked, berth's stdin to it.
type attachment struct {
	conn   client.HijackedResponse
	output chan error
}

func (c *cli) copyStreams(conn client.HijackedResponse, stdin bool) *attachment {
	a := &attachment{conn: conn, output: make(chan error, 1)}
	go func() {
		_, err := stdcopy.StdCopy(c.out, c.err, conn.Reader)
		a.output <- err
	}()
	if stdin {
		go func() {
			// The end of berth's input is the end of the container's: the
			// daemon closes its stdin when the write half closes.
			_, _ = io.Copy(conn.Conn, c.in)
			_ = conn.CloseWrite()
		}()
	}
	return a
}

// wait returns when the output has ended, or ctx has: output that ends
// ends the attachment, whether the input has or not.
func (a *attachment) wait(ctx context.Context) error {
	select {
	case err := <-a.output:
		a.conn.Close()
		return err
	case <-ctx.Done():
		a.close()
		return ctx.Err()
	}
}

// close ends the attachment at once, and returns once nothing more is
// written to berth's stdout and stderr.
func (a *attachment) close() {
	a.conn.Close()
	<-a.output
}

// waitExit asks the daemon to wait for the container's next exit, or with
// removed for its removal (--rm), and delivers the exit code. The request
// is made before waitExit returns, so the container can be started after
// it without an exit going unseen.
func (c *cli) waitExit(ctx context.Context, dc *client.Client, id string, removed bool) <-chan exitStatus {
	cond := container.WaitConditionNextExit
	if removed {
		cond = container.WaitConditionRemoved
	}
	res := dc.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: cond})
	status := make(chan exitStatus, 1)
	go func() {
		select {
		case r := <-res.Result:
			if r.Error != nil {
				status <- exitStatus{err: errors.New(r.Error.Message)}
				return
			}
			status <- exitStatus{code: int(r.StatusCode)}
		case err := <-res.Error:
			status <- exitStatus{err: err}
		}
	}()
	return status
}

// exitStatus is how a container ended, or why that is not known.
type exitStatus struct {
	code int
	err  error
}

// result is the exit status as berth's own: the container's exit code, or
// docker's 125 when the waiting failed.
func (c *cli) result(s exitStatus) error {
	switch {
	case s.err != nil:
		return statusError{status: "berth: error waiting for container: " + c.errorText(s.err), code: 125}
	case s.code != 0:
		return statusError{code: s.code}
	}
	return nil
}

// proxiedSignals are the signals an attached run or start passes on to its
// container, as docker's --sig-proxy does, rather than dying of them.
var proxiedSignals = []os.Signal{
	syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2,
}

// proxySignals sends the container each proxied signal berth receives until
// the returned stop is called.
func proxySignals(dc *client.Client, id string) (stop func()) {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, proxiedSignals...)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				name := unix.SignalName(s.(syscall.Signal))
				_, _ = dc.ContainerKill(context.Background(), id, client.ContainerKillOptions{Signal: name})
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}
