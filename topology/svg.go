package topology

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// The picture's geometry, in pixels. Text is monospace, so its width is
// known without font metrics: charWidth is DejaVu Sans Mono's advance at
// fontSize, the widest of the fonts named.
const (
	fontFamily  = "DejaVu Sans Mono, Menlo, Consolas, monospace"
	fontSize    = 12
	charWidth   = 7.25
	lineHeight  = 16
	margin      = 16
	framePad    = 12
	columnWidth = 240
	columnGap   = 20
	cardInset   = 10
	cardPad     = 6
	rowGap      = 14
	badgeGap    = 8
	laneGap     = 8
	peerWidth   = 200
	peerGap     = 10
)

const cardWidth = columnWidth - 2*cardInset

var (
	cardChars   = charsIn(cardWidth - 2*cardPad)
	headerChars = charsIn(columnWidth - 2*cardPad)
	peerChars   = charsIn(peerWidth - 2*cardPad)
)

// charsIn is how many characters a width holds.
func charsIn(width int) int { return int(float64(width) / charWidth) }

// Colours: blue for networks, red for what isolation forbids, orange for
// the host's published ports, grey for what does not run.
const (
	colorText       = "#1d2330"
	colorMuted      = "#6b7280"
	colorWarn       = "#b3261e"
	colorNetwork    = "#3f6fb0"
	colorNetworkBg  = "#edf3fb"
	colorInternalBg = "#fbefee"
	colorHostNetBg  = "#f3effa"
	colorHostNet    = "#7256a8"
	colorNoneBg     = "#f3f3f3"
	colorNone       = "#8c8c8c"
	colorHost       = "#7b8494"
	colorHostBg     = "#f7f8fa"
	colorPort       = "#c77a12"
	colorPortBg     = "#fff5e4"
	colorSandbox    = "#2e8b6a"
	colorStopped    = "#a0a0a0"
	colorStoppedBg  = "#f1f1f1"
)

// line is a line of text and how it is set.
type line struct {
	text  string
	style lineStyle
}

type lineStyle int

const (
	plain lineStyle = iota
	bold
	muted
	warn
)

// card is one endpoint of a container, drawn in its network's column.
type card struct {
	c     *Container
	e     Endpoint
	col   int
	lines []line
	x, y  int
	h     int
}

// item is a container's cards, which share a row so that one line joins
// them.
type item struct {
	cards  []*card
	lo, hi int
	row    int
}

// picture is the laid-out model.
type picture struct {
	m Model
	// nets are the model's networks in the order of the columns.
	nets   []Network
	width  int
	height int

	frameX, frameY, frameW, frameH int
	title                          string
	badges                         []badge
	colTop, colBottom              int
	headers                        [][]line
	headerH                        int
	items                          []*item
	lanes                          []lane
	peers                          []peerBox
	legend                         []string
	legendY                        int
}

type badge struct {
	text       string
	c          *Container
	x, y, w, h int
}

// lane carries the lines from a global network up and out of the host's
// frame to the other hosts that share it.
type lane struct {
	col int
	y   int
	x   int // where it turns towards the hosts
}

type peerBox struct {
	host       Host
	lines      []line
	x, y, w, h int
}

// SVG draws the model: the local host as a frame holding the ports it
// publishes and its networks as columns, each network an isolation
// boundary with its containers' endpoints as cards; a container on several
// networks has its cards in one row, joined by a line. Other hosts of the
// cluster stand beside the frame, joined to the global networks they share.
func SVG(m Model) []byte {
	p := layout(m)
	return p.draw()
}

func columnX(p *picture, col int) int {
	return p.frameX + framePad + col*(columnWidth+columnGap)
}

func layout(m Model) *picture {
	p := &picture{m: m, nets: columnOrder(m), frameX: margin, frameY: margin}
	n := len(p.nets)
	col := map[string]int{}
	for i, nw := range p.nets {
		col[nw.ID] = i
	}

	p.frameW = 2*framePad + max(n*columnWidth+(n-1)*columnGap, columnWidth)
	var local Host
	for _, h := range m.Hosts {
		if h.Local {
			local = h
		}
	}
	p.title = "host " + local.Name
	if local.IP != "" {
		p.title += " · " + local.IP
	}
	p.frameW = max(p.frameW, textWidth(p.title)+2*framePad)

	// Published ports, as badges in the host's frame.
	x, y := p.frameX+framePad, p.frameY+framePad+lineHeight+badgeGap
	bottom := y
	for i := range m.Containers {
		c := &m.Containers[i]
		for _, port := range c.Ports {
			b := badge{text: port.String() + " " + c.Name, c: c, h: lineHeight + 6}
			b.text = fit(b.text, charsIn(p.frameW-2*framePad-2*cardPad))
			b.w = textWidth(b.text) + 2*cardPad
			if x > p.frameX+framePad && x+b.w > p.frameX+p.frameW-framePad {
				x, y = p.frameX+framePad, y+b.h+badgeGap
			}
			b.x, b.y = x, y
			x += b.w + badgeGap
			bottom = y + b.h
			p.badges = append(p.badges, b)
		}
	}
	if len(p.badges) == 0 {
		bottom = y
	}

	// Lanes to the other hosts, one per global network they share.
	for j, nw := range p.nets {
		if !slices.ContainsFunc(m.Hosts, func(h Host) bool { return slices.Contains(h.Networks, nw.ID) }) {
			continue
		}
		k := len(p.lanes)
		p.lanes = append(p.lanes, lane{col: j, y: bottom + laneGap*(k+1), x: p.frameX + p.frameW + laneGap*(k+1)})
	}
	p.colTop = bottom + badgeGap + laneGap*len(p.lanes)

	p.items = cardsOf(m, col)
	used := make([]bool, n)
	for _, it := range p.items {
		for _, c := range it.cards {
			used[c.col] = true
		}
	}
	for j, nw := range p.nets {
		h := headerLines(nw)
		if !used[j] {
			h = append(h, line{"no containers", muted})
		}
		p.headers = append(p.headers, h)
		p.headerH = max(p.headerH, len(h)*lineHeight+2*cardPad)
	}
	var rows [][]bool
	for _, it := range p.items {
		r := slices.IndexFunc(rows, func(used []bool) bool { return !slices.Contains(used[it.lo:it.hi+1], true) })
		if r < 0 {
			r = len(rows)
			rows = append(rows, make([]bool, n))
		}
		for j := it.lo; j <= it.hi; j++ {
			rows[r][j] = true
		}
		it.row = r
	}
	rowH := make([]int, len(rows))
	for _, it := range p.items {
		for _, c := range it.cards {
			rowH[it.row] = max(rowH[it.row], c.h)
		}
	}
	rowY := make([]int, len(rows))
	y = p.colTop + p.headerH + rowGap
	for r := range rows {
		rowY[r] = y
		y += rowH[r] + rowGap
	}
	p.colBottom = max(y, p.colTop+p.headerH+2*rowGap)
	for _, it := range p.items {
		for _, c := range it.cards {
			c.x, c.y = columnX(p, c.col)+cardInset, rowY[it.row]
		}
	}
	p.frameH = p.colBottom + framePad - p.frameY

	// The other hosts, beside the frame.
	peerX := p.frameX + p.frameW + laneGap*(len(p.lanes)+1) + peerGap
	py := p.frameY
	for _, h := range m.Hosts {
		if h.Local {
			continue
		}
		var via []string
		for _, id := range h.Networks {
			if j, ok := col[id]; ok {
				via = append(via, p.nets[j].Name)
			}
		}
		lines := []line{{fit("host "+h.Name, peerChars), bold}}
		if h.IP != "" {
			lines = append(lines, line{h.IP, plain})
		}
		lines = append(lines, wrap("shares ", via, peerChars, muted)...)
		b := peerBox{host: h, lines: lines, x: peerX, y: py, w: peerWidth, h: len(lines)*lineHeight + 2*cardPad}
		p.peers = append(p.peers, b)
		py += b.h + peerGap
	}

	p.width = p.frameX + p.frameW + margin
	if len(p.peers) > 0 {
		p.width = peerX + peerWidth + margin
	}
	p.legendY = max(p.frameY+p.frameH, py-peerGap) + margin
	p.legend = legendLines(charsIn(p.width - 2*margin))
	p.height = p.legendY + len(p.legend)*lineHeight + margin
	return p
}

// columnOrder puts networks that share containers next to each other, so
// that the lines joining a container's cards are short: groups of
// networks joined by containers, each group from its first network by
// name, breadth first, and the groups in the order of their first names.
func columnOrder(m Model) []Network {
	index := map[string]int{}
	for i, n := range m.Networks {
		index[n.ID] = i
	}
	next := make([][]int, len(m.Networks))
	for _, c := range m.Containers {
		for _, a := range c.Endpoints {
			for _, b := range c.Endpoints {
				i, okA := index[a.Network]
				j, okB := index[b.Network]
				if okA && okB && i != j && !slices.Contains(next[i], j) {
					next[i] = append(next[i], j)
				}
			}
		}
	}
	seen := make([]bool, len(m.Networks))
	var out []Network
	for start := range m.Networks {
		if seen[start] {
			continue
		}
		seen[start] = true
		queue := []int{start}
		for len(queue) > 0 {
			i := queue[0]
			queue = queue[1:]
			out = append(out, m.Networks[i])
			slices.Sort(next[i])
			for _, j := range next[i] {
				if !seen[j] {
					seen[j] = true
					queue = append(queue, j)
				}
			}
		}
	}
	return out
}

// cardsOf makes the cards of every container's endpoints on the drawn
// networks, ordered by the first column each container appears in.
func cardsOf(m Model, col map[string]int) []*item {
	sharedBy := map[string][]string{}
	for _, c := range m.Containers {
		if c.SharesWith != "" {
			sharedBy[c.SharesWith] = append(sharedBy[c.SharesWith], c.Name)
		}
	}
	var items []*item
	for i := range m.Containers {
		c := &m.Containers[i]
		it := &item{lo: math.MaxInt, hi: -1}
		for _, e := range c.Endpoints {
			j, ok := col[e.Network]
			if !ok {
				continue
			}
			lines := cardLines(c, e, len(it.cards) == 0, sharedBy[c.ID])
			it.cards = append(it.cards, &card{c: c, e: e, col: j, lines: lines, h: len(lines)*lineHeight + 2*cardPad})
			it.lo, it.hi = min(it.lo, j), max(it.hi, j)
		}
		if len(it.cards) > 0 {
			slices.SortFunc(it.cards, func(a, b *card) int { return a.col - b.col })
			items = append(items, it)
		}
	}
	slices.SortStableFunc(items, func(a, b *item) int { return a.lo - b.lo })
	return items
}

func headerLines(n Network) []line {
	kind := n.Driver
	if n.Scope != "" {
		kind += " · " + n.Scope
	}
	if n.IPv6 {
		kind += " · IPv6"
	}
	lines := []line{{fit(n.Name, headerChars), bold}, {fit(kind, headerChars), muted}}
	for _, s := range n.Subnets {
		text := s.Subnet
		if s.Gateway != "" {
			text += " gw " + s.Gateway
		}
		if utf8.RuneCountInString(text) > headerChars && s.Gateway != "" {
			lines = append(lines, line{fit(s.Subnet, headerChars), plain}, line{fit("  gw "+s.Gateway, headerChars), plain})
			continue
		}
		lines = append(lines, line{fit(text, headerChars), plain})
	}
	// Docker's own drivers for the host's stack and for no network.
	switch n.Driver {
	case "host":
		lines = append(lines, line{"the host's own network stack", muted})
	case "null":
		lines = append(lines, line{"no network: loopback only", muted})
	}
	if n.Internal {
		lines = append(lines, line{"internal: nothing in or out", warn})
	}
	if !n.ICC {
		lines = append(lines, line{"icc off: members isolated", warn})
	}
	return lines
}

func cardLines(c *Container, e Endpoint, first bool, sharedBy []string) []line {
	lines := []line{{fit(c.Name, cardChars), bold}}
	if c.Kind == KindSandbox {
		lines = append(lines, line{"sandbox", muted})
	}
	if !e.Live {
		lines = append(lines, line{fit(c.State+": not attached", cardChars), muted})
	}
	for _, a := range []string{e.IPv4, e.IPv6} {
		if a != "" {
			lines = append(lines, line{fit(a, cardChars), plain})
		}
	}
	lines = append(lines, wrap("alias ", e.Aliases, cardChars, plain)...)
	if first {
		for _, p := range c.Ports {
			lines = append(lines, line{fit("port "+p.String(), cardChars), plain})
		}
		lines = append(lines, wrap("shared by ", sharedBy, cardChars, muted)...)
	}
	return lines
}

func legendLines(chars int) []string {
	text := []string{
		"Each box in the host is a network and an isolation boundary: its containers reach each other, " +
			"not those of other networks, except through ports published on the host.",
		"Red dashed: internal network, nothing in or out. Red lines between containers: enable_icc=false, they cannot reach each other.",
		"A line joins the endpoints of one container on several networks. Grey: not running.",
	}
	var out []string
	for _, t := range text {
		out = append(out, flow("", "", strings.Fields(t), " ", max(chars, 20))...)
	}
	return out
}

// wrap sets a list as lines of at most chars characters, the first with
// the prefix and the others indented under it.
func wrap(prefix string, items []string, chars int, style lineStyle) []line {
	var lines []line
	for _, l := range flow(prefix, strings.Repeat(" ", utf8.RuneCountInString(prefix)), items, ", ", chars) {
		lines = append(lines, line{l, style})
	}
	return lines
}

// flow sets parts joined by sep as lines of at most chars characters (a
// part too long alone is cut); a line that breaks ends with sep's mark.
func flow(first, indent string, parts []string, sep string, chars int) []string {
	if len(parts) == 0 {
		return nil
	}
	mark := strings.TrimRight(sep, " ")
	var lines []string
	cur, fresh := first, true
	for _, part := range parts {
		if !fresh && utf8.RuneCountInString(cur+sep+part+mark) > chars {
			lines = append(lines, cur+mark)
			cur, fresh = indent, true
		}
		if !fresh {
			cur += sep
		}
		cur += part
		fresh = false
	}
	lines = append(lines, cur)
	for i := range lines {
		lines[i] = fit(lines[i], chars)
	}
	return lines
}

// fit cuts a text to n characters, marking the cut.
func fit(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:max(n-1, 0)]) + "…"
}

func textWidth(s string) int {
	return int(math.Ceil(float64(utf8.RuneCountInString(s)) * charWidth))
}

// svgWriter writes elements with their text and attributes escaped.
type svgWriter struct{ bytes.Buffer }

func (w *svgWriter) esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (w *svgWriter) text(x, y int, l line) {
	attrs := ""
	fill := colorText
	switch l.style {
	case bold:
		attrs = ` font-weight="bold"`
	case muted:
		fill = colorMuted
	case warn:
		fill = colorWarn
	}
	// Spaces are kept: indents line wrapped lists up.
	fmt.Fprintf(w, `<text x="%d" y="%d" fill="%s" xml:space="preserve"%s>%s</text>`+"\n", x, y, fill, attrs, w.esc(l.text))
}

func (w *svgWriter) lines(x, top int, ls []line) {
	for i, l := range ls {
		w.text(x, top+(i+1)*lineHeight-4, l)
	}
}

func (p *picture) draw() []byte {
	w := &svgWriter{}
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" class="berth-topology" width="%d" height="%d" viewBox="0 0 %d %d" font-family="%s" font-size="%d">`+"\n",
		p.width, p.height, p.width, p.height, fontFamily, fontSize)
	fmt.Fprintf(w, "<title>berth network topology</title>\n")
	fmt.Fprintf(w, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", p.width, p.height)

	var local Host
	for _, h := range p.m.Hosts {
		if h.Local {
			local = h
		}
	}
	fmt.Fprintf(w, `<g class="host" data-kind="host" data-name="%s">`+"\n", w.esc(local.Name))
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" rx="10" fill="%s" stroke="%s" stroke-width="1.5"/>`+"\n",
		p.frameX, p.frameY, p.frameW, p.frameH, colorHostBg, colorHost)
	w.text(p.frameX+framePad, p.frameY+framePad+lineHeight-4, line{p.title, bold})
	w.WriteString("</g>\n")
	for _, b := range p.badges {
		fmt.Fprintf(w, `<g class="port" data-kind="container" data-id="%s" data-name="%s">`+"\n", w.esc(b.c.ID), w.esc(b.c.Name))
		fmt.Fprintf(w, `<title>published on the host: %s</title>`+"\n", w.esc(b.text))
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" rx="4" fill="%s" stroke="%s"/>`+"\n", b.x, b.y, b.w, b.h, colorPortBg, colorPort)
		w.text(b.x+cardPad, b.y+b.h-7, line{b.text, plain})
		w.WriteString("</g>\n")
	}

	if len(p.nets) == 0 {
		w.text(p.frameX+framePad, p.colTop+lineHeight, line{"no networks", muted})
	}
	for j, nw := range p.nets {
		p.drawColumn(w, j, nw)
	}
	p.drawLinks(w)
	for _, it := range p.items {
		for _, c := range it.cards {
			p.drawCard(w, c)
		}
	}
	for _, b := range p.peers {
		fmt.Fprintf(w, `<g class="host peer" data-kind="host" data-name="%s">`+"\n", w.esc(b.host.Name))
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" rx="10" fill="%s" stroke="%s" stroke-width="1.5"/>`+"\n",
			b.x, b.y, b.w, b.h, colorHostBg, colorHost)
		w.lines(b.x+cardPad, b.y+cardPad, b.lines)
		w.WriteString("</g>\n")
	}
	for i, l := range p.legend {
		w.text(margin, p.legendY+(i+1)*lineHeight-4, line{l, muted})
	}
	w.WriteString("</svg>\n")
	return w.Bytes()
}

func (p *picture) drawColumn(w *svgWriter, j int, nw Network) {
	x := columnX(p, j)
	fill, stroke, dash := colorNetworkBg, colorNetwork, ""
	switch {
	case nw.Internal:
		fill, stroke, dash = colorInternalBg, colorWarn, ` stroke-dasharray="6 4"`
	case nw.Driver == "host":
		fill, stroke = colorHostNetBg, colorHostNet
	case nw.Driver == "null":
		fill, stroke = colorNoneBg, colorNone
	}
	fmt.Fprintf(w, `<g class="network" data-kind="network" data-id="%s" data-name="%s">`+"\n", w.esc(nw.ID), w.esc(nw.Name))
	fmt.Fprintf(w, `<title>network %s</title>`+"\n", w.esc(nw.Name))
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" rx="8" fill="%s" stroke="%s" stroke-width="2"%s/>`+"\n",
		x, p.colTop, columnWidth, p.colBottom-p.colTop, fill, stroke, dash)
	fmt.Fprintf(w, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"/>`+"\n",
		x, p.colTop+p.headerH, x+columnWidth, p.colTop+p.headerH, stroke)
	w.lines(x+cardPad, p.colTop+cardPad, p.headers[j])
	var cards []*card
	for _, it := range p.items {
		for _, c := range it.cards {
			if c.col == j {
				cards = append(cards, c)
			}
		}
	}
	if !nw.ICC {
		slices.SortFunc(cards, func(a, b *card) int { return a.y - b.y })
		for i := 1; i < len(cards); i++ {
			wy := (cards[i-1].y + cards[i-1].h + cards[i].y) / 2
			fmt.Fprintf(w, `<line class="wall" x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" stroke-dasharray="4 3"/>`+"\n",
				x+4, wy, x+columnWidth-4, wy, colorWarn)
		}
	}
	w.WriteString("</g>\n")
}

// drawLinks draws the lines joining a container's cards and those from
// global networks to the other hosts.
func (p *picture) drawLinks(w *svgWriter) {
	for _, it := range p.items {
		if len(it.cards) < 2 {
			continue
		}
		first, last := it.cards[0], it.cards[len(it.cards)-1]
		y := first.y + cardPad + lineHeight/2
		stroke := colorNetwork
		if !first.e.Live {
			stroke = colorStopped
		}
		fmt.Fprintf(w, `<line class="link" data-id="%s" x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>`+"\n",
			w.esc(first.c.ID), first.x+cardWidth, y, last.x, y, stroke)
	}
	for _, l := range p.lanes {
		id := p.nets[l.col].ID
		x0 := columnX(p, l.col) + columnWidth/2
		for _, b := range p.peers {
			if !slices.Contains(b.host.Networks, id) {
				continue
			}
			fmt.Fprintf(w, `<path class="peer-link" d="M%d %dV%dH%dV%dH%d" fill="none" stroke="%s" stroke-width="1.5" stroke-dasharray="5 3"/>`+"\n",
				x0, p.colTop, l.y, l.x, b.y+b.h/2, b.x, colorNetwork)
		}
	}
}

func (p *picture) drawCard(w *svgWriter, c *card) {
	fill, stroke, dash := "#ffffff", colorNetwork, ""
	switch {
	case !c.e.Live:
		fill, stroke, dash = colorStoppedBg, colorStopped, ` stroke-dasharray="3 3"`
	case c.c.Kind == KindSandbox:
		stroke = colorSandbox
	}
	nw := p.nets[c.col]
	fmt.Fprintf(w, `<g class="card" data-kind="container" data-id="%s" data-name="%s" data-network="%s">`+"\n",
		w.esc(c.c.ID), w.esc(c.c.Name), w.esc(nw.Name))
	fmt.Fprintf(w, `<title>%s %s on %s</title>`+"\n", c.c.Kind, w.esc(c.c.Name), w.esc(nw.Name))
	fmt.Fprintf(w, `<rect x="%d" y="%d" width="%d" height="%d" rx="5" fill="%s" stroke="%s" stroke-width="1.5"%s/>`+"\n",
		c.x, c.y, cardWidth, c.h, fill, stroke, dash)
	w.lines(c.x+cardPad, c.y+cardPad, c.lines)
	w.WriteString("</g>\n")
}
