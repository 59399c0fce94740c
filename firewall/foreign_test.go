package firewall

import (
	"slices"
	"testing"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// match is a rule "<meta key> <name> accept" as iptables-nft and nft send
// it: a name ending in NUL, or a prefix without one.
func match(key expr.MetaKey, data string, counter bool) *nftables.Rule {
	exprs := []expr.Any{&expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(data)}}
	if counter {
		exprs = append(exprs, &expr.Counter{})
	}
	return &nftables.Rule{Exprs: append(exprs, &expr.Verdict{Kind: expr.VerdictAccept})}
}

func jump(chain string) *nftables.Rule {
	return &nftables.Rule{Exprs: []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictJump, Chain: chain}}}
}

func TestAcceptedDevicesOfAForwardChain(t *testing.T) {
	in, out := expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME
	rules := map[string][]*nftables.Rule{
		// iptables -I DOCKER-USER -i br-a -j ACCEPT, and so on.
		"FORWARD": {
			jump("DOCKER-USER"),
			match(in, "eth0\x00", true),
			// Conditional: not understood, not counted.
			{Exprs: []expr.Any{&expr.Meta{Key: in, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte("br-c\x00")},
				&expr.Ct{Key: expr.CtKeySTATE, Register: 1}, &expr.Verdict{Kind: expr.VerdictAccept}}},
			{Exprs: []expr.Any{&expr.Meta{Key: out, Register: 1}, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte("br-d\x00")},
				&expr.Verdict{Kind: expr.VerdictAccept}}},
			match(out, "br-e\x00", false),
		},
		"DOCKER-USER": {match(in, "br-a\x00", true), match(out, "br-a\x00\x00\x00\x00", false), match(in, "berth", true), jump("LOOP")},
		"LOOP":        {jump("DOCKER-USER"), match(out, "br-b\x00", false)},
		"UNUSED":      {match(in, "br-z\x00", false)},
	}
	gotIn, gotOut, jumps := acceptedDevices(rules, "FORWARD", false)
	if !slices.Equal(jumps, []string{"DOCKER-USER", "LOOP"}) {
		t.Errorf("jumps = %q", jumps)
	}
	if want := []string{"eth0", "br-a", "berth*"}; !slices.Equal(slices.Sorted(slices.Values(gotIn)), slices.Sorted(slices.Values(want))) {
		t.Errorf("in = %q, want %q", gotIn, want)
	}
	if want := []string{"br-e", "br-a", "br-b"}; !slices.Equal(slices.Sorted(slices.Values(gotOut)), slices.Sorted(slices.Values(want))) {
		t.Errorf("out = %q, want %q", gotOut, want)
	}
	c := ForeignChain{In: gotIn, Out: gotOut}
	for _, tc := range []struct {
		dev  string
		out  bool
		want bool
	}{
		{"br-a", false, true}, {"br-a", true, true}, {"berth0", false, true}, {"berth0", true, false},
		{"br-b", false, false}, {"br-b", true, true}, {"br-c", false, false}, {"br-d", true, false}, {"br-z", false, false},
	} {
		if got := c.Accepts(tc.dev, tc.out); got != tc.want {
			t.Errorf("Accepts(%s, out=%t) = %t, want %t", tc.dev, tc.out, got, tc.want)
		}
	}
}

func TestAcceptedBridgesOfABridgeForwardChain(t *testing.T) {
	rules := map[string][]*nftables.Rule{"forward": {
		match(expr.MetaKeyBRIIIFNAME, "br-a\x00", false),
		match(expr.MetaKeyBRIOIFNAME, "br-a\x00", false),
		// The port, not the bridge: no help to a bridge.
		match(expr.MetaKeyIIFNAME, "br-b\x00", false),
	}}
	in, out, _ := acceptedDevices(rules, "forward", true)
	if !slices.Equal(in, []string{"br-a"}) || !slices.Equal(out, []string{"br-a"}) {
		t.Errorf("in %q, out %q; want br-a both ways", in, out)
	}
}
