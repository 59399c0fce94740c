package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ---- run

func newRunCommand(c *cli) *cobra.Command {
	o := newContainerOptions(c.lookupEnv)
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and run a new container from an image",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.runContainer(cmd.Context(), cmd.Flags(), o, args[0], args[1:])
		},
	}
	flags := cmd.Flags()
	flags.SetInterspersed(false) // flags after the image are the command's
	flags.BoolVarP(&o.detach, "detach", "d", false, "Run container in background and print container ID")
	o.addFlags(flags)
	return cmd
}

// runContainer is docker run: create; then, detached, start and print the
// ID; attached, attach, wait, start, copy the container's output until it
// ends and exit with the container's exit code.
func (c *cli) runContainer(ctx context.Context, flags *pflag.FlagSet, o *containerOptions, image string, command []string) error {
	req, err := o.request(flags, image, command)
	if err != nil {
		return usageFailure("run", err)
	}
	dc, err := c.client()
	if err != nil {
		return usageFailure("run", err)
	}
	id, err := c.createContainer(ctx, dc, o.name, req)
	if err != nil {
		return c.runFailure(err, true)
	}
	if o.detach {
		fmt.Fprintln(c.out, id)
		if _, err := dc.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			return c.runFailure(err, false)
		}
		return nil
	}

	// From here on berth follows a running container: ^C goes to the
	// container (see proxySignals) instead of ending berth's requests.
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	conn, err := dc.ContainerAttach(ctx, id, client.ContainerAttachOptions{
		Stream: true, Stdin: o.interactive, Stdout: true, Stderr: true,
	})
	if err != nil {
		return c.runFailure(err, false)
	}
	streams := c.copyStreams(conn.HijackedResponse, o.interactive)
	exit := c.waitExit(ctx, dc, id, o.autoRemove)
	stop := proxySignals(dc, id)
	defer stop()
	if _, err := dc.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		streams.close()
		return c.runFailure(err, false)
	}
	if err := streams.wait(ctx); err != nil {
		return err
	}
	return c.result(<-exit)
}

// ---- create

func newCreateCommand(c *cli) *cobra.Command {
	o := newContainerOptions(c.lookupEnv)
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a new container",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := o.request(cmd.Flags(), args[0], args[1:])
			if err != nil {
				return usageFailure("create", err)
			}
			dc, err := c.client()
			if err != nil {
				return err
			}
			id, err := c.createContainer(cmd.Context(), dc, o.name, req)
			var missing missingImageError
			switch {
			case errors.As(err, &missing):
				return statusError{status: c.errorText(err) + "\n" + missing.hint(), code: 1}
			case err != nil:
				return err
			}
			fmt.Fprintln(c.out, id)
			return nil
		},
	}
	cmd.Flags().SetInterspersed(false)
	o.addFlags(cmd.Flags())
	return cmd
}

// createContainer creates the container and passes on the daemon's
// warnings. A missing image is announced as docker announces it before a
// pull; berth has nothing to pull from, so it says how images come in.
func (c *cli) createContainer(ctx context.Context, dc *client.Client, name string, req createRequest) (string, error) {
	ref, err := reference.ParseAnyReference(req.config.Image)
	if err != nil {
		return "", err
	}
	res, err := dc.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: req.config, HostConfig: req.host, NetworkingConfig: req.networking, Name: name,
	})
	if err != nil {
		named, isName := ref.(reference.Named)
		if isName && cerrdefs.IsNotFound(err) && strings.Contains(err.Error(), "No such image") {
			tagged := reference.FamiliarString(reference.TagNameOnly(named))
			fmt.Fprintf(c.err, "Unable to find image '%s' locally\n", tagged)
			return "", missingImageError{err: err, ref: tagged}
		}
		return "", err
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(c.err, "WARNING:", w)
	}
	if w := localhostDNSWarning(req.host.DNS); w != "" {
		fmt.Fprintln(c.err, w)
	}
	return res.ID, nil
}

// missingImageError is a create refused for want of its image.
type missingImageError struct {
	err error
	ref string
}

func (e missingImageError) Error() string { return e.err.Error() }
func (e missingImageError) Unwrap() error { return e.err }

func (e missingImageError) hint() string {
	return fmt.Sprintf("berth has no registry to pull from: bring the image in with 'berth image import FILE %s'", e.ref)
}

// usageFailure reports what the command line asked for that cannot be, as
// docker run and create do: "berth: " and the error as a sentence, a
// pointer to --help, and exit code 125.
func usageFailure(command string, err error) error {
	return statusError{
		status: fmt.Sprintf("berth: %s.\nSee 'berth %s --help'.", strings.TrimSuffix(err.Error(), "."), command),
		code:   125,
	}
}

// runFailure reports a failure to create (withHelp) or to start the
// container the way docker run does. The exit code is docker's: 127 for a
// command that was not found, 126 for one that cannot be run, 125 for
// anything else.
func (c *cli) runFailure(err error, withHelp bool) error {
	text := c.errorText(err)
	lines := []string{"berth: " + strings.TrimSuffix(text, ".") + "."}
	var missing missingImageError
	if errors.As(err, &missing) {
		lines = append(lines, missing.hint()+".")
	}
	if withHelp {
		lines = append(lines, "See 'berth run --help'.")
	}
	return statusError{status: strings.Join(lines, "\n"), code: commandExitCode(text)}
}

func commandExitCode(msg string) int {
	switch {
	case strings.Contains(msg, "executable file not found"),
		strings.Contains(msg, "no such file or directory"),
		strings.Contains(msg, "system error: exec"):
		return 127
	case strings.Contains(msg, syscall.EACCES.Error()),
		strings.Contains(msg, syscall.EISDIR.Error()):
		return 126
	}
	return 125
}
