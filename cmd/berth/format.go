package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strings"
	"text/template"
	"unicode"
	"unicode/utf8"
)

// Output formats shared by all commands, with the docker CLI's conventions:
//
//   - list commands (network ls, sandbox ls, ps, image ls) take
//     --format "table", "table TEMPLATE", "json" or a bare TEMPLATE; tables
//     get a header row and columns aligned as docker aligns them, the rest
//     one line per row;
//   - inspect commands print the daemon's JSON as one array indented by four
//     spaces, or one line per object with --format TEMPLATE.

const (
	tableFormat = "table"
	jsonFormat  = "json"
)

// templateFuncs are the functions docker offers in --format templates.
var templateFuncs = template.FuncMap{
	"json":     jsonText,
	"join":     strings.Join,
	"split":    strings.Split,
	"title":    titleCase,
	"lower":    strings.ToLower,
	"upper":    strings.ToUpper,
	"pad":      pad,
	"truncate": truncate,
}

// headerFuncs stand in for templateFuncs when a table's header row is
// rendered: a column title passes through unchanged, so `{{json .Labels}}`
// is headed LABELS, not "LABELS".
var headerFuncs = template.FuncMap{
	"json":     func(v string) string { return v },
	"join":     func(v string, _ string) string { return v },
	"split":    func(v string, _ string) string { return v },
	"title":    func(v string) string { return v },
	"lower":    func(v string) string { return v },
	"upper":    func(v string) string { return v },
	"pad":      func(v string, _, _ int) string { return v },
	"truncate": func(v string, _ int) string { return v },
}

func jsonText(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSpace(buf.String())
}

// titleCase upper-cases the first letter of every word.
func titleCase(s string) string {
	prev := ' '
	return strings.Map(func(r rune) rune {
		word := !unicode.IsLetter(prev) && !unicode.IsDigit(prev) && prev != '_'
		prev = r
		if word {
			return unicode.ToTitle(r)
		}
		return r
	}, s)
}

func pad(s string, before, after int) string {
	if s == "" {
		return s
	}
	return strings.Repeat(" ", before) + s + strings.Repeat(" ", after)
}

func truncate(s string, n int) string {
	if n < 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// parseTemplate parses a user's template; `\t` and `\n` written literally on
// the command line stand for tab and newline.
func parseTemplate(format string, funcs template.FuncMap) (*template.Template, error) {
	format = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format)
	tmpl, err := template.New("").Funcs(funcs).Parse(format)
	if err != nil {
		return nil, fmt.Errorf("Template parsing error: %v", err)
	}
	return tmpl, nil
}

// listing describes how a list command prints its rows. Rows are values
// whose exported methods are the template fields; a header names the column
// of each field.
type listing struct {
	table  string // the default table template, without the "table" key
	quiet  string // the template of -q
	header headerRow
}

// headerRow is what a table's header template runs on: column titles by
// field name.
type headerRow map[string]string

// Label heads a {{.Label "key"}} column with the key, as docker does.
func (headerRow) Label(key string) string { return key }

// writeList prints rows in the format the user asked for.
func writeList[Row any](w io.Writer, l listing, format string, quiet bool, rows []Row) error {
	switch {
	case format == "" || format == tableFormat:
		if quiet {
			format = l.quiet
		} else {
			format = tableFormat + " " + l.table
		}
	case format == jsonFormat:
		format = "{{json .}}"
	}
	isTable := strings.HasPrefix(format, tableFormat)
	if isTable {
		format = strings.TrimSpace(format[len(tableFormat):])
	}
	tmpl, err := parseTemplate(format, templateFuncs)
	if err != nil {
		return err
	}
	var body bytes.Buffer
	for _, row := range rows {
		if err := tmpl.Execute(&body, row); err != nil {
			return fmt.Errorf("Template parsing error: %v", err)
		}
		body.WriteByte('\n')
	}
	if !isTable {
		_, err := body.WriteTo(w)
		return err
	}

	var table bytes.Buffer
	if head, err := parseTemplate(format, headerFuncs); err == nil {
		// A header that cannot be rendered (a field no column names) is
		// left as far as it got, as docker does; the rows decide success.
		_ = head.Option("missingkey=zero").Execute(&table, l.header)
	}
	table.WriteByte('\n')
	body.WriteTo(&table)
	return alignColumns(w, table.String())
}

// alignColumns lays out tab-separated cells as text/tabwriter does with
// docker's settings (cells at least 10 wide, 3 spaces of padding), but
// measures text in terminal columns, as docker's own tabwriter does: a
// cell of wide characters takes the room it shows in. As in tabwriter, a
// column is aligned over each run of lines that have a cell in it, and the
// last cell of a line is not aligned.
func alignColumns(w io.Writer, text string) error {
	const minWidth, padding = 10, 3
	var lines [][]string
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		lines = append(lines, strings.Split(line, "\t"))
	}
	var (
		out    bytes.Buffer
		widths []int // of the columns of the runs being laid out
	)
	writeLines := func(from, to int) {
		for _, cells := range lines[from:to] {
			for j, cell := range cells {
				out.WriteString(cell)
				if j < len(widths) {
					out.WriteString(strings.Repeat(" ", widths[j]-textWidth(cell)))
				}
			}
			out.WriteByte('\n')
		}
	}
	var layout func(from, to int)
	layout = func(from, to int) {
		column := len(widths)
		for this := from; this < to; this++ {
			if column >= len(lines[this])-1 {
				continue
			}
			writeLines(from, this)
			from = this
			width := minWidth
			for ; this < to && column < len(lines[this])-1; this++ {
				width = max(width, textWidth(lines[this][column])+padding)
			}
			widths = append(widths, width)
			layout(from, this)
			widths = widths[:len(widths)-1]
			from = this
		}
		writeLines(from, to)
	}
	layout(0, len(lines))
	_, err := out.WriteTo(w)
	return err
}

// textWidth is how many terminal columns s takes.
func textWidth(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

// marshalRow renders a row as the JSON object of its template fields: every
// exported method without arguments, by name. Row types implement
// MarshalJSON with it, so {{json .}} shows what templates can use.
func marshalRow(row any) ([]byte, error) {
	v := reflect.ValueOf(row)
	t := v.Type()
	fields := map[string]any{}
	for i := range t.NumMethod() {
		m := t.Method(i)
		if m.Name == "MarshalJSON" || m.Type.NumIn() != 1 || m.Type.NumOut() != 1 {
			continue
		}
		fields[m.Name] = v.Method(i).Call(nil)[0].Interface()
	}
	return json.Marshal(fields)
}

// inspectWriter prints the objects of an inspect command: by default their
// JSON as one array indented by four spaces; with --format json the same
// array on one line; with a template, one line per object.
type inspectWriter struct {
	w       io.Writer
	compact bool
	tmpl    *template.Template
	raws    [][]byte
	out     bytes.Buffer
}

func newInspectWriter(w io.Writer, format string) (*inspectWriter, error) {
	iw := &inspectWriter{w: w}
	switch format {
	case "":
		return iw, nil
	case jsonFormat:
		iw.compact = true
		return iw, nil
	}
	tmpl, err := parseTemplate(format, templateFuncs)
	if err != nil {
		return nil, err
	}
	iw.tmpl = tmpl
	return iw, nil
}

// add takes one object: view is the typed value templates run on, raw the
// daemon's JSON of it. A template that view cannot satisfy (a field berth
// does not model) is run again on the raw JSON, so every field the daemon
// sent can be reached.
func (iw *inspectWriter) add(view any, raw []byte) error {
	if iw.tmpl == nil {
		iw.raws = append(iw.raws, raw)
		return nil
	}
	var buf bytes.Buffer
	if err := iw.tmpl.Execute(&buf, view); err != nil {
		buf.Reset()
		var generic any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if dec.Decode(&generic) != nil {
			return fmt.Errorf("Template parsing error: %v", err)
		}
		if err := iw.tmpl.Execute(&buf, generic); err != nil {
			return fmt.Errorf("Template parsing error: %v", err)
		}
	}
	iw.out.Write(buf.Bytes())
	iw.out.WriteByte('\n')
	return nil
}

// flush writes what was added. Like docker, an empty result is "[]" or, with
// a template, an empty line.
func (iw *inspectWriter) flush() error {
	if iw.tmpl != nil {
		if iw.out.Len() == 0 {
			_, err := io.WriteString(iw.w, "\n")
			return err
		}
		_, err := iw.out.WriteTo(iw.w)
		return err
	}
	if len(iw.raws) == 0 {
		_, err := io.WriteString(iw.w, "[]\n")
		return err
	}
	array := append([]byte("["), bytes.Join(iw.raws, []byte(","))...)
	array = append(array, ']')
	var out bytes.Buffer
	reformat := func() error { return json.Indent(&out, array, "", "    ") }
	if iw.compact {
		reformat = func() error { return json.Compact(&out, array) }
	}
	if err := reformat(); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err := out.WriteTo(iw.w)
	return err
}

// ellipsis cuts s to fit width terminal columns, the last of them "…".
// East Asian wide characters take two columns, as docker counts them.
func ellipsis(s string, width int) string {
	runes := []rune(s)
	total := 0
	for _, r := range runes {
		total += runeWidth(r)
	}
	if total <= width {
		return s
	}
	used := 0
	for i, r := range runes {
		if used+runeWidth(r) > width-1 {
			return string(runes[:i]) + "…"
		}
		used += runeWidth(r)
	}
	return s
}

// runeWidth is how many terminal columns r takes.
func runeWidth(r rune) int {
	switch {
	case unicode.IsControl(r), unicode.In(r, unicode.Mn, unicode.Me):
		return 0
	case wideRune(r):
		return 2
	}
	return 1
}

// wideRune tells the East Asian wide and fullwidth characters: CJK, kana,
// Hangul, fullwidth forms and emoji.
func wideRune(r rune) bool {
	for _, span := range [...][2]rune{
		{0x1100, 0x115F}, {0x2E80, 0x303E}, {0x3041, 0x33FF}, {0x3400, 0x4DBF},
		{0x4E00, 0x9FFF}, {0xA000, 0xA4CF}, {0xAC00, 0xD7A3}, {0xF900, 0xFAFF},
		{0xFE30, 0xFE4F}, {0xFF00, 0xFF60}, {0xFFE0, 0xFFE6}, {0x1F300, 0x1F64F},
		{0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD}, {0x30000, 0x3FFFD},
	} {
		if span[0] <= r && r <= span[1] {
			return true
		}
	}
	return false
}

// shortID is the 12-character form of an ID that docker prints in tables.
func shortID(id string) string {
	if _, after, ok := strings.Cut(id, ":"); ok {
		id = after
	}
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// naturalLess orders strings as people do, numbers by value: net2 < net10.
// Docker sorts names this way.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		ca, cb := leadingChunk(a), leadingChunk(b)
		a, b = a[len(ca):], b[len(cb):]
		if ca == cb {
			continue
		}
		if isDigit(ca[0]) && isDigit(cb[0]) {
			na, nb := strings.TrimLeft(ca, "0"), strings.TrimLeft(cb, "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			// Same value: fewer leading zeros first.
			return len(ca) < len(cb)
		}
		return ca < cb
	}
	return len(a) < len(b)
}

// leadingChunk is the run of digits or of non-digits that s starts with.
func leadingChunk(s string) string {
	digit := isDigit(s[0])
	for i := 1; i < len(s); i++ {
		if isDigit(s[i]) != digit {
			return s[:i]
		}
	}
	return s
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
