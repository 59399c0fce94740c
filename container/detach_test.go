package container

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestDetachKeysFollowDocker(t *testing.T) {
	cases := map[string][]byte{
		"":              {16, 17},
		"ctrl-p,ctrl-q": {16, 17},
		"ctrl-a":        {1},
		"ctrl-@,x":      {0, 'x'},
		"CTRL-[,ctrl-_": {27, 31},
	}
	for in, want := range cases {
		if got, err := ParseDetachKeys(in); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%q: %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"ctrl-", "ctrl-1", "shift-a", "ab", "ctrl-pp"} {
		if _, err := ParseDetachKeys(bad); err == nil || !strings.Contains(err.Error(), "Invalid detach keys ("+bad+") provided") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestCopyStopsAtTheDetachKeys(t *testing.T) {
	keys := []byte{16, 17}
	cases := []struct {
		in       string
		out      string
		detached bool
	}{
		{"hello", "hello", false},
		{"ls\n\x10\x11more", "ls\n", true},
		{"a\x10b\x10\x11", "a\x10b", true},
		{"end\x10", "end\x10", false},
	}
	for _, c := range cases {
		for _, r := range []io.Reader{strings.NewReader(c.in), iotest.OneByteReader(strings.NewReader(c.in))} {
			var out bytes.Buffer
			if detached := copyUntilDetach(&out, r, keys); detached != c.detached || out.String() != c.out {
				t.Errorf("%q: copied %q, detached %v; want %q, %v", c.in, out.String(), detached, c.out, c.detached)
			}
		}
	}
	var out bytes.Buffer
	if copyUntilDetach(&out, strings.NewReader("x\x10\x11"), nil) || out.String() != "x\x10\x11" {
		t.Errorf("without keys: %q", out.String())
	}
}
