package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ChildTimes adds up how long the child processes of watched processes
// live, from fork to the exit of the child's main thread, as the kernel's
// process events connector (the proc connector) reports them, with the
// kernel's timestamps. A process that runs plugins as children (berthd,
// or a runtime calling libcni) spends that time waiting for them; the
// rest of an operation is its own. Grandchildren (the IPAM plugin a
// plugin delegates to, the iptables it runs) live inside their parent's
// time and are not counted apart.
type ChildTimes struct {
	sock *os.File

	mu      sync.Mutex
	changed *sync.Cond
	watched map[int32]bool
	born    map[int32]child // child's tgid → its parent and fork time
	spent   map[int32]time.Duration
	runs    map[int32]int
	marks   map[string]bool // markers seen and not yet waited for
	err     error           // events lost or the socket failed
	done    chan struct{}
}

type child struct {
	parent int32
	forked uint64 // ns
}

// The proc connector's wire format: struct nlmsghdr, struct cn_msg,
// struct proc_event (linux/connector.h, linux/cn_proc.h).
const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procEventFork     = 0x1
	procEventComm     = 0x200
	procEventExit     = 0x80000000
	cnMsgLen          = 20
	// The event's data follows what, cpu and the timestamp.
	procEventData = 16
)

// WatchChildren starts watching the children of the processes pids. It
// needs CAP_NET_ADMIN: events of every process are sent to the socket,
// and those of others are dropped here.
func WatchChildren(pids ...int) (*ChildTimes, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("proc connector socket: %w", err)
	}
	// The machine's other processes share the stream: room for bursts.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind the proc connector: %w", err)
	}
	// nlmsghdr (length, type), cn_msg (idx, val, seq, ack, len, flags),
	// then the operation.
	listen := make([]byte, unix.NLMSG_HDRLEN+cnMsgLen+4)
	binary.NativeEndian.PutUint32(listen[0:], uint32(len(listen)))
	binary.NativeEndian.PutUint16(listen[4:], unix.NLMSG_DONE)
	binary.NativeEndian.PutUint32(listen[unix.NLMSG_HDRLEN:], cnIdxProc)
	binary.NativeEndian.PutUint32(listen[unix.NLMSG_HDRLEN+4:], cnValProc)
	binary.NativeEndian.PutUint16(listen[unix.NLMSG_HDRLEN+16:], 4)
	binary.NativeEndian.PutUint32(listen[unix.NLMSG_HDRLEN+cnMsgLen:], procCnMcastListen)
	if err := unix.Sendto(fd, listen, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("listen to the proc connector: %w", err)
	}
	// Non-blocking, the runtime's poller waits for it, and Close ends a
	// read under way.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	c := &ChildTimes{
		sock: os.NewFile(uintptr(fd), "proc connector"), watched: map[int32]bool{}, born: map[int32]child{},
		spent: map[int32]time.Duration{}, runs: map[int32]int{}, marks: map[string]bool{},
		done: make(chan struct{}),
	}
	c.changed = sync.NewCond(&c.mu)
	for _, p := range pids {
		c.watched[int32(p)] = true
	}
	go c.read()
	return c, nil
}

// Close stops watching.
func (c *ChildTimes) Close() {
	c.sock.Close()
	<-c.done
}

func (c *ChildTimes) read() {
	defer close(c.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := c.sock.Read(buf)
		if err != nil {
			if errors.Is(err, unix.ENOBUFS) {
				err = errors.New("the proc connector dropped events: the socket's buffer overflowed")
			}
			c.mu.Lock()
			if c.err == nil {
				c.err = err
			}
			c.changed.Broadcast()
			c.mu.Unlock()
			return
		}
		for msg := buf[:n]; len(msg) >= unix.NLMSG_HDRLEN; {
			l := int(binary.NativeEndian.Uint32(msg))
			if l < unix.NLMSG_HDRLEN || l > len(msg) {
				break
			}
			if ev := msg[unix.NLMSG_HDRLEN:l]; len(ev) > cnMsgLen {
				c.event(ev[cnMsgLen:])
			}
			msg = msg[(l+unix.NLMSG_ALIGNTO-1) & ^(unix.NLMSG_ALIGNTO-1):]
		}
	}
}

// event takes one struct proc_event.
func (c *ChildTimes) event(ev []byte) {
	if len(ev) < procEventData+16 {
		return
	}
	what := binary.NativeEndian.Uint32(ev)
	ts := binary.NativeEndian.Uint64(ev[8:])
	data := ev[procEventData:]
	i32 := func(i int) int32 { return int32(binary.NativeEndian.Uint32(data[4*i:])) }
	c.mu.Lock()
	defer c.mu.Unlock()
	switch what {
	case procEventFork:
		// parent_pid, parent_tgid, child_pid, child_tgid: a new thread
		// has child_pid ≠ child_tgid.
		if parent, pid, tgid := i32(1), i32(2), i32(3); c.watched[parent] && pid == tgid {
			c.born[tgid] = child{parent: parent, forked: ts}
		}
	case procEventExit:
		// process_pid, process_tgid: the main thread when equal.
		pid, tgid := i32(0), i32(1)
		if ch, ok := c.born[tgid]; ok && pid == tgid {
			delete(c.born, tgid)
			c.spent[ch.parent] += time.Duration(ts - ch.forked)
			c.runs[ch.parent]++
		}
	case procEventComm:
		// process_pid, process_tgid, comm.
		if len(data) >= 8+16 && i32(1) == int32(os.Getpid()) {
			name := string(data[8 : 8+16])
			if i := indexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if _, waited := c.marks[name]; waited {
				c.marks[name] = true
				c.changed.Broadcast()
			}
		}
	}
}

func indexByte(s string, b byte) int {
	for i := range len(s) {
		if s[i] == b {
			return i
		}
	}
	return -1
}

// markers numbers the markers of every ChildTimes.
var markers struct {
	sync.Mutex
	n int
}

// sync returns once every event the kernel sent before the call has been
// read: it renames the calling thread, for a moment, to a marker of its
// own, and waits for the event of that. Events come in order.
func (c *ChildTimes) sync() error {
	markers.Lock()
	markers.n++
	name := fmt.Sprintf("bm%d", markers.n) // a comm holds 15 bytes
	markers.Unlock()
	c.mu.Lock()
	c.marks[name] = false
	c.mu.Unlock()
	err := renameThread(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer delete(c.marks, name)
	if err != nil {
		return err
	}
	timeout := time.AfterFunc(10*time.Second, func() {
		c.mu.Lock()
		if c.err == nil {
			c.err = errors.New("the proc connector sent no event for a marker within 10s")
		}
		c.changed.Broadcast()
		c.mu.Unlock()
	})
	defer timeout.Stop()
	for !c.marks[name] && c.err == nil {
		c.changed.Wait()
	}
	return c.err
}

// renameThread names the calling thread name for a moment: the kernel
// sends an event of the new name, then of the old one back.
func renameThread(name string) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const comm = "/proc/thread-self/comm"
	old, err := os.ReadFile(comm)
	if err != nil {
		return err
	}
	if err := os.WriteFile(comm, []byte(name), 0); err != nil {
		return fmt.Errorf("rename a thread to a marker: %w", err)
	}
	return os.WriteFile(comm, old, 0)
}

// Take returns the time the children of pid lived and how many there
// were, since the last Take for pid. The children must have exited: a
// child still alive is an error, as is an event lost.
func (c *ChildTimes) Take(pid int) (time.Duration, int, error) {
	if err := c.sync(); err != nil {
		return 0, 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for tgid, ch := range c.born {
		if ch.parent == int32(pid) {
			return 0, 0, fmt.Errorf("process %d, a child of %d, has not exited", tgid, pid)
		}
	}
	spent, runs := c.spent[int32(pid)], c.runs[int32(pid)]
	delete(c.spent, int32(pid))
	delete(c.runs, int32(pid))
	return spent, runs, nil
}
