package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/docker/go-units"
	"golang.org/x/sys/unix"
)

// progress is one line on a terminal that tells how far a long operation
// got: a bar when its size is known, the time it has taken otherwise. On
// anything but a terminal it writes nothing, so scripts and pipes see the
// command's output alone.
type progress struct {
	w     io.Writer
	width int // the terminal's columns; 0: not a terminal
	label string
	total int64 // bytes or steps; 0: unknown

	mu    sync.Mutex
	done  int64
	step  string
	start time.Time
	drawn time.Time
	stop  chan struct{}
	ended chan struct{}
}

// redraw is how often the line may change: often enough to look alive,
// rarely enough to cost nothing next to the operation.
const redraw = 100 * time.Millisecond

// newProgress starts a progress line on the CLI's stderr. total is the
// size of the work (0 when unknown: the line then counts the seconds).
func (c *cli) newProgress(label string, total int64) *progress {
	return startProgress(c.err, terminalWidth(c.err), label, total)
}

func startProgress(w io.Writer, width int, label string, total int64) *progress {
	p := &progress{w: w, width: width, label: label, total: total, start: time.Now(),
		stop: make(chan struct{}), ended: make(chan struct{})}
	if width == 0 {
		close(p.ended)
		return p
	}
	// A ticker keeps the line moving while nothing is reported: an
	// upload the daemon is unpacking, a prune that is one request.
	go func() {
		defer close(p.ended)
		t := time.NewTicker(redraw)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.draw()
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// terminalWidth is the width of the terminal w is, or 0.
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0
	}
	if ws.Col == 0 {
		return 80
	}
	return int(ws.Col)
}

// Add reports n more bytes or steps done.
func (p *progress) Add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	if time.Since(p.drawn) >= redraw {
		p.draw()
	}
}

// Step names the part of the work under way, and counts the one before
// as done.
func (p *progress) Step(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.step != "" {
		p.done++
	}
	p.step = name
	p.draw()
}

// Reader counts what is read through r as done.
func (p *progress) Reader(r io.Reader) io.Reader { return progressReader{r, p} }

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.Add(int64(n))
	return n, err
}

// End clears the line, so that what the command prints next starts on a
// clean one.
func (p *progress) End() {
	if p.width == 0 {
		return
	}
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.ended
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\033[K")
}

// draw writes the line; called with p.mu held.
func (p *progress) draw() {
	if p.width == 0 {
		return
	}
	p.drawn = time.Now()
	took := time.Since(p.start).Truncate(100 * time.Millisecond)
	text := p.label
	if p.step != "" {
		text += " " + p.step
	}
	var line string
	switch {
	case p.total > 0 && p.step != "":
		line = fmt.Sprintf("%s [%d/%d] %s", text, min(p.done+1, p.total), p.total, took)
	case p.total > 0:
		done := min(p.done, p.total)
		counts := fmt.Sprintf(" %s/%s %s", units.HumanSize(float64(done)), units.HumanSize(float64(p.total)), took)
		room := p.width - len(text) - len(counts) - 8
		bar := ""
		if room >= 10 {
			room = min(room, 50)
			filled := int(int64(room) * done / p.total)
			bar = " [" + strings.Repeat("=", filled) + strings.Repeat(" ", room-filled) + "]"
		}
		line = fmt.Sprintf("%s%s %3d%%%s", text, bar, 100*done/p.total, counts)
	default:
		line = fmt.Sprintf("%s %s", text, took)
	}
	if len(line) > p.width-1 {
		line = line[:p.width-1]
	}
	fmt.Fprint(p.w, "\r"+line+"\033[K")
}
