package daemon

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/containerd/errdefs"
)

// filters is the decoded `filters` query parameter: key → values.
type filters struct {
	values map[string][]string
	// regexps are the values read as regular expressions by match,
	// compiled once per request rather than once per object compared: a
	// pattern may be as long as the request's headers.
	regexps map[string]*regexp.Regexp
}

// parseFilters accepts both encodings dockerd accepts:
// {"key":{"value":true}} and the older {"key":["value"]}.
func parseFilters(raw string, allowed ...string) (filters, error) {
	f := filters{values: map[string][]string{}, regexps: map[string]*regexp.Regexp{}}
	if raw == "" {
		return f, nil
	}
	var asMap map[string]map[string]bool
	if err := json.Unmarshal([]byte(raw), &asMap); err == nil {
		for k, vs := range asMap {
			for v, on := range vs {
				if on {
					f.values[k] = append(f.values[k], v)
				}
			}
		}
	} else {
		var asList map[string][]string
		if err := json.Unmarshal([]byte(raw), &asList); err != nil {
			return filters{}, errdefs.ErrInvalidArgument.WithMessage("invalid filter: " + err.Error())
		}
		for k, vs := range asList {
			f.values[k] = vs
		}
	}
	for k := range f.values {
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok {
			return filters{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid filter '%s'", k))
		}
	}
	return f, nil
}

// get returns the values of key.
func (f filters) get(key string) []string { return f.values[key] }

// has tells whether key was given, even without values.
func (f filters) has(key string) bool {
	_, ok := f.values[key]
	return ok
}

// match is dockerd's Match: it passes when the key is absent or one of its
// values equals s or, read as a regular expression, is found in s.
func (f filters) match(key, s string) bool {
	return f.any(key, func(v string) bool {
		if v == s {
			return true
		}
		re, seen := f.regexps[v]
		if !seen {
			// A value that does not compile only matches itself; nil
			// remembers that.
			re, _ = regexp.Compile(v)
			f.regexps[v] = re
		}
		return re != nil && re.MatchString(s)
	})
}

// exact passes when the key is absent or one of its values equals s.
func (f filters) exact(key, s string) bool {
	return f.any(key, func(v string) bool { return v == s })
}

func (f filters) any(key string, ok func(string) bool) bool {
	vs, present := f.values[key]
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
	for _, v := range f.values[key] {
		k, val, hasVal := strings.Cut(v, "=")
		got, ok := labels[k]
		if !ok || (hasVal && got != val) {
			return false
		}
	}
	return true
}
