package main

import (
	"fmt"
	"maps"
	"strings"

	"github.com/docker/go-units"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

func newSystemCommand(c *cli) *cobra.Command {
	return commandGroup(c, "system", "Manage berth", newSystemPruneCommand(c))
}

// systemPruneWarning is Docker's question, less the build cache berth
// does not have.
func systemPruneWarning(all, volumes bool) string {
	items := []string{"all stopped containers", "all networks not used by at least one container"}
	if volumes {
		items = append(items, "all anonymous volumes not used by at least one container")
	}
	if all {
		items = append(items, "all images without at least one container associated to them")
	} else {
		items = append(items, "all dangling images")
	}
	return "WARNING! This will remove:\n  - " + strings.Join(items, "\n  - ") + "\n\nAre you sure you want to continue?"
}

func newSystemPruneCommand(c *cli) *cobra.Command {
	var (
		filter              filterValue
		all, volumes, force bool
	)
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused data",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !force && !c.confirm(systemPruneWarning(all, volumes)) {
				return nil
			}
			dc, err := c.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			steps := 3
			if volumes {
				steps++
			}
			p := c.newProgress("Pruning", int64(steps))
			defer p.End()
			var reclaimed uint64
			var report strings.Builder
			section := func(title string, lines []string) {
				if len(lines) > 0 {
					fmt.Fprintf(&report, "%s:\n%s\n\n", title, strings.Join(lines, "\n"))
				}
			}

			p.Step("containers")
			cr, err := dc.ContainerPrune(ctx, client.ContainerPruneOptions{Filters: filter.filters})
			if err != nil {
				return err
			}
			reclaimed += cr.Report.SpaceReclaimed
			section("Deleted Containers", cr.Report.ContainersDeleted)

			p.Step("networks")
			nr, err := dc.NetworkPrune(ctx, client.NetworkPruneOptions{Filters: filter.filters})
			if err != nil {
				return err
			}
			section("Deleted Networks", nr.Report.NetworksDeleted)

			if volumes {
				p.Step("volumes")
				// Volumes take no until filter, as with Docker.
				vf := client.Filters{}
				for k, vs := range maps.All(filter.filters) {
					if k != "until" {
						vf[k] = vs
					}
				}
				vr, err := dc.VolumePrune(ctx, client.VolumePruneOptions{Filters: vf})
				if err != nil {
					return err
				}
				reclaimed += vr.Report.SpaceReclaimed
				section("Deleted Volumes", vr.Report.VolumesDeleted)
			}

			p.Step("images")
			imf := client.Filters{}
			maps.Copy(imf, filter.filters)
			if all {
				imf.Add("dangling", "false")
			}
			ir, err := dc.ImagePrune(ctx, client.ImagePruneOptions{Filters: imf})
			if err != nil {
				return err
			}
			reclaimed += ir.Report.SpaceReclaimed
			var images []string
			for _, d := range ir.Report.ImagesDeleted {
				if d.Untagged != "" {
					images = append(images, "untagged: "+d.Untagged)
				}
				if d.Deleted != "" {
					images = append(images, "deleted: "+d.Deleted)
				}
			}
			section("Deleted Images", images)

			p.End()
			fmt.Fprintf(c.out, "%sTotal reclaimed space: %s\n", report.String(), units.HumanSize(float64(reclaimed)))
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused images not just dangling ones")
	cmd.Flags().BoolVar(&volumes, "volumes", false, "Prune anonymous volumes")
	cmd.Flags().Var(&filter, "filter", `Provide filter values (e.g. "label=<key>=<value>")`)
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	return cmd
}
