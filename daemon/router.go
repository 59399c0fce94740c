package daemon

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"regexp"
	"runtime/debug"
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
		if r.RequestURI == "*" {
			// The mux would answer with a bare 400, without a message.
			writeError(w, errdefs.ErrInvalidArgument.WithMessage("invalid request target *: berthd's API has paths only"))
			return
		}
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
	d.handle(mux, "GET /berth/doctor", d.doctor)
	d.handle(mux, "GET /berth/trace", d.trace)

	d.containerRoutes(mux)
	d.imageRoutes(mux)
	d.volumeRoutes(mux)
	d.handle(mux, "GET /events", d.streamEvents)
	d.handle(mux, "GET /plugins", d.listPlugins)
	// Prometheus' text format; also on --metrics-addr when given.
	mux.Handle("GET /metrics", d.metrics.Handler())
	d.swarmRoutes(mux)
	d.uiRoutes(mux)

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
		status := writeError(w, errdefs.ErrNotFound.WithMessage("page not found"))
		d.cfg.Log.Info("request for no route berthd serves", "method", r.Method, "path", r.URL.Path, "status", status)
	})
	return d.recoverPanics(withVersion(limitInFlight(mux, maxInFlight)))
}

// The API's bounds (README, "Bounds"). A JSON body is decoded whole, so
// the memory requests take is at most maxInFlight times what a body of
// maxBodyBytes decodes to; import bodies are streamed to disk and not
// bounded here.
const (
	// maxBodyBytes bounds a JSON request body. Docker's largest requests
	// (a container create with its environment and labels) are kilobytes.
	maxBodyBytes = 1 << 20
	// maxInFlight bounds the requests handled at once, streams aside.
	maxInFlight = 64
)

var (
	// slotWait is how long a request waits for one of the maxInFlight
	// slots before it is refused.
	slotWait = 30 * time.Second
	// bodyTimeout bounds the reading of a JSON body, so a client sending
	// it slowly holds a slot for no longer.
	bodyTimeout = 30 * time.Second
)

// unlimited tells the routes that take no slot: health checks and
// profiles, which must answer a daemon that is busy, streams, which last
// as long as a container or a process does, and stops, which wait up to
// their timeout for a process to end. They cost a connection, and copy
// buffers for a stream, rather than a decoded body.
func unlimited(pattern string) bool {
	switch pattern {
	case "GET /_ping", "HEAD /_ping",
		"POST /containers/{id}/attach", "POST /containers/{id}/wait", "GET /containers/{id}/logs", "POST /exec/{id}/start",
		"POST /containers/{id}/stop", "POST /containers/{id}/restart", "GET /events":
		return true
	}
	return strings.HasPrefix(pattern, "GET /debug/pprof/")
}

// limitInFlight lets at most n requests into mux at once; the others wait
// their turn for up to slotWait, or until their client gives up.
func limitInFlight(mux *http.ServeMux, n int) http.Handler {
	slots := make(chan struct{}, n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); unlimited(pattern) {
			mux.ServeHTTP(w, r)
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			wait := time.NewTimer(slotWait)
			defer wait.Stop()
			select {
			case slots <- struct{}{}:
			case <-wait.C:
				writeError(w, errdefs.ErrUnavailable.WithMessage(fmt.Sprintf(
					"berthd is busy: %d API requests are in progress, the most it handles at once, and this one waited %s for its turn; try again", n, slotWait)))
				return
			case <-r.Context().Done():
				return
			}
		}
		defer func() { <-slots }()
		mux.ServeHTTP(w, r)
	})
}

// recoverPanics turns a handler's panic into a 500 that says so, with the
// stack in the log: a bad request must never end berthd, nor leave its
// client without an answer.
func (d *Daemon) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &trackingWriter{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			d.cfg.Log.Error("panic in API handler", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			if tw.written {
				// Part of an answer went out: cut the connection so that
				// the client cannot take it for the whole.
				panic(http.ErrAbortHandler)
			}
			writeError(tw, fmt.Errorf("berthd failed on %s %s: panic: %v; this is a bug in berthd, whose log has the stack", r.Method, r.URL.Path, v))
		}()
		next.ServeHTTP(tw, r)
	})
}

// trackingWriter notes whether anything of the answer went out. It keeps
// what the handlers use of the server's writer: flushing and hijacking.
// It keeps the status code too, for the request metrics.
type trackingWriter struct {
	http.ResponseWriter
	written bool
	code    int
}

func (w *trackingWriter) WriteHeader(code int) {
	w.written = true
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *trackingWriter) Write(b []byte) (int, error) {
	w.written = true
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *trackingWriter) Flush() {
	w.written = true
	http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *trackingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.written = true
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *trackingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// statusOf is the status code w sent: that a trackingWriter under it
// saw, else 200.
func statusOf(w http.ResponseWriter) int {
	for range 8 {
		if tw, ok := w.(*trackingWriter); ok {
			if tw.code != 0 {
				return tw.code
			}
			break
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	return http.StatusOK
}

// handle registers fn for pattern, writing the error it returns.
func (d *Daemon) handle(mux *http.ServeMux, pattern string, fn apiFunc) {
	route, method := routeLabels(pattern)
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if err := fn(w, r); err != nil {
			status := writeError(w, err)
			d.metrics.Request(route, method, status, time.Since(start))
			level := slog.LevelDebug
			if status == http.StatusNotImplemented || status == http.StatusServiceUnavailable || status >= 500 {
				// What berthd cannot serve, as opposed to a client's mistake.
				level = slog.LevelInfo
			}
			d.cfg.Log.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err, "took", time.Since(start))
			return
		}
		took := time.Since(start)
		d.metrics.Request(route, method, statusOf(w), took)
		d.cfg.Log.Debug("request", "method", r.Method, "path", r.URL.Path, "took", took)
	})
}

// writeError answers {"message": ...} with the status of the error's class:
// the one place where errors become HTTP statuses.
func writeError(w http.ResponseWriter, err error) int {
	status := errhttp.ToHTTP(err)
	if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
		status = http.StatusRequestEntityTooLarge
	}
	writeJSON(w, status, common.ErrorResponse{Message: err.Error()})
	return status
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// readJSON decodes a request body the way dockerd does: an empty body and
// malformed JSON are the client's fault (400). Unlike dockerd it reads at
// most maxBodyBytes (more is a 413) within bodyTimeout.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("unsupported Content-Type header (%s): must be 'application/json'", ct))
		}
	}
	// The whole body is read within the deadline, what follows the value
	// included: the server would otherwise read that after the handler
	// had answered, without one. The deadline then goes, or it would end
	// the request's context while a long operation runs; after a failure
	// it stays, so that the server gives up the rest and closes the
	// connection. Writers that cannot take one (tests' recorders) read
	// without.
	rc := http.NewResponseController(w)
	timed := rc.SetReadDeadline(time.Now().Add(bodyTimeout)) == nil
	body := http.MaxBytesReader(w, r.Body, maxBodyBytes)
	err := json.NewDecoder(body).Decode(v)
	if err == nil {
		_, err = io.Copy(io.Discard, body)
	}
	if err == nil && timed {
		rc.SetReadDeadline(time.Time{})
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return fmt.Errorf("request body too large: berthd reads JSON bodies of at most %d bytes: %w", maxBodyBytes, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errdefs.ErrInvalidArgument.WithMessage(fmt.Sprintf("request body not received within %s", bodyTimeout))
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
