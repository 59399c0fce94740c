package daemon

import (
	"slices"
	"testing"

	"github.com/berth-net/berth/firewall"
)

func TestTheRulesThatLetABridgeThroughAForeignChain(t *testing.T) {
	for _, tc := range []struct {
		name    string
		chain   firewall.ForeignChain
		in, out bool
		want    []string
	}{
		{"Docker's iptables: into DOCKER-USER", firewall.ForeignChain{Family: "ip", Table: "filter", Chain: "FORWARD", Jumps: []string{"DOCKER-USER"}}, true, true,
			[]string{"iptables -I DOCKER-USER -i br-1 -j ACCEPT", "iptables -I DOCKER-USER -o br-1 -j ACCEPT"}},
		{"Docker's ip6tables, out only", firewall.ForeignChain{Family: "ip6", Table: "filter", Chain: "FORWARD", Jumps: []string{"DOCKER-USER"}}, false, true,
			[]string{"ip6tables -I DOCKER-USER -o br-1 -j ACCEPT"}},
		{"iptables without a jump to DOCKER-USER", firewall.ForeignChain{Family: "ip", Table: "filter", Chain: "FORWARD", Jumps: []string{"ufw-before-forward"}}, true, false,
			[]string{`nft insert rule ip filter FORWARD iifname "br-1" accept`}},
		{"an inet table", firewall.ForeignChain{Family: "inet", Table: "firewalld", Chain: "filter_FORWARD", Jumps: []string{"DOCKER-USER"}}, true, true,
			[]string{`nft insert rule inet firewalld filter_FORWARD iifname "br-1" accept`, `nft insert rule inet firewalld filter_FORWARD oifname "br-1" accept`}},
		{"a bridge table matches bridges, not ports", firewall.ForeignChain{Family: "bridge", Table: "filter", Chain: "forward"}, true, true,
			[]string{`nft insert rule bridge filter forward meta ibrname "br-1" accept`, `nft insert rule bridge filter forward meta obrname "br-1" accept`}},
	} {
		if got := acceptRules(tc.chain, "br-1", tc.in, tc.out); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
