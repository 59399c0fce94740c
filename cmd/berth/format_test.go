package main

import (
	"bytes"
	"slices"
	"sort"
	"testing"
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
