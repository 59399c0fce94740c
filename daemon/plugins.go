package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/plugin"
)

// listPlugins is GET /plugins: the legacy plugins found in the plugin
// directories or activated, as `docker plugin ls` shows them. Managed
// (v2) plugins come from a registry, which berth has none of.
func (d *Daemon) listPlugins(w http.ResponseWriter, r *http.Request) error {
	f, err := parseFilters(r.URL.Query().Get("filters"), "capability", "enable")
	if err != nil {
		return err
	}
	out := []plugin.Plugin{}
	for _, p := range d.plugins.List() {
		if !f.exact("enable", strconv.FormatBool(p.Active)) ||
			!f.any("capability", func(c string) bool {
				return slices.ContainsFunc(p.Implements, func(kind string) bool { return strings.EqualFold(kind, c) })
			}) {
			continue
		}
		sum := sha256.Sum256([]byte(p.Name))
		cfg := plugin.Config{Description: "legacy plugin", Interface: plugin.Interface{Socket: p.Addr}}
		if p.Addr == "" {
			cfg.Description = "legacy plugin, not used yet"
		}
		for _, kind := range p.Implements {
			cfg.Interface.Types = append(cfg.Interface.Types, plugin.CapabilityID{Prefix: "docker", Capability: strings.ToLower(kind), Version: "1.0"})
		}
		out = append(out, plugin.Plugin{ID: hex.EncodeToString(sum[:]), Name: p.Name, Enabled: p.Active, Config: cfg})
	}
	return writeJSON(w, http.StatusOK, out)
}
