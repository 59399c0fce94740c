package remote

import (
	"encoding/json"
	"net/netip"
	"strings"

	"github.com/berth-net/berth/driver"
)

// A joined interface carries what its join gave in its alias, so that a
// restarted daemon can tell the controller again: Docker's protocol has
// no call that asks a plugin for it. The alias holds at most 255 bytes;
// routes that do not fit are left out (they stay in the sandbox's
// kernel all the same).
const (
	aliasPrefix = "berth-remote "
	maxAlias    = 255
)

type aliasRecord struct {
	G4 netip.Addr  `json:",omitzero"`
	G6 netip.Addr  `json:",omitzero"`
	R  [][2]string `json:",omitempty"`
}

func aliasOf(info driver.JoinInfo) string {
	rec := aliasRecord{G4: info.Gateway4, G6: info.Gateway6}
	for _, r := range info.Routes {
		via := ""
		if r.Via.IsValid() {
			via = r.Via.String()
		}
		rec.R = append(rec.R, [2]string{r.Dst.String(), via})
	}
	for {
		b, err := json.Marshal(rec)
		if err != nil {
			return ""
		}
		if s := aliasPrefix + string(b); len(s) <= maxAlias {
			return s
		}
		if len(rec.R) == 0 {
			return ""
		}
		rec.R = rec.R[:len(rec.R)-1]
	}
}

// infoOfAlias reads an alias aliasOf wrote; ok is false for any other.
func infoOfAlias(alias string) (driver.JoinInfo, bool) {
	s, ok := strings.CutPrefix(alias, aliasPrefix)
	if !ok {
		return driver.JoinInfo{}, false
	}
	var rec aliasRecord
	if err := json.Unmarshal([]byte(s), &rec); err != nil {
		return driver.JoinInfo{}, false
	}
	info := driver.JoinInfo{Gateway4: rec.G4, Gateway6: rec.G6}
	for _, r := range rec.R {
		dst, err := netip.ParsePrefix(r[0])
		if err != nil {
			return driver.JoinInfo{}, false
		}
		route := driver.Route{Dst: dst}
		if r[1] != "" {
			if route.Via, err = netip.ParseAddr(r[1]); err != nil {
				return driver.JoinInfo{}, false
			}
		}
		info.Routes = append(info.Routes, route)
	}
	return info, true
}
