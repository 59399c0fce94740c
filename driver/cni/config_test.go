package cni_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/driver/cni"
)

// writeConfs writes files into a fresh directory.
func writeConfs(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func captureLog() (*slog.Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	return slog.New(slog.NewTextHandler(&buf, nil)), &buf
}

const (
	listA = `{"cniVersion":"1.0.0","name":"alpha","plugins":[{"type":"bridge","bridge":"a0"},{"type":"portmap","capabilities":{"portMappings":true}}]}`
	confB = `{"cniVersion":"0.4.0","name":"beta","type":"macvlan","master":"eth0"}`
)

func TestEveryConfigurationIsAPredefinedNetwork(t *testing.T) {
	dir := writeConfs(t, map[string]string{"10-alpha.conflist": listA, "20-beta.conf": confB, "README.md": "not a configuration"})
	log, _ := captureLog()
	d := cni.New(dir, nil, t.TempDir(), log)
	defer d.Close()
	caps := d.Capabilities()
	if caps.Scope != driver.ScopeLocal || caps.Addresses || !caps.OwnAddresses || !caps.Singleton || caps.Sharing != driver.Shares {
		t.Errorf("capabilities %+v", caps)
	}
	want := []driver.Predefined{
		{Name: "alpha", Options: map[string]string{cni.OptionFile: filepath.Join(dir, "10-alpha.conflist")}},
		{Name: "beta", Options: map[string]string{cni.OptionFile: filepath.Join(dir, "20-beta.conf")}},
	}
	if len(caps.Predefined) != len(want) {
		t.Fatalf("predefined %+v, want %+v", caps.Predefined, want)
	}
	for i, p := range caps.Predefined {
		if p.Name != want[i].Name || p.Options[cni.OptionFile] != want[i].Options[cni.OptionFile] {
			t.Errorf("predefined %d is %+v, want %+v", i, p, want[i])
		}
	}
	// The single plugin of a .conf is a chain of one.
	if got := d.Configs()[1].Types(); len(got) != 1 || got[0] != "macvlan" {
		t.Errorf("beta's plugins %v", got)
	}
}

func TestBadConfigurationSkippedWithAWarning(t *testing.T) {
	dir := writeConfs(t, map[string]string{
		"10-broken.conflist":  `{"cniVersion":"1.0.0","name":`,
		"20-old.conf":         `{"cniVersion":"0.2.0","name":"old","type":"bridge"}`,
		"30-notype.conf":      `{"cniVersion":"1.0.0","name":"notype"}`,
		"40-badname.conflist": `{"cniVersion":"1.0.0","name":"bad name","plugins":[{"type":"bridge"}]}`,
		"50-bridge.conflist":  `{"cniVersion":"1.0.0","name":"bridge","plugins":[{"type":"bridge"}]}`,
		"60-alpha.conflist":   listA,
	})
	log, buf := captureLog()
	d := cni.New(dir, nil, t.TempDir(), log)
	defer d.Close()
	if got := d.Capabilities().Predefined; len(got) != 1 || got[0].Name != "alpha" {
		t.Fatalf("predefined %+v, want alpha alone", got)
	}
	for _, f := range []string{"10-broken.conflist", "20-old.conf", "30-notype.conf", "40-badname.conflist", "50-bridge.conflist"} {
		if !strings.Contains(buf.String(), f) {
			t.Errorf("no warning names %s:\n%s", f, buf)
		}
	}
}

// Of two files with one name the first in lexical order wins, as libcni's
// LoadConfList and Podman have it; .conflist and .conf files are ordered
// together.
func TestDuplicateNameFirstFileWins(t *testing.T) {
	dir := writeConfs(t, map[string]string{
		"20-alpha.conflist": listA,
		"10-alpha.conf":     `{"cniVersion":"1.0.0","name":"alpha","type":"macvlan","master":"eth0"}`,
		"30-alpha.json":     `{"cniVersion":"1.0.0","name":"alpha","type":"loopback"}`,
	})
	log, buf := captureLog()
	d := cni.New(dir, nil, t.TempDir(), log)
	defer d.Close()
	cfgs := d.Configs()
	if len(cfgs) != 1 || cfgs[0].File != filepath.Join(dir, "10-alpha.conf") {
		t.Fatalf("configs %+v, want 10-alpha.conf alone", cfgs)
	}
	for _, f := range []string{"20-alpha.conflist", "30-alpha.json"} {
		if !strings.Contains(buf.String(), f) {
			t.Errorf("no warning names %s:\n%s", f, buf)
		}
	}
}

func TestMissingConfigurationDirectoryHasNoNetworks(t *testing.T) {
	log, _ := captureLog()
	d := cni.New(filepath.Join(t.TempDir(), "absent"), nil, t.TempDir(), log)
	defer d.Close()
	if got := d.Capabilities().Predefined; len(got) != 0 {
		t.Fatalf("predefined %+v", got)
	}
}

// network create -d cni is refused, pointing at the directory.
func TestUsersCannotCreateCNINetworks(t *testing.T) {
	dir := writeConfs(t, map[string]string{"10-alpha.conflist": listA})
	log, _ := captureLog()
	d := cni.New(dir, nil, t.TempDir(), log)
	defer d.Close()
	err := d.ValidateOptions(map[string]string{})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), dir) {
		t.Errorf("create with no options: %v, want an invalid argument naming %s", err, dir)
	}
	if _, err := d.Prepare(&driver.Network{Name: "mine", Options: map[string]string{cni.OptionFile: filepath.Join(dir, "10-alpha.conflist")}}, nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("a network of another name with alpha's file: %v", err)
	}
	opts := d.Capabilities().Predefined[0].Options
	if err := d.ValidateOptions(opts); err != nil {
		t.Errorf("the predefined network's options: %v", err)
	}
	if _, err := d.Prepare(&driver.Network{Name: "alpha", Options: opts}, nil); err != nil {
		t.Errorf("the predefined network: %v", err)
	}
}

func TestChainWithPortmapPublishesPorts(t *testing.T) {
	dir := writeConfs(t, map[string]string{"10-alpha.conflist": listA, "20-beta.conf": confB})
	log, _ := captureLog()
	d := cni.New(dir, nil, t.TempDir(), log)
	defer d.Close()
	for _, p := range d.Capabilities().Predefined {
		info := d.Describe(&driver.Network{Name: p.Name, Options: p.Options})
		if want := p.Name == "alpha"; info.PublishesPorts != want || info.Firewall != nil {
			t.Errorf("%s: publishes ports %v, firewall %v", p.Name, info.PublishesPorts, info.Firewall)
		}
		if info.Notes[cni.OptionFile] != p.Options[cni.OptionFile] {
			t.Errorf("%s: notes %v", p.Name, info.Notes)
		}
	}
	if n := d.Describe(&driver.Network{Name: "alpha"}).Notes[cni.NotePlugins]; n != "bridge,portmap" {
		t.Errorf("alpha's plugins note %q", n)
	}
}
