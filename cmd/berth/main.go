package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/berth-net/berth/api"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// commandGroups builds the top-level commands. A new command group is a
// function taking the shared *cli, in a file of its own, and one line here.
var commandGroups = []func(*cli) *cobra.Command{
	newNetworkCommand,
	newSandboxCommand,
	newVersionCommand,
	newInfoCommand,
	newDoctorCommand,
	newRunCommand,
	newCreateCommand,
	newStartCommand,
	newStopCommand,
	newKillCommand,
	newRestartCommand,
	newRemoveCommand,
	newWaitCommand,
	newPsCommand,
	newInspectCommand,
	newLogsCommand,
	newExecCommand,
	newPortCommand,
	newImageCommand,
	newImagesCommand,
	newRmiCommand,
	newImportCommand,
	newSystemCommand,
}

// cli is what every command shares: the streams it reads and writes and its
// connections to berthd (see client.go). Connections are made on first use,
// after the global flags are parsed, so commands that fail early never dial.
// Commands print to out and err, never to os.Stdout, so tests can run them.
type cli struct {
	in        io.Reader
	out       io.Writer
	err       io.Writer
	lookupEnv func(string) (string, bool)

	conn connection

	docker     *client.Client
	berth      *api.Client
	negotiated bool // berth speaks the API version docker agreed on
}

// clientVersion is berth's own version; release builds set it with
// -ldflags "-X main.clientVersion=…".
var clientVersion = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// run executes one berth command line and returns the process exit code.
// Everything it touches comes in as arguments, so tests run it in-process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, lookupEnv func(string) (string, bool)) int {
	c := &cli{in: stdin, out: stdout, err: stderr, lookupEnv: lookupEnv}
	defer c.close()

	root := newRootCommand(c)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// Interrupted (^C): the shell's code for SIGINT, and no message,
		// as a docker command killed by the signal would leave.
		return 130
	}
	var se statusError
	if errors.As(err, &se) {
		if se.status != "" {
			fmt.Fprintln(stderr, se.status)
		}
		return se.code
	}
	fmt.Fprintln(stderr, c.errorText(err))
	return 1
}

// statusError ends the process with a given exit code; its status, when not
// empty, is printed to stderr first. Commands that already reported their
// errors one by one (rm) return it with an empty status.
type statusError struct {
	status string
	code   int
}

func (e statusError) Error() string {
	if e.status != "" {
		return e.status
	}
	return fmt.Sprintf("exit status %d", e.code)
}

func newRootCommand(c *cli) *cobra.Command {
	root := &cobra.Command{
		Use:           "berth [OPTIONS] COMMAND",
		Short:         "The client of berthd, a container networking engine",
		Version:       clientVersion,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("berth: '%s' is not a berth command.\nSee 'berth --help'", args[0])
			}
			return nil
		},
		RunE:              showHelp(c),
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetVersionTemplate("berth version {{.Version}}\n")
	root.Flags().BoolP("version", "v", false, "Print version information and quit")
	root.PersistentFlags().BoolP("help", "h", false, "Print usage")
	_ = root.PersistentFlags().MarkHidden("help")
	c.addConnectionFlags(root.PersistentFlags())
	root.SetFlagErrorFunc(flagError)
	root.SetOut(c.out)
	root.SetErr(c.err)
	root.SetIn(c.in)

	for _, newGroup := range commandGroups {
		root.AddCommand(newGroup(c))
	}
	setUsage(root)
	return root
}

// setUsage gives every command docker's usage line ("berth network ls
// [OPTIONS]") and help layout.
func setUsage(cmd *cobra.Command) {
	cmd.DisableFlagsInUseLine = true
	cmd.SetUsageTemplate(usageTemplate)
	cmd.SetHelpTemplate(helpTemplate)
	for _, sub := range cmd.Commands() {
		setUsage(sub)
	}
}

const usageTemplate = `Usage:  {{if .HasAvailableSubCommands}}{{.CommandPath}}{{if .HasAvailableLocalFlags}} [OPTIONS]{{end}} COMMAND{{else}}{{.UseLine}}{{end}}

{{if .Long}}{{.Long | trim}}{{else}}{{.Short | trim}}{{end}}
{{- if gt (len .Aliases) 0}}

Aliases:
  {{.CommandPath}}{{range .Aliases}}, {{$.Parent.CommandPath}} {{.}}{{end}}
{{- end}}
{{- if .HasAvailableSubCommands}}

Commands:
{{- range .Commands}}{{if .IsAvailableCommand}}
  {{rpad .Name .NamePadding}} {{.Short}}{{end}}{{end}}
{{- end}}
{{- if .HasAvailableLocalFlags}}

Options:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}
{{- end}}
{{- if .HasAvailableSubCommands}}

Run '{{.CommandPath}} COMMAND --help' for more information on a command.
{{- end}}
`

const helpTemplate = `{{.UsageString}}`

// commandGroup is a command that only groups others, such as "berth network".
func commandGroup(c *cli, use, short string, subcommands ...*cobra.Command) *cobra.Command {
	cmd := &cobra.Command{Use: use, Short: short, Args: noArgs, RunE: showHelp(c)}
	cmd.AddCommand(subcommands...)
	return cmd
}

// showHelp is the action of commands that only group others: like docker, it
// prints the help to stderr and succeeds.
func showHelp(c *cli) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		cmd.SetOut(c.err)
		return cmd.Help()
	}
}

// flagError reports a bad flag the way docker does: the message, a pointer to
// --help, and exit code 125.
func flagError(cmd *cobra.Command, err error) error {
	status := fmt.Sprintf("%s\nSee '%s --help'.", err, cmd.CommandPath())
	if cmd.HasSubCommands() {
		status += "\n\n" + strings.TrimRight(cmd.UsageString(), "\n")
	}
	return statusError{status: status, code: 125}
}

// The argument checks below word their errors like docker's: what was
// expected, where to get help, and the usage line.

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasSubCommands() {
		return errors.New("\n" + strings.TrimRight(cmd.UsageString(), "\n"))
	}
	return argsError(cmd, "accepts no arguments")
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires exactly %d %s", n, plural("argument", n)))
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires at least %d %s", n, plural("argument", n)))
	}
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= lo && len(args) <= hi {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires at least %d and at most %d %s", lo, hi, plural("argument", hi)))
	}
}

func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) <= n {
			return nil
		}
		return argsError(cmd, fmt.Sprintf("requires at most %d %s", n, plural("argument", n)))
	}
}

func argsError(cmd *cobra.Command, what string) error {
	return fmt.Errorf("%q %s.\nSee '%s --help'.\n\nUsage:  %s\n\n%s",
		cmd.CommandPath(), what, cmd.CommandPath(), cmd.UseLine(), cmd.Short)
}

func plural(word string, n int) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
