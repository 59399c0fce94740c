package firewall

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestRulesAndElementsAreWhatNftSends holds the golden files to what nft
// itself sends for the same ruleset: testdata/nft/*.debug is the output
// of `nft --debug=netlink -c -f` for testdata/nft/*.nft (how to
// regenerate it is in the .nft files). Chains (type, hook, priority),
// every rule's expressions and every set element must be the same, up to
// what the kernel treats alike:
//
//   - registers: nft may name a 16-byte register (reg 1-4) where berth
//     names the 4-byte register it begins with (reg 8, 12, 16, 20);
//   - nat's NF_NAT_RANGE_PROTO_SPECIFIED (flags 0x2): nft leaves it out
//     when the port comes from a map, and the kernel sets it whenever a
//     proto register is given;
//   - what libnftnl does not print (set IDs of lookups, bitwise lengths)
//     is not compared here; the golden files hold it.
func TestRulesAndElementsAreWhatNftSends(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("nft's output was taken on a little-endian host")
	}
	for _, name := range []string{"rebuild", "redirect-dns"} {
		t.Run(name, func(t *testing.T) {
			i := slices.IndexFunc(goldenCases, func(c goldenCase) bool { return c.golden == name+".golden" })
			ours := parseOurs(record(t, goldenCases[i]))
			b, err := os.ReadFile(filepath.Join("testdata", "nft", name+".debug"))
			if err != nil {
				t.Fatal(err)
			}
			theirs := parseNft(string(b))
			if len(theirs.rules) == 0 {
				t.Fatal("no rules in nft's output")
			}
			compareLines(t, "chains", ours.chains, theirs.chains)
			if len(ours.rules) != len(theirs.rules) {
				t.Errorf("%d rules, nft sends %d", len(ours.rules), len(theirs.rules))
			}
			for j := range min(len(ours.rules), len(theirs.rules)) {
				compareLines(t, "rule "+strconv.Itoa(j+1), ours.rules[j], theirs.rules[j])
			}
			for set, want := range theirs.elements {
				compareLines(t, "elements of "+set, ours.elements[set], want)
			}
			for set := range ours.elements {
				if _, ok := theirs.elements[set]; !ok {
					t.Errorf("elements of %s, which nft does not send", set)
				}
			}
		})
	}
}

func compareLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s differ from nft's:\n ours:\n   %s\n nft's:\n   %s", what, strings.Join(got, "\n   "), strings.Join(want, "\n   "))
	}
}

// ruleset is what the comparison looks at: chains as "family type hook
// priority", rules as their header and expression lines, elements by set.
type ruleset struct {
	chains   []string
	rules    [][]string
	elements map[string][]string
}

var (
	regNumber = regexp.MustCompile(`\b(reg|dreg) ([1-4])\b`)
	natFlags  = regexp.MustCompile(`^(\[ nat .* proto_min reg \d+) flags 0x2 \]$`)
	nftChain  = regexp.MustCompile(`^(\S+) \(null\) \(null\) use \d+ type (\S+) hook (\S+) prio (-?\d+)`)
)

// expression is one expression line as compared: libnftnl's part only,
// registers by the 4-byte register they begin with.
func expression(line string) string {
	line = strings.TrimSpace(line)
	if i := strings.Index(line, "] "); i >= 0 {
		line = line[:i+1]
	}
	line = regNumber.ReplaceAllStringFunc(line, func(s string) string {
		f := strings.Fields(s)
		n, _ := strconv.Atoi(f[1])
		return f[0] + " " + strconv.Itoa(8+4*(n-1))
	})
	line = natFlags.ReplaceAllString(line, "$1 ]")
	// nft sends counters' starting values, berth none: both start at 0.
	return strings.Replace(line, "[ counter pkts 0 bytes 0 ]", "[ counter ]", 1)
}

// parseOurs reads a golden rendering.
func parseOurs(s string) ruleset {
	rs := ruleset{elements: map[string][]string{}}
	var msg, fam, table, set string
	var chain []string
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "  ") {
			f := strings.Fields(line)
			msg, fam = "", ""
			if len(f) >= 2 {
				msg, fam = f[0], f[1]
			}
			if msg == "NEWCHAIN" {
				chain = []string{fam}
			}
			continue
		}
		line = strings.TrimSpace(line)
		key, val, _ := strings.Cut(line, " ")
		switch {
		case msg == "NEWCHAIN" && key == "hook":
			// {hooknum <hook> priority <priority>}
			f := strings.Fields(strings.Trim(val, "{}"))
			if len(f) == 4 {
				chain = append(chain, f[1], f[3])
			}
		case msg == "NEWCHAIN" && key == "type" && len(chain) == 3:
			// nft prints family, type, hook, priority.
			rs.chains = append(rs.chains, strings.Join([]string{chain[0], val, chain[1], chain[2]}, " "))
		case msg == "NEWRULE" && key == "table":
			table = val
		case msg == "NEWRULE" && key == "chain":
			rs.rules = append(rs.rules, []string{fam + " " + table + " " + val})
		case msg == "NEWRULE" && strings.HasPrefix(line, "["):
			rs.rules[len(rs.rules)-1] = append(rs.rules[len(rs.rules)-1], expression(line))
		case msg == "NEWSETELEM" && key == "set":
			set = val
		case msg == "NEWSETELEM" && key == "element":
			el, _, _ := strings.Cut(line, "  # ")
			rs.elements[set] = append(rs.elements[set], el)
		}
	}
	return rs
}

// parseNft reads the output of nft --debug=netlink.
func parseNft(s string) ruleset {
	rs := ruleset{elements: map[string][]string{}}
	var set string
	inRule := false
	for _, line := range strings.Split(s, "\n") {
		switch {
		case line == "":
			inRule = false
		case nftChain.MatchString(line):
			m := nftChain.FindStringSubmatch(line)
			rs.chains = append(rs.chains, strings.Join(m[1:], " "))
		case strings.HasPrefix(line, "  ["):
			if inRule {
				rs.rules[len(rs.rules)-1] = append(rs.rules[len(rs.rules)-1], expression(line))
			}
		case strings.HasPrefix(line, "\telement "):
			for _, el := range strings.Split(strings.TrimPrefix(line, "\t"), "\t") {
				rs.elements[set] = append(rs.elements[set], el)
			}
		default:
			f := strings.Fields(line)
			if len(f) != 3 {
				continue
			}
			if _, err := strconv.Atoi(f[2]); err == nil {
				// A set: name, table, flags.
				set = f[0]
				continue
			}
			rs.rules = append(rs.rules, []string{line})
			inRule = true
		}
	}
	return rs
}
