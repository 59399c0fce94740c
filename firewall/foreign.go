package firewall

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// ForeignChain is a base chain of another table on the forward hook whose
// policy drops what its rules do not accept (iptables' FORWARD with
// policy DROP, as Docker sets it). berth cannot overrule it: a drop in
// any base chain of a hook is final. It only reads such chains, to tell
// which of its bridges they let through.
type ForeignChain struct {
	Family string // ip, ip6, inet or bridge
	Table  string
	Chain  string
	// In and Out are the interfaces the chain accepts traffic in on and
	// out on, by rules of its own or of the chains it jumps to
	// unconditionally; a trailing * makes a prefix (iptables' br+). In
	// the bridge family they are bridges (meta ibrname and obrname).
	In, Out []string
	// Jumps are the chains it jumps to unconditionally, directly or
	// through others (iptables' -j DOCKER-USER).
	Jumps []string
}

// Accepts tells whether the chain accepts traffic in on (or out on) a
// device.
func (c ForeignChain) Accepts(device string, out bool) bool {
	names := c.In
	if out {
		names = c.Out
	}
	for _, n := range names {
		if p, ok := strings.CutSuffix(n, "*"); ok && strings.HasPrefix(device, p) || n == device {
			return true
		}
	}
	return false
}

// ForeignForwardDrops lists the forward chains of other tables, of every
// family that sees forwarded traffic, that drop by policy.
func (f *Firewall) ForeignForwardDrops() ([]ForeignChain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	chains, err := f.conn.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	ours := func(t *nftables.Table) bool {
		return t.Name == f.inet.Name && (t.Family == f.inet.Family || t.Family == f.bridge.Family)
	}
	var out []ForeignChain
	for _, c := range chains {
		fam := familyName(c.Table.Family)
		if c.Table.Family == nftables.TableFamilyBridge {
			fam = "bridge"
		}
		if ours(c.Table) || c.Hooknum == nil || *c.Hooknum != *nftables.ChainHookForward ||
			c.Policy == nil || *c.Policy != nftables.ChainPolicyDrop ||
			(fam != "ip" && fam != "ip6" && fam != "inet" && fam != "bridge") {
			continue
		}
		fc := ForeignChain{Family: fam, Table: c.Table.Name, Chain: c.Name}
		rules := map[string][]*nftables.Rule{}
		for _, other := range chains {
			if other.Table.Name != c.Table.Name || other.Table.Family != c.Table.Family {
				continue
			}
			rs, err := f.conn.GetRules(c.Table, other)
			if err != nil {
				return nil, fmt.Errorf("list rules of %s %s %s: %w", fam, c.Table.Name, other.Name, err)
			}
			rules[other.Name] = rs
		}
		fc.In, fc.Out, fc.Jumps = acceptedDevices(rules, c.Name, fam == "bridge")
		out = append(out, fc)
	}
	return out, nil
}

// maxJumps bounds how many chains acceptedDevices follows from a base
// chain.
const maxJumps = 16

// acceptedDevices reads the interfaces a chain accepts traffic in on and
// out on: rules that match one name and accept (counters aside), in the
// chain or in the chains it jumps to unconditionally (iptables'
// -j DOCKER-USER), which it lists. Other rules are not understood, so not
// counted.
func acceptedDevices(rules map[string][]*nftables.Rule, chain string, bridge bool) (in, out, jumps []string) {
	inKey, outKey := expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME
	if bridge {
		inKey, outKey = expr.MetaKeyBRIIIFNAME, expr.MetaKeyBRIOIFNAME
	}
	seen := map[string]bool{}
	queue := []string{chain}
	for len(queue) > 0 && len(seen) < maxJumps {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		if name != chain {
			jumps = append(jumps, name)
		}
		for _, r := range rules[name] {
			var exprs []expr.Any
			for _, e := range r.Exprs {
				if _, ok := e.(*expr.Counter); !ok {
					exprs = append(exprs, e)
				}
			}
			if len(exprs) == 1 {
				if v, ok := exprs[0].(*expr.Verdict); ok && (v.Kind == expr.VerdictJump || v.Kind == expr.VerdictGoto) {
					queue = append(queue, v.Chain)
				}
				continue
			}
			if len(exprs) != 3 {
				continue
			}
			m, okM := exprs[0].(*expr.Meta)
			c, okC := exprs[1].(*expr.Cmp)
			v, okV := exprs[2].(*expr.Verdict)
			if !okM || !okC || !okV || v.Kind != expr.VerdictAccept || c.Op != expr.CmpOpEq || c.Register != m.Register {
				continue
			}
			// iptables and nft end a name with NUL; a name that ends
			// without one is a prefix (iptables' br+, nft's "br*").
			dev := string(bytes.TrimRight(c.Data, "\x00"))
			if !bytes.HasSuffix(c.Data, []byte{0}) {
				dev += "*"
			}
			switch m.Key {
			case inKey:
				in = append(in, dev)
			case outKey:
				out = append(out, dev)
			}
		}
	}
	return in, out, jumps
}
