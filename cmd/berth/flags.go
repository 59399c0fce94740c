package main

import (
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/moby/moby/client"
)

// Flag value types with docker's names ("filter", "map", "list") and parsing,
// so help texts and errors read the same.

// filterValue collects repeated --filter key=value flags into the filters
// the daemon takes.
type filterValue struct {
	filters client.Filters
}

func (v *filterValue) String() string { return "" }
func (v *filterValue) Type() string   { return "filter" }

func (v *filterValue) Set(s string) error {
	if s == "" {
		return nil
	}
	key, value, ok := strings.Cut(s, "=")
	if !ok {
		return errors.New("bad format of filter (expected name=value)")
	}
	if v.filters == nil {
		v.filters = client.Filters{}
	}
	v.filters.Add(strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(value))
	return nil
}

// mapValue collects repeated key=value flags; "key" alone maps to "".
type mapValue struct {
	values map[string]string
}

func newMapValue() *mapValue { return &mapValue{values: map[string]string{}} }

func (v *mapValue) String() string { return fmt.Sprintf("%v", v.values) }
func (v *mapValue) Type() string   { return "map" }

func (v *mapValue) Set(s string) error {
	key, value, _ := strings.Cut(s, "=")
	v.values[key] = value
	return nil
}

// get returns a copy that is never nil: docker sends {} for no values.
func (v *mapValue) get() map[string]string { return maps.Clone(v.values) }

// listValue collects a repeated flag's values in order. With a check, each
// value is checked, and may be rewritten, as it is set: a bad one is a flag
// error, as docker makes it.
type listValue struct {
	values []string
	check  func(string) (string, error)
}

func (v *listValue) String() string { return "" }
func (v *listValue) Type() string   { return "list" }

func (v *listValue) Set(s string) error {
	if v.check != nil {
		checked, err := v.check(s)
		if err != nil {
			return err
		}
		s = checked
	}
	v.values = append(v.values, s)
	return nil
}

// typedString is a string flag whose help names its type as docker does
// ("--network network").
type typedString struct {
	value *string
	typ   string
}

func (v typedString) String() string     { return *v.value }
func (v typedString) Type() string       { return v.typ }
func (v typedString) Set(s string) error { *v.value = s; return nil }

// keyValues turns "k=v" strings into a map; "k" alone maps to "".
func keyValues(list []string) map[string]string {
	m := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}
