package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Manage networks",
		Args:  noArgs,
		RunE:  showHelp(c),
	}
	cmd.AddCommand(
		newNetworkCreateCommand(c),
		newNetworkInspectCommand(c),
		newNetworkListCommand(c),
		newNetworkPruneCommand(c),
		newNetworkRemoveCommand(c),
	)
	return cmd
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

func (r networkRow) ID() string {
	if r.trunc {
		return shortID(r.n.ID)
	}
	return r.n.ID
}

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
		filter  filterValue
		format  string
		quiet   bool
		noTrunc bool
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
				rows[i] = networkRow{n: n, trunc: !noTrunc}
			}
			return writeList(c.out, networkListing, format, quiet, rows)
		},
	}
	flags := cmd.Flags()
	flags.VarP(&filter, "filter", "f", `Provide filter values (e.g. "driver=bridge")`)
	flags.StringVar(&format, "format", "", listFormatHelp)
	flags.BoolVarP(&quiet, "quiet", "q", false, "Only display network IDs")
	flags.BoolVar(&noTrunc, "no-trunc", false, "Do not truncate the output")
	return cmd
}

const listFormatHelp = `Format output using a custom template:
'table':            Print output in table format with column headers (default)
'table TEMPLATE':   Print output in table format using the given Go template
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template`

const inspectFormatHelp = `Format output using a custom template:
'json':             Print in JSON format
'TEMPLATE':         Print output using the given Go template`

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

			rc, err := c.rawClient()
			if err != nil {
				return err
			}
			if req.CheckDuplicate, err = rc.versionBefore(cmd.Context(), "1.44"); err != nil {
				return err
			}
			var resp network.CreateResponse
			if _, err := rc.call(cmd.Context(), "POST", "/networks/create", nil, req, &resp); err != nil {
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
		matched := false
		for i := range configs {
			ok, err := subnetHas(configs[i].Subnet, r, true)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			if configs[i].IPRange != "" {
				return nil, fmt.Errorf("cannot configure multiple ranges (%s, %s) on the same subnet (%s)", r, configs[i].IPRange, configs[i].Subnet)
			}
			configs[i].IPRange = r
			matched = true
		}
		if !matched {
			return nil, fmt.Errorf("no matching subnet for range %s", r)
		}
	}

	for _, g := range gateways {
		matched := false
		for i := range configs {
			ok, err := subnetHas(configs[i].Subnet, g, false)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			if configs[i].Gateway != "" {
				return nil, fmt.Errorf("cannot configure multiple gateways (%s, %s) for the same subnet (%s)", g, configs[i].Gateway, configs[i].Subnet)
			}
			configs[i].Gateway = g
			matched = true
		}
		if !matched {
			return nil, fmt.Errorf("no matching subnet for gateway %s", g)
		}
	}

	names := make([]string, 0, len(aux))
	for name := range aux {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		addr := aux[name]
		matched := false
		for i := range configs {
			ok, err := subnetHas(configs[i].Subnet, addr, false)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			if configs[i].AuxAddress == nil {
				configs[i].AuxAddress = map[string]string{}
			}
			configs[i].AuxAddress[name] = addr
			matched = true
		}
		if !matched {
			return nil, fmt.Errorf("no matching subnet for aux-address %s", addr)
		}
	}
	return configs, nil
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
			var failures []string
			for _, name := range args {
				res, err := dc.NetworkInspect(cmd.Context(), name, client.NetworkInspectOptions{Verbose: verbose})
				if err != nil {
					failures = append(failures, c.notFoundText(err, "network", name))
					continue
				}
				var view networkView
				if err := json.Unmarshal(res.Raw, &view); err != nil {
					failures = append(failures, err.Error())
					continue
				}
				if err := iw.add(view, res.Raw); err != nil {
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
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "Verbose output for diagnostics")
	return cmd
}

// notFoundText words an error about one named object: docker's "No such"
// for a 404, the daemon's message otherwise.
func (c *cli) notFoundText(err error, kind, name string) string {
	if isNotFound(err) {
		return fmt.Sprintf("Error: No such %s: %s", kind, name)
	}
	return c.errorText(err)
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
			failed := false
			for _, name := range args {
				if _, err := dc.NetworkRemove(cmd.Context(), name, client.NetworkRemoveOptions{}); err != nil {
					if force && isNotFound(err) {
						continue
					}
					fmt.Fprintln(c.err, c.notFoundText(err, "network", name))
					failed = true
					continue
				}
				fmt.Fprintln(c.out, name)
			}
			if failed {
				return statusError{code: 1}
			}
			return nil
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
			res, err := dc.NetworkPrune(cmd.Context(), client.NetworkPruneOptions{Filters: filter.filters})
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
