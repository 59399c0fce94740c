package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"
)

// The commands that act on containers once they exist. Like docker's, those
// taking several containers act on each in turn, print the name of each
// they acted on, and report the failures after.

// eachContainer does op to each container named. With ignoreMissing (rm
// -f) a container that does not exist is said so at once, but no failure.
func (c *cli) eachContainer(names []string, ignoreMissing bool, op func(name string) error) error {
	var failures []string
	for _, name := range names {
		err := op(name)
		switch {
		case err == nil:
			fmt.Fprintln(c.out, name)
		case ignoreMissing && cerrdefs.IsNotFound(err):
			fmt.Fprintln(c.err, c.errorText(err))
		default:
			failures = append(failures, c.errorText(err))
		}
	}
	if len(failures) > 0 {
		return statusError{status: strings.Join(failures, "\n"), code: 1}
	}
	return nil
}

// ---- start

func newStartCommand(c *cli) *cobra.Command {
	var attach, interactive bool
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dc, err := c.client()
			if err != nil {
				return err
			}
			if attach || interactive {
				if len(args) > 1 {
					return errors.New("you cannot start and attach multiple containers at once")
				}
				return c.startAttached(cmd.Context(), dc, args[0], interactive)
			}
			var failed []string
			for _, name := range args {
				if _, err := dc.ContainerStart(cmd.Context(), name, client.ContainerStartOptions{}); err != nil {
					fmt.Fprintln(c.err, c.errorText(err))
					failed = append(failed, name)
					continue
				}
				fmt.Fprintln(c.out, name)
			}
			if len(failed) > 0 {
				return statusError{status: "Error: failed to start containers: " + strings.Join(failed, ", "), code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "Attach container's STDIN")
	return cmd
}

// startAttached is start -a: run's attached half for a container that
// exists. Its stdin is attached only when -i asks and the container was
// created to take it (-i at create).
func (c *cli) startAttached(ctx context.Context, dc *client.Client, name string, interactive bool) error {
	info, err := dc.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return err
	}
	stdin := interactive && info.Container.Config != nil && info.Container.Config.OpenStdin
	autoRemove := info.Container.HostConfig != nil && info.Container.HostConfig.AutoRemove
	id := info.Container.ID

	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	conn, err := dc.ContainerAttach(ctx, id, client.ContainerAttachOptions{Stream: true, Stdin: stdin, Stdout: true, Stderr: true})
	if err != nil {
		return err
	}
	streams := c.copyStreams(conn.HijackedResponse, stdin)
	exit := c.waitExit(ctx, dc, id, autoRemove)
	stop := proxySignals(dc, id)
	defer stop()
	if _, err := dc.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		streams.close()
		return err
	}
	if err := streams.wait(ctx); err != nil {
		return err
	}
	return c.result(<-exit)
}

// ---- stop, kill, restart

func newStopCommand(c *cli) *cobra.Command {
	var (
		signal  string
		timeout int
	)
	cmd := &cobra.Command{
		Use:   "stop [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Stop one or more running containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dc, err := c.client()
			if err != nil {
				return err
			}
			opts := client.ContainerStopOptions{Signal: signal}
			if cmd.Flags().Changed("timeout") {
				opts.Timeout = &timeout
			}
			return c.eachContainer(args, false, func(name string) error {
				_, err := dc.ContainerStop(cmd.Context(), name, opts)
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send to the container")
	cmd.Flags().IntVarP(&timeout, "timeout", "t", 0, "Seconds to wait before killing the container")
	return cmd
}

func newKillCommand(c *cli) *cobra.Command {
	var signal string
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Kill one or more running containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dc, err := c.client()
			if err != nil {
				return err
			}
			return c.eachContainer(args, false, func(name string) error {
				_, err := dc.ContainerKill(cmd.Context(), name, client.ContainerKillOptions{Signal: signal})
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send to the container")
	return cmd
}

func newRestartCommand(c *cli) *cobra.Command {
	var (
		signal  string
		timeout int
	)
	cmd := &cobra.Command{
		Use:   "restart [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Restart one or more containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dc, err := c.client()
			if err != nil {
				return err
			}
			opts := client.ContainerRestartOptions{Signal: signal}
			if cmd.Flags().Changed("timeout") {
				opts.Timeout = &timeout
			}
			return c.eachContainer(args, false, func(name string) error {
				_, err := dc.ContainerRestart(cmd.Context(), name, opts)
				return err
			})
		},
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "", "Signal to send to the container")
	cmd.Flags().IntVarP(&timeout, "timeout", "t", 0, "Seconds to wait before killing the container")
	return cmd
}

// ---- rm

func newRemoveCommand(c *cli) *cobra.Command {
	var opts client.ContainerRemoveOptions
	cmd := &cobra.Command{
		Use:   "rm [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Remove one or more containers",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dc, err := c.client()
			if err != nil {
				return err
			}
			return c.eachContainer(args, opts.Force, func(name string) error {
				_, err := dc.ContainerRemove(cmd.Context(), name, opts)
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&opts.Force, "force", "f", false, "Force the removal of a running container (uses SIGKILL)")
	cmd.Flags().BoolVarP(&opts.RemoveLinks, "link", "l", false, "Remove the specified link")
	cmd.Flags().BoolVarP(&opts.RemoveVolumes, "volumes", "v", false, "Remove anonymous volumes associated with the container")
	return cmd
}

// ---- wait

func newWaitCommand(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dc, err := c.client()
			if err != nil {
				return err
			}
			var failures []string
			for _, name := range args {
				res := dc.ContainerWait(cmd.Context(), name, client.ContainerWaitOptions{})
				select {
				case r := <-res.Result:
					fmt.Fprintln(c.out, r.StatusCode)
				case err := <-res.Error:
					failures = append(failures, c.errorText(err))
				}
			}
			if len(failures) > 0 {
				return statusError{status: strings.Join(failures, "\n"), code: 1}
			}
			return nil
		},
	}
}

// ---- ps

var containerListing = listing{
	table: "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}",
	quiet: "{{.ID}}",
	header: headerRow{
		"ID":           "CONTAINER ID",
		"Image":        "IMAGE",
		"Command":      "COMMAND",
		"CreatedAt":    "CREATED AT",
		"RunningFor":   "CREATED",
		"Ports":        "PORTS",
		"State":        "STATE",
		"Status":       "STATUS",
		"Size":         "SIZE",
		"Names":        "NAMES",
		"Labels":       "LABELS",
		"Mounts":       "MOUNTS",
		"LocalVolumes": "LOCAL VOLUMES",
		"Networks":     "NETWORKS",
	},
}

// containerRow is one line of ps; its methods are the template fields.
type containerRow struct {
	c     container.Summary
	trunc bool
}

func (r containerRow) ID() string { return listID(r.c.ID, r.trunc) }

// Image is the image as the container was created from it; in tables, an
// ID shortened and a digest left out.
func (r containerRow) Image() string {
	image := r.c.Image
	if image == "" {
		return "<no image>"
	}
	if !r.trunc {
		return image
	}
	if short := shortID(r.c.ImageID); short == shortID(image) {
		return short
	}
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return image
	}
	if tagged, ok := ref.(reference.NamedTagged); ok {
		if named, err := reference.WithTag(reference.TrimNamed(tagged), tagged.Tag()); err == nil {
			return reference.FamiliarString(named)
		}
	}
	return reference.FamiliarString(reference.TrimNamed(ref))
}

// Command is the command line, quoted; in tables cut to 20 characters.
func (r containerRow) Command() string {
	if r.trunc {
		return strconv.Quote(ellipsis(r.c.Command, 20))
	}
	return strconv.Quote(r.c.Command)
}

func (r containerRow) CreatedAt() string { return time.Unix(r.c.Created, 0).String() }
func (r containerRow) RunningFor() string {
	return units.HumanDuration(time.Now().UTC().Sub(time.Unix(r.c.Created, 0))) + " ago"
}
func (r containerRow) Ports() string  { return displayPorts(r.c.Ports) }
func (r containerRow) State() string  { return string(r.c.State) }
func (r containerRow) Status() string { return r.c.Status }
func (r containerRow) Labels() string { return joinLabels(r.c.Labels) }

func (r containerRow) Label(name string) string { return r.c.Labels[name] }

func (r containerRow) Size() string {
	size := units.HumanSizeWithPrecision(float64(r.c.SizeRw), 3)
	if r.c.SizeRootFs > 0 {
		size += fmt.Sprintf(" (virtual %s)", units.HumanSizeWithPrecision(float64(r.c.SizeRootFs), 3))
	}
	return size
}

// Names are the container's names without their slash; in tables only the
// first that is no link's (links are "other/alias").
func (r containerRow) Names() string {
	names := make([]string, len(r.c.Names))
	for i, n := range r.c.Names {
		names[i] = strings.TrimPrefix(n, "/")
	}
	if r.trunc {
		for _, n := range names {
			if !strings.Contains(n, "/") {
				return n
			}
		}
	}
	return strings.Join(names, ",")
}

func (r containerRow) Mounts() string {
	names := make([]string, 0, len(r.c.Mounts))
	for _, m := range r.c.Mounts {
		name := m.Name
		if name == "" {
			name = m.Source
		}
		if r.trunc {
			name = ellipsis(name, 15)
		}
		names = append(names, name)
	}
	return strings.Join(names, ",")
}

func (r containerRow) LocalVolumes() string {
	n := 0
	for _, m := range r.c.Mounts {
		if m.Driver == "local" {
			n++
		}
	}
	return strconv.Itoa(n)
}

func (r containerRow) Networks() string {
	if r.c.NetworkSettings == nil {
		return ""
	}
	names := make([]string, 0, len(r.c.NetworkSettings.Networks))
	for name := range r.c.NetworkSettings.Networks {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

// Platform is that of the image the container runs, when the daemon says.
func (r containerRow) Platform() *ocispec.Platform {
	if d := r.c.ImageManifestDescriptor; d != nil {
		return d.Platform
	}
	return nil
}

func (r containerRow) MarshalJSON() ([]byte, error) { return marshalRow(r) }

// displayPorts is the PORTS column, as docker words and orders it: runs of
// consecutive ports of the same address and protocol as ranges
// ("7000-7001/tcp", "0.0.0.0:80-81->80-81/tcp"), then the ports published
// on another host port ("0.0.0.0:8080->80/tcp").
func displayPorts(ports []container.PortSummary) string {
	sorted := append([]container.PortSummary(nil), ports...)
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		switch {
		case a.PrivatePort != b.PrivatePort:
			return a.PrivatePort < b.PrivatePort
		case a.IP != b.IP:
			return addrText(a.IP) < addrText(b.IP)
		case a.PublicPort != b.PublicPort:
			return a.PublicPort < b.PublicPort
		}
		return a.Type < b.Type
	})

	// A run of ports is open while its ports follow on; one that stops is
	// printed at once, the runs still open at the end in the order their
	// address and protocol first came.
	type run struct {
		ip, proto   string
		first, last uint16
	}
	text := func(r *run) string {
		ports := strconv.Itoa(int(r.first))
		if r.last != r.first {
			ports += "-" + strconv.Itoa(int(r.last))
		}
		if r.ip != "" {
			ports = net.JoinHostPort(r.ip, ports) + "->" + ports
		}
		return ports + "/" + r.proto
	}
	var (
		out, mapped []string
		open        = map[string]*run{}
		keys        []string
	)
	for _, p := range sorted {
		ip := addrText(p.IP)
		if ip != "" {
			if p.PublicPort != p.PrivatePort {
				mapped = append(mapped, fmt.Sprintf("%s->%d/%s",
					net.JoinHostPort(ip, strconv.Itoa(int(p.PublicPort))), p.PrivatePort, p.Type))
				continue
			}
		}
		key := ip + "/" + p.Type
		r := open[key]
		switch {
		case r == nil:
			keys = append(keys, key)
		case p.PrivatePort == r.last+1:
			r.last = p.PrivatePort
			continue
		default:
			out = append(out, text(r))
		}
		open[key] = &run{ip: ip, proto: p.Type, first: p.PrivatePort, last: p.PrivatePort}
	}
	for _, k := range keys {
		out = append(out, text(open[k]))
	}
	return strings.Join(append(out, mapped...), ", ")
}

// addrText is an address as the daemon wrote it; none is "".
func addrText(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func newPsCommand(c *cli) *cobra.Command {
	var (
		filter      filterValue
		list        listFlags
		all, latest bool
		last        int
	)
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS]",
		Short: "List containers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dc, err := c.client()
			if err != nil {
				return err
			}
			opts := client.ContainerListOptions{All: all, Limit: last, Filters: filter.filters}
			if latest && last == -1 {
				opts.Limit = 1
			}
			res, err := dc.ContainerList(cmd.Context(), opts)
			if err != nil {
				return err
			}
			rows := make([]containerRow, len(res.Items))
			for i, ctr := range res.Items {
				rows[i] = containerRow{c: ctr, trunc: !list.noTrunc}
			}
			return writeList(c.out, containerListing, list.format, list.quiet, rows)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	flags.VarP(&filter, "filter", "f", "Filter output based on conditions provided")
	flags.IntVarP(&last, "last", "n", -1, "Show n last created containers (includes all states)")
	flags.BoolVarP(&latest, "latest", "l", false, "Show the latest created container (includes all states)")
	list.add(cmd, "container")
	return cmd
}

// ---- logs

func newLogsCommand(c *cli) *cobra.Command {
	var opts client.ContainerLogsOptions
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dc, err := c.client()
			if err != nil {
				return err
			}
			opts.ShowStdout, opts.ShowStderr = true, true
			logs, err := dc.ContainerLogs(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			defer logs.Close()
			_, err = stdcopy.StdCopy(c.out, c.err, logs)
			return err
		},
	}
	flags := cmd.Flags()
	flags.BoolVar(&opts.Details, "details", false, "Show extra details provided to logs")
	flags.BoolVarP(&opts.Follow, "follow", "f", false, "Follow log output")
	flags.StringVar(&opts.Since, "since", "", `Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	flags.StringVarP(&opts.Tail, "tail", "n", "all", "Number of lines to show from the end of the logs")
	flags.BoolVarP(&opts.Timestamps, "timestamps", "t", false, "Show timestamps")
	flags.StringVar(&opts.Until, "until", "", `Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)`)
	return cmd
}

// ---- port

func newPortCommand(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dc, err := c.client()
			if err != nil {
				return err
			}
			res, err := dc.ContainerInspect(cmd.Context(), args[0], client.ContainerInspectOptions{})
			if err != nil {
				return err
			}
			// The daemon's JSON, not the Docker client's types: host
			// addresses as it wrote them.
			var ctr struct {
				NetworkSettings struct {
					Ports map[string][]struct{ HostIp, HostPort string }
				}
			}
			if err := json.Unmarshal(res.Raw, &ctr); err != nil {
				return fmt.Errorf("decode container %s: %w", args[0], err)
			}
			ports := ctr.NetworkSettings.Ports
			if len(args) == 2 {
				return c.printPort(args[0], args[1], ports)
			}
			var lines []string
			for port, bindings := range ports {
				for _, b := range bindings {
					lines = append(lines, port+" -> "+net.JoinHostPort(b.HostIp, b.HostPort))
				}
			}
			sort.Slice(lines, func(i, j int) bool { return naturalLess(lines[i], lines[j]) })
			for _, l := range lines {
				fmt.Fprintln(c.out, l)
			}
			return nil
		},
	}
}

// printPort prints where one port of the container (80, 80/tcp) is
// published.
func (c *cli) printPort(name, spec string, ports map[string][]struct{ HostIp, HostPort string }) error {
	port, proto, _ := strings.Cut(spec, "/")
	if proto == "" {
		proto = "tcp"
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("Error: invalid port (%s): %w", port, err)
	}
	bindings := ports[port+"/"+proto]
	if len(bindings) == 0 {
		return fmt.Errorf("Error: No public port '%s' published for %s", spec, name)
	}
	for _, b := range bindings {
		fmt.Fprintln(c.out, net.JoinHostPort(b.HostIp, b.HostPort))
	}
	return nil
}

// ---- exec

func newExecCommand(c *cli) *cobra.Command {
	var (
		detach, interactive, tty bool
		user, workdir            string
		env                      = listValue{check: func(s string) (string, error) { return resolveEnv(s, c.lookupEnv) }}
		envFiles                 listValue
	)
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  minArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tty {
				return errNoTTY
			}
			var vars []string
			for _, path := range envFiles.values {
				fileVars, err := readEnvFile(path, c.lookupEnv)
				if err != nil {
					return err
				}
				vars = append(vars, fileVars...)
			}
			vars = append(vars, env.values...)
			dc, err := c.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			exec, err := dc.ExecCreate(ctx, args[0], client.ExecCreateOptions{
				User:         user,
				AttachStdin:  interactive && !detach,
				AttachStdout: !detach,
				AttachStderr: !detach,
				Env:          vars,
				WorkingDir:   workdir,
				Cmd:          args[1:],
			})
			if err != nil {
				return err
			}
			if detach {
				_, err := dc.ExecStart(ctx, exec.ID, client.ExecStartOptions{Detach: true})
				return err
			}
			conn, err := dc.ExecAttach(ctx, exec.ID, client.ExecAttachOptions{})
			if err != nil {
				return err
			}
			if err := c.copyStreams(conn.HijackedResponse, interactive).wait(ctx); err != nil {
				return err
			}
			res, err := dc.ExecInspect(ctx, exec.ID, client.ExecInspectOptions{})
			if err != nil {
				return err
			}
			if res.ExitCode != 0 {
				return statusError{code: res.ExitCode}
			}
			return nil
		},
	}
	flags := cmd.Flags()
	flags.SetInterspersed(false)
	flags.BoolVarP(&detach, "detach", "d", false, "Detached mode: run command in the background")
	flags.VarP(&env, "env", "e", "Set environment variables")
	flags.Var(&envFiles, "env-file", "Read in a file of environment variables")
	flags.BoolVarP(&interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	flags.BoolVarP(&tty, "tty", "t", false, "Allocate a pseudo-TTY (not supported: berth containers have no terminal)")
	flags.StringVarP(&user, "user", "u", "", `Username or UID (format: "<name|uid>[:<group|gid>]")`)
	flags.StringVarP(&workdir, "workdir", "w", "", "Working directory inside the container")
	return cmd
}
