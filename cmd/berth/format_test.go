package main

import (
	"bytes"
	"slices"
	"sort"
	"testing"
	"text/tabwriter"
)

func TestNaturalLessSortsNumbersByValue(t *testing.T) {
	names := []string{"net10", "none", "net2", "bridge", "net02", "f_auto1", "host", "net1", "f_exp", "f_auto10", "f_auto2", ""}
	sort.Slice(names, func(i, j int) bool { return naturalLess(names[i], names[j]) })
	want := []string{"", "bridge", "f_auto1", "f_auto2", "f_auto10", "f_exp", "host", "net1", "net2", "net02", "net10", "none"}
	if !slices.Equal(names, want) {
		t.Errorf("sorted %q\nwant   %q", names, want)
	}
}

func TestTemplateFunctionsBehaveLikeDockers(t *testing.T) {
	for _, tc := range []struct{ tmpl, want string }{
		{`{{json .}}`, `{"a":"<b>"}`},
		{`{{join (split "a,b,c" ",") "|"}}`, `a|b|c`},
		{`{{title "hello big-world"}}`, `Hello Big-World`},
		{`{{upper "abc"}}{{lower "DEF"}}`, `ABCdef`},
		{`[{{pad "x" 2 1}}][{{pad "" 2 1}}]`, `[  x ][]`},
		{`{{truncate "abcdef" 3}}|{{truncate "ab" 3}}`, `abc|ab`},
		{`{{println "a"}}`, "a\n"},
		{`a\tb\nc`, "a\tb\nc"},
	} {
		tmpl, err := parseTemplate(tc.tmpl, templateFuncs)
		if err != nil {
			t.Fatalf("%s: %v", tc.tmpl, err)
		}
		var out bytes.Buffer
		if err := tmpl.Execute(&out, map[string]string{"a": "<b>"}); err != nil {
			t.Fatalf("%s: %v", tc.tmpl, err)
		}
		if out.String() != tc.want {
			t.Errorf("%s = %q, want %q", tc.tmpl, out.String(), tc.want)
		}
	}
}

func TestShortIDDropsAlgorithmAndTruncates(t *testing.T) {
	for in, want := range map[string]string{
		"sha256:30dc41dd27870685f94c": "30dc41dd2787",
		"30dc41dd27870685f94c":        "30dc41dd2787",
		"abc":                         "abc",
	} {
		if got := shortID(in); got != want {
			t.Errorf("shortID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBinarySizeUsesFourSignificantDigits(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1023: "1023B", 1536: "1.5KiB", 16750372864: "15.6GiB", 1 << 40: "1TiB"} {
		if got := binarySize(n); got != want {
			t.Errorf("binarySize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestAlignColumnsLaysOutASCIIAsTabwriterDoes(t *testing.T) {
	for _, text := range []string{
		"NAME\tDRIVER\tSCOPE\nbridge\tbridge\tlocal\nf_auto1\tbridge\tlocal\n",
		"A\tB\n\nlonger cell here\tb\tc\n",
		"a\tb\tc\nx\ty\nlong long long\tz\t\n\t\t\n",
		"only\none\ncolumn\n",
		"h1\th2\th3\n",
		"\n",
	} {
		var want bytes.Buffer
		tw := tabwriter.NewWriter(&want, 10, 1, 3, ' ', 0)
		tw.Write([]byte(text))
		tw.Flush()
		var got bytes.Buffer
		if err := alignColumns(&got, text); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("alignColumns(%q)\n= %q\ntabwriter gives\n  %q", text, got.String(), want.String())
		}
	}
}

func TestWideCharactersTakeTwoColumns(t *testing.T) {
	// What the Docker 28.2 CLI printed for a command in Japanese.
	if got := ellipsis("日本語のコマンドラインは長いですね本当に", 20); got != "日本語のコマンドラ…" {
		t.Errorf("ellipsis = %q", got)
	}
	if got := ellipsis("sleep 100000 \"with space\"", 20); got != "sleep 100000 \"with …" {
		t.Errorf("ellipsis = %q", got)
	}
	if got := ellipsis("exactly twenty chars", 20); got != "exactly twenty chars" {
		t.Errorf("ellipsis = %q", got)
	}
	var out bytes.Buffer
	if err := alignColumns(&out, "COMMAND\tCREATED\n\"日本語\"\t2 hours ago\n"); err != nil {
		t.Fatal(err)
	}
	if want := "COMMAND    CREATED\n\"日本語\"   2 hours ago\n"; out.String() != want {
		t.Errorf("table\n%q\nwant\n%q", out.String(), want)
	}
}
