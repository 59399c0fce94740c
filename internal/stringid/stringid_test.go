package stringid

import (
	"strings"
	"testing"
)

func TestIDsAreLongHexWithAShortFormThatIsNoNumber(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		id := New()
		if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("%q is not 64 hex digits", id)
		}
		if strings.Trim(id[:12], "0123456789") == "" {
			t.Fatalf("%q has an all-digit short form", id)
		}
		if seen[id] {
			t.Fatalf("%q made twice", id)
		}
		seen[id] = true
	}
}
