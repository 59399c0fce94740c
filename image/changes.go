package image

import (
	"encoding/json"
	"path"
	"slices"
	"strings"
	"unicode"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// applyChange applies one Dockerfile instruction given to `docker import
// --change` to cfg, with Dockerfile syntax: JSON or shell form for CMD and
// ENTRYPOINT, quotes and $VAR in the others.
func applyChange(cfg *container.Config, change string) error {
	kw, args := cutWord(change)
	kw = strings.ToUpper(kw)
	switch kw {
	case "":
		return nil
	case "CMD", "ENTRYPOINT", "ENV", "LABEL", "WORKDIR", "USER", "STOPSIGNAL", "EXPOSE", "VOLUME":
	case "HEALTHCHECK", "ONBUILD", "SHELL":
		return invalid("berth does not support the %s change", kw)
	default:
		return invalid("%s is not a valid change command", kw)
	}
	if args == "" {
		return invalid("%s requires at least one argument", kw)
	}
	env := func(name string) string {
		for _, kv := range cfg.Env {
			if k, v, _ := strings.Cut(kv, "="); k == name {
				return v
			}
		}
		return ""
	}
	var err error
	switch kw {
	case "CMD":
		cfg.Cmd = command(args)
	case "ENTRYPOINT":
		cfg.Entrypoint = command(args)
	case "ENV":
		var pairs [][2]string
		if pairs, err = keyValues(args, env); err == nil {
			for _, kv := range pairs {
				cfg.Env = slices.DeleteFunc(cfg.Env, func(e string) bool { return strings.HasPrefix(e, kv[0]+"=") })
				cfg.Env = append(cfg.Env, kv[0]+"="+kv[1])
			}
		}
	case "LABEL":
		var pairs [][2]string
		if pairs, err = keyValues(args, env); err == nil {
			if cfg.Labels == nil {
				cfg.Labels = map[string]string{}
			}
			for _, kv := range pairs {
				cfg.Labels[kv[0]] = kv[1]
			}
		}
	case "WORKDIR":
		var dir string
		if dir, err = word(args, env); err == nil {
			// A relative WORKDIR continues from the previous one.
			if !path.IsAbs(dir) {
				dir = path.Join("/", cfg.WorkingDir, dir)
			}
			cfg.WorkingDir = path.Clean(dir)
		}
	case "USER":
		cfg.User, err = word(args, env)
	case "STOPSIGNAL":
		cfg.StopSignal, err = word(args, env)
	case "EXPOSE":
		err = expose(cfg, args, env)
	case "VOLUME":
		var vols []string
		if !strings.HasPrefix(args, "[") || json.Unmarshal([]byte(args), &vols) != nil {
			vols, err = words(args, true, env)
		}
		for _, v := range vols {
			if v == "" {
				return invalid("VOLUME specified can not be an empty string")
			}
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			cfg.Volumes[v] = struct{}{}
		}
	}
	return err
}

func expose(cfg *container.Config, args string, env func(string) string) error {
	specs, err := words(args, true, env)
	if err != nil {
		return err
	}
	for _, spec := range specs {
		ports, err := network.ParsePortRange(spec)
		if err != nil {
			return invalid("EXPOSE %s: %v", spec, err)
		}
		if p := ports.Proto(); p != network.TCP && p != network.UDP && p != network.SCTP {
			return invalid("EXPOSE %s: invalid protocol %q", spec, p)
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = network.PortSet{}
		}
		for p := range ports.All() {
			cfg.ExposedPorts[p] = struct{}{}
		}
	}
	return nil
}

// command reads CMD and ENTRYPOINT: a JSON array, or else a shell command.
func command(args string) []string {
	var argv []string
	if strings.HasPrefix(args, "[") && json.Unmarshal([]byte(args), &argv) == nil {
		return argv
	}
	return []string{"/bin/sh", "-c", args}
}

// cutWord splits s at its first blank.
func cutWord(s string) (string, string) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, unicode.IsSpace)
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

// keyValues reads the arguments of ENV and LABEL: name=value pairs, or the
// old form "name value".
func keyValues(args string, env func(string) string) ([][2]string, error) {
	if name, rest := cutWord(args); !strings.Contains(name, "=") {
		if rest == "" {
			return nil, invalid("%s must have two arguments", name)
		}
		v, err := word(rest, env)
		return [][2]string{{name, v}}, err
	}
	ws, err := words(args, true, env)
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for _, w := range ws {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, invalid("Syntax error - can't find = in %q. Must be of the form: name=value", w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// word reads s as one word: quotes and escapes resolved, variables
// replaced, blanks kept.
func word(s string, env func(string) string) (string, error) {
	ws, err := words(s, false, env)
	if err != nil || len(ws) == 0 {
		return "", err
	}
	return ws[0], nil
}

// words splits s as a Dockerfile splits an instruction's arguments: on
// blanks outside quotes (when split is set), '…' taken literally, "…" and \
// escaping, $VAR and ${VAR} replaced by env outside single quotes.
func words(s string, split bool, env func(string) string) ([]string, error) {
	var out []string
	var w strings.Builder
	started := false
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; {
		case split && unicode.IsSpace(c):
			if started {
				out = append(out, w.String())
				w.Reset()
				started = false
			}
			continue
		case c == '\'':
			end := slices.Index(rs[i+1:], '\'')
			if end < 0 {
				return nil, invalid("unterminated single quote in %q", s)
			}
			w.WriteString(string(rs[i+1 : i+1+end]))
			i += 1 + end
		case c == '"':
			for i++; i < len(rs) && rs[i] != '"'; i++ {
				switch {
				case rs[i] == '\\' && i+1 < len(rs) && strings.ContainsRune(`"\$`, rs[i+1]):
					i++
					w.WriteRune(rs[i])
				case rs[i] == '$':
					i = expand(rs, i, &w, env)
				default:
					w.WriteRune(rs[i])
				}
			}
			if i == len(rs) {
				return nil, invalid("unterminated double quote in %q", s)
			}
		case c == '\\' && i+1 < len(rs):
			i++
			w.WriteRune(rs[i])
		case c == '$':
			i = expand(rs, i, &w, env)
		default:
			w.WriteRune(c)
		}
		started = true
	}
	if started {
		out = append(out, w.String())
	}
	return out, nil
}

// expand writes the value of the variable whose '$' is at rs[i] and returns
// the index of the variable's last rune. A '$' naming no variable stays.
func expand(rs []rune, i int, w *strings.Builder, env func(string) string) int {
	j := i + 1
	if j < len(rs) && rs[j] == '{' {
		if end := slices.Index(rs[j:], '}'); end > 1 {
			w.WriteString(env(string(rs[j+1 : j+end])))
			return j + end
		}
	}
	for j < len(rs) && (rs[j] == '_' || unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j])) {
		j++
	}
	if j == i+1 {
		w.WriteRune('$')
		return i
	}
	w.WriteString(env(string(rs[i+1 : j])))
	return j - 1
}
