package daemon

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/berth-net/berth/api"
	"github.com/berth-net/berth/firewall"
)

// berth network trace: whether a container's traffic gets through berth's
// rules, answered from the firewall's model (firewall.Model.Trace), with
// the containers and addresses of the request resolved here.

func (d *Daemon) trace(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	src, dst := q.Get("src"), q.Get("dst")
	if src == "" || dst == "" {
		return errdefs.ErrInvalidArgument.WithMessage("a trace needs src (a container or sandbox) and dst (a container, sandbox, address or host, with an optional :PORT[/PROTO])")
	}
	from, err := d.tracePeer(src)
	if err != nil {
		return err
	}
	t, err := parseTraceTarget(dst)
	if err != nil {
		return err
	}
	var to firewall.Target
	to.Proto, to.Port = t.proto, t.port
	switch {
	case t.host:
	case t.addr.IsValid():
		to.Addr = t.addr
		if id, ok := d.ctrl.SandboxWithAddress(t.addr); ok {
			p, err := d.ctrl.TracePeer(id)
			if err != nil {
				return err
			}
			to.Peer = &p
		} else if !localAddress(t.addr) {
			return errdefs.ErrNotFound.WithMessage(fmt.Sprintf("%s is neither the address of a container of berth's nor one of the host's", t.addr))
		}
	default:
		p, err := d.tracePeer(t.name)
		if err != nil {
			return err
		}
		to.Peer = &p
	}
	if to.Peer == nil && to.Port == 0 {
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("a trace to the host needs the port published there: %s:PORT[/PROTO]", dst))
	}
	res := d.ctrl.FirewallModel(d.fw.Table()).Trace(from, to)
	to.Addr = res.Addr
	return writeJSON(w, http.StatusOK, api.TraceReport{
		Source: from.Name, Destination: describeTarget(to), Reachable: res.Verdict == firewall.Allowed,
		Verdict: string(res.Verdict), Rule: res.Rule, Path: res.Path, Reason: res.Reason, Notes: res.Notes,
	})
}

func describeTarget(to firewall.Target) string {
	s := "the host"
	if to.Peer != nil {
		s = to.Peer.Name
	}
	if to.Addr.IsValid() {
		s += " (" + to.Addr.String() + ")"
	}
	if to.Port != 0 {
		s += fmt.Sprintf(", port %d/%s", to.Port, to.Proto)
	}
	return s
}

// tracePeer finds a container, or a sandbox, as a trace sees it. A
// container on another's namespace (container:NAME) is traced as that
// one.
func (d *Daemon) tracePeer(term string) (firewall.Peer, error) {
	if c, err := d.containers.Get(term); err == nil {
		if other, ok := strings.CutPrefix(string(c.Host.NetworkMode), "container:"); ok {
			if c, err = d.containers.Get(other); err != nil {
				return firewall.Peer{}, err
			}
		}
		switch {
		case c.Host.NetworkMode == "host":
			return firewall.Peer{}, errdefs.ErrConflict.WithMessage(fmt.Sprintf("container %s is on the host's network namespace: its traffic is the host's own, which berth's firewall does not filter", c.Name))
		case !c.State.Running():
			return firewall.Peer{}, errdefs.ErrConflict.WithMessage(fmt.Sprintf("container %s is not running: it has no network endpoints", c.Name))
		}
		term = c.ID
	}
	p, err := d.ctrl.TracePeer(term)
	if errdefs.IsNotFound(err) {
		return firewall.Peer{}, errdefs.ErrNotFound.WithMessage("no such container or sandbox: " + term)
	}
	return p, err
}

// traceTarget is a trace's dst as given.
type traceTarget struct {
	name  string
	addr  netip.Addr
	host  bool
	port  uint16
	proto string
}

// parseTraceTarget reads NAME, ADDRESS, host or [IPv6], each with an
// optional :PORT[/PROTO]; an IPv6 address with a port is bracketed.
func parseTraceTarget(s string) (traceTarget, error) {
	bad := func(why string) (traceTarget, error) {
		return traceTarget{}, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("invalid trace destination %q: %s", s, why))
	}
	t := traceTarget{proto: "tcp"}
	rest := s
	i := strings.LastIndexByte(rest, '/')
	if i >= 0 {
		t.proto = strings.ToLower(rest[i+1:])
		rest = rest[:i]
		if t.proto != "tcp" && t.proto != "udp" && t.proto != "sctp" {
			return bad("the protocol is tcp, udp or sctp")
		}
	}
	if a, err := netip.ParseAddr(rest); err == nil {
		t.addr = a.Unmap()
		return t, nil
	}
	name, port := rest, ""
	switch {
	case strings.HasPrefix(rest, "["):
		end := strings.Index(rest, "]")
		if end < 0 {
			return bad("no ] after the IPv6 address")
		}
		name, port = rest[1:end], strings.TrimPrefix(rest[end+1:], ":")
		if rest[end+1:] != "" && !strings.HasPrefix(rest[end+1:], ":") {
			return bad("a port follows the address after a colon")
		}
		if _, err := netip.ParseAddr(name); err != nil {
			return bad("not an IPv6 address in brackets")
		}
	case strings.Contains(rest, ":"):
		colon := strings.LastIndexByte(rest, ':')
		name, port = rest[:colon], rest[colon+1:]
	}
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return bad("the port is a number from 1 to 65535")
		}
		t.port = uint16(n)
	} else if strings.HasSuffix(rest, ":") {
		return bad("no port after the colon")
	}
	if i >= 0 && t.port == 0 {
		return bad("a protocol goes with a port")
	}
	switch a, err := netip.ParseAddr(name); {
	case name == "":
		return bad("no container, address or host")
	case name == "host":
		t.host = true
	case err == nil:
		t.addr = a.Unmap()
	default:
		t.name = name
	}
	return t, nil
}

// localAddress tells whether a is one of the host's addresses.
func localAddress(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if n, ok := x.(*net.IPNet); ok {
			if b, ok := netip.AddrFromSlice(n.IP); ok && b.Unmap() == a {
				return true
			}
		}
	}
	return false
}
