package network

import (
	"strings"
	"testing"
)

// FuzzNames: the names users give networks and sandboxes, and the aliases
// of endpoints. What is accepted has the documented shape; what is
// refused is refused with a message.
func FuzzNames(f *testing.F) {
	for _, s := range []string{
		"app", "a", "a.b-c_d", "0", "-a", ".a", "_a", "a b", "a/b", "é", strings.Repeat("n", 128), strings.Repeat("n", 129),
		strings.Repeat("é", 30), "web.app", "a..b", strings.Repeat("x", 64) + ".y", "x-", "", "\x00",
	} {
		f.Add(s)
	}
	const nameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
	f.Fuzz(func(t *testing.T, s string) {
		for _, kind := range []string{"network", "sandbox"} {
			err := validateName(kind, s)
			if err != nil {
				if !strings.Contains(err.Error(), kind+" name") {
					t.Fatalf("%s name %q refused with %q", kind, s, err)
				}
				continue
			}
			if len(s) == 0 || len(s) > maxNameLen || strings.Trim(s, nameChars) != "" || strings.ContainsAny(s[:1], "_.-") {
				t.Fatalf("%s name %q accepted", kind, s)
			}
		}
		if aliasRE.MatchString(s) {
			if len(s) == 0 || len(s) > 254 || strings.Trim(s, nameChars) != "" ||
				strings.ContainsAny(s[:1], ".-") || strings.ContainsAny(s[len(s)-1:], ".-") {
				t.Fatalf("alias %q accepted", s)
			}
		}
	})
}
