package container

import (
	"encoding/binary"
	"io"
	"sync"
)

// Stream numbers of Docker's multiplexed stream format.
const (
	streamStdout = 1
	streamStderr = 2
)

// frameWriter writes Docker's multiplexed stream format: each write goes
// out as one frame with an 8-byte header (stream, 3 zero bytes, big-endian
// length). It is safe for both streams to write at once.
type frameWriter struct {
	mu sync.Mutex
	w  io.Writer
	// raw writes the bytes alone: a terminal's one stream, as Docker
	// sends it.
	raw bool
}

func (f *frameWriter) writeFrame(stream byte, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.raw {
		_, err := f.w.Write(p)
		return err
	}
	var hdr [8]byte
	hdr[0] = stream
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(p)))
	if _, err := f.w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := f.w.Write(p)
	return err
}

// streamWriter is one stream of a frameWriter as an io.Writer.
type streamWriter struct {
	f      *frameWriter
	stream byte
}

func (s streamWriter) Write(p []byte) (int, error) {
	if err := s.f.writeFrame(s.stream, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
