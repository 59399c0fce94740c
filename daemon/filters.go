package daemon

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
)

// filters is the decoded `filters` query parameter: key → values.
type filters map[string][]string

// parseFilters accepts both encodings dockerd accepts:
// {"key":{"value":true}} and the older {"key":["value"]}.
func parseFilters(raw string, allowed ...string) (filters, error) {
	f := filters{}
	if raw == "" {
		return f, nil
	}
	var asMap map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &asMap); err == nil {
		for k, vs := range asMap {
			for v, on := range vs {
				if on {
					f[k] = append(f[k], v)
				}
			}
		}
	} else {
		var asList map[string][]string
		if err := json.Unmarshal([]byte(raw), &asList); err != nil {
			return nil, errdefs.ErrInvalidArgument.WithMessage("invalid filter: " + err.Error())
		}
		f = asList
	}
	for k := range f {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok {
			return nil, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid filter '%s'", k))
		}
	}
	return f, nil
}

// match is dockerd's Match: it passes when the key is absent or one of its
// values equals s or, read as a regular expression, is found in s.
func (f filters) match(key, s string) bool {
	return f.any(key, func(v string) bool {
		re, err := regexp.Compile(v)
		return v == s || err == nil && re.MatchString(s)
	})
}

// exact passes when the key is absent or one of its values equals s.
func (f filters) exact(key, s string) bool {
	return f.any(key, func(v string) bool { return v == s })
}

func (f filters) any(key string, ok func(string) bool) bool {
	vs, present := f[key]
	if !present {
		return true
	}
	for _, v := range vs {
		if ok(v) {
			return true
		}
	}
	return false
}

// labels passes when every label=key or label=key=value holds.
func (f filters) labels(key string, labels map[string]string) bool {
	for _, v := range f[key] {
		k, val, hasVal := strings.Cut(v, "=")
		got, ok := labels[k]
		if !ok || (hasVal && got != val) {
			return false
		}
	}
	return true
}
