package daemon

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
)

// hijacked is a connection taken over from the HTTP server for a raw
// stream (attach, exec): reads come through the server's buffer, which may
// already hold the client's first bytes.
type hijacked struct {
	net.Conn
	r *bufio.Reader
}

func (h *hijacked) Read(p []byte) (int, error) { return h.r.Read(p) }

// CloseWrite ends the output half, so the client sees the end of the
// stream while it may still be sending.
func (h *hijacked) CloseWrite() error {
	if cw, ok := h.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return h.Conn.Close()
}

// hijack answers the upgrade dockerd's clients ask for (101 UPGRADED to a
// raw TCP stream, or a plain 200 for clients that do not ask) and returns
// the connection.
func hijack(w http.ResponseWriter, r *http.Request, mediaType string) (*hijacked, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, fmt.Errorf("connection cannot be hijacked")
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return nil, err
	}
	status := "200 OK"
	extra := ""
	if r.Header.Get("Upgrade") != "" {
		status = "101 UPGRADED"
		extra = "Connection: Upgrade\r\nUpgrade: tcp\r\n"
	}
	if _, err := fmt.Fprintf(conn, "HTTP/1.1 %s\r\nContent-Type: %s\r\n%s\r\n", status, mediaType, extra); err != nil {
		conn.Close()
		return nil, err
	}
	return &hijacked{Conn: conn, r: rw.Reader}, nil
}

// flushWriter flushes after every write, for streamed answers (logs).
type flushWriter struct {
	w io.Writer
	f http.Flusher
}

func (fw flushWriter) Write(p []byte) (int, error) {
	n, err := fw.w.Write(p)
	fw.f.Flush()
	return n, err
}
