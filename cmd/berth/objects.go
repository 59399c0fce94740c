package main

import (
	"encoding/json"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/spf13/cobra"
)

// What the commands of every object kind (network, sandbox) share: ls flags
// and IDs, and inspect and rm, which act on each object named in turn.

// listFlags are the flags of every ls command.
type listFlags struct {
	format  string
	quiet   bool
	noTrunc bool
}

// add gives cmd the flags; kind names the objects in the help of -q.
func (f *listFlags) add(cmd *cobra.Command, kind string) {
	flags := cmd.Flags()
	flags.StringVar(&f.format, "format", "", listFormatHelp)
	flags.BoolVarP(&f.quiet, "quiet", "q", false, "Only display "+kind+" IDs")
	flags.BoolVar(&f.noTrunc, "no-trunc", false, "Do not truncate the output")
}

const listFormatHelp = `Format output using a custom template:
'table':            Print output in table format with column headers (default)
'table TEMPLATE':   Print output in table format using the given Go template
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template`

// listID is an ID as a list row shows it: short unless --no-trunc.
func listID(id string, trunc bool) string {
	if trunc {
		return shortID(id)
	}
	return id
}

const inspectFormatHelp = `Format output using a custom template:
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template`

// inspectEach prints the objects named, fetched one by one as the daemon's
// JSON by get and read into a View for templates. Like docker, it prints all
// it found before it reports, at once, what it could not.
func inspectEach[View any](c *cli, iw *inspectWriter, kind string, names []string, get func(name string) ([]byte, error)) error {
	var failures []string
	for _, name := range names {
		raw, err := get(name)
		if err != nil {
			failures = append(failures, c.notFoundText(err, kind, name))
			continue
		}
		var view View
		if err := json.Unmarshal(raw, &view); err != nil {
			failures = append(failures, fmt.Sprintf("decode %s %s: %v", kind, name, err))
			continue
		}
		if err := iw.add(view, raw); err != nil {
			failures = append(failures, err.Error())
		}
	}
	if err := iw.flush(); err != nil {
		return err
	}
	if len(failures) > 0 {
		return statusError{status: strings.Join(failures, "\n"), code: 1}
	}
	return nil
}

// removeEach removes the objects named, one by one, printing each name that
// went and each failure as it comes, as docker rm does. With ignoreMissing
// (rm --force) an object that does not exist is no failure.
func (c *cli) removeEach(kind string, names []string, ignoreMissing bool, remove func(name string) error) error {
	failed := false
	for _, name := range names {
		err := remove(name)
		switch {
		case err == nil:
			fmt.Fprintln(c.out, name)
		case ignoreMissing && cerrdefs.IsNotFound(err):
		default:
			fmt.Fprintln(c.err, c.notFoundText(err, kind, name))
			failed = true
		}
	}
	if failed {
		return statusError{code: 1}
	}
	return nil
}

// notFoundText words an error about one named object: docker's "No such"
// when the daemon does not know it, the daemon's message otherwise.
func (c *cli) notFoundText(err error, kind, name string) string {
	if cerrdefs.IsNotFound(err) {
		return fmt.Sprintf("Error: No such %s: %s", kind, name)
	}
	return c.errorText(err)
}
