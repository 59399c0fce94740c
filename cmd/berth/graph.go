package main

import (
	"bytes"
	"context"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-net/berth/topology"
)

// ---- network graph

func newNetworkGraphCommand(c *cli) *cobra.Command {
	var format, output string
	cmd := &cobra.Command{
		Use:   "graph [OPTIONS] [NETWORK...]",
		Short: "Draw the networks, their containers and published ports",
		Long: "Draw the host's networks (subnets, drivers, isolation), the containers on them\n" +
			"(addresses, aliases), the ports they publish and the other hosts of a cluster:\n" +
			"as SVG, as Graphviz DOT or as JSON. Named networks limit the picture to them\n" +
			"and what is attached to them. berthd serves the same picture live at /ui/.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := topology.CheckFormat(format); err != nil {
				return err
			}
			dc, err := c.client()
			if err != nil {
				return err
			}
			m, err := readTopology(cmd.Context(), dc, args)
			if err != nil {
				return err
			}
			// Drawn whole before anything is written: a failure leaves no
			// half a file.
			var b bytes.Buffer
			if err := topology.Render(&b, m, format); err != nil {
				return err
			}
			if output == "" || output == "-" {
				_, err := c.out.Write(b.Bytes())
				return err
			}
			return os.WriteFile(output, b.Bytes(), 0o644)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&format, "format", topology.FormatSVG, "Draw as "+strings.Join(topology.Formats, ", "))
	flags.StringVarP(&output, "output", "o", "", "Write to a file instead of the standard output")
	return cmd
}

// readTopology builds the picture's model from the Engine API, as berthd
// builds it for /ui/, so that the CLI draws for any Docker-compatible
// daemon. Networks named are found as inspect finds them (name, ID or ID
// prefix) and keep the picture to themselves.
func readTopology(ctx context.Context, dc *client.Client, only []string) (topology.Model, error) {
	info, err := dc.Info(ctx, client.InfoOptions{})
	if err != nil {
		return topology.Model{}, err
	}
	in := topology.Input{Host: info.Info.Name, HostID: info.Info.ID}
	var ids []string
	for _, term := range only {
		res, err := dc.NetworkInspect(ctx, term, client.NetworkInspectOptions{})
		if err != nil {
			return topology.Model{}, err
		}
		ids = append(ids, res.Network.ID)
	}
	list, err := dc.NetworkList(ctx, client.NetworkListOptions{})
	if err != nil {
		return topology.Model{}, err
	}
	for _, n := range list.Items {
		res, err := dc.NetworkInspect(ctx, n.ID, client.NetworkInspectOptions{})
		if errdefs.IsNotFound(err) {
			// Removed since it was listed.
			continue
		}
		if err != nil {
			return topology.Model{}, err
		}
		in.Networks = append(in.Networks, res.Network)
	}
	containers, err := dc.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		return topology.Model{}, err
	}
	in.Containers = containers.Items
	m := topology.Build(in)
	if len(ids) > 0 {
		m = m.Only(ids...)
	}
	return m, nil
}
