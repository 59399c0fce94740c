package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/berth-net/berth/api"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/cobra"
)

// Sandboxes are network namespaces berth wires without a container: berth's
// own routes, which the Docker client has no methods for.

func newSandboxCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Manage sandboxes (network namespaces without a container)",
		Args:  noArgs,
		RunE:  showHelp(c),
	}
	cmd.AddCommand(
		newSandboxConnectCommand(c),
		newSandboxCreateCommand(c),
		newSandboxDisconnectCommand(c),
		newSandboxInspectCommand(c),
		newSandboxListCommand(c),
		newSandboxRemoveCommand(c),
	)
	return cmd
}

func sandboxPath(idOrName string, action string) string {
	p := "/sandboxes/" + url.PathEscape(idOrName)
	if action != "" {
		p += "/" + action
	}
	return p
}

// ---- sandbox create

func newSandboxCreateCommand(c *cli) *cobra.Command {
	var req api.SandboxCreateRequest
	cmd := &cobra.Command{
		Use:   "create [OPTIONS]",
		Short: "Create a sandbox",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rc, err := c.rawClient()
			if err != nil {
				return err
			}
			var resp api.SandboxCreateResponse
			if _, err := rc.call(cmd.Context(), "POST", "/sandboxes/create", nil, req, &resp); err != nil {
				return err
			}
			fmt.Fprintln(c.out, resp.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&req.Name, "name", "", "Assign a name to the sandbox")
	cmd.Flags().StringVar(&req.Key, "netns", "", "Wire this existing network namespace (a path such as /run/netns/x) instead of a new one")
	return cmd
}

// ---- sandbox ls

var sandboxListing = listing{
	table: "{{.ID}}\t{{.Name}}\t{{.Key}}\t{{.Networks}}",
	quiet: "{{.ID}}",
	header: headerRow{
		"ID":       "SANDBOX ID",
		"Name":     "NAME",
		"Key":      "KEY",
		"Networks": "NETWORKS",
		"External": "EXTERNAL",
	},
}

// sandboxRow is one line of sandbox ls; its methods are the template fields.
type sandboxRow struct {
	s     api.Sandbox
	trunc bool
}

func (r sandboxRow) ID() string {
	if r.trunc {
		return shortID(r.s.ID)
	}
	return r.s.ID
}

func (r sandboxRow) Name() string     { return r.s.Name }
func (r sandboxRow) Key() string      { return r.s.Key }
func (r sandboxRow) External() string { return strconv.FormatBool(r.s.External) }

// Networks is the names of the sandbox's networks, sorted, comma-separated.
func (r sandboxRow) Networks() string {
	names := make([]string, 0, len(r.s.Networks))
	for name := range r.s.Networks {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return naturalLess(names[i], names[j]) })
	return strings.Join(names, ",")
}

func (r sandboxRow) MarshalJSON() ([]byte, error) { return marshalRow(r) }

func newSandboxListCommand(c *cli) *cobra.Command {
	var (
		format  string
		quiet   bool
		noTrunc bool
	)
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List sandboxes",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rc, err := c.rawClient()
			if err != nil {
				return err
			}
			var sandboxes []api.Sandbox
			if _, err := rc.call(cmd.Context(), "GET", "/sandboxes", nil, nil, &sandboxes); err != nil {
				return err
			}
			sort.SliceStable(sandboxes, func(i, j int) bool {
				if sandboxes[i].Name != sandboxes[j].Name {
					return naturalLess(sandboxes[i].Name, sandboxes[j].Name)
				}
				return sandboxes[i].ID < sandboxes[j].ID
			})
			rows := make([]sandboxRow, len(sandboxes))
			for i, s := range sandboxes {
				rows[i] = sandboxRow{s: s, trunc: !noTrunc}
			}
			return writeList(c.out, sandboxListing, format, quiet, rows)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", listFormatHelp)
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display sandbox IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "Do not truncate the output")
	return cmd
}

// ---- sandbox inspect

// sandboxView is a sandbox for templates, with endpoint addresses as
// strings, the way API v1.41 spells a container's networks.
type sandboxView struct {
	ID       string `json:"Id"`
	Name     string
	Key      string
	External bool
	Networks map[string]*endpointView
}

type endpointView struct {
	IPAMConfig          *endpointIPAMView
	Links               []string
	Aliases             []string
	NetworkID           string
	EndpointID          string
	Gateway             string
	IPAddress           string
	IPPrefixLen         int
	IPv6Gateway         string
	GlobalIPv6Address   string
	GlobalIPv6PrefixLen int
	MacAddress          string
	DriverOpts          map[string]string
	DNSNames            []string
}

type endpointIPAMView struct {
	IPv4Address  string   `json:",omitempty"`
	IPv6Address  string   `json:",omitempty"`
	LinkLocalIPs []string `json:",omitempty"`
}

func newSandboxInspectCommand(c *cli) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] SANDBOX [SANDBOX...]",
		Short: "Display detailed information on one or more sandboxes",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			iw, err := newInspectWriter(c.out, format)
			if err != nil {
				return err
			}
			rc, err := c.rawClient()
			if err != nil {
				return err
			}
			var failures []string
			for _, id := range args {
				raw, err := rc.call(cmd.Context(), "GET", sandboxPath(id, ""), nil, nil, nil)
				if err != nil {
					failures = append(failures, c.notFoundText(err, "sandbox", id))
					continue
				}
				var view sandboxView
				if err := json.Unmarshal(raw, &view); err != nil {
					failures = append(failures, fmt.Sprintf("decode sandbox %s: %v", id, err))
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
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", inspectFormatHelp)
	return cmd
}

// ---- sandbox connect / disconnect

func newSandboxConnectCommand(c *cli) *cobra.Command {
	var (
		ipv4, ipv6 string
		aliases    []string
		driverOpts []string
	)
	cmd := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK SANDBOX",
		Short: "Connect a sandbox to a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			endpoint := &network.EndpointSettings{Aliases: aliases}
			if len(driverOpts) > 0 {
				endpoint.DriverOpts = keyValues(driverOpts)
			}
			if ipv4 != "" || ipv6 != "" {
				endpoint.IPAMConfig = &network.EndpointIPAMConfig{}
				var err error
				if endpoint.IPAMConfig.IPv4Address, err = parseAddr(ipv4, "IPv4"); err != nil {
					return err
				}
				if endpoint.IPAMConfig.IPv6Address, err = parseAddr(ipv6, "IPv6"); err != nil {
					return err
				}
			}
			rc, err := c.rawClient()
			if err != nil {
				return err
			}
			req := api.SandboxConnectRequest{Network: args[0], EndpointConfig: endpoint}
			_, err = rc.call(cmd.Context(), "POST", sandboxPath(args[1], "connect"), nil, req, nil)
			return err
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&ipv4, "ip", "", `IPv4 address (e.g., "172.30.100.104")`)
	flags.StringVar(&ipv6, "ip6", "", `IPv6 address (e.g., "2001:db8::33")`)
	flags.StringSliceVar(&aliases, "alias", nil, "Add network-scoped alias for the sandbox")
	flags.StringSliceVar(&driverOpts, "driver-opt", nil, "driver options for the network")
	return cmd
}

// parseAddr parses an optional --ip/--ip6 value of the given family.
func parseAddr(s, family string) (netip.Addr, error) {
	if s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || (family == "IPv4") != a.Is4() {
		return netip.Addr{}, fmt.Errorf("invalid %s address: %s", family, s)
	}
	return a, nil
}

func newSandboxDisconnectCommand(c *cli) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "disconnect [OPTIONS] NETWORK SANDBOX",
		Short: "Disconnect a sandbox from a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rc, err := c.rawClient()
			if err != nil {
				return err
			}
			req := api.SandboxDisconnectRequest{Network: args[0], Force: force}
			_, err = rc.call(cmd.Context(), "POST", sandboxPath(args[1], "disconnect"), nil, req, nil)
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the sandbox to disconnect from a network")
	return cmd
}

// ---- sandbox rm

func newSandboxRemoveCommand(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "rm SANDBOX [SANDBOX...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more sandboxes",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rc, err := c.rawClient()
			if err != nil {
				return err
			}
			failed := false
			for _, id := range args {
				if _, err := rc.call(cmd.Context(), "DELETE", sandboxPath(id, ""), nil, nil, nil); err != nil {
					fmt.Fprintln(c.err, c.notFoundText(err, "sandbox", id))
					failed = true
					continue
				}
				fmt.Fprintln(c.out, id)
			}
			if failed {
				return statusError{code: 1}
			}
			return nil
		},
	}
	return cmd
}
