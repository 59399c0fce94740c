package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// runc calls the runc binary with berth's state directory.
type runc struct {
	bin  string
	root string
}

func (r runc) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, r.bin, append([]string{"--root", r.root}, args...)...)
}

// run runs a runc command that does not touch a container's stdio and
// returns its error with runc's own words.
func (r runc) run(ctx context.Context, args ...string) error {
	var stderr bytes.Buffer
	cmd := r.command(ctx, args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return &runcError{op: args[0], msg: msg}
	}
	return nil
}

// runcError is runc's complaint about an operation.
type runcError struct{ op, msg string }

func (e *runcError) Error() string { return fmt.Sprintf("runc %s: %s", e.op, e.msg) }

func (r runc) kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	return r.run(ctx, append(args, id, fmt.Sprint(int(sig)))...)
}

func (r runc) delete(ctx context.Context, id string) error {
	err := r.run(ctx, "delete", "--force", id)
	var re *runcError
	if errors.As(err, &re) && strings.Contains(re.msg, "does not exist") {
		return nil
	}
	return err
}

// lookRunc finds the runc binary.
func lookRunc() (string, error) {
	if p := os.Getenv("BERTH_RUNC"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("runc")
	if err != nil {
		return "", fmt.Errorf("runc is not installed (Debian package runc): %w", err)
	}
	return p, nil
}
