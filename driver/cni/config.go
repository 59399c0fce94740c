package cni

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/utils"
)

// specVersions are the CNI spec versions the driver runs: those libcni
// speaks from 0.3.0 on. Earlier results have no interfaces to read back.
var specVersions = []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// reserved are the names of berth's own predefined networks, which no
// configuration may take.
var reserved = []string{"bridge", "host", "none", "default", "ingress"}

// Config is one network a configuration file describes.
type Config struct {
	// File is the file the configuration came from.
	File string
	// List is the plugin chain; a single-plugin .conf file is a chain of
	// one.
	List *libcni.NetworkConfigList
}

// Name is the network's name: the configuration's "name".
func (c *Config) Name() string { return c.List.Name }

// Types are the chain's plugins, in order.
func (c *Config) Types() []string {
	out := make([]string, 0, len(c.List.Plugins))
	for _, p := range c.List.Plugins {
		out = append(out, p.Network.Type)
	}
	return out
}

// Declares tells whether a plugin of the chain declares the capability
// (portMappings, ips, mac): libcni hands a capability's arguments only to
// the plugins that declare it.
func (c *Config) Declares(capability string) bool {
	for _, p := range c.List.Plugins {
		if p.Network.Capabilities[capability] {
			return true
		}
	}
	return false
}

// LoadConfigs reads the configurations in dir as libcni finds them:
// *.conflist files are chains, *.conf and *.json files single plugins,
// taken in lexical order of their names. A file that does not parse, has
// a spec version outside 0.3.0–1.1.0 or a name berth cannot use is
// skipped with a warning; of two files with one name, the first wins, as
// in libcni's LoadConfList and Podman. A missing directory has no
// configurations.
func LoadConfigs(dir string, log *slog.Logger) []*Config {
	files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		log.Warn("read CNI configurations", "dir", dir, "err", err)
		return nil
	}
	sort.Strings(files)
	var out []*Config
	seen := map[string]string{}
	for _, file := range files {
		list, err := loadFile(file)
		if err != nil {
			log.Warn("CNI configuration skipped", "file", file, "err", err)
			continue
		}
		if first, dup := seen[list.Name]; dup {
			log.Warn("CNI configuration skipped: an earlier file has its name", "file", file, "name", list.Name, "used", first)
			continue
		}
		seen[list.Name] = file
		out = append(out, &Config{File: file, List: list})
	}
	return out
}

func loadFile(file string) (*libcni.NetworkConfigList, error) {
	var list *libcni.NetworkConfigList
	if filepath.Ext(file) == ".conflist" {
		l, err := libcni.NetworkConfFromFile(file)
		if err != nil {
			return nil, err
		}
		list = l
	} else {
		conf, err := libcni.ConfFromFile(file)
		if err != nil {
			return nil, err
		}
		if list, err = libcni.ConfListFromConf(conf); err != nil {
			return nil, err
		}
	}
	if !slices.Contains(specVersions, list.CNIVersion) {
		return nil, fmt.Errorf("cniVersion %q: berth runs CNI spec versions %v", list.CNIVersion, specVersions)
	}
	if err := utils.ValidateNetworkName(list.Name); err != nil {
		return nil, fmt.Errorf("name %q: %s", list.Name, err.Error())
	}
	if slices.Contains(reserved, list.Name) {
		return nil, fmt.Errorf("name %q is one of berth's own networks", list.Name)
	}
	return list, nil
}

// missingPlugins are the chain's plugins found in none of binDirs.
func (c *Config) missingPlugins(binDirs []string) []string {
	var out []string
	for _, t := range c.Types() {
		if _, err := invoke.FindInPath(t, binDirs); err != nil {
			out = append(out, t)
		}
	}
	return out
}
