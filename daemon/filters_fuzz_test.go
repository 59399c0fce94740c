package daemon

import (
	"slices"
	"testing"
	"time"
)

// FuzzParseFilters: the filters query parameter in both of dockerd's
// encodings, and the comparisons made with what it gives. Only allowed
// keys get through, and a value always matches itself.
func FuzzParseFilters(f *testing.F) {
	for _, s := range [][2]string{
		{`{"name":{"web":true,"db":false},"label":{"a=b":true}}`, "web"},
		{`{"name":["^w.*b$"],"id":["0123"]}`, "web"},
		{`{"name":{"(":true}}`, "("},
		{`{"label":["a","b=c","=","=x"]}`, "a"},
		{`{"until":["10m"]}`, "10m"},
		{`{"until":["1700000000.123456789123"]}`, ""},
		{`{"until":["2024-02-30"]}`, ""},
		{`{"until":["-1h"]}`, ""},
		{`{"until":[".5"]}`, ""},
		{`{"nosuch":["x"]}`, "x"},
		{`{"name":null}`, ""}, {`null`, ""}, {`[]`, ""}, {`"x"`, ""}, {`{"name":{"x":"yes"}}`, "x"}, {``, ""},
	} {
		f.Add(s[0], s[1])
	}
	allowed := []string{"name", "id", "label", "until", "driver"}
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, raw, subject string) {
		filt, err := parseFilters(raw, allowed...)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("refused without a message")
			}
			return
		}
		for k, vs := range filt.values {
			if !slices.Contains(allowed, k) {
				t.Fatalf("filter %q got through", k)
			}
			for _, v := range vs {
				if !filt.match(k, v) || !filt.exact(k, v) {
					t.Fatalf("filter %s=%q does not match itself", k, v)
				}
				parseUntil(v, now)
			}
		}
		filt.match("name", subject)
		filt.labels("label", map[string]string{subject: subject})
		parseUntil(subject, now)
	})
}
