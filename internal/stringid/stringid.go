// Package stringid makes the 64-hex IDs of berth's objects (networks,
// endpoints, sandboxes, containers), in Docker's form.
package stringid

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// New returns a random 64-hex ID whose 12-character short form is not all
// digits: such a short ID reads like a number to tools and people, and
// Docker avoids them too.
func New() string {
	for {
		b := make([]byte, 32)
		rand.Read(b)
		id := hex.EncodeToString(b)
		if strings.Trim(id[:12], "0123456789") != "" {
			return id
		}
	}
}
