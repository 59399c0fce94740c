// Package firewall is berth's nftables ruleset: masquerade, isolation
// between networks, internal networks, inter-container traffic and
// published ports, in one table of berth's own (inet, plus a bridge-family
// table for traffic between containers of one bridge).
//
// The rules are fixed; everything that varies — bridges, subnets, published
// ports — lives in sets and maps, so a network or a port is an element
// update, not a new rule, and costs the same at 10,000 ports as at one. The
// whole table is built in one netlink transaction, and every change after
// that is one transaction too. The package never writes any table but its
// own, besides the small table of berth's in a container's namespace that
// sends 127.0.0.11:53 to the resolver's sockets; of other tables it reads
// only the forward chains that drop by policy, to report them. Traces
// answer from the model of the tables (Model.Trace), sending nothing.
package firewall
