package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-net/berth/api"
)

// berth doctor and berth network trace: berth's own routes, run in berthd,
// which has the state and the privileges.

func newDoctorCommand(c *cli) *cobra.Command {
	var (
		format string
		quiet  bool
	)
	cmd := &cobra.Command{
		Use:   "doctor [OPTIONS]",
		Short: "Check the host and berth's state for what keeps containers' networking from working",
		Long: "Check the host and berth's state for what keeps containers' networking from working:\n" +
			"one line per finding, ok, warn or fail, with what to do about it. Exits 1 when a check fails.",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tmpl, err := optionalTemplate(format)
			if err != nil {
				return err
			}
			bc, err := c.berthClient(cmd.Context())
			if err != nil {
				return err
			}
			rep, err := bc.Doctor(cmd.Context())
			if err != nil {
				return err
			}
			failed := false
			var shown []api.Finding
			for _, f := range rep.Findings {
				failed = failed || f.Status == api.StatusFail
				if !quiet || f.Status != api.StatusOK {
					shown = append(shown, f)
				}
			}
			if tmpl == nil {
				writeFindings(c.out, shown)
			} else {
				for _, f := range shown {
					if err := executeLine(c.out, tmpl, f); err != nil {
						return err
					}
				}
			}
			if failed {
				return statusError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format each finding: 'json', or a Go template ({{.Check}} {{.Status}} {{.Message}} {{.Fix}})")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only show what is not ok")
	return cmd
}

// writeFindings prints one line per finding: its status and check in
// aligned columns, its message, and what to do about it.
func writeFindings(w io.Writer, findings []api.Finding) {
	width := 0
	for _, f := range findings {
		width = max(width, len(f.Check))
	}
	for _, f := range findings {
		line := fmt.Sprintf("%-4s  %-*s  %s", f.Status, width, f.Check, f.Message)
		if f.Fix != "" {
			line += " | fix: " + f.Fix
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

func newNetworkTraceCommand(c *cli) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "trace [OPTIONS] SRC DST[:PORT[/PROTO]]",
		Short: "Explain whether a container's traffic reaches another container or a published port",
		Long: "Explain whether traffic from container SRC reaches DST, and which of berth's rules decides,\n" +
			"from berth's model of its firewall (no packet is sent). DST is a container, an address,\n" +
			"or host:PORT, a port published on the host. Exits 0 when the traffic gets through, 1 when not.",
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			tmpl, err := optionalTemplate(format)
			if err != nil {
				return err
			}
			bc, err := c.berthClient(cmd.Context())
			if err != nil {
				return err
			}
			rep, err := bc.Trace(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			if tmpl != nil {
				err = executeLine(c.out, tmpl, rep)
			} else {
				writeTrace(c.out, rep)
			}
			if err == nil && !rep.Reachable {
				return statusError{code: 1}
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", inspectFormatHelp)
	return cmd
}

func writeTrace(w io.Writer, rep api.TraceReport) {
	fmt.Fprintf(w, "%s -> %s: %s\n", rep.Source, rep.Destination, rep.Verdict)
	for _, step := range rep.Path {
		fmt.Fprintf(w, "  %s\n", step)
	}
	if rep.Rule != "" {
		fmt.Fprintf(w, "rule: %s\n", rep.Rule)
	}
	fmt.Fprintf(w, "why:  %s\n", rep.Reason)
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
