package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// ---- version

// versionInfo is what `berth version --format` templates run on.
type versionInfo struct {
	Client clientVersionInfo
	Server *system.VersionResponse
}

type clientVersionInfo struct {
	Version           string
	APIVersion        string
	DefaultAPIVersion string
	GoVersion         string
	GitCommit         string `json:",omitempty"`
	BuildTime         string `json:",omitempty"`
	Os                string
	Arch              string
}

func newVersionCommand(c *cli) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "version [OPTIONS]",
		Short: "Show the berth version information",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tmpl, err := optionalTemplate(format)
			if err != nil {
				return err
			}
			info, serverErr := c.versionInfo(cmd.Context())
			if tmpl == nil {
				writeVersion(c.out, info)
				return serverErr
			}
			// Like docker, the template runs even without a server, and a
			// failure to reach it is the error that counts.
			if err := executeLine(c.out, tmpl, info); err != nil && serverErr == nil {
				return err
			}
			return serverErr
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", inspectFormatHelp)
	return cmd
}

// versionInfo gathers the client's facts and asks the daemon for its own.
// The client's API version is the negotiated one, so it is only right once
// the daemon answered.
func (c *cli) versionInfo(ctx context.Context) (versionInfo, error) {
	info := versionInfo{Client: clientVersionInfo{
		Version:           clientVersion,
		APIVersion:        client.MaxAPIVersion,
		DefaultAPIVersion: client.MaxAPIVersion,
		GoVersion:         runtime.Version(),
		Os:                runtime.GOOS,
		Arch:              runtime.GOARCH,
	}}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Client.GitCommit = shortCommit(s.Value)
			case "vcs.time":
				info.Client.BuildTime = ansiTime(s.Value)
			}
		}
	}
	bc, err := c.berthClient(ctx)
	if err != nil {
		return info, err
	}
	if v := bc.Version(); v != "" {
		info.Client.APIVersion = v
	}
	// Not through the Docker client: its answer leaves out the Go version,
	// commit, build time and kernel that docker version prints.
	var server system.VersionResponse
	if _, err := bc.Call(ctx, http.MethodGet, "/version", nil, nil, &server); err != nil {
		return info, err
	}
	server.BuildTime = ansiTime(server.BuildTime)
	info.Server = &server
	return info, nil
}

// optionalTemplate parses the --format of a command that prints one object:
// nil for its default layout, {{json .}} for "json".
func optionalTemplate(format string) (*template.Template, error) {
	switch format {
	case "":
		return nil, nil
	case jsonFormat:
		format = "{{json .}}"
	}
	return parseTemplate(format, templateFuncs)
}

// executeLine prints one object through a template, as one line.
func executeLine(w io.Writer, tmpl *template.Template, v any) error {
	var out strings.Builder
	if err := tmpl.Execute(&out, v); err != nil {
		return fmt.Errorf("Template parsing error: %v", err)
	}
	_, err := fmt.Fprintln(w, out.String())
	return err
}

func shortCommit(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}

// ansiTime shows an RFC 3339 build time the way docker version does.
func ansiTime(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.Format(time.ANSIC)
}

// writeVersion prints docker version's default layout: labelled values in
// aligned columns, the client first, then the server's components.
func writeVersion(w io.Writer, info versionInfo) {
	tw := tabwriter.NewWriter(w, 20, 1, 1, ' ', 0)
	cl := info.Client
	fmt.Fprintln(tw, "Client:")
	fmt.Fprintf(tw, " Version:\t%s\n", cl.Version)
	fmt.Fprintf(tw, " API version:\t%s", cl.APIVersion)
	if cl.APIVersion != cl.DefaultAPIVersion {
		fmt.Fprintf(tw, " (downgraded from %s)", cl.DefaultAPIVersion)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, " Go version:\t%s\n", cl.GoVersion)
	if cl.GitCommit != "" {
		fmt.Fprintf(tw, " Git commit:\t%s\n", cl.GitCommit)
	}
	if cl.BuildTime != "" {
		fmt.Fprintf(tw, " Built:\t%s\n", cl.BuildTime)
	}
	fmt.Fprintf(tw, " OS/Arch:\t%s/%s\n", cl.Os, cl.Arch)

	if sv := info.Server; sv != nil {
		fmt.Fprintln(tw)
		fmt.Fprint(tw, "Server:")
		if sv.Platform.Name != "" {
			fmt.Fprint(tw, " "+sv.Platform.Name)
		}
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, " Engine:")
		fmt.Fprintf(tw, "  Version:\t%s\n", sv.Version)
		fmt.Fprintf(tw, "  API version:\t%s", sv.APIVersion)
		if sv.MinAPIVersion != "" {
			fmt.Fprintf(tw, " (minimum version %s)", sv.MinAPIVersion)
		}
		fmt.Fprintln(tw)
		printNonEmpty(tw, "  Go version:\t%s\n", sv.GoVersion)
		printNonEmpty(tw, "  Git commit:\t%s\n", sv.GitCommit)
		printNonEmpty(tw, "  Built:\t%s\n", sv.BuildTime)
		fmt.Fprintf(tw, "  OS/Arch:\t%s/%s\n", sv.Os, sv.Arch)
		printNonEmpty(tw, "  Kernel Version:\t%s\n", sv.KernelVersion)
		fmt.Fprintf(tw, "  Experimental:\t%t\n", sv.Experimental)
		for _, comp := range sv.Components {
			if comp.Name == "Engine" {
				continue // its facts are the top-level ones, printed above
			}
			fmt.Fprintf(tw, " %s:\n", comp.Name)
			fmt.Fprintf(tw, "  Version:\t%s\n", comp.Version)
			keys := make([]string, 0, len(comp.Details))
			for k := range comp.Details {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(tw, "  %s:\t%s\n", k, comp.Details[k])
			}
		}
	}
	_ = tw.Flush()
}

func printNonEmpty(w io.Writer, format, value string) {
	if value != "" {
		fmt.Fprintf(w, format, value)
	}
}

// ---- info

func newInfoCommand(c *cli) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "info [OPTIONS]",
		Short: "Display system-wide information",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tmpl, err := optionalTemplate(format)
			if err != nil {
				return err
			}
			dc, err := c.client()
			if err != nil {
				return err
			}
			res, err := dc.Info(cmd.Context(), client.InfoOptions{})
			if err != nil {
				return err
			}
			if tmpl == nil {
				writeInfo(c.out, c.err, res.Info)
				return nil
			}
			return executeLine(c.out, tmpl, res.Info)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", inspectFormatHelp)
	return cmd
}

// writeInfo prints the server part of docker info, in its order, leaving out
// what berthd does not report. Daemon warnings go to stderr, as docker's do.
func writeInfo(out, errOut io.Writer, in system.Info) {
	line := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	nonEmpty := func(label, value string) {
		if value != "" {
			line(" %s: %s", label, value)
		}
	}
	line("Server:")
	line(" Containers: %d", in.Containers)
	line("  Running: %d", in.ContainersRunning)
	line("  Paused: %d", in.ContainersPaused)
	line("  Stopped: %d", in.ContainersStopped)
	line(" Images: %d", in.Images)
	nonEmpty("Server Version", in.ServerVersion)
	nonEmpty("Storage Driver", in.Driver)
	nonEmpty("Logging Driver", in.LoggingDriver)
	nonEmpty("Cgroup Driver", in.CgroupDriver)
	nonEmpty("Kernel Version", in.KernelVersion)
	nonEmpty("Operating System", in.OperatingSystem)
	nonEmpty("OSType", in.OSType)
	nonEmpty("Architecture", in.Architecture)
	line(" CPUs: %d", in.NCPU)
	line(" Total Memory: %s", binarySize(in.MemTotal))
	nonEmpty("Name", in.Name)
	nonEmpty("ID", in.ID)
	nonEmpty("Docker Root Dir", in.DockerRootDir)
	line(" Debug Mode: %t", in.Debug)
	if len(in.Labels) > 0 {
		line(" Labels:")
		for _, l := range in.Labels {
			line("  %s", l)
		}
	}
	line(" Experimental: %t", in.ExperimentalBuild)
	if len(in.DefaultAddressPools) > 0 {
		line(" Default Address Pools:")
		for _, p := range in.DefaultAddressPools {
			line("   Base: %s, Size: %d", p.Base, p.Size)
		}
	}
	line("")
	for _, w := range in.Warnings {
		fmt.Fprintln(errOut, w)
	}
}

// binarySize writes a byte count with four significant digits and a binary
// unit, as docker info does: 15.6GiB.
func binarySize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	size := float64(n)
	i := 0
	for size >= 1024 && i < len(units)-1 {
		size /= 1024
		i++
	}
	return fmt.Sprintf("%.4g%s", size, units[i])
}
