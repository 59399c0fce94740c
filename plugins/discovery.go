package plugins

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/docker/go-connections/tlsconfig"
)

// DefaultDirs are where Docker looks for plugins: sockets under /run, spec
// files under /etc and /usr/lib.
var DefaultDirs = []string{"/run/docker/plugins", "/etc/docker/plugins", "/usr/lib/docker/plugins"}

// spec is where a plugin is found and how to reach it.
type spec struct {
	Name string
	// Addr is a URL: unix:///path, tcp://host:port or https://host:port.
	Addr string
	// TLS are a NAME.json's TLS settings, for an https address; an https
	// address without them does not verify the plugin, as with Docker.
	TLS *tlsconfig.Options
	// File is the socket or spec file the plugin was found by.
	File string
}

// jsonSpec is the content of a NAME.json, as Docker reads it.
type jsonSpec struct {
	Name      string
	Addr      string
	TLSConfig *struct {
		InsecureSkipVerify bool
		CAFile             string
		CertFile           string
		KeyFile            string
	}
}

// lookup finds the plugin name in dirs, in Docker's order: a socket in
// any directory first, then a .spec or .json file, directory by
// directory. A name found nowhere gives an errdefs NotFound error.
func lookup(dirs []string, name string) (spec, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return spec{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid plugin name %q", name))
	}
	for _, dir := range dirs {
		for _, p := range candidates(dir, name, ".sock") {
			if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
				return spec{Name: name, Addr: "unix://" + p, File: p}, nil
			}
		}
	}
	for _, dir := range dirs {
		for _, ext := range []string{".spec", ".json"} {
			for _, p := range candidates(dir, name, ext) {
				fi, err := os.Stat(p)
				if err != nil || fi.IsDir() {
					continue
				}
				if ext == ".json" {
					return readJSONSpec(name, p)
				}
				return readSpec(name, p)
			}
		}
	}
	return spec{}, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("plugin %q not found in %s", name, strings.Join(dirs, ", ")))
}

func candidates(dir, name, ext string) []string {
	return []string{filepath.Join(dir, name+ext), filepath.Join(dir, name, name+ext)}
}

// readSpec reads a NAME.spec: one URL.
func readSpec(name, path string) (spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return spec{}, fmt.Errorf("read plugin spec %s: %w", path, err)
	}
	s := spec{Name: name, Addr: strings.TrimSpace(string(b)), File: path}
	if err := checkAddr(s.Addr); err != nil {
		return spec{}, fmt.Errorf("plugin spec %s: %w", path, err)
	}
	return s, nil
}

// readJSONSpec reads a NAME.json. As Docker, a TLS configuration without a
// CA file does not verify the plugin's certificate.
func readJSONSpec(name, path string) (spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return spec{}, fmt.Errorf("read plugin spec %s: %w", path, err)
	}
	var js jsonSpec
	if err := json.Unmarshal(b, &js); err != nil {
		return spec{}, fmt.Errorf("plugin spec %s: %w", path, err)
	}
	s := spec{Name: name, Addr: strings.TrimSpace(js.Addr), File: path}
	if err := checkAddr(s.Addr); err != nil {
		return spec{}, fmt.Errorf("plugin spec %s: %w", path, err)
	}
	if t := js.TLSConfig; t != nil {
		s.TLS = &tlsconfig.Options{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, InsecureSkipVerify: t.InsecureSkipVerify || t.CAFile == ""}
	}
	return s, nil
}

func checkAddr(addr string) error {
	u, err := url.Parse(addr)
	if err != nil {
		return fmt.Errorf("bad plugin address %q: %w", addr, err)
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" {
			return fmt.Errorf("bad plugin address %q: no socket path", addr)
		}
	case "tcp", "http", "https":
		if u.Host == "" {
			return fmt.Errorf("bad plugin address %q: no host", addr)
		}
	case "":
		return fmt.Errorf("bad plugin address %q: unknown protocol", addr)
	default:
		return fmt.Errorf("bad plugin address %q: protocol %s is not supported", addr, u.Scheme)
	}
	return nil
}

// scan lists the names of the plugins in dirs: sockets, .spec and .json
// files, directly in a directory or in a directory of their own name.
func scan(dirs []string) []string {
	seen := map[string]bool{}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() {
				if hasSpecIn(dir, e.Name()) {
					seen[e.Name()] = true
				}
				continue
			}
			ext := filepath.Ext(e.Name())
			name := strings.TrimSuffix(e.Name(), ext)
			switch ext {
			case ".sock":
				if e.Type()&os.ModeSocket != 0 {
					seen[name] = true
				}
			case ".spec", ".json":
				seen[name] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// hasSpecIn tells whether DIR/NAME/NAME.{sock,spec,json} exists.
func hasSpecIn(dir, name string) bool {
	for _, ext := range []string{".sock", ".spec", ".json"} {
		if _, err := os.Stat(filepath.Join(dir, name, name+ext)); err == nil {
			return true
		}
	}
	return false
}
