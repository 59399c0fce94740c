package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// Images come into berth only by import: it has no registry to pull from.

func newImageCommand(c *cli) *cobra.Command {
	return commandGroup(c, "image", "Manage images",
		newImageImportCommand(c),
		newImageInspectCommand(c),
		newImageListCommand(c, "ls", "list"),
		newImageRemoveCommand(c, "rm", "remove"),
	)
}

// The top-level shorthands docker has: images, rmi, import.

func newImagesCommand(c *cli) *cobra.Command { return newImageListCommand(c, "images") }
func newRmiCommand(c *cli) *cobra.Command    { return newImageRemoveCommand(c, "rmi") }
func newImportCommand(c *cli) *cobra.Command { return newImageImportCommand(c) }

// ---- image import

func newImageImportCommand(c *cli) *cobra.Command {
	var (
		opts    client.ImageImportOptions
		changes listValue
	)
	cmd := &cobra.Command{
		Use:   "import [OPTIONS] file|- [REPOSITORY[:TAG]]",
		Short: "Import the contents from a tarball to create a filesystem image",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src := c.in
			var size int64
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				src = f
				if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
					size = st.Size()
				}
			}
			ref := ""
			if len(args) == 2 {
				ref = args[1]
			}
			dc, err := c.client()
			if err != nil {
				return err
			}
			opts.Changes = changes.values
			// The daemon answers once it has the whole tarball: the
			// line shows the upload, then the time the unpacking takes.
			p := c.newProgress("Importing", size)
			res, err := dc.ImageImport(cmd.Context(), client.ImageImportSource{Source: p.Reader(src), SourceName: "-"}, ref, opts)
			p.End()
			if err != nil {
				return err
			}
			defer res.Close()
			return printProgress(c.out, res)
		},
	}
	cmd.Flags().VarP(&changes, "change", "c", "Apply Dockerfile instruction to the created image")
	cmd.Flags().StringVarP(&opts.Message, "message", "m", "", "Set commit message for imported image")
	return cmd
}

// progressMessage is one message of the JSON stream the daemon answers
// image imports with.
type progressMessage struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	Stream      string `json:"stream"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// printProgress prints a progress stream as docker does where there is no
// terminal: a line per status ("sha256:…" for an import); an error message
// ends it as the command's error.
func printProgress(w io.Writer, r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m progressMessage
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch {
		case m.ErrorDetail != nil && m.ErrorDetail.Message != "":
			return errors.New(m.ErrorDetail.Message)
		case m.Error != "":
			return errors.New(m.Error)
		case m.Stream != "":
			fmt.Fprint(w, m.Stream)
		case m.ID != "":
			fmt.Fprintf(w, "%s: %s\n", m.ID, m.Status)
		default:
			fmt.Fprintln(w, m.Status)
		}
	}
}

// ---- image ls

var imageListing = listing{
	table: "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
	quiet: "{{.ID}}",
	header: headerRow{
		"Repository":   "REPOSITORY",
		"Tag":          "TAG",
		"ID":           "IMAGE ID",
		"Digest":       "DIGEST",
		"CreatedSince": "CREATED",
		"CreatedAt":    "CREATED AT",
		"Size":         "SIZE",
		"Containers":   "CONTAINERS",
		"SharedSize":   "SHARED SIZE",
		"UniqueSize":   "UNIQUE SIZE",
		"VirtualSize":  "SIZE",
	},
}

// imageRow is one line of image ls: an image under one of its names. Its
// methods are the template fields.
type imageRow struct {
	img       image.Summary
	repo, tag string
	trunc     bool
}

// imageRows gives an image a row per tag, one per repository it is known
// in only by digest, or one "<none>" row when it has no name at all.
func imageRows(img image.Summary, trunc bool) []imageRow {
	var rows []imageRow
	named := map[string]bool{}
	for _, t := range img.RepoTags {
		ref, err := reference.ParseNormalizedNamed(t)
		if err != nil {
			continue
		}
		if tagged, ok := ref.(reference.NamedTagged); ok {
			name := reference.FamiliarName(ref)
			named[name] = true
			rows = append(rows, imageRow{img: img, repo: name, tag: tagged.Tag(), trunc: trunc})
		}
	}
	for _, d := range img.RepoDigests {
		ref, err := reference.ParseNormalizedNamed(d)
		if err != nil {
			continue
		}
		if name := reference.FamiliarName(ref); !named[name] {
			named[name] = true
			rows = append(rows, imageRow{img: img, repo: name, tag: "<none>", trunc: trunc})
		}
	}
	if len(rows) == 0 {
		rows = append(rows, imageRow{img: img, repo: "<none>", tag: "<none>", trunc: trunc})
	}
	return rows
}

func (r imageRow) ID() string         { return listID(r.img.ID, r.trunc) }
func (r imageRow) Repository() string { return r.repo }
func (r imageRow) Tag() string        { return r.tag }
func (r imageRow) Digest() string     { return "<none>" }
func (r imageRow) CreatedAt() string  { return time.Unix(r.img.Created, 0).String() }
func (r imageRow) CreatedSince() string {
	return units.HumanDuration(time.Now().UTC().Sub(time.Unix(r.img.Created, 0))) + " ago"
}
func (r imageRow) Size() string        { return units.HumanSizeWithPrecision(float64(r.img.Size), 3) }
func (r imageRow) VirtualSize() string { return units.HumanSize(float64(r.img.Size)) }

func (r imageRow) Containers() string {
	if r.img.Containers == -1 {
		return "N/A"
	}
	return strconv.FormatInt(r.img.Containers, 10)
}

func (r imageRow) SharedSize() string {
	if r.img.SharedSize == -1 {
		return "N/A"
	}
	return units.HumanSize(float64(r.img.SharedSize))
}

func (r imageRow) UniqueSize() string {
	if r.img.SharedSize == -1 {
		return "N/A"
	}
	return units.HumanSizeWithPrecision(float64(r.img.Size-r.img.SharedSize), 3)
}

func (r imageRow) MarshalJSON() ([]byte, error) { return marshalRow(r) }

func newImageListCommand(c *cli, use string, aliases ...string) *cobra.Command {
	var (
		filter filterValue
		list   listFlags
		all    bool
	)
	cmd := &cobra.Command{
		Use:     use + " [OPTIONS] [REPOSITORY[:TAG]]",
		Aliases: aliases,
		Short:   "List images",
		Args:    maxArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				_ = filter.Set("reference=" + args[0])
			}
			dc, err := c.client()
			if err != nil {
				return err
			}
			res, err := dc.ImageList(cmd.Context(), client.ImageListOptions{All: all, Filters: filter.filters})
			if err != nil {
				return err
			}
			var rows []imageRow
			for _, img := range res.Items {
				rows = append(rows, imageRows(img, !list.noTrunc)...)
			}
			return writeList(c.out, imageListing, list.format, list.quiet, rows)
		},
	}
	flags := cmd.Flags()
	flags.BoolVarP(&all, "all", "a", false, "Show all images (default hides intermediate images)")
	flags.VarP(&filter, "filter", "f", "Filter output based on conditions provided")
	list.add(cmd, "image")
	return cmd
}

// ---- image rm

func newImageRemoveCommand(c *cli, use string, aliases ...string) *cobra.Command {
	var force, noPrune bool
	cmd := &cobra.Command{
		Use:     use + " [OPTIONS] IMAGE [IMAGE...]",
		Aliases: aliases,
		Short:   "Remove one or more images",
		Args:    minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dc, err := c.client()
			if err != nil {
				return err
			}
			// Like docker, the failures come after all that went, and with
			// --force, images that do not exist are reported but fail
			// nothing.
			var failures []string
			fatal := false
			for _, name := range args {
				res, err := dc.ImageRemove(cmd.Context(), name, client.ImageRemoveOptions{Force: force, PruneChildren: !noPrune})
				if err != nil {
					failures = append(failures, c.errorText(err))
					fatal = fatal || !cerrdefs.IsNotFound(err)
					continue
				}
				for _, r := range res.Items {
					if r.Deleted != "" {
						fmt.Fprintln(c.out, "Deleted:", r.Deleted)
					} else {
						fmt.Fprintln(c.out, "Untagged:", r.Untagged)
					}
				}
			}
			if len(failures) == 0 {
				return nil
			}
			report := strings.Join(failures, "\n")
			if !force || fatal {
				return statusError{status: report, code: 1}
			}
			fmt.Fprintln(c.err, report)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Force removal of the image")
	cmd.Flags().BoolVar(&noPrune, "no-prune", false, "Do not delete untagged parents")
	return cmd
}

// ---- image inspect

func newImageInspectCommand(c *cli) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] IMAGE [IMAGE...]",
		Short: "Display detailed information on one or more images",
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
			return inspectEach[image.InspectResponse](c, iw, "image", args, func(name string) ([]byte, error) {
				return inspectImage(cmd.Context(), dc, name)
			})
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", inspectFormatHelp)
	return cmd
}

func inspectImage(ctx context.Context, dc *client.Client, name string) ([]byte, error) {
	var raw bytes.Buffer
	_, err := dc.ImageInspect(ctx, name, client.ImageInspectWithRawResponse(&raw))
	return raw.Bytes(), err
}
