package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// fakeContainer is a container of the fake daemon: routes for create,
// attach, wait, start and kill that behave like berthd's, around a main
// function that plays the container's process.
type fakeContainer struct {
	id       string
	warnings []string
	// main runs when the container starts, with its stdin (empty unless an
	// attach asked for it), its stdout and stderr (the attach's, or
	// discarded) and the signals kill sends it; it returns the exit code.
	main func(p fakeProcess) int
	// startError, when set, is the daemon's refusal to start it.
	startError string
	// waitError, when set, is what the daemon answers a wait with.
	waitError string

	mu      sync.Mutex
	conn    net.Conn      // the attach's hijacked connection, if any
	stdin   io.Reader     // what the attach sends, if it asked for stdin
	exited  chan struct{} // closed when main has returned
	code    int
	signals chan string
}

type fakeProcess struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	signals        <-chan string
}

// prints is a container main that prints out and errOut and exits with code.
func prints(out, errOut string, code int) func(fakeProcess) int {
	return func(p fakeProcess) int {
		io.WriteString(p.stdout, out)
		io.WriteString(p.stderr, errOut)
		return code
	}
}

// addContainer registers the routes of fc.
func (d *fakeDaemon) addContainer(fc *fakeContainer) {
	fc.exited = make(chan struct{})
	fc.signals = make(chan string, 8)
	if fc.warnings == nil {
		fc.warnings = []string{}
	}
	d.answer("POST /containers/create", http.StatusCreated, map[string]any{"Id": fc.id, "Warnings": fc.warnings})
	d.handle("POST /containers/{id}/attach", func(w http.ResponseWriter, r *http.Request) {
		conn, rw := hijack(d.t, w)
		fc.mu.Lock()
		fc.conn = conn
		fc.stdin = strings.NewReader("")
		if r.URL.Query().Get("stdin") == "1" {
			fc.stdin = rw.Reader
		}
		fc.mu.Unlock()
		// Only now may the client go on to start the container.
		upgrade(conn)
		<-fc.exited
		conn.Close()
	})
	d.handle("POST /containers/{id}/wait", func(w http.ResponseWriter, r *http.Request) {
		if fc.waitError != "" {
			writeJSON(w, http.StatusOK, map[string]any{"StatusCode": -1, "Error": map[string]string{"Message": fc.waitError}})
			return
		}
		// berthd's answer: the status line at once, the body at the exit.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-fc.exited:
			fmt.Fprintf(w, `{"StatusCode":%d}`+"\n", fc.code)
		case <-r.Context().Done():
		}
	})
	d.handle("POST /containers/{id}/start", func(w http.ResponseWriter, _ *http.Request) {
		if fc.startError != "" {
			writeError(w, http.StatusBadRequest, fc.startError)
			return
		}
		fc.mu.Lock()
		p := fakeProcess{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, signals: fc.signals}
		if fc.conn != nil {
			p.stdin = fc.stdin
			p.stdout = frameWriter{fc.conn, 1}
			p.stderr = frameWriter{fc.conn, 2}
		}
		fc.mu.Unlock()
		go func() {
			fc.code = fc.main(p)
			close(fc.exited)
		}()
		w.WriteHeader(http.StatusNoContent)
	})
	d.handle("POST /containers/{id}/kill", func(w http.ResponseWriter, r *http.Request) {
		fc.signals <- r.URL.Query().Get("signal")
		w.WriteHeader(http.StatusNoContent)
	})
}

// fakeExec is an exec of the fake daemon: create, start (detached or
// hijacked) and inspect, around main as in fakeContainer.
type fakeExec struct {
	id   string
	main func(p fakeProcess) int

	done chan struct{}
	code int
}

func (d *fakeDaemon) addExec(fx *fakeExec) {
	fx.done = make(chan struct{})
	d.answer("POST /containers/{id}/exec", http.StatusCreated, map[string]string{"Id": fx.id})
	d.handle("POST /exec/{id}/start", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Detach bool }
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &req)
		if req.Detach {
			go func() {
				fx.code = fx.main(fakeProcess{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard})
				close(fx.done)
			}()
			w.WriteHeader(http.StatusOK)
			return
		}
		conn, rw := hijack(d.t, w)
		defer conn.Close()
		upgrade(conn)
		fx.code = fx.main(fakeProcess{stdin: rw.Reader, stdout: frameWriter{conn, 1}, stderr: frameWriter{conn, 2}})
		close(fx.done)
	})
	d.handle("GET /exec/{id}/json", func(w http.ResponseWriter, _ *http.Request) {
		<-fx.done
		writeJSON(w, http.StatusOK, map[string]any{"ID": fx.id, "Running": false, "ExitCode": fx.code})
	})
}

// hijack takes the connection over from the HTTP server, as berthd does
// for attach and exec start; upgrade then answers the request.
func hijack(t *testing.T, w http.ResponseWriter) (net.Conn, *bufio.ReadWriter) {
	conn, rw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		panic(http.ErrAbortHandler)
	}
	return conn, rw
}

// upgrade answers 101 UPGRADED: from here the connection is a raw stream.
func upgrade(conn net.Conn) {
	fmt.Fprint(conn, "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n"+
		"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
}

// frameWriter writes each Write as one frame of a multiplexed stream:
// stream 1 is stdout, 2 stderr.
type frameWriter struct {
	w      io.Writer
	stream byte
}

func (f frameWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var hdr [8]byte
	hdr[0] = f.stream
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(p)))
	if _, err := f.w.Write(append(hdr[:], p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// paths lists the requests the daemon got, as "METHOD /path?query", in
// the order they came.
func (d *fakeDaemon) paths() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]string, len(d.requests))
	for i, r := range d.requests {
		out[i] = r.Method + " " + r.Path
		if q := encodeQuery(r.Query); q != "" {
			out[i] += "?" + q
		}
	}
	return out
}

func encodeQuery(q map[string][]string) string { return url.Values(q).Encode() }
