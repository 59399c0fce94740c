package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// ---- inspect: any object by name, or of one --type

// inspectKind is a kind of object inspect finds: how to fetch one as the
// daemon's JSON, and how to read that for templates.
type inspectKind struct {
	name   string
	get    func(ctx context.Context, dc *client.Client, name string) ([]byte, error)
	decode func(raw []byte) (any, error)
}

// inspectKinds are tried in this order for a name without --type, as
// docker does.
var inspectKinds = []inspectKind{
	{"container", inspectContainer, decodeView[containerView]},
	{"image", inspectImage, decodeView[image.InspectResponse]},
	{"network", inspectNetwork, decodeView[networkView]},
}

func inspectContainer(ctx context.Context, dc *client.Client, name string) ([]byte, error) {
	res, err := dc.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	return res.Raw, err
}

func inspectNetwork(ctx context.Context, dc *client.Client, name string) ([]byte, error) {
	res, err := dc.NetworkInspect(ctx, name, client.NetworkInspectOptions{})
	return res.Raw, err
}

func decodeView[View any](raw []byte) (any, error) {
	var v View
	err := json.Unmarshal(raw, &v)
	return v, err
}

func newInspectCommand(c *cli) *cobra.Command {
	var format, kind string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NAME|ID [NAME|ID...]",
		Short: "Return low-level information on berth objects",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kinds := inspectKinds
			if kind != "" {
				kinds = nil
				var names []string
				for _, k := range inspectKinds {
					names = append(names, fmt.Sprintf("%q", k.name))
					if k.name == kind {
						kinds = []inspectKind{k}
					}
				}
				if kinds == nil {
					return fmt.Errorf("unknown type: %q: must be one of %s", kind, strings.Join(names, ", "))
				}
			}
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
				if err := c.inspectOne(cmd.Context(), dc, iw, kinds, name); err != nil {
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
	cmd.Flags().StringVar(&kind, "type", "", "Only inspect objects of the given type")
	return cmd
}

// inspectOne adds the first object of the kinds that goes by name. An
// error other than "not found" ends the search: it is the answer.
func (c *cli) inspectOne(ctx context.Context, dc *client.Client, iw *inspectWriter, kinds []inspectKind, name string) error {
	for _, k := range kinds {
		raw, err := k.get(ctx, dc, name)
		switch {
		case cerrdefs.IsNotFound(err):
			continue
		case err != nil:
			return fmt.Errorf("%s", c.errorText(err))
		}
		view, err := k.decode(raw)
		if err != nil {
			return fmt.Errorf("decode %s %s: %w", k.name, name, err)
		}
		return iw.add(view, raw)
	}
	if len(kinds) == 1 {
		return fmt.Errorf("Error: No such %s: %s", kinds[0].name, name)
	}
	return fmt.Errorf("Error: No such object: %s", name)
}

// containerView is a container for templates. Addresses are strings, as
// API v1.41 spells them, so that one not set prints as "" rather than as an
// invalid address; what it leaves out, templates find in the daemon's JSON
// (see inspectWriter.add).
type containerView struct {
	ID              string `json:"Id"`
	Created         string
	Path            string
	Args            []string
	State           *container.State
	Image           string
	ResolvConfPath  string
	HostnamePath    string
	HostsPath       string
	LogPath         string
	Name            string
	RestartCount    int
	Driver          string
	Platform        string
	ExecIDs         []string
	HostConfig      *hostConfigView
	Config          *container.Config
	NetworkSettings *networkSettingsView
	Mounts          []container.MountPoint
}

type hostConfigView struct {
	NetworkMode     string
	PortBindings    map[string][]portBindingView
	RestartPolicy   container.RestartPolicy
	AutoRemove      bool
	DNS             []string `json:"Dns"`
	DNSOptions      []string `json:"DnsOptions"`
	DNSSearch       []string `json:"DnsSearch"`
	ExtraHosts      []string
	Links           []string
	PublishAllPorts bool
}

type portBindingView struct {
	HostIP   string `json:"HostIp"`
	HostPort string
}

type networkSettingsView struct {
	SandboxID  string
	SandboxKey string
	Ports      map[string][]portBindingView
	Networks   map[string]*endpointView
}
