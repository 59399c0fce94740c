package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/docker/go-connections/nat"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/pflag"
)

// The flags of run and create, and how they become a create request: with
// docker's checks, in docker's words. Nothing here talks to the daemon.

// containerOptions are the flags of run and create that berth containers
// can use.
type containerOptions struct {
	detach      bool // run only
	interactive bool
	tty         bool
	autoRemove  bool
	publishAll  bool

	name, hostname, network string
	ip, ip6, macAddress     string
	entrypoint, workdir     string
	user, stopSignal        string
	stopTimeout             int
	aliases, links          listValue
	env, envFiles           listValue
	publish, expose         listValue
	dns, dnsSearch, dnsOpts listValue
	addHosts, labels        listValue
	lookupEnv               func(string) (string, bool)
}

// errNoTTY refuses -t: berth runs containers without a terminal.
var errNoTTY = errors.New("berth containers have no terminal: -t/--tty is not supported (use -i to send input)")

func newContainerOptions(lookupEnv func(string) (string, bool)) *containerOptions {
	o := &containerOptions{lookupEnv: lookupEnv}
	o.env.check = func(s string) (string, error) { return resolveEnv(s, lookupEnv) }
	o.dns.check = checkIP
	o.addHosts.check = checkExtraHost
	o.labels.check = checkLabel
	o.links.check = checkLink
	return o
}

func (o *containerOptions) addFlags(flags *pflag.FlagSet) {
	// -h is --hostname here, as in docker, so --help goes without one.
	flags.Bool("help", false, "Print usage")
	flags.Var(&o.addHosts, "add-host", "Add a custom host-to-IP mapping (host:ip)")
	flags.Var(&o.dns, "dns", "Set custom DNS servers")
	flags.Var(&o.dnsOpts, "dns-option", "Set DNS options")
	flags.Var(&o.dnsSearch, "dns-search", "Set custom DNS search domains")
	flags.StringVar(&o.entrypoint, "entrypoint", "", "Overwrite the default ENTRYPOINT of the image")
	flags.VarP(&o.env, "env", "e", "Set environment variables")
	flags.Var(&o.envFiles, "env-file", "Read in a file of environment variables")
	flags.Var(&o.expose, "expose", "Expose a port or a range of ports")
	flags.StringVarP(&o.hostname, "hostname", "h", "", "Container host name")
	flags.BoolVarP(&o.interactive, "interactive", "i", false, "Keep STDIN open even if not attached")
	flags.StringVar(&o.ip, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	flags.StringVar(&o.ip6, "ip6", "", "IPv6 address (e.g., 2001:db8::33)")
	flags.VarP(&o.labels, "label", "l", "Set meta data on a container")
	flags.Var(&o.links, "link", "Add link to another container")
	flags.StringVar(&o.macAddress, "mac-address", "", "Container MAC address (e.g., 92:d0:c6:0a:29:33)")
	flags.StringVar(&o.name, "name", "", "Assign a name to the container")
	flags.Var(typedString{&o.network, "network"}, "network", "Connect a container to a network")
	flags.Var(typedString{&o.network, "network"}, "net", "Connect a container to a network")
	_ = flags.MarkHidden("net")
	flags.Var(&o.aliases, "network-alias", "Add network-scoped alias for the container")
	flags.VarP(&o.publish, "publish", "p", "Publish a container's port(s) to the host")
	flags.BoolVarP(&o.publishAll, "publish-all", "P", false, "Publish all exposed ports to random ports")
	flags.BoolVar(&o.autoRemove, "rm", false, "Automatically remove the container when it exits")
	flags.StringVar(&o.stopSignal, "stop-signal", "", "Signal to stop the container")
	flags.IntVar(&o.stopTimeout, "stop-timeout", 0, "Timeout (in seconds) to stop a container")
	flags.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY (not supported: berth containers have no terminal)")
	flags.StringVarP(&o.user, "user", "u", "", "Username or UID (format: <name|uid>[:<group|gid>])")
	flags.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
}

// createRequest is the body of POST /containers/create.
type createRequest struct {
	config     *container.Config
	host       *container.HostConfig
	networking *network.NetworkingConfig
}

// request builds the create request for image and its command. The flags
// tell what was given at all: an empty --entrypoint clears the image's, and
// without --stop-timeout the daemon's default holds.
func (o *containerOptions) request(flags *pflag.FlagSet, image string, command []string) (createRequest, error) {
	if o.tty {
		return createRequest{}, errNoTTY
	}
	env, err := o.environment()
	if err != nil {
		return createRequest{}, err
	}
	exposed, bindings, err := parsePorts(o.publish.values, o.expose.values)
	if err != nil {
		return createRequest{}, err
	}
	endpoint, err := o.endpoint()
	if err != nil {
		return createRequest{}, err
	}
	dns := make([]netip.Addr, 0, len(o.dns.values))
	for _, s := range o.dns.values {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return createRequest{}, err
		}
		dns = append(dns, a)
	}

	attached := !o.detach
	cfg := &container.Config{
		Hostname:     o.hostname,
		User:         o.user,
		AttachStdin:  attached && o.interactive,
		AttachStdout: attached,
		AttachStderr: attached,
		ExposedPorts: exposed,
		OpenStdin:    o.interactive,
		StdinOnce:    attached && o.interactive,
		Env:          env,
		Cmd:          command,
		Image:        image,
		WorkingDir:   o.workdir,
		Labels:       keyValues(o.labels.values),
		StopSignal:   o.stopSignal,
	}
	switch {
	case o.entrypoint != "":
		cfg.Entrypoint = []string{o.entrypoint}
	case flags.Changed("entrypoint"):
		cfg.Entrypoint = []string{""}
	}
	if flags.Changed("stop-timeout") {
		timeout := o.stopTimeout
		cfg.StopTimeout = &timeout
	}
	host := &container.HostConfig{
		NetworkMode:     o.networkMode(),
		PortBindings:    bindings,
		AutoRemove:      o.autoRemove,
		DNS:             dns,
		DNSOptions:      o.dnsOpts.values,
		DNSSearch:       o.dnsSearch.values,
		ExtraHosts:      o.addHosts.values,
		Links:           o.links.values,
		PublishAllPorts: o.publishAll,
	}
	// Like docker, an endpoint for the daemon's default network always,
	// for a network named only when there is something to say of it.
	networking := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{}}
	if o.network == "" || endpoint.IPAMConfig != nil || len(endpoint.MacAddress) > 0 ||
		len(endpoint.Aliases) > 0 || len(endpoint.Links) > 0 {
		networking.EndpointsConfig[string(host.NetworkMode)] = endpoint
	}
	return createRequest{config: cfg, host: host, networking: networking}, nil
}

func (o *containerOptions) networkMode() container.NetworkMode {
	if o.network == "" {
		return "default"
	}
	return container.NetworkMode(o.network)
}

// endpoint is the container's settings on its network. Aliases and links
// are a user-defined network's things; the daemon's default networks have
// no DNS to give them to.
func (o *containerOptions) endpoint() (*network.EndpointSettings, error) {
	ep := &network.EndpointSettings{}
	if o.ip != "" || o.ip6 != "" {
		v4, err := parseAddr(o.ip, "IPv4")
		if err != nil {
			return nil, err
		}
		v6, err := parseAddr(o.ip6, "IPv6")
		if err != nil {
			return nil, err
		}
		ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: v4, IPv6Address: v6}
	}
	if o.macAddress != "" {
		mac, err := net.ParseMAC(o.macAddress)
		if err != nil {
			return nil, fmt.Errorf("%s is not a valid mac address", o.macAddress)
		}
		ep.MacAddress = network.HardwareAddr(mac)
	}
	userDefined := isUserDefined(o.networkMode())
	if len(o.aliases.values) > 0 {
		if !userDefined {
			return nil, errors.New("network-scoped aliases are only supported for user-defined networks")
		}
		ep.Aliases = o.aliases.values
	}
	if userDefined {
		ep.Links = o.links.values
	}
	return ep, nil
}

// isUserDefined tells whether a network mode names a network of the user's
// rather than one of the daemon's modes.
func isUserDefined(mode container.NetworkMode) bool {
	switch mode {
	case "default", "bridge", "host", "none":
		return false
	}
	return !strings.HasPrefix(string(mode), "container:")
}

// environment is the container's environment: the --env-file files' in
// order, then -e's.
func (o *containerOptions) environment() ([]string, error) {
	var env []string
	for _, path := range o.envFiles.values {
		vars, err := readEnvFile(path, o.lookupEnv)
		if err != nil {
			return nil, err
		}
		env = append(env, vars...)
	}
	return append(env, o.env.values...), nil
}

// resolveEnv checks an -e value; a name alone takes its value from berth's
// environment when it is set there.
func resolveEnv(kv string, lookupEnv func(string) (string, bool)) (string, error) {
	name, _, hasValue := strings.Cut(kv, "=")
	if name == "" {
		return "", fmt.Errorf("invalid environment variable: %s", kv)
	}
	if hasValue {
		return kv, nil
	}
	if v, ok := lookupEnv(name); ok {
		return name + "=" + v, nil
	}
	return kv, nil
}

// readEnvFile reads a file of NAME=value lines, as docker does: blank lines
// and # comments skipped, leading blanks dropped, values kept as written,
// and a name alone taken from berth's environment, or left out when unset.
func readEnvFile(path string, lookupEnv func(string) (string, bool)) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	var vars []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		if !utf8.ValidString(raw) {
			return nil, fmt.Errorf("invalid env file (%s): invalid utf8 bytes at line %d: %v", path, n, []byte(raw))
		}
		line := strings.TrimLeftFunc(raw, unicode.IsSpace)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, hasValue := strings.Cut(line, "=")
		switch {
		case name == "":
			return nil, fmt.Errorf("invalid env file (%s): no variable name on line '%s'", path, line)
		case strings.ContainsAny(name, " \t\n\v\f\r"):
			return nil, fmt.Errorf("invalid env file (%s): variable '%s' contains whitespaces", path, name)
		case hasValue:
			vars = append(vars, line)
		default:
			if v, ok := lookupEnv(name); ok {
				vars = append(vars, name+"="+v)
			}
		}
	}
	return vars, sc.Err()
}

// parsePorts turns -p specs ([ip:][hostPort:]containerPort[/proto]) and
// --expose ports or ranges into the ports to expose and their bindings.
func parsePorts(publish, expose []string) (network.PortSet, network.PortMap, error) {
	specs, specBindings, err := nat.ParsePortSpecs(publish)
	if err != nil {
		return nil, nil, err
	}
	exposed := network.PortSet{}
	for p := range specs {
		port, err := network.ParsePort(string(p))
		if err != nil {
			return nil, nil, err
		}
		exposed[port] = struct{}{}
	}
	bindings := network.PortMap{}
	for p, bs := range specBindings {
		port, err := network.ParsePort(string(p))
		if err != nil {
			return nil, nil, err
		}
		if port.Num() == 0 {
			return nil, nil, errors.New("invalid containerPort: 0")
		}
		for _, b := range bs {
			// nat reads "0-100" as a range; 0 asks for any port, which
			// berthd would not take from the range.
			if lo, hi, ok := strings.Cut(b.HostPort, "-"); ok && strings.TrimLeft(lo, "0") == "" && strings.TrimLeft(hi, "0") != "" {
				return nil, nil, fmt.Errorf("invalid hostPort: %s", b.HostPort)
			}
			var ip netip.Addr
			if b.HostIP != "" {
				if ip, err = netip.ParseAddr(b.HostIP); err != nil {
					return nil, nil, fmt.Errorf("invalid IP address: %s", b.HostIP)
				}
			}
			bindings[port] = append(bindings[port], network.PortBinding{HostIP: ip, HostPort: b.HostPort})
		}
	}
	for _, e := range expose {
		if strings.Contains(e, ":") {
			return nil, nil, fmt.Errorf("invalid port format for --expose: %s", e)
		}
		proto, ports := nat.SplitProtoPort(e)
		start, end, err := nat.ParsePortRange(ports)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid range format for --expose: %s, error: %s", e, err)
		}
		for n := start; n <= end; n++ {
			port, err := network.ParsePort(strconv.FormatUint(n, 10) + "/" + proto)
			if err != nil {
				return nil, nil, err
			}
			exposed[port] = struct{}{}
		}
	}
	return exposed, bindings, nil
}

// The checks of flag values, run as each is given.

func checkIP(s string) (string, error) {
	ip := net.ParseIP(strings.TrimSpace(s))
	if ip == nil {
		return "", fmt.Errorf("IP address is not correctly formatted: %s", s)
	}
	return ip.String(), nil
}

// checkExtraHost checks host:ip or host=ip (the address may be in
// brackets, or "host-gateway") and gives it as host:ip, what the API takes.
func checkExtraHost(s string) (string, error) {
	host, addr, ok := strings.Cut(s, "=")
	if !ok {
		host, addr, ok = strings.Cut(s, ":")
	}
	if !ok || host == "" || strings.Contains(host, ":") {
		return "", fmt.Errorf("bad format for add-host: %q", s)
	}
	if addr != "host-gateway" {
		if len(addr) > 2 && addr[0] == '[' && addr[len(addr)-1] == ']' {
			addr = addr[1 : len(addr)-1]
		}
		if net.ParseIP(addr) == nil {
			return "", fmt.Errorf("invalid IP address in add-host: %q", addr)
		}
	}
	return host + ":" + addr, nil
}

func checkLabel(s string) (string, error) {
	key, _, _ := strings.Cut(s, "=")
	if strings.TrimSpace(key) == "" {
		return "", fmt.Errorf("invalid label '%s': empty name", s)
	}
	return s, nil
}

// checkLink checks name or name:alias.
func checkLink(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty string specified for links")
	}
	if strings.Count(s, ":") > 1 {
		return "", fmt.Errorf("bad format for links: %s", s)
	}
	return s, nil
}

// localhostDNSWarning is docker's warning for a loopback DNS server, which
// in a container's own network namespace is the container itself.
func localhostDNSWarning(dns []netip.Addr) string {
	for _, a := range dns {
		if a.IsLoopback() {
			return fmt.Sprintf("WARNING: Localhost DNS (%s) may fail in containers.", a)
		}
	}
	return ""
}
