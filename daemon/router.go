package daemon

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/pprof"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errhttp"
	"github.com/moby/moby/api/types/common"
)

// APIVersion is the Engine API version whose JSON berthd speaks: that of
// the github.com/moby/moby/api types it encodes. Clients negotiate down to
// it through /_ping.
const (
	APIVersion    = "1.56"
	MinAPIVersion = "1.24"
)

type ctxKey int

const versionKey ctxKey = 0

// versionOf is the API version a request asked for (or ours).
func versionOf(r *http.Request) string {
	if v, ok := r.Context().Value(versionKey).(string); ok {
		return v
	}
	return APIVersion
}

var versionPrefix = regexp.MustCompile(`^/v([0-9]+\.[0-9]+)(/.*)$`)

// withVersion accepts both plain paths and /vX.Y/ prefixed ones, refusing
// versions outside what berthd speaks, as dockerd does.
func withVersion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := versionPrefix.FindStringSubmatch(r.URL.Path)
		if m != nil {
			v := m[1]
			switch {
			case compareVersions(v, MinAPIVersion) < 0:
				writeError(w, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(
					"client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", v, MinAPIVersion)))
				return
			case compareVersions(v, APIVersion) > 0:
				writeError(w, errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf(
					"client version %s is too new. Maximum supported API version is %s", v, APIVersion)))
				return
			}
			r2 := r.Clone(context.WithValue(r.Context(), versionKey, v))
			r2.URL.Path = m[2]
			r2.URL.RawPath = ""
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}

// compareVersions compares "1.41"-style versions numerically.
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return 0
}

// apiFunc is a handler that returns its error instead of writing it.
type apiFunc func(w http.ResponseWriter, r *http.Request) error

func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	d.handle(mux, "GET /_ping", d.ping)
	d.handle(mux, "HEAD /_ping", d.ping)
	d.handle(mux, "GET /version", d.version)
	d.handle(mux, "GET /info", d.info)

	d.handle(mux, "GET /networks", d.listNetworks)
	d.handle(mux, "GET /networks/{id}", d.inspectNetwork)
	d.handle(mux, "POST /networks/create", d.createNetwork)
	d.handle(mux, "DELETE /networks/{id}", d.deleteNetwork)
	d.handle(mux, "POST /networks/prune", d.pruneNetworks)

	d.handle(mux, "GET /sandboxes", d.listSandboxes)
	d.handle(mux, "POST /sandboxes/create", d.createSandbox)
	d.handle(mux, "GET /sandboxes/{id}", d.inspectSandbox)
	d.handle(mux, "DELETE /sandboxes/{id}", d.deleteSandbox)
	d.handle(mux, "POST /sandboxes/{id}/connect", d.connectSandbox)
	d.handle(mux, "POST /sandboxes/{id}/disconnect", d.disconnectSandbox)

	d.containerRoutes(mux)
	d.imageRoutes(mux)

	// Go's runtime profiles, served on the socket as dockerd serves them:
	//   curl --unix-socket /run/berth/berth.sock -o cpu.pprof \
	//     'http://berthd/debug/pprof/profile?seconds=10'
	//   go tool pprof bin/berthd cpu.pprof
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)

	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errdefs.ErrNotFound.WithMessage("page not found"))
	})
	return withVersion(mux)
}

// handle registers fn for pattern, writing the error it returns.
func (d *Daemon) handle(mux *http.ServeMux, pattern string, fn apiFunc) {
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if err := fn(w, r); err != nil {
			status := writeError(w, err)
			d.cfg.Log.Debug("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err, "took", time.Since(start))
			return
		}
		d.cfg.Log.Debug("request", "method", r.Method, "path", r.URL.Path, "took", time.Since(start))
	})
}

// writeError answers {"message": ...} with the status of the error's class:
// the one place where errors become HTTP statuses.
func writeError(w http.ResponseWriter, err error) int {
	status := errhttp.ToHTTP(err)
	writeJSON(w, status, common.ErrorResponse{Message: err.Error()})
	return status
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// readJSON decodes a request body the way dockerd does: an empty body and
// malformed JSON are the client's fault (400).
func readJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("unsupported Content-Type header (%s): must be 'application/json'", ct))
		}
	}
	err := json.NewDecoder(r.Body).Decode(v)
	switch {
	case errors.Is(err, io.EOF):
		return errdefs.ErrInvalidArgument.WithMessage("got EOF while reading request body")
	case err != nil:
		return errdefs.ErrInvalidArgument.WithMessage(err.Error())
	}
	return nil
}

func boolValue(r *http.Request, key string) bool {
	switch strings.ToLower(strings.TrimSpace(r.URL.Query().Get(key))) {
	case "", "0", "no", "false", "none":
		return false
	}
	return true
}

func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
