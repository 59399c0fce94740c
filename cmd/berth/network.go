package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func newNetworkCommand(c *cli) *cobra.Command {
	return commandGroup(c, "network", "Manage networks",
		newNetworkConnectCommand(c),
		newNetworkCreateCommand(c),
		newNetworkDisconnectCommand(c),
		newNetworkGraphCommand(c),
		newNetworkInspectCommand(c),
		newNetworkListCommand(c),
		newNetworkPruneCommand(c),
		newNetworkRemoveCommand(c),
		newNetworkTraceCommand(c),
	)
}

// ---- network ls

var networkListing = listing{
	table: "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
	quiet: "{{.ID}}",
	header: headerRow{
		"ID":        "NETWORK ID",
		"Name":      "NAME",
		"Driver":    "DRIVER",
		"Scope":     "SCOPE",
		"IPv6":      "IPV6",
		"Internal":  "INTERNAL",
		"Labels":    "LABELS",
		"CreatedAt": "CREATED AT",
	},
}

// networkRow is one line of network ls; its methods are the template fields.
type networkRow struct {
	n     network.Summary
	trunc bool
}

func (r networkRow) ID() string        { return listID(r.n.ID, r.trunc) }
func (r networkRow) Name() string      { return r.n.Name }
func (r networkRow) Driver() string    { return r.n.Driver }
func (r networkRow) Scope() string     { return r.n.Scope }
func (r networkRow) IPv6() string      { return strconv.FormatBool(r.n.EnableIPv6) }
func (r networkRow) Internal() string  { return strconv.FormatBool(r.n.Internal) }
func (r networkRow) Labels() string    { return joinLabels(r.n.Labels) }
func (r networkRow) CreatedAt() string { return r.n.Created.String() }

func (r networkRow) Label(name string) string { return r.n.Labels[name] }

func (r networkRow) MarshalJSON() ([]byte, error) { return marshalRow(r) }

// joinLabels is "k=v,k=v" in key order.
func joinLabels(labels map[string]string) string {
	pairs := make([]string, 0, len(labels))
	for k, v := range labels {
		pairs = append(pairs, k+"="+v)
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

func newNetworkListCommand(c *cli) *cobra.Command {
	var (
		filter filterValue
		list   listFlags
	)
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dc, err := c.client()
			if err != nil {
				return err
			}
			res, err := dc.NetworkList(cmd.Context(), client.NetworkListOptions{Filters: filter.filters})
			if err != nil {
				return err
			}
			sort.SliceStable(res.Items, func(i, j int) bool {
				return naturalLess(res.Items[i].Name, res.Items[j].Name)
			})
			rows := make([]networkRow, len(res.Items))
			for i, n := range res.Items {
				rows[i] = networkRow{n: n, trunc: !list.noTrunc}
			}
			return writeList(c.out, networkListing, list.format, list.quiet, rows)
		},
	}
	cmd.Flags().VarP(&filter, "filter", "f", `Provide filter values (e.g. "driver=bridge")`)
	list.add(cmd, "network")
	return cmd
}

// ---- network create

// networkCreateRequest is the body of POST /networks/create. Addresses stay
// the strings the user typed: judging them is the daemon's job, and its
// errors are the ones docker users know.
type networkCreateRequest struct {
	Name string
	// CheckDuplicate asks daemons before API v1.44 to refuse a second
	// network of the same name; later ones always do and ignore it.
	CheckDuplicate bool `json:",omitempty"`
	Driver         string
	Scope          string
	EnableIPv4     *bool `json:",omitempty"`
	EnableIPv6     *bool `json:",omitempty"`
	IPAM           *ipamView
	Internal       bool
	Attachable     bool
	Ingress        bool
	ConfigOnly     bool
	ConfigFrom     *network.ConfigReference `json:",omitempty"`
	Options        map[string]string
	Labels         map[string]string
}

// ipamView is a network's IPAM as API v1.41 spells it: addresses are strings.
type ipamView struct {
	Driver  string
	Options map[string]string
	Config  []ipamConfigView
}

type ipamConfigView struct {
	Subnet     string            `json:",omitempty"`
	IPRange    string            `json:",omitempty"`
	Gateway    string            `json:",omitempty"`
	AuxAddress map[string]string `json:"AuxiliaryAddresses,omitempty"`
}

func newNetworkCreateCommand(c *cli) *cobra.Command {
	var (
		driver, ipamDriver, scope, configFrom string
		subnets, ranges, gateways             []string
		ipv4, ipv6                            bool
		internal, attachable, ingress         bool
		configOnly                            bool
		labels                                listValue
		aux, ipamOpts, driverOpts             = newMapValue(), newMapValue(), newMapValue()
	)
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			configs, err := ipamConfigs(subnets, ranges, gateways, aux.get())
			if err != nil {
				return err
			}
			req := networkCreateRequest{
				Name:   args[0],
				Driver: driver,
				Scope:  scope,
				IPAM: &ipamView{
					Driver:  ipamDriver,
					Options: ipamOpts.get(),
					Config:  configs,
				},
				Internal:   internal,
				Attachable: attachable,
				Ingress:    ingress,
				ConfigOnly: configOnly,
				Options:    driverOpts.get(),
				Labels:     keyValues(labels.values),
			}
			if cmd.Flags().Changed("ipv4") {
				req.EnableIPv4 = &ipv4
			}
			if cmd.Flags().Changed("ipv6") {
				req.EnableIPv6 = &ipv6
			}
			if configFrom != "" {
				req.ConfigFrom = &network.ConfigReference{Network: configFrom}
			}

			bc, err := c.berthClient(cmd.Context())
			if err != nil {
				return err
			}
			req.CheckDuplicate = versionLess(bc.Version(), "1.44")
			var resp network.CreateResponse
			if _, err := bc.Call(cmd.Context(), http.MethodPost, "/networks/create", nil, req, &resp); err != nil {
				return err
			}
			if resp.Warning != "" {
				fmt.Fprintln(c.err, warningText(resp.Warning))
			}
			fmt.Fprintln(c.out, resp.ID)
			return nil
		},
	}
	flags := cmd.Flags()
	flags.StringVarP(&driver, "driver", "d", "bridge", "Driver to manage the Network")
	flags.VarP(driverOpts, "opt", "o", "Set driver specific options")
	flags.Var(&labels, "label", "Set metadata on a network")
	flags.BoolVar(&internal, "internal", false, "Restrict external access to the network")
	flags.BoolVar(&ipv4, "ipv4", true, "Enable or disable IPv4 address assignment")
	flags.BoolVar(&ipv6, "ipv6", false, "Enable or disable IPv6 address assignment")
	flags.BoolVar(&attachable, "attachable", false, "Enable manual container attachment")
	flags.BoolVar(&ingress, "ingress", false, "Create swarm routing-mesh network")
	flags.StringVar(&scope, "scope", "", "Control the network's scope")
	flags.BoolVar(&configOnly, "config-only", false, "Create a configuration only network")
	flags.StringVar(&configFrom, "config-from", "", "The network from which to copy the configuration")
	flags.StringVar(&ipamDriver, "ipam-driver", "default", "IP Address Management Driver")
	flags.StringSliceVar(&subnets, "subnet", nil, "Subnet in CIDR format that represents a network segment")
	flags.StringSliceVar(&ranges, "ip-range", nil, "Allocate container ip from a sub-range")
	flags.StringSliceVar(&gateways, "gateway", nil, "IPv4 or IPv6 Gateway for the master subnet")
	flags.Var(aux, "aux-address", "Auxiliary IPv4 or IPv6 addresses used by Network driver")
	flags.Var(ipamOpts, "ipam-opt", "Set IPAM driver specific options")
	return cmd
}

// warningText prefixes a daemon warning with WARNING: unless it has one.
func warningText(w string) string {
	if strings.HasPrefix(w, "WARNING") {
		return w
	}
	return "WARNING: " + w
}

// ipamConfigs groups --ip-range, --gateway and --aux-address values under
// the --subnet that contains them, one IPAM config per subnet in the order
// given, and refuses what cannot be grouped, with docker's words.
func ipamConfigs(subnets, ranges, gateways []string, aux map[string]string) ([]ipamConfigView, error) {
	if len(subnets) < len(ranges) || len(subnets) < len(gateways) {
		return nil, errors.New("every ip-range or gateway must have a corresponding subnet")
	}
	configs := make([]ipamConfigView, 0, len(subnets))
	for _, s := range subnets {
		for _, prev := range configs {
			inPrev, err := subnetHas(prev.Subnet, s, false)
			if err != nil {
				return nil, err
			}
			inNew, err := subnetHas(s, prev.Subnet, false)
			if err != nil {
				return nil, err
			}
			if inPrev || inNew {
				return nil, errors.New("multiple overlapping subnet configuration is not supported")
			}
		}
		configs = append(configs, ipamConfigView{Subnet: s})
	}

	for _, r := range ranges {
		cfg, err := subnetFor(configs, r, true, "range")
		if err != nil {
			return nil, err
		}
		if cfg.IPRange != "" {
			return nil, fmt.Errorf("cannot configure multiple ranges (%s, %s) on the same subnet (%s)", r, cfg.IPRange, cfg.Subnet)
		}
		cfg.IPRange = r
	}
	for _, g := range gateways {
		cfg, err := subnetFor(configs, g, false, "gateway")
		if err != nil {
			return nil, err
		}
		if cfg.Gateway != "" {
			return nil, fmt.Errorf("cannot configure multiple gateways (%s, %s) for the same subnet (%s)", g, cfg.Gateway, cfg.Subnet)
		}
		cfg.Gateway = g
	}
	names := make([]string, 0, len(aux))
	for name := range aux {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		cfg, err := subnetFor(configs, aux[name], false, "aux-address")
		if err != nil {
			return nil, err
		}
		if cfg.AuxAddress == nil {
			cfg.AuxAddress = map[string]string{}
		}
		cfg.AuxAddress[name] = aux[name]
	}
	return configs, nil
}

// subnetFor finds the config whose subnet holds value (an address, or a
// CIDR when cidr is set); what is the flag, for the error when none does.
// Subnets do not overlap, so one at most does.
func subnetFor(configs []ipamConfigView, value string, cidr bool, what string) (*ipamConfigView, error) {
	for i := range configs {
		ok, err := subnetHas(configs[i].Subnet, value, cidr)
		if err != nil {
			return nil, err
		}
		if ok {
			return &configs[i], nil
		}
	}
	return nil, fmt.Errorf("no matching subnet for %s %s", what, value)
}

// subnetHas tells whether subnet contains the address of value, an address
// or a CIDR (always a CIDR when cidr is set). A value that is no address
// matches nothing.
func subnetHas(subnet, value string, cidr bool) (bool, error) {
	_, sn, err := net.ParseCIDR(subnet)
	if err != nil {
		return false, fmt.Errorf("invalid subnet: %w", err)
	}
	var ip net.IP
	if cidr || strings.Contains(value, "/") {
		ip, _, err = net.ParseCIDR(value)
		if err != nil {
			return false, err
		}
	} else {
		ip = net.ParseIP(value)
	}
	return sn.Contains(ip), nil
}

// ---- network connect / disconnect

func newNetworkConnectCommand(c *cli) *cobra.Command {
	var (
		ipv4, ipv6          string
		aliases, driverOpts []string
		links               listValue
	)
	links.check = checkLink
	cmd := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK CONTAINER",
		Short: "Connect a container to a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			endpoint := &network.EndpointSettings{Aliases: aliases, Links: links.values}
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
			dc, err := c.client()
			if err != nil {
				return err
			}
			_, err = dc.NetworkConnect(cmd.Context(), args[0], client.NetworkConnectOptions{Container: args[1], EndpointConfig: endpoint})
			return err
		},
	}
	flags := cmd.Flags()
	flags.StringSliceVar(&aliases, "alias", nil, "Add network-scoped alias for the container")
	flags.StringSliceVar(&driverOpts, "driver-opt", nil, "driver options for the network")
	flags.StringVar(&ipv4, "ip", "", `IPv4 address (e.g., "172.30.100.104")`)
	flags.StringVar(&ipv6, "ip6", "", `IPv6 address (e.g., "2001:db8::33")`)
	flags.Var(&links, "link", "Add link to another container")
	return cmd
}

func newNetworkDisconnectCommand(c *cli) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "disconnect [OPTIONS] NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dc, err := c.client()
			if err != nil {
				return err
			}
			_, err = dc.NetworkDisconnect(cmd.Context(), args[0], client.NetworkDisconnectOptions{Container: args[1], Force: force})
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force the container to disconnect from a network")
	return cmd
}

// ---- network inspect

// networkView is a network as API v1.41 clients see it, for templates:
// unset addresses print as "" rather than as an invalid address.
type networkView struct {
	Name       string
	ID         string `json:"Id"`
	Created    time.Time
	Scope      string
	Driver     string
	EnableIPv6 bool
	IPAM       ipamView
	Internal   bool
	Attachable bool
	Ingress    bool
	ConfigFrom network.ConfigReference
	ConfigOnly bool
	Containers map[string]endpointResourceView
	Options    map[string]string
	Labels     map[string]string
	Peers      []peerView             `json:",omitempty"`
	Services   map[string]serviceView `json:",omitempty"`
}

type peerView struct {
	Name string
	IP   string
}

type serviceView struct {
	VIP          string
	Ports        []string
	LocalLBIndex int
	Tasks        []taskView
}

type taskView struct {
	Name       string
	EndpointID string
	EndpointIP string
	Info       map[string]string
}

type endpointResourceView struct {
	Name        string
	EndpointID  string
	MacAddress  string
	IPv4Address string
	IPv6Address string
}

func newNetworkInspectCommand(c *cli) *cobra.Command {
	var (
		format  string
		verbose bool
	)
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			iw, err := newInspectWriter(c.out, format)
			if err != nil {
				return err
			}
			dc, err := c.client()
			if err != nil {
				return err
			}
			return inspectEach[networkView](c, iw, "network", args, func(name string) ([]byte, error) {
				res, err := dc.NetworkInspect(cmd.Context(), name, client.NetworkInspectOptions{Verbose: verbose})
				return res.Raw, err
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", inspectFormatHelp)
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "Verbose output for diagnostics")
	return cmd
}

// ---- network rm

func newNetworkRemoveCommand(c *cli) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dc, err := c.client()
			if err != nil {
				return err
			}
			return c.removeEach("network", args, force, func(name string) error {
				_, err := dc.NetworkRemove(cmd.Context(), name, client.NetworkRemoveOptions{})
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not error if the network does not exist")
	return cmd
}

// ---- network prune

const networkPruneWarning = `WARNING! This will remove all custom networks not used by at least one container.
Are you sure you want to continue?`

func newNetworkPruneCommand(c *cli) *cobra.Command {
	var (
		filter filterValue
		force  bool
	)
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all unused networks",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !force && !c.confirm(networkPruneWarning) {
				return nil
			}
			dc, err := c.client()
			if err != nil {
				return err
			}
			p := c.newProgress("Pruning networks", 0)
			res, err := dc.NetworkPrune(cmd.Context(), client.NetworkPruneOptions{Filters: filter.filters})
			p.End()
			if err != nil {
				return err
			}
			if deleted := res.Report.NetworksDeleted; len(deleted) > 0 {
				// Docker ends the list with an empty line.
				fmt.Fprintf(c.out, "Deleted Networks:\n%s\n\n", strings.Join(deleted, "\n"))
			}
			return nil
		},
	}
	cmd.Flags().Var(&filter, "filter", `Provide filter values (e.g. "until=<timestamp>")`)
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	return cmd
}

// confirm asks a yes/no question on stdout and reads the answer from stdin;
// anything but y or yes is no.
func (c *cli) confirm(question string) bool {
	fmt.Fprint(c.out, question+" [y/N] ")
	answer, _ := bufio.NewReader(c.in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return true
	}
	return false
}
