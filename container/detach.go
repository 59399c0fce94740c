package container

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/containerd/errdefs"
)

// DefaultDetachKeys are Docker's: ctrl-p, ctrl-q.
var DefaultDetachKeys = []byte{16, 17}

// ParseDetachKeys reads Docker's detach keys: a comma-separated sequence
// of single characters and ctrl-<key> (a letter, @, [, \, ], ^ or _).
func ParseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		return DefaultDetachKeys, nil
	}
	var out []byte
	for _, k := range strings.Split(s, ",") {
		if len(k) == 1 {
			out = append(out, k[0])
			continue
		}
		key, ok := strings.CutPrefix(strings.ToLower(k), "ctrl-")
		if !ok || len(key) != 1 {
			return nil, errInvalidDetachKeys(s)
		}
		switch c := key[0]; {
		case c >= 'a' && c <= 'z':
			out = append(out, c-'a'+1)
		case c == '@':
			out = append(out, 0)
		case c >= '[' && c <= '_':
			out = append(out, c-'['+27)
		default:
			return nil, errInvalidDetachKeys(s)
		}
	}
	return out, nil
}

func errInvalidDetachKeys(s string) error {
	return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("Invalid detach keys (%s) provided", s))
}

// copyUntilDetach copies src to dst until src ends or sends keys, which
// are not copied. It reports whether keys came. Bytes that begin keys but
// do not finish them are passed on.
func copyUntilDetach(dst io.Writer, src io.Reader, keys []byte) bool {
	if len(keys) == 0 {
		io.Copy(dst, src)
		return false
	}
	buf := make([]byte, 32*1024)
	var held []byte // a prefix of keys seen at the end of the last read
	for {
		n, err := src.Read(buf)
		if n > 0 {
			data := append(held, buf[:n]...)
			held = nil
			if i := bytes.Index(data, keys); i >= 0 {
				dst.Write(data[:i])
				return true
			}
			// Keep back what may be the start of keys cut by the read.
			keep := 0
			for k := min(len(keys)-1, len(data)); k > 0; k-- {
				if bytes.Equal(data[len(data)-k:], keys[:k]) {
					keep = k
					break
				}
			}
			if _, werr := dst.Write(data[:len(data)-keep]); werr != nil {
				return false
			}
			held = append([]byte(nil), data[len(data)-keep:]...)
		}
		if err != nil {
			dst.Write(held)
			return false
		}
	}
}
