package firewall

import (
	"encoding/binary"
	"errors"
	"sync"
	"syscall"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nlenc"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// fakeKernel is nf_tables at the other end of google/nftables' test dial:
// no socket, no privileges. It records every request and answers it the
// way the kernel does, one datagram per receive (as seen from a real
// kernel, 6.x):
//
//   - a batch that commits: first the echoes of the messages that asked
//     for one (NEWRULE), packed into datagrams of up to NLMSG_GOODSIZE,
//     then one ack datagram per message that asked for an ack;
//   - a batch that fails: no echoes; an error datagram for each refused
//     message and an ack datagram for each other one that asked for it;
//   - a dump: the objects in datagrams flagged multi, then a done datagram;
//   - without CAP_NET_ADMIN: one error, for the first message.
//
// A lasting connection must read exactly what it was sent: a receive with
// nothing to read, or a request while replies are still unread (the next
// read would take a stale reply), fails the test.
type fakeKernel struct {
	t *testing.T

	// refuse, when set, is the errno the kernel answers a message of a
	// batch with (0: accepted).
	refuse func(netlink.Message) syscall.Errno
	// refuseAll is the errno every request is answered with (EPERM:
	// no CAP_NET_ADMIN).
	refuseAll syscall.Errno
	// chains is what a chain dump returns.
	chains []netlink.Message

	mu       sync.Mutex
	requests [][]netlink.Message
	unread   [][]netlink.Message
	dials    int
}

// goodSize is NLMSG_GOODSIZE with 4 KiB pages: how much of the commit's
// echoes the kernel packs into one datagram.
const goodSize = 3776

func newFakeKernel(t *testing.T) *fakeKernel {
	k := &fakeKernel{t: t}
	t.Cleanup(func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		if len(k.unread) > 0 {
			t.Errorf("fake kernel: %d datagrams of replies were never read", len(k.unread))
		}
	})
	return k
}

// options make every connection the firewall opens talk to k, and count
// the dials.
func (k *fakeKernel) options() []nftables.ConnOption {
	return []nftables.ConnOption{
		nftables.WithTestDial(k.dial),
		nftables.WithSockOptions(func(*netlink.Conn) error {
			k.mu.Lock()
			defer k.mu.Unlock()
			k.dials++
			return nil
		}),
	}
}

// newFirewall is a firewall with berth's table name talking to k.
func (k *fakeKernel) newFirewall() *Firewall {
	k.t.Helper()
	f, err := New("berth", k.options()...)
	if err != nil {
		k.t.Fatal(err)
	}
	k.t.Cleanup(func() {
		if err := f.Close(); err != nil {
			k.t.Errorf("close: %v", err)
		}
	})
	return f
}

// sent is every request so far; forget drops them (what a test set up).
func (k *fakeKernel) sent() [][]netlink.Message {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([][]netlink.Message(nil), k.requests...)
}

func (k *fakeKernel) forget() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.requests = nil
}

func (k *fakeKernel) dialCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.dials
}

var errWouldBlock = errors.New("fake kernel: receive with nothing to read (a real socket would block)")

// dial is the nltest.Func: a request when req is set, a receive when not.
func (k *fakeKernel) dial(req []netlink.Message) ([]netlink.Message, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if req == nil {
		if len(k.unread) == 0 {
			k.t.Error(errWouldBlock)
			return nil, errWouldBlock
		}
		d := k.unread[0]
		k.unread = k.unread[1:]
		return d, nil
	}
	if len(k.unread) > 0 {
		k.t.Errorf("fake kernel: request sent with %d datagrams of earlier replies unread", len(k.unread))
	}
	k.requests = append(k.requests, copyMessages(req))
	switch {
	case k.refuseAll != 0:
		k.unread = append(k.unread, []netlink.Message{errorReply(req[0], k.refuseAll)})
	case req[0].Header.Type == unix.NFNL_MSG_BATCH_BEGIN:
		k.answerBatch(req)
	case len(req) == 1 && req[0].Header.Type == nftType(unix.NFT_MSG_GETCHAIN) && req[0].Header.Flags&netlink.Dump == netlink.Dump:
		k.answerDump(req[0], k.chains)
	default:
		k.t.Errorf("fake kernel: unexpected request %v", req[0].Header)
		k.unread = append(k.unread, []netlink.Message{errorReply(req[0], unix.EOPNOTSUPP)})
	}
	return nil, nil
}

func (k *fakeKernel) answerBatch(req []netlink.Message) {
	if n := len(req); n < 2 || req[n-1].Header.Type != unix.NFNL_MSG_BATCH_END {
		k.t.Errorf("fake kernel: batch of %d messages without its end", len(req))
		return
	}
	msgs := req[1 : len(req)-1]
	errnos := make([]syscall.Errno, len(msgs))
	failed := false
	for i, m := range msgs {
		if k.refuse != nil {
			errnos[i] = k.refuse(m)
		}
		failed = failed || errnos[i] != 0
	}
	if !failed {
		var d []netlink.Message
		size := 0
		for _, m := range msgs {
			if m.Header.Flags&netlink.Echo == 0 {
				continue
			}
			echo := netlink.Message{
				Header: netlink.Header{Type: m.Header.Type, Flags: m.Header.Flags & (netlink.Create | netlink.Append),
					Sequence: m.Header.Sequence, PID: nltest.PID},
				Data: m.Data,
			}
			n := nlmsgAlign(16 + len(echo.Data))
			if len(d) > 0 && size+n > goodSize {
				k.unread = append(k.unread, d)
				d, size = nil, 0
			}
			d, size = append(d, echo), size+n
		}
		if len(d) > 0 {
			k.unread = append(k.unread, d)
		}
	}
	for i, m := range msgs {
		switch {
		case errnos[i] != 0:
			k.unread = append(k.unread, []netlink.Message{errorReply(m, errnos[i])})
		case m.Header.Flags&netlink.Acknowledge != 0:
			k.unread = append(k.unread, []netlink.Message{ack(m)})
		}
	}
}

func (k *fakeKernel) answerDump(req netlink.Message, objs []netlink.Message) {
	var d []netlink.Message
	for _, o := range objs {
		o.Header.Flags |= netlink.Multi
		o.Header.Sequence, o.Header.PID = req.Header.Sequence, nltest.PID
		d = append(d, o)
	}
	if len(d) > 0 {
		k.unread = append(k.unread, d)
	}
	k.unread = append(k.unread, []netlink.Message{{
		Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi, Sequence: req.Header.Sequence, PID: nltest.PID},
		Data:   nlenc.Int32Bytes(0),
	}})
}

// ack is NLMSG_ERROR with errno 0, carrying the request's header only
// (NLM_F_CAPPED), as the kernel sends it.
func ack(req netlink.Message) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.Error, Flags: netlink.Capped, Sequence: req.Header.Sequence, PID: nltest.PID},
		Data:   append(nlenc.Int32Bytes(0), headerBytes(req)...),
	}
}

// errorReply is NLMSG_ERROR with -errno and the whole request.
func errorReply(req netlink.Message, errno syscall.Errno) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.Error, Sequence: req.Header.Sequence, PID: nltest.PID},
		Data:   append(append(nlenc.Int32Bytes(-int32(errno)), headerBytes(req)...), req.Data...),
	}
}

func headerBytes(m netlink.Message) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint32(b[0:4], uint32(16+len(m.Data)))
	binary.NativeEndian.PutUint16(b[4:6], uint16(m.Header.Type))
	binary.NativeEndian.PutUint16(b[6:8], uint16(m.Header.Flags))
	binary.NativeEndian.PutUint32(b[8:12], m.Header.Sequence)
	binary.NativeEndian.PutUint32(b[12:16], m.Header.PID)
	return b
}

func nlmsgAlign(n int) int { return (n + 3) &^ 3 }

func nftType(msg int) netlink.HeaderType {
	return netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msg)
}

func copyMessages(msgs []netlink.Message) []netlink.Message {
	out := make([]netlink.Message, len(msgs))
	for i, m := range msgs {
		out[i] = netlink.Message{Header: m.Header, Data: append([]byte(nil), m.Data...)}
	}
	return out
}

// chainMsg is a chain as a chain dump reports it, attributes in the order
// the kernel writes them (nf_tables_fill_chain_info). A nil hook is a
// regular chain, which has no policy either.
func chainMsg(family nftables.TableFamily, table, name string, hook *nftables.ChainHook, policy nftables.ChainPolicy) netlink.Message {
	attrs := []netlink.Attribute{
		{Type: unix.NFTA_CHAIN_TABLE, Data: []byte(table + "\x00")},
		{Type: unix.NFTA_CHAIN_NAME, Data: []byte(name + "\x00")},
		{Type: unix.NFTA_CHAIN_HANDLE, Data: binary.BigEndian.AppendUint64(nil, 1)},
	}
	if hook != nil {
		h := nltest.MustMarshalAttributes([]netlink.Attribute{
			{Type: unix.NFTA_HOOK_HOOKNUM, Data: binary.BigEndian.AppendUint32(nil, uint32(*hook))},
			{Type: unix.NFTA_HOOK_PRIORITY, Data: binary.BigEndian.AppendUint32(nil, 0)},
		})
		attrs = append(attrs,
			netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_CHAIN_HOOK, Data: h},
			netlink.Attribute{Type: unix.NFTA_CHAIN_POLICY, Data: binary.BigEndian.AppendUint32(nil, uint32(policy))},
			netlink.Attribute{Type: unix.NFTA_CHAIN_TYPE, Data: []byte("filter\x00")},
		)
	}
	attrs = append(attrs, netlink.Attribute{Type: unix.NFTA_CHAIN_USE, Data: binary.BigEndian.AppendUint32(nil, 0)})
	return netlink.Message{
		Header: netlink.Header{Type: nftType(unix.NFT_MSG_NEWCHAIN)},
		Data:   append([]byte{byte(family), unix.NFNETLINK_V0, 0, 0}, nltest.MustMarshalAttributes(attrs)...),
	}
}
