package main

import (
	"fmt"
	"net/http"
	"net/netip"
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
	return commandGroup(c, "sandbox", "Manage sandboxes (network namespaces without a container)",
		newSandboxConnectCommand(c),
		newSandboxCreateCommand(c),
		newSandboxDisconnectCommand(c),
		newSandboxInspectCommand(c),
		newSandboxListCommand(c),
		newSandboxRemoveCommand(c),
	)
}

// ---- sandbox create

func newSandboxCreateCommand(c *cli) *cobra.Command {
	var req api.SandboxCreateRequest
	cmd := &cobra.Command{
		Use:   "create [OPTIONS]",
		Short: "Create a sandbox",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bc, err := c.berthClient(cmd.Context())
			if err != nil {
				return err
			}
			resp, err := bc.CreateSandbox(cmd.Context(), req)
			if err != nil {
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

func (r sandboxRow) ID() string       { return listID(r.s.ID, r.trunc) }
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
	var list listFlags
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List sandboxes",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bc, err := c.berthClient(cmd.Context())
			if err != nil {
				return err
			}
			sandboxes, err := bc.Sandboxes(cmd.Context())
			if err != nil {
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
				rows[i] = sandboxRow{s: s, trunc: !list.noTrunc}
			}
			return writeList(c.out, sandboxListing, list.format, list.quiet, rows)
		},
	}
	list.add(cmd, "sandbox")
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
			bc, err := c.berthClient(cmd.Context())
			if err != nil {
				return err
			}
			return inspectEach[sandboxView](c, iw, "sandbox", args, func(id string) ([]byte, error) {
				return bc.Call(cmd.Context(), http.MethodGet, api.SandboxPath(id), nil, nil, nil)
			})
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
			bc, err := c.berthClient(cmd.Context())
			if err != nil {
				return err
			}
			req := api.SandboxConnectRequest{Network: args[0], EndpointConfig: endpoint}
			_, err = bc.ConnectSandbox(cmd.Context(), args[1], req)
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
			bc, err := c.berthClient(cmd.Context())
			if err != nil {
				return err
			}
			req := api.SandboxDisconnectRequest{Network: args[0], Force: force}
			return bc.DisconnectSandbox(cmd.Context(), args[1], req)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the sandbox to disconnect from a network")
	return cmd
}

// ---- sandbox rm

func newSandboxRemoveCommand(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:     "rm SANDBOX [SANDBOX...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more sandboxes",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bc, err := c.berthClient(cmd.Context())
			if err != nil {
				return err
			}
			return c.removeEach("sandbox", args, false, func(id string) error {
				return bc.RemoveSandbox(cmd.Context(), id)
			})
		},
	}
}
