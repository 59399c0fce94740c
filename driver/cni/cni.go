package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/vishvananda/netns"

	"github.com/berth-net/berth/driver"
	"github.com/berth-net/berth/netdev"
)

// OptionFile is the option of a network of the driver naming its
// configuration file; it is also shown as a note.
const OptionFile = "com.berth.cni.file"

// Notes inspect shows besides OptionFile.
const (
	NotePlugins = "com.berth.cni.plugins"
	NoteVersion = "com.berth.cni.version"
)

// pluginTimeout bounds one operation's plugin runs (a chain's ADD, DEL or
// CHECK): a plugin that hangs must not hold the endpoint forever.
const pluginTimeout = 30 * time.Second

// Driver runs the chains of the CNI configurations it found at its start.
type Driver struct {
	confDir string
	configs []*Config
	byName  map[string]*Config
	cni     *libcni.CNIConfig
	log     *slog.Logger
	// home is the namespace the driver was made in: plugins act on the
	// host side in the namespace they run in, so they always run there.
	home netns.NsHandle
}

// New reads the configurations in confDir (see LoadConfigs). Plugins are
// looked up in binDirs; libcni keeps each join's result under cacheDir,
// which DEL and CHECK use and which must survive a restart of berthd.
// The namespace New is called in is the host the plugins work on.
func New(confDir string, binDirs []string, cacheDir string, log *slog.Logger) *Driver {
	d := &Driver{confDir: confDir, byName: map[string]*Config{}, log: log, home: netns.None()}
	d.configs = LoadConfigs(confDir, log)
	for _, c := range d.configs {
		d.byName[c.Name()] = c
		if missing := c.missingPlugins(binDirs); len(missing) > 0 {
			log.Warn("CNI network's plugins not found: joining it will fail", "network", c.Name(), "file", c.File, "plugins", missing, "dirs", binDirs)
		}
	}
	exec := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: stderrLog{log}}, PluginDecoder: version.PluginDecoder{}}
	d.cni = libcni.NewCNIConfigWithCacheDir(binDirs, cacheDir, exec)
	home, err := netns.Get()
	if err != nil {
		log.Warn("open the current network namespace: CNI plugins run in the caller's", "err", err)
	} else {
		d.home = home
	}
	return d
}

// Close releases the handle of the driver's namespace.
func (d *Driver) Close() {
	if d.home.IsOpen() {
		d.home.Close()
	}
}

// Configs are the configurations the driver runs, in the order of their
// files.
func (d *Driver) Configs() []*Config { return d.configs }

func (d *Driver) Name() string { return "cni" }

// Capabilities: every configuration is a predefined network, and only
// those exist (Singleton), so a configuration deleted takes its network
// with it at the next start.
func (d *Driver) Capabilities() driver.Capabilities {
	caps := driver.Capabilities{Scope: driver.ScopeLocal, OwnAddresses: true, Sharing: driver.Shares, Singleton: true}
	for _, c := range d.configs {
		caps.Predefined = append(caps.Predefined, driver.Predefined{Name: c.Name(), Options: map[string]string{OptionFile: c.File}})
	}
	return caps
}

// ValidateOptions accepts only the options of a predefined network: a
// network of this driver is made by adding a configuration file.
func (d *Driver) ValidateOptions(opts map[string]string) error {
	file := opts[OptionFile]
	for _, c := range d.configs {
		if c.File == file {
			return nil
		}
	}
	return d.errNotPredefined()
}

func (d *Driver) errNotPredefined() error {
	return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(
		"cni networks cannot be created: each CNI configuration file in %s (*.conflist, *.conf, *.json) is a network, made when berthd starts", d.confDir))
}

// Prepare accepts a network only as the predefined one of a
// configuration, under its name.
func (d *Driver) Prepare(nw *driver.Network, _ []*driver.Network) (json.RawMessage, error) {
	c, ok := d.byName[nw.Name]
	if !ok || c.File != nw.Options[OptionFile] {
		return nil, d.errNotPredefined()
	}
	return nil, nil
}

// Describe: a chain with a plugin that declares portMappings publishes
// the endpoints' ports itself. berth's firewall stays out: the network's
// devices are the plugins'.
func (d *Driver) Describe(nw *driver.Network) driver.NetworkInfo {
	notes := map[string]string{OptionFile: nw.Options[OptionFile]}
	c, ok := d.byName[nw.Name]
	if !ok {
		return driver.NetworkInfo{Notes: notes}
	}
	notes[OptionFile] = c.File
	notes[NotePlugins] = strings.Join(c.Types(), ",")
	notes[NoteVersion] = c.List.CNIVersion
	return driver.NetworkInfo{PublishesPorts: c.Declares("portMappings"), Notes: notes}
}

// CreateNetwork has nothing to do: a chain's plugins make what they need
// at their first ADD.
func (d *Driver) CreateNetwork(*driver.Network) error { return nil }

// DeleteNetwork has nothing to do: what the plugins made for the network
// as a whole (a bridge) is theirs.
func (d *Driver) DeleteNetwork(*driver.Network) error { return nil }

// Devices: none of berth's.
func (d *Driver) Devices(*driver.Network) []string { return nil }

func (d *Driver) config(nw *driver.Network) (*Config, error) {
	c, ok := d.byName[nw.Name]
	if !ok {
		return nil, errdefs.ErrNotFound.WithMessage(fmt.Sprintf("no CNI configuration named %s in %s", nw.Name, d.confDir))
	}
	return c, nil
}

// portMapping is an entry of the portMappings capability, as portmap reads
// it.
type portMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// runtimeConf is the invocation of a chain for ep in the namespace at
// nsPath ("" when it is gone). The container ID is the endpoint's, so one
// sandbox may join a network twice and a DEL finds what its ADD made.
// libcni hands each capability only to the plugins that declare it.
func runtimeConf(ep *driver.Endpoint, nsPath string) *libcni.RuntimeConf {
	caps := map[string]any{}
	if len(ep.Ports) > 0 {
		pms := make([]portMapping, 0, len(ep.Ports))
		for _, p := range ep.Ports {
			pm := portMapping{HostPort: int(p.HostPort), ContainerPort: int(p.Port), Protocol: p.Proto}
			if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
				pm.HostIP = p.HostIP.String()
			}
			pms = append(pms, pm)
		}
		caps["portMappings"] = pms
	}
	var ips []string
	for _, a := range ep.Addrs() {
		ips = append(ips, a.String())
	}
	if len(ips) > 0 {
		caps["ips"] = ips
	}
	if len(ep.MAC) > 0 {
		caps["mac"] = ep.MAC.String()
	}
	return &libcni.RuntimeConf{ContainerID: ep.ID, NetNS: nsPath, IfName: ep.IfName, CapabilityArgs: caps}
}

// Join runs the chain's ADD. A result cached from an earlier ADD for the
// endpoint (a join the controller found broken, or one a crash cut short)
// is deleted first, so that the plugins start clean and the IPAM plugin
// does not hold two addresses. A failed ADD is deleted again, as the spec
// asks of runtimes.
func (d *Driver) Join(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) (driver.JoinInfo, error) {
	rt := runtimeConf(ep, ns.Path())
	ctx, cancel := context.WithTimeout(context.Background(), pluginTimeout)
	defer cancel()
	c, err := d.config(nw)
	if err != nil {
		// The configuration is gone since an earlier join (the controller
		// joins again what Restore found broken): the cache still tells
		// what to undo, and the controller will drop the endpoint.
		if derr := d.del(ctx, nw.Name, nil, rt); derr != nil && !errors.Is(derr, errNoConfig) {
			d.log.Warn("undo a join of a CNI network whose configuration is gone", "network", nw.Name, "endpoint", ep.ID, "err", derr)
		}
		return driver.JoinInfo{}, err
	}
	if cached, _, _ := d.cni.GetNetworkListCachedConfig(c.List, rt); cached != nil {
		if err := d.del(ctx, nw.Name, c, rt); err != nil {
			return driver.JoinInfo{}, fmt.Errorf("undo the earlier join of %s to CNI network %s: %w", ep.IfName, nw.Name, err)
		}
	}
	var res types.Result
	err = d.inHome(func() (err error) {
		res, err = d.cni.AddNetworkList(ctx, c.List, rt)
		return err
	})
	var info driver.JoinInfo
	if err == nil {
		info, err = d.joinInfo(res, ep.IfName, ns)
	}
	if err != nil {
		if derr := d.del(ctx, nw.Name, c, rt); derr != nil {
			d.log.Warn("undo a failed CNI join", "network", nw.Name, "endpoint", ep.ID, "err", derr)
		}
		return driver.JoinInfo{}, fmt.Errorf("join CNI network %s: %w", nw.Name, err)
	}
	return info, nil
}

// joinInfo is fromResult with the interface's index and MAC as the kernel
// has them.
func (d *Driver) joinInfo(res types.Result, ifName string, ns *netdev.Namespace) (driver.JoinInfo, error) {
	info, err := fromResult(res, ifName)
	if err != nil {
		return info, err
	}
	var ifc *net.Interface
	if err := ns.Do(func() (err error) {
		ifc, err = net.InterfaceByName(ifName)
		return err
	}); err != nil {
		return info, fmt.Errorf("the chain made no interface %s in the sandbox: %w", ifName, err)
	}
	info.Index, info.MAC = ifc.Index, ifc.HardwareAddr
	return info, nil
}

// Leave runs the chain's DEL; with the namespace gone, with no namespace,
// as the spec allows, so that the plugins still release what they hold on
// the host (addresses, port mappings).
func (d *Driver) Leave(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) error {
	nsPath := ""
	if ns != nil {
		nsPath = ns.Path()
	}
	c, _ := d.config(nw)
	ctx, cancel := context.WithTimeout(context.Background(), pluginTimeout)
	defer cancel()
	err := d.del(ctx, nw.Name, c, runtimeConf(ep, nsPath))
	if errors.Is(err, errNoConfig) {
		// Nothing tells what the plugins made on the host; the sandbox's
		// interface at least stops carrying traffic.
		d.log.Warn("CNI network left without running its plugins: its configuration and the join's cached result are gone", "network", nw.Name, "endpoint", ep.ID)
		if ns == nil {
			return nil
		}
		err = ns.Delete(ep.IfName)
	}
	if err != nil {
		return fmt.Errorf("leave CNI network %s: %w", nw.Name, err)
	}
	return nil
}

// del runs DEL with the configuration the endpoint's ADD ran, as libcni
// cached it, and the capability arguments it had; without a cache, with
// c as it is now. c is nil when the network named has no configuration
// any more; then only a cache tells what to delete.
func (d *Driver) del(ctx context.Context, name string, c *Config, rt *libcni.RuntimeConf) error {
	list := &libcni.NetworkConfigList{Name: name}
	if c != nil {
		list = c.List
	}
	cached, crt, err := d.cni.GetNetworkListCachedConfig(list, rt)
	if err != nil {
		d.log.Warn("CNI cache unreadable: DEL with the configuration as it is now", "network", name, "err", err)
	}
	// A chain whose plugins come partly from a directory beside its file
	// is cached without them: the loaded one, when it is what ran, has
	// them all.
	if cached != nil {
		rt = crt
		if c == nil || !bytes.Equal(cached, c.List.Bytes) {
			if l, err := libcni.NetworkConfFromBytes(cached); err == nil && len(l.Plugins) > 0 {
				list = l
			}
		}
	}
	if len(list.Plugins) == 0 {
		return errNoConfig
	}
	return d.inHome(func() error { return d.cni.DelNetworkList(ctx, list, rt) })
}

// errNoConfig: neither the configuration nor libcni's cache tells which
// plugins to run.
var errNoConfig = errors.New("no CNI configuration and no cached result")

// Restore: the endpoint is intact when libcni has its ADD's result, the
// chain's CHECK passes (spec 0.4.0 on, unless the configuration disables
// it) and its interface is in the sandbox.
func (d *Driver) Restore(nw *driver.Network, ep *driver.Endpoint, ns *netdev.Namespace) (driver.JoinInfo, bool, error) {
	c, err := d.config(nw)
	if err != nil || ns == nil {
		return driver.JoinInfo{}, false, nil
	}
	rt := runtimeConf(ep, ns.Path())
	res, err := d.cni.GetNetworkListCachedResult(c.List, rt)
	if err != nil || res == nil {
		return driver.JoinInfo{}, false, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), pluginTimeout)
	defer cancel()
	err = d.inHome(func() error { return d.cni.CheckNetworkList(ctx, c.List, rt) })
	if err != nil && !errors.Is(err, libcni.ErrorCheckNotSupp) {
		d.log.Info("CNI CHECK failed: the endpoint joins again", "network", nw.Name, "endpoint", ep.ID, "err", err)
		return driver.JoinInfo{}, false, nil
	}
	info, err := d.joinInfo(res, ep.IfName, ns)
	if err != nil {
		return driver.JoinInfo{}, false, nil
	}
	return info, true, nil
}

// inHome runs fn on a thread in the driver's namespace: the calling one
// when it is there, as it always is in berthd; else one that enters it.
// A plugin is a process of that thread and inherits its namespace.
func (d *Driver) inHome(fn func() error) error {
	if !d.home.IsOpen() {
		return fn()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cur, err := netns.Get()
	if err != nil {
		return fmt.Errorf("the current network namespace: %w", err)
	}
	here := cur.Equal(d.home)
	cur.Close()
	if here {
		return fn()
	}
	return netdev.RunIn(d.home, "the driver's namespace", fn)
}

// stderrLog logs what plugins write to stderr; their errors come on
// stdout, as the spec has them, and reach the caller.
type stderrLog struct{ log *slog.Logger }

func (w stderrLog) Write(p []byte) (int, error) {
	if s := strings.TrimSpace(string(p)); s != "" {
		w.log.Warn("CNI plugin stderr", "text", s)
	}
	return len(p), nil
}
