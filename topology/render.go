package topology

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
)

// The formats Render draws.
const (
	FormatSVG  = "svg"
	FormatDOT  = "dot"
	FormatJSON = "json"
)

// Formats lists the formats Render draws, the default first.
var Formats = []string{FormatSVG, FormatDOT, FormatJSON}

// CheckFormat refuses a format Render does not draw, saying which it does.
func CheckFormat(format string) error {
	if !slices.Contains(Formats, format) {
		return fmt.Errorf("invalid format %q: the picture is drawn as svg, dot or json", format)
	}
	return nil
}

// ContentType is the media type of a format.
func ContentType(format string) string {
	switch format {
	case FormatSVG:
		return "image/svg+xml"
	case FormatDOT:
		return "text/vnd.graphviz; charset=utf-8"
	}
	return "application/json"
}

// Render draws the model in a format.
func Render(w io.Writer, m Model, format string) error {
	if err := CheckFormat(format); err != nil {
		return err
	}
	var b []byte
	switch format {
	case FormatSVG:
		b = SVG(m)
	case FormatDOT:
		b = DOT(m)
	default:
		var err error
		if b, err = json.MarshalIndent(m, "", "  "); err != nil {
			return err
		}
		b = append(b, '\n')
	}
	_, err := w.Write(b)
	return err
}
