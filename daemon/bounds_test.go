package daemon

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The API's bounds (README, "Bounds"), against a daemon over fakes served
// on a real socket. Each test fails without its bound.

// errorMessage is the message of an error answer.
func errorMessage(t *testing.T, body []byte) string {
	t.Helper()
	var e struct{ Message string }
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error answer %q: %v", body, err)
	}
	return e.Message
}

func post(t *testing.T, srv *httptest.Server, path, body string) (int, []byte) {
	t.Helper()
	resp, err := srv.Client().Post(srv.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func TestJSONBodyOverOneMiBIsRefusedWith413(t *testing.T) {
	fd := newFakeDaemon(t)
	big := `{"Name":"big","Labels":{"l":"` + strings.Repeat("x", 2<<20) + `"}}`
	code, body := fd.do("POST", "/networks/create", big)
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB body: %d %.200s, want 413", code, body)
	}
	want := "request body too large: berthd reads JSON bodies of at most 1048576 bytes: http: request body too large"
	if msg := errorMessage(t, body); msg != want {
		t.Errorf("message %q, want %q", msg, want)
	}
	if _, err := fd.ctrl.LookupNetwork("big"); err == nil {
		t.Error("the network of the refused request exists")
	}
	// Just under the bound is fine.
	fd.mustDo(t, "POST", "/networks/create", `{"Name":"large","Labels":{"l":"`+strings.Repeat("x", maxBodyBytes-100)+`"}}`, http.StatusCreated)
}

func TestInFlightRequestsAreBoundedAndTheRestWaitThenGet503(t *testing.T) {
	defer func(w time.Duration) { slotWait = w }(slotWait)
	slotWait = 300 * time.Millisecond
	fd := newFakeDaemon(t)
	srv := httptest.NewServer(fd.handler)
	defer srv.Close()
	srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 2 * maxInFlight

	fd.gate.arm()
	const extra = 8
	type result struct {
		code int
		body []byte
	}
	results := make(chan result, maxInFlight+extra)
	for i := range maxInFlight + extra {
		go func() {
			code, body := post(t, srv, "/networks/create", fmt.Sprintf(`{"Name":"n%d","IPAM":{"Config":[{"Subnet":"10.100.%d.0/24"}]}}`, i, i))
			results <- result{code, body}
		}()
	}
	// The requests over the bound wait their turn, then are refused.
	for range extra {
		select {
		case r := <-results:
			msg := errorMessage(t, r.body)
			if r.code != http.StatusServiceUnavailable || !strings.HasPrefix(msg, "berthd is busy: 64 API requests are in progress") {
				t.Errorf("request over the bound: %d %q, want 503 berthd is busy", r.code, msg)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no request was refused")
		}
	}
	if inside, most := fd.gate.count(); inside != maxInFlight || most != maxInFlight {
		t.Errorf("%d requests inside, at most %d, want %d", inside, most, maxInFlight)
	}
	// Health checks still answer while every slot is taken.
	resp, err := srv.Client().Get(srv.URL + "/_ping")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("ping while busy: %v %v", resp, err)
	}
	resp.Body.Close()
	fd.gate.release()
	for range maxInFlight {
		if r := <-results; r.code != http.StatusCreated {
			t.Errorf("request within the bound: %d %s", r.code, r.body)
		}
	}
}

func TestJSONBodySentTooSlowlyIsCutOff(t *testing.T) {
	defer func(d time.Duration) { bodyTimeout = d }(bodyTimeout)
	bodyTimeout = 200 * time.Millisecond
	fd := newFakeDaemon(t)
	srv := httptest.NewServer(fd.handler)
	defer srv.Close()
	// A body cut short, and one whose JSON is whole but whose length says
	// more is to come: both hold the request until the deadline only.
	for _, sent := range []string{`{"Name":"s`, `{"Name":"t"}`} {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /networks/create HTTP/1.1\r\nHost: berthd\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n%s", sent)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer to a stalled body %s: %v", sent, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if msg := errorMessage(t, body); resp.StatusCode != http.StatusBadRequest || msg != "request body not received within 200ms" {
			t.Fatalf("stalled body %s: %d %q", sent, resp.StatusCode, msg)
		}
	}
	if _, err := fd.ctrl.LookupNetwork("t"); err == nil {
		t.Error("the network of a request whose body never came was made")
	}
	// A request that runs longer than the body's deadline keeps its
	// context: the deadline went with the body.
	code, out := post(t, srv, "/networks/create", `{"Name":"after"}`)
	if code != http.StatusCreated {
		t.Fatalf("create after: %d %s", code, out)
	}
}

func TestImportIsStreamedToDiskNotHeldInMemory(t *testing.T) {
	fd := newFakeDaemon(t)
	srv := httptest.NewServer(fd.handler)
	defer srv.Close()
	const size = 8 << 20
	pr, pw := io.Pipe()
	done := make(chan struct{})
	var code int
	var body []byte
	go func() {
		defer close(done)
		resp, err := srv.Client().Post(srv.URL+"/images/create?fromSrc=-&repo=big", "application/x-tar", pr)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		code = resp.StatusCode
		body, _ = io.ReadAll(resp.Body)
	}()
	tw := tar.NewWriter(pw)
	if err := tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: size}); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for range size / len(chunk) / 2 {
		tw.Write(chunk)
	}
	// Half the file is sent: the daemon has it on disk already, while the
	// rest of the body is still to come.
	var onDisk int64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		matches, _ := filepath.Glob(filepath.Join(fd.cfg.Root, "images", "*", "rootfs", "big"))
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil {
				onDisk = fi.Size()
			}
		}
		if onDisk >= size/2-1<<20 {
			break
		}
	}
	if onDisk < size/2-1<<20 {
		t.Errorf("%d bytes of the 4 MiB sent are on disk", onDisk)
	}
	for range size / len(chunk) / 2 {
		tw.Write(chunk)
	}
	tw.Close()
	pw.Close()
	<-done
	if code != http.StatusOK {
		t.Fatalf("import of 8 MiB: %d %s", code, body)
	}
}

func TestHandlerPanicIsAnswered500AndLoggedWithItsStack(t *testing.T) {
	fd := newFakeDaemon(t)
	var mu sync.Mutex
	partial := false
	srv := httptest.NewServer(fd.recoverPanics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		p := partial
		mu.Unlock()
		if p {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
		}
		var m map[string]int
		m["boom"]++ // a nil map: a bug in a handler
	})))
	defer srv.Close()
	code, body := post(t, srv, "/networks/create", `{}`)
	want := "berthd failed on POST /networks/create: panic: assignment to entry in nil map; this is a bug in berthd, whose log has the stack"
	if msg := errorMessage(t, body); code != http.StatusInternalServerError || msg != want {
		t.Fatalf("panicking handler: %d %q, want 500 %q", code, msg, want)
	}
	if log := fd.logs.take(); !strings.Contains(log, "panic in API handler") || !strings.Contains(log, "TestHandlerPanicIsAnswered500AndLoggedWithItsStack") {
		t.Errorf("log of the panic has no stack: %q", log)
	}
	// When part of the answer went out, the connection is cut rather than
	// the answer ended as if complete.
	mu.Lock()
	partial = true
	mu.Unlock()
	resp, err := srv.Client().Post(srv.URL+"/x", "application/json", strings.NewReader(`{}`))
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("a partial answer ended as if complete")
	}
	fd.logs.take()
	// The daemon goes on serving.
	fd.mustDo(t, "GET", "/_ping", "", http.StatusOK)
}
