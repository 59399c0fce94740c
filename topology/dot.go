package topology

import (
	"bytes"
	"fmt"
	"strings"
)

// DOT writes the model as an undirected Graphviz graph: the local host a
// cluster holding networks (boxes; internal ones dashed and red),
// containers (rounded boxes) and published ports, an edge per endpoint
// labelled with its addresses and aliases, an edge per port to its
// container, and the other hosts outside, joined to the global networks
// they share.
func DOT(m Model) []byte {
	var b bytes.Buffer
	b.WriteString("graph \"berth\" {\n")
	fmt.Fprintf(&b, "  graph [rankdir=LR, fontname=%s, fontsize=11];\n", quote(fontFamily))
	fmt.Fprintf(&b, "  node [fontname=%s, fontsize=10];\n", quote(fontFamily))
	fmt.Fprintf(&b, "  edge [fontname=%s, fontsize=9];\n", quote(fontFamily))
	var local Host
	for _, h := range m.Hosts {
		if h.Local {
			local = h
		}
	}
	title := "host " + local.Name
	if local.IP != "" {
		title += "\n" + local.IP
	}
	b.WriteString("  subgraph \"cluster_host\" {\n")
	fmt.Fprintf(&b, "    label=%s; style=rounded; color=%s;\n", quote(title), quote(colorHost))
	for _, n := range m.Networks {
		lines := headerLines(n)
		texts := make([]string, len(lines))
		for i, l := range lines {
			texts[i] = l.text
		}
		attrs := fmt.Sprintf("shape=box, color=%s", quote(colorNetwork))
		if n.Internal {
			attrs = fmt.Sprintf("shape=box, style=dashed, color=%s", quote(colorWarn))
		}
		fmt.Fprintf(&b, "    %s [%s, label=%s];\n", quote("n:"+n.ID), attrs, quote(strings.Join(texts, "\n")))
	}
	for _, c := range m.Containers {
		label := c.Name
		if c.Kind == KindSandbox {
			label += "\nsandbox"
		}
		attrs := "shape=box, style=rounded"
		if c.State != "running" && c.Kind == KindContainer {
			label += "\n" + c.State
			attrs = fmt.Sprintf("shape=box, style=\"rounded,dashed\", color=%s, fontcolor=%s", quote(colorStopped), quote(colorMuted))
		}
		fmt.Fprintf(&b, "    %s [%s, label=%s];\n", quote("c:"+c.ID), attrs, quote(label))
		for _, p := range c.Ports {
			fmt.Fprintf(&b, "    %s [shape=cds, color=%s, label=%s];\n", quote(portNode(p)), quote(colorPort), quote(p.String()))
		}
	}
	b.WriteString("  }\n")
	for _, h := range m.Hosts {
		if h.Local {
			continue
		}
		label := "host " + h.Name
		if h.IP != "" {
			label += "\n" + h.IP
		}
		fmt.Fprintf(&b, "  %s [shape=box3d, label=%s];\n", quote("h:"+h.Name+" "+h.IP), quote(label))
	}
	for _, c := range m.Containers {
		for _, e := range c.Endpoints {
			var label []string
			for _, a := range []string{e.IPv4, e.IPv6} {
				if a != "" {
					label = append(label, a)
				}
			}
			if len(e.Aliases) > 0 {
				label = append(label, "alias "+strings.Join(e.Aliases, ", "))
			}
			style := ""
			if !e.Live {
				style = ", style=dashed"
			}
			fmt.Fprintf(&b, "  %s -- %s [label=%s%s];\n", quote("n:"+e.Network), quote("c:"+c.ID), quote(strings.Join(label, "\n")), style)
		}
		if c.SharesWith != "" {
			fmt.Fprintf(&b, "  %s -- %s [label=\"shares its namespace\", style=dotted];\n", quote("c:"+c.ID), quote("c:"+c.SharesWith))
		}
		for _, p := range c.Ports {
			fmt.Fprintf(&b, "  %s -- %s [color=%s];\n", quote(portNode(p)), quote("c:"+c.ID), quote(colorPort))
		}
	}
	for _, h := range m.Hosts {
		for _, id := range h.Networks {
			fmt.Fprintf(&b, "  %s -- %s [style=dashed];\n", quote("n:"+id), quote("h:"+h.Name+" "+h.IP))
		}
	}
	for _, n := range m.Networks {
		if n.ICC {
			continue
		}
		var members []string
		for _, c := range m.Containers {
			for _, e := range c.Endpoints {
				if e.Network == n.ID {
					members = append(members, quote("c:"+c.ID))
				}
			}
		}
		for i := 1; i < len(members); i++ {
			fmt.Fprintf(&b, "  %s -- %s [style=dashed, color=%s, label=\"icc off\", constraint=false];\n", members[i-1], members[i], quote(colorWarn))
		}
	}
	b.WriteString("}\n")
	return b.Bytes()
}

func portNode(p Port) string {
	return fmt.Sprintf("p:%s:%d/%s", p.HostIP, p.HostPort, p.Proto)
}

// quote is a DOT string: quotes and backslashes escaped, line ends as
// DOT's centred line breaks.
func quote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	s = strings.ReplaceAll(s, "\r", "")
	s = strings.ReplaceAll(s, "\n", `\n`)
	return `"` + s + `"`
}
